/** The languages of the payer's pages and how one is picked (no React here: Node tests import it). */
export type Locale = 'en' | 'ja';
export const locales: readonly Locale[] = ['en', 'ja'];

/**
 * The text of a code (an order status, a decline reason) from a catalogue's table, or undefined for
 * a code the table does not know (a newer server may send one).
 */
export function textOf(table: Readonly<Record<string, string>>, code: string): string | undefined {
  return Object.hasOwn(table, code) ? table[code] : undefined;
}

/** The first of the browser's languages that the pages speak ("ja-JP" → ja), else English. */
export function pickLocale(languages: readonly string[]): Locale {
  for (const tag of languages) {
    const base = tag.toLowerCase().split('-')[0];
    if (base === 'ja' || base === 'en') return base;
  }
  return 'en';
}
