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
