/**
 * Fuzzes both settlement servers (see harness.ts): the public metadata, keys and pages, the
 * /internal routes called with the authentication server's client certificate (reaching the
 * issuer's own checks), with the shop's certificate (from the CA, but no client's) and with none,
 * and the operator routes with the operator token, a wrong one and none; a first test fails if a
 * route no endpoint here reaches is registered. Then the authentication server's and shop's logs
 * must still hold no personal data.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@kessai/protocol';
import { casesFor, fuzz, fuzzWeights, operatorHeaders, unfuzzedRoutes, type Endpoint, type FuzzCase, type Target, joseSample } from './harness.ts';
import { personalDataInLogs, startFuzzFixture, type FuzzFixture } from './fixture.ts';
import { demoMerchantName } from '@kessai/cli/demo-data';
import { BankCaller } from '../support/bank.ts';
import { personalDataNeedles } from '../support/retention.ts';
import { demoCard } from '../support/system.ts';

let fixture: FuzzFixture;
/** Per bank: an enrollment body not yet sent and an authorization body through a device it registered. */
const bankBodies = new Map<string, { enrollment: Record<string, unknown>; authorization: Record<string, unknown> }>();
const payerOf: Record<string, string> = { 'sakura-bank': '4242424242424242', 'fuji-bank': '5555555555554444' };
const deviceJwk = { kty: 'EC', crv: 'P-256', x: 'DAgWP0s42_t2B7V8rRErE88d5YELfz64nBZZGt3v1z8', y: 'J7bEvu7q9OJxsDnOQ2iD7SahxEStbSHK8hcNVd8T1sc' };

