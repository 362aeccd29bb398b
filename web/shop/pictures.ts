/**
 * Product pictures, generated: an SVG per product drawn from its id (a few known goods get their own
 * drawing, any other a coloured tile with its initials). Served as data: URLs, nothing fetched.
 */
function hue(id: string): number {
  let h = 0;
  for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

const drawings: Record<string, string> = {
  'sencha-100g': '<path d="M120 40c50 20 60 70 20 110-40-30-50-80-20-110z" fill="#2f7d32"/><path d="M122 48c-2 40 4 70 18 100" stroke="#cde8c4" stroke-width="4" fill="none"/><path d="M60 70c40 0 60 40 40 80-35-10-55-45-40-80z" fill="#4e9a2f"/>',
  'matcha-30g': '<rect x="70" y="60" width="100" height="100" rx="12" fill="#2e5e1f"/><rect x="70" y="60" width="100" height="22" rx="8" fill="#1d3d13"/><circle cx="120" cy="120" r="26" fill="#8fcf5a"/>',
  chawan: '<path d="M55 80h130c0 50-30 80-65 80s-65-30-65-80z" fill="#6b4f3a"/><ellipse cx="120" cy="80" rx="65" ry="14" fill="#3e8e41"/><rect x="100" y="158" width="40" height="10" rx="3" fill="#4a3525"/>',
  chasen: '<rect x="112" y="30" width="16" height="70" rx="6" fill="#c8a96a"/><path d="M90 100h60l-6 70H96z" fill="#e2c98f"/><path d="M100 105v60M110 105v62M120 105v64M130 105v62M140 105v60" stroke="#a8864a" stroke-width="3"/>',
  furoshiki: '<rect x="60" y="60" width="120" height="100" rx="10" fill="#1f4e8c"/><path d="M60 60l120 100M180 60L60 160" stroke="#f0c24b" stroke-width="6"/><circle cx="120" cy="56" r="16" fill="#1f4e8c" stroke="#f0c24b" stroke-width="4"/>',
  tenugui: '<rect x="50" y="70" width="140" height="80" fill="#f7f7f2" stroke="#1f4e8c" stroke-width="4"/><path d="M50 90h140M50 110h140M50 130h140" stroke="#1f4e8c" stroke-width="6" stroke-dasharray="12 8"/>',
};

export function productPicture(id: string, name: string): string {
  const h = hue(id);
  const initials = name.replace(/[^A-Za-z ]/g, '').split(' ').filter(Boolean).slice(0, 2).map((w) => w[0]?.toUpperCase()).join('');
  const art = drawings[id] ?? `<text x="120" y="128" font-family="sans-serif" font-size="56" font-weight="700" text-anchor="middle" fill="#fff">${initials}</text>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 240 200"><defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl(${h},45%,88%)"/><stop offset="1" stop-color="hsl(${(h + 40) % 360},50%,72%)"/></linearGradient></defs><rect width="240" height="200" fill="url(#g)"/>${art}</svg>`;
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}
