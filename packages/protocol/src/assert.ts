/**
 * Assertions, after TigerBeetle's TIGER_STYLE: a condition the code relies on is stated where it is
 * relied on, and a broken one stops the operation at once instead of carrying a wrong state on.
 * An assertion failing is a bug in Kessai, never a user error: the message names the rule broken and
 * at most identifiers (ids, column names) — never personal data (card number, name, expiry, PIN).
 */

/** Thrown by `assert`: a programming error (a broken invariant), not an input the caller can fix. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
  readonly code = 'ERR_ASSERTION';
}

/** Throws AssertionError(`message`) unless `condition` holds; narrows the type when it does. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(`assertion failed: ${message}`);
}
