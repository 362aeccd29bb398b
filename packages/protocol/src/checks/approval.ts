/**
 * The approval rule (step 404, checked at 405 by the authentication server and at 406 by the
 * issuer): an approval signed by the device key names exactly one request, merchant (id and the
 * name the payer was shown), amount, currency and item list, in the mode the payer was shown (`lm`),
 * and is used while fresh. One small check per field, run in the order of `approvalChecks`; both
 * servers run the same list, the issuer against its own records (docs/threat-model.md lists each
 * check with its test).
 */
import { KessaiError, type ErrorCode } from '../errors.ts';
import { limits } from '../limits.ts';
import type { ApprovalPayload } from '../messages.ts';

/** What the checking server expects the approval to name. */
export interface ExpectedApproval {
  rid: string;
  mid: string;
  /** The merchant's name as this server has it registered. */
  mnm: string;
  amt: string;
  cur: string;
  /** itemsHash of the line items this server holds for the request. */
  ih: string;
  /**
   * The request's mode, where this server knows it (the authentication server: its key's mode). The
   * issuer has no request mode of its own: it leaves this out and compares `lm` with the card
   * account's test flag instead, a signed decline (`livemode_mismatch`, authorize.ts).
   */
  lm?: boolean;
}

export interface ApprovalCheck {
  name: string;
  code: ErrorCode;
  /** True when the approval passes this check. */
  passes(approval: ApprovalPayload, expected: ExpectedApproval, nowMs: number): boolean;
}

const field = (name: string, key: keyof ExpectedApproval & keyof ApprovalPayload): ApprovalCheck => ({
  name,
  code: 'approval_mismatch',
  passes: (approval, expected) => approval[key] === expected[key],
});

export const approvalChecks: readonly ApprovalCheck[] = [
  field('request id', 'rid'),
  field('merchant id', 'mid'),
  field('merchant name', 'mnm'),
  field('amount', 'amt'),
  field('currency', 'cur'),
  field('items hash', 'ih'),
  { name: 'mode', code: 'approval_mismatch', passes: (approval, { lm }) => lm === undefined || approval.lm === lm },
  { name: 'issued at', code: 'approval_stale', passes: (approval, _expected, nowMs) => nowMs - approval.iat * 1000 <= limits.approvalAgeMsMax && approval.iat * 1000 - nowMs <= limits.clockSkewMs },
  { name: 'expiry', code: 'approval_stale', passes: (approval, _expected, nowMs) => nowMs <= approval.exp * 1000 + limits.clockSkewMs && approval.exp >= approval.iat },
];

/** Runs `checks` in order; the first that fails is thrown with its code and names the field. */
export function checkApproval(approval: ApprovalPayload, expected: ExpectedApproval, nowMs: number, checks: readonly ApprovalCheck[] = approvalChecks): ApprovalPayload {
  for (const check of checks) if (!check.passes(approval, expected, nowMs)) throw new KessaiError(check.code, `the approval's ${check.name} does not match`);
  return approval;
}
