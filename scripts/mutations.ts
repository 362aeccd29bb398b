/**
 * The mutations of scripts/mutation-check.ts: for each check the bank runs on what a compromised
 * authentication server forwards, the line that makes it and the test files that must fail without
 * it. test/mutation-list.test.ts holds each to the source, so a change that moves a check fails CI
 * instead of the next on-demand run.
 */
export interface Mutation {
  name: string;
  /** The check, as docs/threat-model.md names it. */
  check: string;
  file: string;
  find: string;
  replace: string;
  tests: string[];
}

const approval = 'packages/protocol/src/checks/approval.ts';
const guard = ['test/attacks/compromised-broker.test.ts'];
/** An approval check is guarded twice: at the bank through a hostile broker, and on its own. */
const approvalGuard = [...guard, 'packages/protocol/test/checks.test.ts'];
const removeCheck = (name: string, line: string): Mutation => ({ name, check: `approval ${name}`, file: approval, find: line, replace: '', tests: approvalGuard });

export const mutations: Mutation[] = [
  removeCheck('request-id', "  field('request id', 'rid'),\n"),
  removeCheck('merchant-id', "  field('merchant id', 'mid'),\n"),
  removeCheck('merchant-name', "  field('merchant name', 'mnm'),\n"),
  removeCheck('amount', "  field('amount', 'amt'),\n"),
  removeCheck('currency', "  field('currency', 'cur'),\n"),
  removeCheck('items-hash', "  field('items hash', 'ih'),\n"),
  removeCheck(
    'mode',
    "  { name: 'mode', code: 'approval_mismatch', " +
      'passes: (approval, { lm }) => lm === undefined || approval.lm === lm },\n',
  ),
  {
    name: 'issued-at',
    check: 'approval issued at',
    file: approval,
    find: "  { name: 'issued at', code: 'approval_stale', passes: (approval, _expected, nowMs) => nowMs - approval.iat * 1000 <= limits.approvalAgeMsMax && approval.iat * 1000 - nowMs <= limits.clockSkewMs },\n",
    replace: '',
    tests: approvalGuard,
  },
  {
    name: 'expiry',
    check: 'approval expiry',
    file: approval,
    find: "  { name: 'expiry', code: 'approval_stale', passes: (approval, _expected, nowMs) => nowMs <= approval.exp * 1000 + limits.clockSkewMs && approval.exp >= approval.iat },\n",
    replace: '',
    tests: approvalGuard,
  },
  {
    name: 'nonce',
    check: 'approval nonce spent once',
    file: 'apps/settlement-server/src/authorize.ts',
    find: "  if (!read.nonceFresh) throw new KessaiError('approval_replayed');\n",
    replace: '',
    tests: guard,
  },
  {
    name: 'livemode',
    check: 'card of the approval’s mode (livemode_mismatch)',
    file: 'apps/settlement-server/src/authorize.ts',
    find: "  if (lm !== (card.test !== true)) return { code: 'livemode_mismatch' };\n",
    replace: '',
    tests: guard,
  },
  {
    name: 'pin-nonce',
    check: 'PIN block bound to the approval nonce',
    file: 'packages/protocol/src/checks/pin-block.ts',
    find: "bound('payment', header, plain, { rid: expected.rid, nonce: expected.nonce, dkt: expected.dkt });",
    replace: "bound('payment', header, plain, { rid: expected.rid, dkt: expected.dkt });",
    tests: guard,
  },
  {
    name: 'pin-request',
    check: 'PIN block bound to the request id',
    file: 'packages/protocol/src/checks/pin-block.ts',
    find: "bound('payment', header, plain, { rid: expected.rid, nonce: expected.nonce, dkt: expected.dkt });",
    replace: "bound('payment', header, plain, { nonce: expected.nonce, dkt: expected.dkt });",
    tests: guard,
  },
  {
    name: 'pin-block-signed',
    check: 'PIN block is the one the approval signed (pbh)',
    file: 'apps/settlement-server/src/authorize.ts',
    find: '  await checkPinBlockSigned(body.pin, approval.pbh);\n',
    replace: '',
    tests: guard,
  },
  {
    name: 'enrollment-pin-card',
    check: 'enrollment PIN block names its card',
    file: 'apps/settlement-server/src/enroll.ts',
    find: '  await checkEnrollmentPinCard(parsed.data, cardNumber);\n',
    replace: '',
    tests: guard,
  },
  {
    name: 'enrollment-retry-untested',
    check: 'a retried registration tests no PIN and resets no count',
    file: 'apps/settlement-server/src/enroll.ts',
    find: '    if (card && (await isRegistered(tx, { id: credential.credentialId, device_jkt: dkt, pan_lookup: card.pan_lookup }))) return card.account_id;\n',
    replace: '',
    tests: guard,
  },
  {
    name: 'enrollment-pin-binding',
    check: 'enrollment PIN block bound to the credential and device key',
    file: 'packages/protocol/src/checks/pin-block.ts',
    find: "bound('enrollment', header, plain, { cred: expected.cred, dkt: expected.dkt });",
    replace: "bound('enrollment', header, plain, {});",
    tests: guard,
  },
  {
    name: 'merchant-onboarded',
    check: 'merchant onboarded at the bank',
    file: 'apps/settlement-server/src/merchants.ts',
    find: "  if (!row) throw new KessaiError('merchant_unknown');\n  return row;",
    replace: "  return row ?? { id: 'mer_unknown', name: 'Kessai Tea House' };",
    tests: guard,
  },
  {
    name: 'registered-device',
    check: 'credential registered for this device key',
    file: 'apps/settlement-server/src/registry.ts',
    find: '  if (!row || row.device_jkt !== deviceJkt) throw',
    replace: '  if (!row) throw',
    tests: guard,
  },
  {
    name: 'registered-credential',
    check: 'credential registered at all',
    file: 'apps/settlement-server/src/authorize.ts',
    find: '  const registered = checkRegistered(found.credential, credential.deviceJkt);',
    replace:
      "  const registered = found.credential ? checkRegistered(found.credential, credential.deviceJkt) : { id: credential.credentialId, device_jkt: credential.deviceJkt, status: 'active' as const, ...(await config.db.query<{ pan_lookup: string; account_id: string }>('select pan_lookup, account_id from cards where pan_lookup = $1', [panLookup(config.cardKeys, credential.cardNumber.expose())]))[0]! };",
    tests: guard,
  },
  {
    name: 'revoked',
    check: 'credential not revoked in the registry',
    file: 'apps/settlement-server/src/registry.ts',
    find: "  if (row.status === 'revoked') throw new KessaiError('credential_revoked');\n",
    replace: '',
    tests: guard,
  },
];