beforeAll(async () => {
  fixture = await startFuzzFixture();
  const leaf = fixture.system.pki.leaves['auth-server']!;
  const merchant = { id: fixture.system.merchant.merchantId, name: demoMerchantName };
  for (const settlement of fixture.system.settlements) {
    const bank = new BankCaller(settlement.url, settlement.issuer.id, { caCertPem: fixture.system.pki.caCertPem, certPem: leaf.certPem, keyPem: leaf.keyPem });
    try {
      const card = demoCard(payerOf[settlement.issuer.id]!);
      const enrolled = await bank.enroll(card);
      const items = [{ description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' }];
      bankBodies.set(settlement.issuer.id, {
        enrollment: await bank.enrollmentBody(await bank.device(card), card.pin),
        authorization: await bank.authorizeBody(enrolled, card, merchant, { approvedAmount: '2400', items }),
      });
    } finally {
      await bank.close();
    }
  }
});
afterAll(async () => {
  await fixture?.close();
});


function settlementEndpoints(issuer: string): Endpoint[] {
  const { ids, system } = fixture;
  const rids = [ids.pending, ids.approved, newId('pr')];
  const batchIds = [`stb_${newId('pr').slice(3)}`];
  const bodies = bankBodies.get(issuer)!;
  const opaque = { request: { rid: ids.pending, mid: system.merchant.merchantId, amt: '2400', cur: 'JPY', line_items: [{ description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' }] }, sealed_credential: joseSample, approval: joseSample, pin: joseSample };
  return [
    { name: 'issuer metadata', method: 'GET', path: '/.well-known/kessai-issuer' },
    { name: 'issuer jwks', method: 'GET', path: '/.well-known/jwks.json' },
    // Step 303 at the bank, with a body that registers a device when sent unchanged (and one whose parts open nowhere).
    { name: 'enrollment', method: 'POST', path: '/internal/v1/enrollments', body: bodies.enrollment },
    { name: 'enrollment (opaque parts)', method: 'POST', path: '/internal/v1/enrollments', body: { credential_id: newId('cred'), device_jwk: deviceJwk, sealed_credential: joseSample, pin_block: joseSample } },
    // Revocation relayed by the broker: ids no one enrolled, so the fuzz revokes nothing it relies on.
    // The registry's state of a credential: the fixture's own (registered at this issuer or not) and one nobody enrolled.
    { name: 'credential state', method: 'GET', path: '/internal/v1/credentials/:id', ids: [ids.cred, newId('cred')] },
    { name: 'relayed revocation', method: 'POST', path: '/internal/v1/credentials/:id/revoke', ids: [newId('cred')], body: { revoked_by: 'payer' } },
    // An authorization through a registered device that passes every check when sent unchanged (retries get its stored decision).
    { name: 'authorize', method: 'POST', path: '/internal/v1/authorizations', body: bodies.authorization },
    { name: 'authorize (opaque parts)', method: 'POST', path: '/internal/v1/authorizations', body: opaque },
    { name: 'capture', method: 'POST', path: '/internal/v1/authorizations/:id/capture', ids: rids, body: { amount_minor: '1' } },
    { name: 'void', method: 'POST', path: '/internal/v1/authorizations/:id/void', ids: rids, body: {} },
    // Reversals of ids the bank holds and ids it never saw (their nonces are spent, nothing else).
    { name: 'reversal', method: 'POST', path: '/internal/v1/authorizations/:id/reversal', ids: rids, body: { nonce: 'fuzz-reversal-nonce-0001' } },
    { name: 'refund', method: 'POST', path: '/internal/v1/authorizations/:id/refunds', ids: rids, body: { refund_id: newId('rf'), amount_minor: '1' } },
    { name: 'authorization status', method: 'GET', path: '/internal/v1/authorizations/:id', ids: rids },
    { name: 'merchant batches', method: 'GET', path: '/internal/v1/merchants/:id/settlement-batches', ids: [system.merchant.merchantId, newId('mer')] },
    { name: 'closed batches (settlement events)', method: 'GET', path: '/internal/v1/settlement-batches' },
    { name: 'merchant batch report', method: 'GET', path: `/internal/v1/merchants/${system.merchant.merchantId}/settlement-batches/:id/report`, ids: batchIds },
    { name: 'home page', method: 'GET', path: '/' },
    { name: 'page', method: 'GET', path: '/:id/', ids: ['console', 'nothing'] },
    { name: 'asset', method: 'GET', path: '/assets/:id', ids: ['app.js', 'style.css', 'nothing.js'] },
    // Operator endpoints: key names and ids that exist nowhere, so the fuzz rotates no key from under the system.
    { name: 'audit verify', method: 'GET', path: '/admin/v1/audit/verify', operator: true },
    { name: 'operator: authorizations', method: 'GET', path: '/admin/v1/authorizations', operator: true },
    { name: 'operator: accounts', method: 'GET', path: '/admin/v1/accounts', operator: true },
    { name: 'operator: transfers', method: 'GET', path: '/admin/v1/transfers', operator: true },
    { name: 'operator: refunds', method: 'GET', path: '/admin/v1/refunds', operator: true },
    { name: 'operator: volume', method: 'GET', path: '/admin/v1/volume', operator: true },
    { name: 'operator: unlock card', method: 'POST', path: '/admin/v1/cards/unlock', body: { credential_id: newId('cred') }, operator: true },
    { name: 'operator: merchants', method: 'GET', path: '/admin/v1/merchants', operator: true },
    // Onboards fresh merchants only: the demo merchant keeps its name.
    { name: 'operator: onboard merchant', method: 'POST', path: '/admin/v1/merchants', body: { merchant_id: newId('mer'), name: 'Fuzz Sweets' }, operator: true },
    { name: 'operator: revoke credential', method: 'POST', path: '/admin/v1/credentials/:id/revoke', ids: [newId('cred')], operator: true },
    { name: 'operator: keys', method: 'GET', path: '/admin/v1/keys', operator: true },
    { name: 'operator: rotate key', method: 'POST', path: '/admin/v1/keys/rotate', body: { key: 'no-such-key' }, operator: true },
    { name: 'operator: retire key', method: 'POST', path: '/admin/v1/keys/retire', body: { key: 'authorization-signing', kid: 'no-such-kid' }, operator: true },
    { name: 'operator: settlement batches', method: 'GET', path: '/admin/v1/settlement-batches', operator: true },
    { name: 'operator: batch report', method: 'GET', path: '/admin/v1/settlement-batches/:id/report', ids: batchIds, operator: true },
    { name: 'operator: close a day', method: 'POST', path: '/admin/v1/settlement-batches/close', body: { date: '2026-01-01' }, operator: true },
    { name: 'operator: fee schedule', method: 'POST', path: '/admin/v1/fee-schedules', body: { merchant_id: newId('mer'), currency: 'JPY', basis_points: 250, fixed_minor: '0' }, operator: true },
    { name: 'operator: import accounts', method: 'POST', path: '/admin/v1/accounts/import', body: { rows: [{ card_number: '4000000000000010', holder_name: 'FUZZ IMPORT', expiry: '12/34', pin: '4821', balance: '100', currency: 'JPY', kind: 'debit' }] }, operator: true },
    { name: 'liveness', method: 'GET', path: '/livez' },
    { name: 'readiness', method: 'GET', path: '/readyz' },
    { name: 'OpenAPI document', method: 'GET', path: '/openapi.json' },
    { name: 'operator: metrics', method: 'GET', path: '/metrics', operator: true },
  ];
}

const settlementTarget = (baseUrl: string): Target => ({
  baseUrl,
  async identity(fuzzCase: FuzzCase) {
    if (fuzzCase.endpoint.operator) return { headers: operatorHeaders(fuzzCase, fixture.system.operatorTokenOf(baseUrl)), dispatcher: fixture.anonymous };
    const dispatcher = fuzzCase.credential === 'right' ? fixture.peer : fuzzCase.credential === 'wrong' ? fixture.stranger : fixture.anonymous;
    return { headers: {}, dispatcher };
  },
});

const timeout = casesFor(fuzzWeights.settlement) * 20 + 60_000;

describe('fuzzing the settlement servers: never a 5xx, always a catalogued problem, no personal data echoed', () => {
  it('fuzzes every route a settlement server registers', () => {
    for (const settlement of fixture.system.settlements) expect(unfuzzedRoutes(settlement.app, settlementEndpoints(settlement.issuer.id))).toEqual([]);
  });

  it.each(['sakura-bank', 'fuji-bank'])('%s: public routes and the mutual-TLS /internal routes', { timeout }, async (issuer) => {
    const settlement = fixture.system.settlements.find((s) => s.issuer.id === issuer)!;
    const cases = Math.ceil(casesFor(fuzzWeights.settlement) / 2);
    expect(await fuzz(settlementTarget(settlement.url), settlementEndpoints(issuer), cases)).toBeGreaterThanOrEqual(cases);
  });

  it('leaves no personal data in the authentication server’s or the shop’s logs', async () => {
    expect((await personalDataInLogs(fixture.system)).found).toEqual([]);
  });

  it('leaves no personal data in the settlement servers’ own logs either', async () => {
    const lines = (await Promise.all(fixture.system.settlements.map((s) => readFile(path.join(fixture.system.dataDir, 'logs', `settlement-${s.issuer.id}.log`), 'utf8')))).join('').split('\n');
    expect(lines.length).toBeGreaterThan(casesFor(fuzzWeights.settlement));
    const found = personalDataNeedles().flatMap((needle) => lines.filter((line) => needle.pattern.test(line)).slice(0, 1).map((line) => ({ needle: needle.label, line: line.slice(0, 400) })));
    expect(found).toEqual([]);
  });
});
