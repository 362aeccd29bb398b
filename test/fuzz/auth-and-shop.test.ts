/**
 * Fuzzes every endpoint of the authentication server (public, merchant, terminal and operator
 * routes, pages) and of the shop (storefront, pages, back office and webhook receiver) with
 * malformed requests (see harness.ts); a first test fails if a server registers a route no endpoint
 * here reaches. Afterwards both servers' logs must hold no personal data, although the fuzz planted
 * test card data in bodies, paths, query strings and headers. test/fuzz/settlement.test.ts does the
 * settlement servers.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits, newId, signDeviceProof, signWebhook } from '@kessai/protocol';
import { casesFor, fuzz, plantedValues, fuzzWeights, operatorHeaders, unfuzzedRoutes, type Endpoint, type FuzzCase, type Target, joseSample } from './harness.ts';
import { personalDataInLogs, startFuzzFixture, type FuzzFixture } from './fixture.ts';

let fixture: FuzzFixture;
beforeAll(async () => {
  fixture = await startFuzzFixture();
});
afterAll(async () => {
  await fixture?.close();
});

const deviceJwk = { kty: 'EC', crv: 'P-256', x: 'DAgWP0s42_t2B7V8rRErE88d5YELfz64nBZZGt3v1z8', y: 'J7bEvu7q9OJxsDnOQ2iD7SahxEStbSHK8hcNVd8T1sc' };

function authEndpoints(): Endpoint[] {
  const { ids } = fixture;
  const prIds = [ids.pending, ids.approved, newId('pr')];
  const batchIds = [`stb_${newId('pr').slice(3)}`];
  const paymentRequest = { order_id: 'order-fuzz', currency: 'JPY', amount_minor: '2400', line_items: [{ description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' }], expires_in_seconds: 600 };
  return [
    { name: 'jwks', method: 'GET', path: '/.well-known/jwks.json' },
    { name: 'payment link', method: 'GET', path: '/pay/:id', ids: prIds },
    { name: 'issuer directory', method: 'GET', path: '/v1/directory' },
    // A preflight from the browser wallet's own origin (and from others) for the routes a terminal uses, and for others.
    { name: 'CORS preflight', method: 'OPTIONS', path: '/:id', ids: ['*', 'v1/directory', 'v1/enrollments', 'v1/terminal/events', '.well-known/jwks.json', 'v1/payment-requests', 'admin/v1/keys'], preflight: true },
    // Re-seal (card data in clear over TLS) and pass-through (sealed by the terminal) enrollment; the PIN block verifies nowhere.
    { name: 'enrollment (re-seal)', method: 'POST', path: '/v1/enrollments', body: { credential_id: newId('cred'), issuer_id: 'sakura-bank', device_jwk: deviceJwk, pin_block: joseSample, holder_name: 'TARO YAMADA', card_number: '4242 4242 4242 4242', expiry: '12/34' }, personalFields: ['holder_name', 'card_number', 'expiry'] },
    { name: 'enrollment (pass-through)', method: 'POST', path: '/v1/enrollments', body: { credential_id: newId('cred'), issuer_id: 'fuji-bank', device_jwk: deviceJwk, pin_block: joseSample, sealed_card: joseSample }, personalFields: ['sealed_card', 'issuer_id'] },
    { name: 'create payment request', method: 'POST', path: '/v1/payment-requests', body: { ...paymentRequest, wallet_handle: ids.cred } },
    { name: 'read payment request', method: 'GET', path: '/v1/payment-requests/:id', ids: prIds },
    { name: 'capture', method: 'POST', path: '/v1/payment-requests/:id/capture', ids: prIds, body: { amount_minor: '100' } },
    { name: 'void', method: 'POST', path: '/v1/payment-requests/:id/void', ids: prIds, body: {} },
    // With a valid proof the stream stays open: only refused openings are fuzzed.
    { name: 'event stream', method: 'GET', path: '/v1/terminal/events', noRightCredential: true },
    { name: 'terminal view', method: 'GET', path: '/v1/terminal/payment-requests/:id', ids: prIds },
    { name: 'approve', method: 'POST', path: '/v1/terminal/payment-requests/:id/approve', ids: prIds, body: { sealed_credential: joseSample, approval: joseSample, pin: joseSample } },
    { name: 'decline', method: 'POST', path: '/v1/terminal/payment-requests/:id/decline', ids: prIds, body: {} },
    { name: 'outcome', method: 'GET', path: '/v1/terminal/payment-requests/:id/outcome', ids: prIds },
    { name: 'credential state', method: 'GET', path: '/v1/terminal/credential' },
    { name: 'refund', method: 'POST', path: '/v1/payment-requests/:id/refunds', ids: prIds, body: { amount_minor: '100' } },
    // The payer's own revocation with a recovery code: the fixture's credential, whose code the fuzz never knows, and one nobody enrolled.
    { name: 'revoke with recovery code', method: 'POST', path: '/v1/credentials/:id/revoke', ids: [ids.cred, newId('cred')], body: { recovery_code: 'ABCD-EFGH-JKMN-PQRS-TVWX' } },
    { name: 'settlement batches', method: 'GET', path: '/v1/settlement-batches' },
    { name: 'settlement report (JSON)', method: 'GET', path: '/v1/settlement-batches/:id/report.json', ids: batchIds },
    { name: 'settlement report (CSV)', method: 'GET', path: '/v1/settlement-batches/:id/report.csv', ids: batchIds },
    { name: 'home page', method: 'GET', path: '/' },
    // The browser wallet has its own host now: /wallet/ here is a page like any unknown one.
    { name: 'page', method: 'GET', path: '/:id/', ids: ['console', 'wallet', 'nothing'] },
    { name: 'asset', method: 'GET', path: '/assets/:id', ids: ['app.js', 'style.css', 'nothing.js'] },
    // Operator endpoints. Ids and key names that exist nowhere: the fuzz must not revoke the
    // fixture's credential, rotate its keys or the merchant's webhook secret from under it.
    { name: 'audit verify', method: 'GET', path: '/admin/v1/audit/verify', operator: true },
    { name: 'operator: credentials', method: 'GET', path: '/admin/v1/credentials', operator: true },
    { name: 'operator: payment requests', method: 'GET', path: '/admin/v1/payment-requests', operator: true },
    { name: 'operator: webhook deliveries', method: 'GET', path: '/admin/v1/webhook-deliveries', operator: true },
    { name: 'operator: resend webhook event', method: 'POST', path: '/admin/v1/webhook-deliveries/:id/resend', ids: [newId('evt')], operator: true },
    { name: 'webhook events', method: 'GET', path: '/v1/webhook-events' },
    { name: 'list payment requests', method: 'GET', path: '/v1/payment-requests' },
    { name: 'list refunds', method: 'GET', path: '/v1/refunds' },
    { name: 'list events', method: 'GET', path: '/v1/events' },
    // With the right key the merchant's event stream stays open: only refused openings are fuzzed.
    { name: 'merchant event stream', method: 'GET', path: '/v1/events/stream', noRightCredential: true },
    { name: 'resend webhook event', method: 'POST', path: '/v1/webhook-events/:id/resend', ids: [newId('evt')], body: {} },
    { name: 'operator: revoke', method: 'POST', path: '/admin/v1/credentials/:id/revoke', ids: [newId('cred')], operator: true },
    { name: 'operator: keys', method: 'GET', path: '/admin/v1/keys', operator: true },
    { name: 'operator: rotate key', method: 'POST', path: '/admin/v1/keys/rotate', body: { key: 'no-such-key' }, operator: true },
    { name: 'operator: retire key', method: 'POST', path: '/admin/v1/keys/retire', body: { key: 'request-signing', kid: 'no-such-kid' }, operator: true },
    { name: 'operator: rotate webhook secret', method: 'POST', path: '/admin/v1/merchants/:id/webhook-secret/rotate', ids: [newId('mer')], operator: true },
    { name: 'operator: retire webhook secrets', method: 'POST', path: '/admin/v1/merchants/:id/webhook-secret/retire-previous', ids: [newId('mer')], operator: true },
    // Fresh merchants only: the fixture's merchant keeps its API key.
    { name: 'operator: create merchant', method: 'POST', path: '/admin/v1/merchants', body: { name: 'Fuzz Tea Stand' }, operator: true },
    { name: 'operator: merchants', method: 'GET', path: '/admin/v1/merchants', operator: true },
    { name: 'operator: merchant', method: 'GET', path: '/admin/v1/merchants/:id', ids: [newId('mer')], operator: true },
    { name: 'operator: roll API key', method: 'POST', path: '/admin/v1/merchants/:id/api-keys/roll', ids: [newId('mer')], body: { overlap_seconds: 60 }, operator: true },
    { name: 'operator: retire API keys', method: 'POST', path: '/admin/v1/merchants/:id/api-keys/retire-previous', ids: [newId('mer')], operator: true },
    { name: 'liveness', method: 'GET', path: '/livez' },
    { name: 'readiness', method: 'GET', path: '/readyz' },
    { name: 'OpenAPI document', method: 'GET', path: '/openapi.json' },
    { name: 'operator: metrics', method: 'GET', path: '/metrics', operator: true },
  ];
}

const authTarget = (): Target => ({
  baseUrl: fixture.system.auth.url,
  async identity(fuzzCase: FuzzCase, method: string, path: string) {
    const headers: Record<string, string> = operatorHeaders(fuzzCase, fixture.system.operatorTokens.auth);
    if (fuzzCase.endpoint.preflight) {
      if (fuzzCase.credential === 'right') Object.assign(headers, { origin: new URL(fixture.system.wallet.url).origin, 'access-control-request-method': 'POST' });
      if (fuzzCase.credential === 'wrong') Object.assign(headers, { origin: 'https://wallet.example.net', 'access-control-request-method': 'POST' });
    }
    if (['/v1/payment-requests', '/v1/settlement-batches', '/v1/refunds', '/v1/events'].some((prefix) => fuzzCase.endpoint.path.startsWith(prefix))) {
      headers['idempotency-key'] = randomBytes(12).toString('hex');
      if (fuzzCase.credential === 'right') headers.authorization = `Bearer ${fixture.system.merchant.apiKey}`;
      if (fuzzCase.credential === 'wrong') headers.authorization = `Bearer ${plantedValues[path.length % plantedValues.length]!.replace(/ /g, '')}`;
    }
    if (fuzzCase.endpoint.path.startsWith('/v1/terminal/')) {
      if (fuzzCase.credential === 'right') headers.authorization = `KessaiDevice ${await signDeviceProof(fixture.deviceKey, { credentialId: fixture.ids.cred, method, path })}`;
      if (fuzzCase.credential === 'wrong') headers.authorization = `KessaiDevice ${joseSample}`;
    }
    return { headers, dispatcher: fixture.anonymous };
  },
});

function shopEndpoints(): Endpoint[] {
  const { ids } = fixture;
  const carts = [ids.cart, newId('cart')];
  const checkedOut = [ids.checkedOutCart, newId('cart')];
  return [
    { name: 'products', method: 'GET', path: '/api/products' },
    { name: 'new cart', method: 'POST', path: '/api/carts', body: {} },
    { name: 'cart', method: 'GET', path: '/api/carts/:id', ids: carts },
    { name: 'add item', method: 'POST', path: '/api/carts/:id/items', ids: carts, body: { product_id: 'sencha-100g', quantity: 1 } },
    { name: 'checkout', method: 'POST', path: '/api/carts/:id/checkout', ids: checkedOut, body: { wallet_handle: ids.cred } },
    { name: 'order', method: 'GET', path: '/api/orders/:id', ids: [ids.order, newId('ord')] },
    { name: 'home page', method: 'GET', path: '/' },
    { name: 'page', method: 'GET', path: '/:id/', ids: ['store', 'order', 'nothing'] },
    { name: 'asset', method: 'GET', path: '/assets/:id', ids: ['app.js', 'style.css', 'nothing.js'] },
    { name: 'audit verify', method: 'GET', path: '/admin/v1/audit/verify', operator: true },
    { name: 'liveness', method: 'GET', path: '/livez' },
    { name: 'readiness', method: 'GET', path: '/readyz' },
    { name: 'OpenAPI document', method: 'GET', path: '/openapi.json' },
    { name: 'operator: metrics', method: 'GET', path: '/metrics', operator: true },
    { name: 'settlements', method: 'GET', path: '/api/settlements', operator: true },
    { name: 'settlement report (JSON)', method: 'GET', path: '/api/settlements/:id/report.json', ids: [`stb_${newId('pr').slice(3)}`], operator: true },
    { name: 'settlement report (CSV)', method: 'GET', path: '/api/settlements/:id/report.csv', ids: [`stb_${newId('pr').slice(3)}`], operator: true },
    { name: 'webhook', method: 'POST', path: '/webhooks/kessai', body: { id: newId('evt'), type: 'payment_request.approved', created_at: new Date().toISOString(), data: { id: ids.pending, status: 'approved' } } },
  ];
}

const shopTarget = (): Target => ({
  baseUrl: fixture.system.shop.url,
  async identity(fuzzCase: FuzzCase) {
    const headers: Record<string, string> = operatorHeaders(fuzzCase, fixture.system.operatorTokens.shop);
    if (fuzzCase.endpoint.name === 'webhook') {
      const secret = fixture.system.merchant.webhookSecret;
      const now = Math.floor(Date.now() / 1000);
      // The right secret signs whatever the fuzz sends, so the event parser and fulfilment are fuzzed too.
      if (fuzzCase.credential === 'right') headers['kessai-signature'] = await signWebhook(secret, fuzzCase.body ?? '', now);
      if (fuzzCase.credential === 'wrong') headers['kessai-signature'] = await signWebhook(secret, fuzzCase.body ?? '', now - limits.webhookToleranceMs / 1000 - 1);
    }
    return { headers, dispatcher: fixture.anonymous };
  },
});

let sentInAll = 0;
const timeout = casesFor(fuzzWeights.auth + fuzzWeights.shop) * 20 + 60_000;

describe('fuzzing the authentication server and the shop: never a 5xx, always a catalogued problem, no personal data echoed', () => {
  it('fuzzes every route the authentication server and the shop register', () => {
    expect(unfuzzedRoutes(fixture.system.auth.app, authEndpoints())).toEqual([]);
    expect(unfuzzedRoutes(fixture.system.shop.app, shopEndpoints())).toEqual([]);
  });

  it('the authentication server: public, merchant, terminal and operator routes', { timeout }, async () => {
    const cases = casesFor(fuzzWeights.auth);
    const sent = await fuzz(authTarget(), authEndpoints(), cases);
    expect(sent).toBeGreaterThanOrEqual(cases);
    sentInAll += sent;
  });

  it('the shop: storefront, back office and webhook receiver', { timeout }, async () => {
    const cases = casesFor(fuzzWeights.shop);
    const sent = await fuzz(shopTarget(), shopEndpoints(), cases);
    expect(sent).toBeGreaterThanOrEqual(cases);
    sentInAll += sent;
  });

  it('leaves no personal data in the authentication server’s or the shop’s logs', async () => {
    expect(sentInAll).toBeGreaterThanOrEqual(casesFor(fuzzWeights.auth + fuzzWeights.shop));
    const { lineCount, found } = await personalDataInLogs(fixture.system);
    // One line per request at least: the logs were written, and they were read.
    expect(lineCount).toBeGreaterThan(sentInAll);
    expect(found).toEqual([]);
  });
});
