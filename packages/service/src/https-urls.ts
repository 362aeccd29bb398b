/**
 * Every key, metadata and webhook URL a Kessai server is configured with is https: (the development
 * system too, under its own CA). A plain-HTTP URL would let anyone on the path swap an issuer's keys
 * or read a signed event. Checked when a config is built, so a server with one never starts.
 */

/** Throws a TypeError naming `field` unless `value` is an absolute https: URL. */
export function requireHttpsUrl(value: string, field: string): void {
  let protocol: string;
  try {
    protocol = new URL(value).protocol;
  } catch {
    throw new TypeError(`${field} is not a URL`);
  }
  if (protocol !== 'https:') throw new TypeError(`${field} must be an https: URL`);
}
