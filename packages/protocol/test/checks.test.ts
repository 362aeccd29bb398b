/**
 * The approval rule on its own (packages/protocol/src/checks/approval.ts): one row per check, each
 * changing one field of an approval that otherwise passes, with the code it must answer. Both
 * servers run this list; test/attacks/compromised-broker.test.ts drives it at the bank through a
 * hostile broker, and `npm run mutation-check` removes each check and expects both files to notice.
 */
import { describe, expect, it } from 'vitest';
import { approvalChecks, checkApproval, KessaiError, limits, type ApprovalPayload, type ExpectedApproval } from '../src/index.ts';

const nowMs = Date.UTC(2026, 11, 7, 12, 0, 0);
const iat = Math.floor(nowMs / 1000);
const expected: ExpectedApproval = { rid: 'pr_0000000000000000000000000a', mid: 'mer_0000000000000000000000000a', mnm: 'Kessai Tea House', amt: '5700', cur: 'JPY', ih: 'A'.repeat(43), lm: false };
const approval: ApprovalPayload = { ...expected, cur: 'JPY', lm: false, iat, exp: iat + 600, nonce: 'N'.repeat(24), pbh: 'P'.repeat(43) };

function codeOf(changed: ApprovalPayload, against: ExpectedApproval = expected): string {
  try {
    checkApproval(changed, against, nowMs);
    return 'passes';
  } catch (err) {
    if (err instanceof KessaiError) return err.code;
    throw err;
  }
}

describe('the approval rule', () => {
  it('passes an approval that names exactly the expected request (the control)', () => {
    expect(codeOf(approval)).toBe('passes');
  });

  it.each([
    ['request id', { rid: 'pr_0000000000000000000000000b' }, 'approval_mismatch'],
    ['merchant id', { mid: 'mer_0000000000000000000000000b' }, 'approval_mismatch'],
    ['merchant name', { mnm: 'Kessai Tea Housе' }, 'approval_mismatch'],
    ['amount', { amt: '5701' }, 'approval_mismatch'],
    ['currency', { cur: 'USD' }, 'approval_mismatch'],
    ['items hash', { ih: 'B'.repeat(43) }, 'approval_mismatch'],
    ['mode (a live approval for a test request)', { lm: true }, 'approval_mismatch'],
    ['issued at, too old', { iat: iat - limits.approvalAgeMsMax / 1000 - 1, exp: iat + 600 }, 'approval_stale'],
    ['issued at, ahead of the clock skew', { iat: iat + limits.clockSkewMs / 1000 + 1, exp: iat + 900 }, 'approval_stale'],
    ['expiry passed', { exp: iat - limits.clockSkewMs / 1000 - 1, iat: iat - 600 }, 'approval_stale'],
    ['expiry before issue', { exp: iat - 1 }, 'approval_stale'],
  ] as const)('refuses another %s with %s', (_field, change, code) => {
    expect(codeOf({ ...approval, ...change })).toBe(code);
  });

  it('refuses a test approval for a live request with approval_mismatch, and passes either mode where the server knows none (the issuer, which compares lm with the account)', () => {
    expect(codeOf(approval, { ...expected, lm: true })).toBe('approval_mismatch');
    expect(codeOf({ ...approval, lm: true }, { ...expected, lm: true })).toBe('passes');
    const { lm: _lm, ...atTheIssuer } = expected;
    expect([codeOf(approval, atTheIssuer), codeOf({ ...approval, lm: true }, atTheIssuer)]).toEqual(['passes', 'passes']);
  });

  it('runs its checks in the documented order, each named once', () => {
    expect(approvalChecks.map((check) => check.name)).toEqual(['request id', 'merchant id', 'merchant name', 'amount', 'currency', 'items hash', 'mode', 'issued at', 'expiry']);
  });
});
