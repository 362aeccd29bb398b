/**
 * Hand-written SVG charts for the benchmark report (no dependencies): a scatter of values over
 * time and a line chart of series over x. Plain axes, ticks at round numbers, a legend.
 */
export interface Series {
  name: string;
  points: Array<[x: number, y: number]>;
  /** Draw the points joined by a line (default) or as dots only. */
  dots?: boolean;
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(span: number, count: number): number {
  const raw = span / Math.max(count, 1);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const unit = [1, 2, 5, 10].find((m) => m * power >= raw) ?? 10;
  return unit * power;
}

function ticks(min: number, max: number, count = 5): number[] {
  const step = niceStep(max - min, count);
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number) => (Math.abs(v) >= 10_000 ? `${(v / 1000).toFixed(0)}k` : Math.abs(v) >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(2));

export function chart(options: { title: string; xLabel: string; yLabel: string; series: Series[]; logX?: boolean; hLines?: Array<{ name: string; y: number }> }): string {
  const width = 720;
  const height = 400;
  const margin = { left: 70, right: 170, top: 40, bottom: 50 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const fx = (x: number) => (options.logX ? Math.log10(Math.max(x, 1e-9)) : x);
  const all = options.series.flatMap((s) => s.points);
  const xs = all.map(([x]) => fx(x));
  const ys = [...all.map(([, y]) => y), ...(options.hLines ?? []).map((h) => h.y)];
  const xMin = xs.length ? Math.min(...xs) : 0;
  const xMax = xs.length ? Math.max(...xs, xMin + 1e-9) : 1;
  const yMax = ys.length ? Math.max(...ys) * 1.05 || 1 : 1;
  const sx = (x: number) => margin.left + ((fx(x) - xMin) / (xMax - xMin || 1)) * plotW;
  const sy = (y: number) => margin.top + plotH - (y / yMax) * plotH;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">${escape(options.title)}</text>`);
  for (const t of ticks(0, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${label(t)}</text>`);
  }
  const xTicks = options.logX ? [...new Set(all.map(([x]) => x))].sort((a, b) => a - b) : ticks(xMin, xMax);
  for (const t of xTicks) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 4}" stroke="black"/>`);
    parts.push(`<text x="${x}" y="${margin.top + plotH + 17}" text-anchor="middle">${label(t)}</text>`);
  }
  parts.push(`<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="black"/>`);
  parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="black"/>`);
  parts.push(`<text x="${margin.left + plotW / 2}" y="${height - 12}" text-anchor="middle">${escape(options.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(options.yLabel)}</text>`);
  options.series.forEach((s, i) => {
    const color = palette[i % palette.length]!;
    if (s.dots) {
      for (const [x, y] of s.points) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="1.8" fill="${color}" fill-opacity="0.6"/>`);
    } else if (s.points.length > 0) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of s.points) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${color}"/>`);
    }
    const ly = margin.top + 10 + i * 18;
    parts.push(`<rect x="${margin.left + plotW + 14}" y="${ly - 6}" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${margin.left + plotW + 32}" y="${ly}" dominant-baseline="middle">${escape(s.name)}</text>`);
  });
  (options.hLines ?? []).forEach((h, i) => {
    const y = sy(h.y).toFixed(1);
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y}" y2="${y}" stroke="#555" stroke-dasharray="6 4"/>`);
    const ly = margin.top + 10 + (options.series.length + i) * 18;
    parts.push(`<line x1="${margin.left + plotW + 14}" x2="${margin.left + plotW + 26}" y1="${ly}" y2="${ly}" stroke="#555" stroke-dasharray="4 2"/>`);
    parts.push(`<text x="${margin.left + plotW + 32}" y="${ly}" dominant-baseline="middle">${escape(h.name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
