/**
 * Text a merchant wrote (its registered name, item descriptions, order ids) on its way to the
 * payer's screen: every character that can hide, reorder or redraw what the payer reads is
 * replaced by a visible U+FFFD, so the confirmation shows what will be charged and to whom.
 */

/**
 * Controls (C0, C1, DEL), format characters (bidi overrides and isolates, zero-width space,
 * joiners, word joiner, BOM, invisible operators, Mongolian vowel separator, tags), line and
 * paragraph separators, private-use and lone surrogate code units, and the blank-looking fillers
 * and grapheme joiner that are letters or marks to Unicode but print nothing.
 */
// Letters and marks that combine are alternatives, not class members, so none joins its neighbour.
const hiddenOrRedrawing = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}\u17b4\u17b5\u3164\uffa0]|\u115f|\u1160|\u034f/gu;

export function safeDisplay(text: string): string {
  return text.replace(hiddenOrRedrawing, '\ufffd');
}

/**
 * Script sets a registered merchant name may draw its letters from (after Unicode's "highly
 * restrictive" level, UTS #39 §5.2): one script alone, or Latin with the Japanese, Chinese or
 * Korean scripts that are written beside it. Digits, punctuation and spaces (Common) and combining
 * marks (Inherited) go with any.
 */
const allowedScriptSets: ReadonlyArray<ReadonlySet<string>> = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul']),
];
const scriptsChecked = ['Latin', 'Greek', 'Cyrillic', 'Armenian', 'Hebrew', 'Arabic', 'Han', 'Hiragana', 'Katakana', 'Bopomofo', 'Hangul', 'Thai', 'Devanagari', 'Georgian', 'Cherokee'] as const;
const scriptPatterns = scriptsChecked.map((script) => [script, new RegExp(`\\p{Script=${script}}`, 'u')] as const);
const letter = /\p{L}/u;
const common = /[\p{Script=Common}\p{Script=Inherited}]/u;

/**
 * Why a merchant name cannot be registered, or undefined if it can: it must already be what the
 * wallet shows (safeDisplay changes nothing), in Unicode normal form NFC, and mix scripts only as
 * the sets above allow — so "Kessаi" with a Cyrillic "а" is refused, while "Kessai 茶房" is not.
 */
export function merchantNameProblem(name: string): string | undefined {
  if (name.trim().length === 0) return 'the name is empty';
  if (safeDisplay(name) !== name) return 'the name contains a character that hides, reorders or redraws text';
  if (name.normalize('NFC') !== name) return 'the name is not in Unicode normal form NFC';
  const scripts = new Set<string>();
  for (const char of name) {
    if (!letter.test(char) || common.test(char)) continue;
    const found = scriptPatterns.find(([, pattern]) => pattern.test(char));
    if (!found) return `the name uses a script merchant names may not use (U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`;
    scripts.add(found[0]);
  }
  if (scripts.size <= 1) return undefined;
  if (allowedScriptSets.some((set) => [...scripts].every((script) => set.has(script)))) return undefined;
  return `the name mixes scripts (${[...scripts].sort().join(', ')})`;
}
