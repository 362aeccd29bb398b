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
import { personalDataNeedles } from '../support/retention.ts';

let fixture: FuzzFixture;
beforeAll(async () => {
  fixture = await startFuzzFixture();
});
afterAll(async () => {
  await fixture?.close();
});


function settlementEndpoints(): Endpoint[] {
  const { ids, system } = fixture;
  const rids = [ids.pending, ids.approved, newId('pr')];
  const batchIds = [`stb_${newId('pr').slice(3)}`];
  const authorization = { request: { rid: ids.pending, mid: system.merchant.merchantId, amt: '2400', cur: 'JPY', ih: 'A'.repeat(43) }, sealed_credential: joseSample, approval: joseSample, pin: joseSample };
  return [
    { name: 'issuer metadata', method: 'GET', path: '/.well-known/kessai-issuer' },
    { name: 'issuer jwks', method: 'GET', path: '/.well-known/jwks.json' },
    { name: 'account check', method: 'POST', path: '/internal/v1/account-checks', body: { sealed_credential: joseSample } },
    { name: 'authorize', method: 'POST', path: '/internal/v1/authorizations', body: authorization },
    { name: 'capture', method: 'POST', path: '/internal/v1/authorizations/:id/capture', ids: rids, body: { amount_minor: '1' } },
    { name: 'void', method: 'POST', path: '/internal/v1/authorizations/:id/void', ids: rids, body: {} },
    { name: 'refund', method: 'POST', path: '/internal/v1/authorizations/:id/refunds', ids: rids, body: { refund_id: newId('rf'), amount_minor: '1' } },
    { name: 'authorization status', method: 'GET', path: '/internal/v1/authorizations/:id', ids: rids },
    { name: 'merchant batches', method: 'GET', path: '/internal/v1/merchants/:id/settlement-batches', ids: [system.merchant.merchantId, newId('mer')] },
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
    { name: 'operator: keys', method: 'GET', path: '/admin/v1/keys', operator: true },
    { name: 'operator: rotate key', method: 'POST', path: '/admin/v1/keys/rotate', body: { key: 'no-such-key' }, operator: true },
    { name: 'operator: retire key', method: 'POST', path: '/admin/v1/keys/retire', body: { key: 'authorization-signing', kid: 'no-such-kid' }, operator: true },
    { name: 'operator: settlement batches', method: 'GET', path: '/admin/v1/settlement-batches', operator: true },
    { name: 'operator: batch report', method: 'GET', path: '/admin/v1/settlement-batches/:id/report', ids: batchIds, operator: true },
    { name: 'operator: close a day', method: 'POST', path: '/admin/v1/settlement-batches/close', body: { date: '2026-01-01' }, operator: true },
    { name: 'operator: fee schedule', method: 'POST', path: '/admin/v1/fee-schedules', body: { merchant_id: newId('mer'), currency: 'JPY', basis_points: 250, fixed_minor: '0' }, operator: true },
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
    for (const settlement of fixture.system.settlements) expect(unfuzzedRoutes(settlement.app, settlementEndpoints())).toEqual([]);
  });

  it.each(['sakura-bank', 'fuji-bank'])('%s: public routes and the mutual-TLS /internal routes', { timeout }, async (issuer) => {
    const settlement = fixture.system.settlements.find((s) => s.issuer.id === issuer)!;
    const cases = Math.ceil(casesFor(fuzzWeights.settlement) / 2);
    expect(await fuzz(settlementTarget(settlement.url), settlementEndpoints(), cases)).toBeGreaterThanOrEqual(cases);
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
