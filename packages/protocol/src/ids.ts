/** Prefixed random identifiers (`pr_…`, `cred_…`): 128 bits of randomness in Crockford base32. */
const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';

export type IdPrefix = 'pr' | 'cred' | 'auth' | 'mer' | 'acct' | 'xfer' | 'whk' | 'ord' | 'cart' | 'evt' | 'nonce' | 'cap' | 'rf' | 'req';

export function newId(prefix: IdPrefix): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return `${prefix}_${out}`;
}

export function idPattern(prefix: IdPrefix): RegExp {
  return new RegExp(`^${prefix}_[0-9a-hjkmnp-tv-z]{26}$`);
}
