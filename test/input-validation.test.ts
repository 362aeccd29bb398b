/**
 * Never a 500 for bad input. Every route of the authentication server, a settlement server and the
 * shop is called over real HTTPS with unknown, mistyped, missing, oversized and over-long fields,
 * bodies that are not JSON, paths that do not exist, malformed and unknown ids, and missing, forged
 * or replayed credentials (API key, device proof, client certificate, operator token). Each answer
 * must be a 4xx application/problem+json whose code is in errorCatalog, and no answer may echo the
 * card number (or the canary) it was sent. The route table is checked against the routes the
 * running servers register: a route added without a row here fails the suite.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request, type Dispatcher } from 'undici';
import { generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { errorCatalog, isErrorCode, limits, newId, normalizeCardNumber, sealJson, sha256Base64url, signDeviceProof, signJson, thumbprint, typ, type ErrorCode } from '@kessai/protocol';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { demoIssuers } from '@kessai/cli/demo-data';
import { demoCard, enroll, startTestSystem, type TestSystem } from './support/system.ts';
import { registeredRoutes, routeCovers } from './fuzz/harness.ts';

// ---- the system, its callers and one raw HTTPS call ----------------------------------------------

/** Held open by a test that needs the settlement server to be slow to answer a capture. */
let captureGate: { arrived: () => void; release: Promise<void> } | undefined;

let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
let deviceKey: CryptoKey;
/** Trusts the development CA and presents no client certificate. */
let anonymous: Agent;
/** Presents the authentication server's certificate: a peer of the settlement servers. */
let peer: Agent;

beforeAll(async () => {
  system = await startTestSystem({
    beforeListen: (role, app) => {
      if (!role.startsWith('settlement-')) return;
      app.addHook('onRequest', async (incoming) => {
        const gate = captureGate;
        if (gate && incoming.url.endsWith('/capture')) {
          gate.arrived();
          await gate.release;
        }
      });
    },
  });
  anonymous = new Agent({ connect: { ca: system.pki.caCertPem } });
  const leaf = system.pki.leaves['auth-server']!;
  peer = new Agent({ connect: { ca: system.pki.caCertPem, cert: leaf.certPem, key: leaf.keyPem } });
  merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  wallet = await enroll(system, '4242424242424242');
  deviceKey = (await importJWK(wallet.wallet.device_private_jwk as JWK, 'ES256')) as CryptoKey;
});

afterAll(async () => {
  await wallet?.close();
  await merchant?.close();
  await anonymous?.close();
  await peer?.close();
  await system?.stop();
});

type Server = 'auth' | 'settlement' | 'shop';
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';

interface RawBody {
  contentType?: string;
  text: string;
}

interface Answer {
  status: number;
  contentType: string;
  /** The Allow header, which a 405 must carry. */
  allow: string;
  /** Access-Control-Allow-Origin: which browser origin may read the answer. */
  allowOrigin: string;
  text: string;
  body: Record<string, unknown>;
}

function baseUrl(server: Server): string {
  if (server === 'auth') return system.auth.url;
  if (server === 'shop') return system.shop.url;
  return system.settlements[0]!.url;
}

function json(value: unknown): RawBody {
  return { contentType: 'application/json', text: JSON.stringify(value) };
}

async function send(server: Server, method: Method, path: string, options: { body?: RawBody; headers?: Record<string, string>; dispatcher?: Dispatcher; closeAfter?: boolean } = {}): Promise<Answer> {
  const { body, headers = {} } = options;
  const response = await request(`${baseUrl(server)}${path}`, {
    method,
    dispatcher: options.dispatcher ?? anonymous,
    ...(options.closeAfter ? { reset: true } : {}),
    headers: { ...(body?.contentType ? { 'content-type': body.contentType } : {}), ...headers },
    ...(body ? { body: body.text } : {}),
  });
  const text = await response.body.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Left empty: expectProblem says what was wrong.
  }
  return { status: response.statusCode, contentType: String(response.headers['content-type'] ?? ''), allow: String(response.headers.allow ?? ''), allowOrigin: String(response.headers['access-control-allow-origin'] ?? ''), text, body: parsed };
}

/** Every card number of the demo, and a marker that bad bodies carry: no answer may repeat either. */
const canary = 'canary-0f1e2d3c';
const cardNumbers = demoIssuers.flatMap((issuer) => issuer.cards.map((card) => card.cardNumber));
const card = '4242424242424242';

function expectRefusal(answer: Answer): void {
  expect(answer.status, answer.text).toBeGreaterThanOrEqual(400);
  expect(answer.status, answer.text).toBeLessThan(500);
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  expect(isErrorCode(answer.body.code), `code ${String(answer.body.code)} is not in errorCatalog`).toBe(true);
  for (const secret of [...cardNumbers, canary]) expect(answer.text).not.toContain(secret);
}

function expectProblem(answer: Answer, code: ErrorCode): void {
  expectRefusal(answer);
  expect(answer.body, answer.text).toMatchObject({ type: `urn:kessai:error:${code}`, title: errorCatalog[code].title, status: errorCatalog[code].status, code });
  expect(answer.status).toBe(errorCatalog[code].status);
}

// ---- who calls ---------------------------------------------------------------------------------

function merchantHeaders(idempotencyKey: string = randomBytes(12).toString('hex')): Record<string, string> {
  return { authorization: `Bearer ${system.merchant.apiKey}`, 'idempotency-key': idempotencyKey };
}

async function proofFor(method: string, path: string, key: CryptoKey = deviceKey, credentialId = wallet.wallet.credential_id): Promise<Record<string, string>> {
  return { authorization: `KessaiDevice ${await signDeviceProof(key, { credentialId, method, path })}` };
}

/** A device proof with chosen claims and header, signed by the wallet's device key unless told otherwise. */
async function craftedProof(method: string, path: string, options: { iatSeconds?: number; sub?: string; typ?: string } = {}): Promise<Record<string, string>> {
  const jwt = await new SignJWT({ htm: method, htu: path })
    .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? typ.deviceProof })
    .setSubject(options.sub ?? wallet.wallet.credential_id)
    .setIssuedAt(options.iatSeconds ?? Math.floor(Date.now() / 1000))
    .setJti(randomBytes(16).toString('base64url'))
    .sign(deviceKey);
  return { authorization: `KessaiDevice ${jwt}` };
}

// ---- every route, with a well-formed body and what makes it bad ----------------------------------

type Caller = 'public' | 'merchant' | 'terminal' | 'peer' | 'operator';

interface Route {
  server: Server;
  /** OPTIONS: the authentication server's CORS preflight for browser wallets, at any path. */
  method: 'GET' | 'POST' | 'OPTIONS';
  path: string;
  caller: Caller;
  /** A body that passes the schema (POST only). */
  body?: Record<string, unknown>;
  /** The body may be absent altogether (the shop's carts and checkout). */
  bodyOptional?: true;
  /** Every field of the body is optional, so `{}` passes the schema. */
  fieldsOptional?: true;
  /** The body with one string one character past its limit. */
  tooLong?: Record<string, unknown>;
  /** The path with its id in the wrong format. */
  malformedId?: string;
  /** The path (and body) naming something that does not exist, and the code that says so. */
  notFound?: { path: string; body?: Record<string, unknown>; code: ErrorCode };
  headers?: Record<string, string>;
}

const jose = 'eyJhbGciOiJFUzI1NiJ9.eyJ4IjoxfQ.c2lnbmF0dXJl';
const pr = newId('pr');
const cart = newId('cart');
const deviceJwk = { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'B'.repeat(43) };
/** A re-seal enrollment (sakura-bank); its PIN block opens nowhere (the refusal rows below send real ones). */
const enrollment = { credential_id: newId('cred'), issuer_id: 'sakura-bank', device_jwk: deviceJwk, pin_block: jose, holder_name: 'TARO YAMADA', card_number: card, expiry: '12/34' };
/** What the authentication server forwards to the bank at enrollment (step 303). */
const bankEnrollment = { credential_id: newId('cred'), device_jwk: deviceJwk, sealed_credential: jose, pin_block: jose };
const paymentRequest = { order_id: 'order-1', currency: 'JPY', amount_minor: '2400', line_items: [{ description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' }] };
const approval = { sealed_credential: jose, approval: jose, pin: jose };
const authorization = { request: { rid: pr, mid: newId('mer'), amt: '2400', cur: 'JPY', line_items: [{ description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' }] }, sealed_credential: jose, approval: jose, pin: jose };
const cred = newId('cred');
const evt = newId('evt');
const mer = newId('mer');
const stb = `stb_${newId('pr').slice(3)}`;
const recovery = { recovery_code: 'ABCD-EFGH-JKMN-PQRS-TVWX' };
const feeSchedule = { merchant_id: mer, currency: 'JPY', basis_points: 250, fixed_minor: '0' };

const routes: Route[] = [
  // The authentication server.
  { server: 'auth', method: 'GET', path: '/.well-known/jwks.json', caller: 'public' },
  { server: 'auth', method: 'GET', path: '/v1/directory', caller: 'public' },
  { server: 'auth', method: 'OPTIONS', path: '/*', caller: 'public' },
  { server: 'auth', method: 'POST', path: '/v1/enrollments', caller: 'public', body: enrollment, tooLong: { ...enrollment, holder_name: 'T'.repeat(limits.holderNameLengthMax + 1) } },
  { server: 'auth', method: 'POST', path: '/v1/payment-requests', caller: 'merchant', body: paymentRequest, tooLong: { ...paymentRequest, order_id: 'o'.repeat(limits.orderIdLengthMax + 1) } },
  { server: 'auth', method: 'GET', path: `/v1/payment-requests/${pr}`, caller: 'merchant', malformedId: '/v1/payment-requests/pr_NOT-AN-ID' },
  { server: 'auth', method: 'POST', path: `/v1/payment-requests/${pr}/capture`, caller: 'merchant', body: { amount_minor: '100' }, fieldsOptional: true, tooLong: { amount_minor: '1'.repeat(21) }, malformedId: '/v1/payment-requests/12345/capture' },
  { server: 'auth', method: 'POST', path: `/v1/payment-requests/${pr}/void`, caller: 'merchant', body: {}, malformedId: '/v1/payment-requests/cred_x/void' },
  { server: 'auth', method: 'GET', path: '/v1/terminal/events', caller: 'terminal' },
  { server: 'auth', method: 'GET', path: `/v1/terminal/payment-requests/${pr}`, caller: 'terminal', malformedId: '/v1/terminal/payment-requests/pr_' },
  { server: 'auth', method: 'POST', path: `/v1/terminal/payment-requests/${pr}/approve`, caller: 'terminal', body: approval, tooLong: { ...approval, sealed_credential: `${jose}${'A'.repeat(limits.joseLengthMax)}` }, malformedId: '/v1/terminal/payment-requests/PR_X/approve' },
  { server: 'auth', method: 'POST', path: `/v1/terminal/payment-requests/${pr}/decline`, caller: 'terminal', body: {}, malformedId: '/v1/terminal/payment-requests/pr_0/decline' },
  { server: 'auth', method: 'GET', path: `/v1/terminal/payment-requests/${pr}/outcome`, caller: 'terminal', malformedId: '/v1/terminal/payment-requests/..%2F/outcome' },
  { server: 'auth', method: 'GET', path: '/v1/terminal/credential', caller: 'terminal' },
  { server: 'auth', method: 'GET', path: '/', caller: 'public' },
  { server: 'auth', method: 'GET', path: '/console/', caller: 'public', notFound: { path: '/no-such-page/', code: 'not_found' } },
  { server: 'auth', method: 'GET', path: '/assets/app.js', caller: 'public', notFound: { path: `/assets/${canary}.js`, code: 'not_found' } },
  { server: 'auth', method: 'GET', path: `/pay/${pr}`, caller: 'public', malformedId: '/pay/pr_NOT-AN-ID' },
  { server: 'auth', method: 'POST', path: `/v1/credentials/${cred}/revoke`, caller: 'public', body: recovery, tooLong: { recovery_code: 'A'.repeat(65) }, malformedId: '/v1/credentials/cred_x/revoke', notFound: { path: `/v1/credentials/${cred}/revoke`, body: recovery, code: 'credential_not_found' } },
  { server: 'auth', method: 'POST', path: `/v1/payment-requests/${pr}/refunds`, caller: 'merchant', body: { amount_minor: '100' }, tooLong: { amount_minor: '1'.repeat(21) }, malformedId: '/v1/payment-requests/pr_x/refunds', notFound: { path: `/v1/payment-requests/${pr}/refunds`, body: { amount_minor: '100' }, code: 'payment_request_not_found' } },
  { server: 'auth', method: 'GET', path: '/v1/settlement-batches', caller: 'merchant' },
  { server: 'auth', method: 'GET', path: `/v1/settlement-batches/${stb}/report.json`, caller: 'merchant', malformedId: '/v1/settlement-batches/stb_x/report.json', notFound: { path: `/v1/settlement-batches/${stb}/report.json`, code: 'settlement_batch_not_found' } },
  { server: 'auth', method: 'GET', path: `/v1/settlement-batches/${stb}/report.csv`, caller: 'merchant', malformedId: `/v1/settlement-batches/${pr}/report.csv`, notFound: { path: `/v1/settlement-batches/${stb}/report.csv`, code: 'settlement_batch_not_found' } },
  { server: 'auth', method: 'GET', path: '/admin/v1/audit/verify', caller: 'operator' },
  { server: 'auth', method: 'GET', path: '/admin/v1/credentials', caller: 'operator' },
  { server: 'auth', method: 'POST', path: `/admin/v1/credentials/${cred}/revoke`, caller: 'operator', malformedId: '/admin/v1/credentials/cred_%20/revoke', notFound: { path: `/admin/v1/credentials/${cred}/revoke`, code: 'credential_not_found' } },
  { server: 'auth', method: 'GET', path: '/admin/v1/keys', caller: 'operator' },
  { server: 'auth', method: 'POST', path: '/admin/v1/keys/rotate', caller: 'operator', body: { key: 'request-signing' }, tooLong: { key: 'k'.repeat(65) }, notFound: { path: '/admin/v1/keys/rotate', body: { key: 'no-such-key' }, code: 'key_not_found' } },
  { server: 'auth', method: 'POST', path: '/admin/v1/keys/retire', caller: 'operator', body: { key: 'request-signing', kid: 'kid-1' }, tooLong: { key: 'k'.repeat(65), kid: 'kid-1' }, notFound: { path: '/admin/v1/keys/retire', body: { key: 'no-such-key', kid: 'kid-1' }, code: 'key_not_found' } },
  { server: 'auth', method: 'POST', path: `/admin/v1/merchants/${mer}/webhook-secret/rotate`, caller: 'operator', malformedId: '/admin/v1/merchants/mer_x/webhook-secret/rotate', notFound: { path: `/admin/v1/merchants/${mer}/webhook-secret/rotate`, code: 'not_found' } },
  { server: 'auth', method: 'POST', path: `/admin/v1/merchants/${mer}/webhook-secret/retire-previous`, caller: 'operator', malformedId: `/admin/v1/merchants/${cred}/webhook-secret/retire-previous`, notFound: { path: `/admin/v1/merchants/${mer}/webhook-secret/retire-previous`, code: 'not_found' } },
  { server: 'auth', method: 'GET', path: '/admin/v1/payment-requests', caller: 'operator' },
  { server: 'auth', method: 'POST', path: '/admin/v1/merchants', caller: 'operator', body: { name: 'Kissa Input Broker' }, tooLong: { name: 'n'.repeat(limits.stringLengthMax + 1) } },
  { server: 'auth', method: 'GET', path: '/admin/v1/merchants', caller: 'operator' },
  { server: 'auth', method: 'GET', path: `/admin/v1/merchants/${mer}`, caller: 'operator', malformedId: '/admin/v1/merchants/mer_x', notFound: { path: `/admin/v1/merchants/${mer}`, code: 'not_found' } },
  { server: 'auth', method: 'POST', path: `/admin/v1/merchants/${mer}/api-keys/roll`, caller: 'operator', body: { overlap_seconds: 0 }, fieldsOptional: true, malformedId: '/admin/v1/merchants/mer_x/api-keys/roll', notFound: { path: `/admin/v1/merchants/${mer}/api-keys/roll`, body: { overlap_seconds: 0 }, code: 'not_found' } },
  { server: 'auth', method: 'POST', path: `/admin/v1/merchants/${mer}/api-keys/retire-previous`, caller: 'operator', malformedId: '/admin/v1/merchants/mer_x/api-keys/retire-previous', notFound: { path: `/admin/v1/merchants/${mer}/api-keys/retire-previous`, code: 'not_found' } },
  // The operations surface (operations.md): health for load balancers, metrics for the operator.
  { server: 'auth', method: 'GET', path: '/livez', caller: 'public' },
  { server: 'auth', method: 'GET', path: '/readyz', caller: 'public' },
  { server: 'auth', method: 'GET', path: '/openapi.json', caller: 'public' },
  { server: 'auth', method: 'GET', path: '/metrics', caller: 'operator' },
  { server: 'auth', method: 'GET', path: '/admin/v1/webhook-deliveries', caller: 'operator' },
  { server: 'auth', method: 'POST', path: `/admin/v1/webhook-deliveries/${evt}/resend`, caller: 'operator', malformedId: '/admin/v1/webhook-deliveries/evt_x/resend', notFound: { path: `/admin/v1/webhook-deliveries/${evt}/resend`, code: 'webhook_event_not_found' } },
  { server: 'auth', method: 'GET', path: '/v1/webhook-events', caller: 'merchant' },
  { server: 'auth', method: 'GET', path: '/v1/payment-requests', caller: 'merchant' },
  { server: 'auth', method: 'GET', path: '/v1/refunds', caller: 'merchant' },
  { server: 'auth', method: 'GET', path: '/v1/events', caller: 'merchant' },
  { server: 'auth', method: 'GET', path: '/v1/events/stream', caller: 'merchant' },
  { server: 'auth', method: 'POST', path: `/v1/webhook-events/${evt}/resend`, caller: 'merchant', body: {}, malformedId: `/v1/webhook-events/${pr}/resend`, notFound: { path: `/v1/webhook-events/${evt}/resend`, body: {}, code: 'webhook_event_not_found' } },
  // A settlement server.
  { server: 'settlement', method: 'GET', path: '/.well-known/kessai-issuer', caller: 'public' },
  { server: 'settlement', method: 'GET', path: '/.well-known/jwks.json', caller: 'public' },
  { server: 'settlement', method: 'POST', path: '/internal/v1/enrollments', caller: 'peer', body: bankEnrollment, tooLong: { ...bankEnrollment, sealed_credential: `${jose}${'A'.repeat(limits.joseLengthMax)}` } },
  { server: 'settlement', method: 'GET', path: `/internal/v1/credentials/${cred}`, caller: 'peer', malformedId: '/internal/v1/credentials/cred_%20', notFound: { path: `/internal/v1/credentials/${cred}`, code: 'credential_not_found' } },
  { server: 'settlement', method: 'POST', path: `/internal/v1/credentials/${cred}/revoke`, caller: 'peer', body: { revoked_by: 'payer' }, malformedId: '/internal/v1/credentials/cred_x/revoke', notFound: { path: `/internal/v1/credentials/${cred}/revoke`, body: { revoked_by: 'payer' }, code: 'credential_not_found' } },
  { server: 'settlement', method: 'POST', path: '/internal/v1/authorizations', caller: 'peer', body: authorization, tooLong: { ...authorization, request: { ...authorization.request, line_items: [{ description: 'd'.repeat(limits.stringLengthMax + 1), quantity: 2, unit_price_minor: '1200' }] } } },
  { server: 'settlement', method: 'POST', path: `/internal/v1/authorizations/${pr}/capture`, caller: 'peer', body: { amount_minor: '100' }, tooLong: { amount_minor: '9'.repeat(21) }, malformedId: '/internal/v1/authorizations/auth_1/capture' },
  { server: 'settlement', method: 'POST', path: `/internal/v1/authorizations/${pr}/void`, caller: 'peer', body: {}, malformedId: '/internal/v1/authorizations/pr_%20/void' },
  { server: 'settlement', method: 'POST', path: `/internal/v1/authorizations/${pr}/reversal`, caller: 'peer', body: { nonce: 'n'.repeat(22) }, tooLong: { nonce: 'n'.repeat(65) }, malformedId: '/internal/v1/authorizations/pr_%20/reversal' },
  { server: 'settlement', method: 'GET', path: `/internal/v1/authorizations/${pr}`, caller: 'peer', malformedId: '/internal/v1/authorizations/pr_%20', notFound: { path: `/internal/v1/authorizations/${pr}`, code: 'authorization_not_found' } },
  { server: 'settlement', method: 'POST', path: `/internal/v1/authorizations/${pr}/refunds`, caller: 'peer', body: { refund_id: newId('rf'), amount_minor: '100' }, tooLong: { refund_id: newId('rf'), amount_minor: '9'.repeat(21) }, malformedId: '/internal/v1/authorizations/pr_1/refunds', notFound: { path: `/internal/v1/authorizations/${pr}/refunds`, body: { refund_id: newId('rf'), amount_minor: '100' }, code: 'authorization_not_found' } },
  { server: 'settlement', method: 'GET', path: `/internal/v1/merchants/${mer}/settlement-batches`, caller: 'peer', malformedId: '/internal/v1/merchants/mer_%00/settlement-batches' },
  // Its query (`after`, `limit`) is refused malformed in test/settlement-batches.test.ts.
  { server: 'settlement', method: 'GET', path: '/internal/v1/settlement-batches', caller: 'peer' },
  { server: 'settlement', method: 'GET', path: `/internal/v1/merchants/${mer}/settlement-batches/${stb}/report`, caller: 'peer', malformedId: `/internal/v1/merchants/${mer}/settlement-batches/stb_1/report`, notFound: { path: `/internal/v1/merchants/${mer}/settlement-batches/${stb}/report`, code: 'settlement_batch_not_found' } },
  { server: 'settlement', method: 'POST', path: '/admin/v1/accounts/import', caller: 'operator', body: { rows: [{ card_number: '4242424242424242', holder_name: 'INPUT TEST', expiry: '12/34', pin: '1234', balance: '100', currency: 'JPY', kind: 'debit' }] }, tooLong: { rows: [{ card_number: '4'.repeat(33), holder_name: 'INPUT TEST', expiry: '12/34', pin: '1234', balance: '100', currency: 'JPY', kind: 'debit' }] } },
  { server: 'settlement', method: 'GET', path: '/livez', caller: 'public' },
  { server: 'settlement', method: 'GET', path: '/readyz', caller: 'public' },
  { server: 'settlement', method: 'GET', path: '/openapi.json', caller: 'public' },
  { server: 'settlement', method: 'GET', path: '/metrics', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: '/', caller: 'public' },
  { server: 'settlement', method: 'GET', path: '/console/', caller: 'public', notFound: { path: '/no-such-page/', code: 'not_found' } },
  { server: 'settlement', method: 'GET', path: '/assets/app.js', caller: 'public', notFound: { path: `/assets/${canary}.js`, code: 'not_found' } },
  { server: 'settlement', method: 'GET', path: '/admin/v1/audit/verify', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: '/admin/v1/authorizations', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: '/admin/v1/accounts', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: '/admin/v1/transfers', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: '/admin/v1/refunds', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: '/admin/v1/volume', caller: 'operator' },
  { server: 'settlement', method: 'POST', path: '/admin/v1/cards/unlock', caller: 'operator', body: { credential_id: cred }, tooLong: { credential_id: `cred_${'a'.repeat(100)}` } },
  { server: 'settlement', method: 'GET', path: '/admin/v1/merchants', caller: 'operator' },
  { server: 'settlement', method: 'POST', path: '/admin/v1/merchants', caller: 'operator', body: { merchant_id: mer, name: 'Kissa Input' }, tooLong: { merchant_id: mer, name: 'n'.repeat(limits.stringLengthMax + 1) } },
  { server: 'settlement', method: 'POST', path: `/admin/v1/credentials/${cred}/revoke`, caller: 'operator', malformedId: '/admin/v1/credentials/cred_%20/revoke', notFound: { path: `/admin/v1/credentials/${cred}/revoke`, code: 'credential_not_found' } },
  { server: 'settlement', method: 'GET', path: '/admin/v1/keys', caller: 'operator' },
  { server: 'settlement', method: 'POST', path: '/admin/v1/keys/rotate', caller: 'operator', body: { key: 'authorization-signing' }, tooLong: { key: 'k'.repeat(65) }, notFound: { path: '/admin/v1/keys/rotate', body: { key: 'no-such-key' }, code: 'key_not_found' } },
  { server: 'settlement', method: 'POST', path: '/admin/v1/keys/retire', caller: 'operator', body: { key: 'authorization-signing', kid: 'kid-1' }, tooLong: { key: 'k'.repeat(65), kid: 'kid-1' }, notFound: { path: '/admin/v1/keys/retire', body: { key: 'no-such-key', kid: 'kid-1' }, code: 'key_not_found' } },
  { server: 'settlement', method: 'GET', path: '/admin/v1/settlement-batches', caller: 'operator' },
  { server: 'settlement', method: 'GET', path: `/admin/v1/settlement-batches/${stb}/report`, caller: 'operator', malformedId: '/admin/v1/settlement-batches/stb_%00/report', notFound: { path: `/admin/v1/settlement-batches/${stb}/report`, code: 'settlement_batch_not_found' } },
  { server: 'settlement', method: 'POST', path: '/admin/v1/settlement-batches/close', caller: 'operator', body: { date: '2026-01-01' }, bodyOptional: true, fieldsOptional: true, tooLong: { date: '2026-01-011' } },
  { server: 'settlement', method: 'POST', path: '/admin/v1/fee-schedules', caller: 'operator', body: feeSchedule, tooLong: { ...feeSchedule, fixed_minor: '9'.repeat(22) } },
  // The shop.
  { server: 'shop', method: 'GET', path: '/api/products', caller: 'public' },
  { server: 'shop', method: 'POST', path: '/api/carts', caller: 'public', body: {}, bodyOptional: true },
  { server: 'shop', method: 'GET', path: `/api/carts/${cart}`, caller: 'public', malformedId: '/api/carts/cart-1' },
  { server: 'shop', method: 'POST', path: `/api/carts/${cart}/items`, caller: 'public', body: { product_id: 'sencha-100g', quantity: 1 }, tooLong: { product_id: 's'.repeat(65), quantity: 1 }, malformedId: '/api/carts/ord_1/items' },
  { server: 'shop', method: 'POST', path: `/api/carts/${cart}/checkout`, caller: 'public', body: {}, bodyOptional: true, tooLong: { wallet_handle: `cred_${'a'.repeat(100)}` }, malformedId: `/api/carts/${cart}x/checkout` },
  { server: 'shop', method: 'GET', path: `/api/orders/${newId('ord')}`, caller: 'public', malformedId: `/api/orders/${cart}` },
  { server: 'shop', method: 'GET', path: '/', caller: 'public' },
  { server: 'shop', method: 'GET', path: '/store/', caller: 'public', notFound: { path: '/no-such-page/', code: 'not_found' } },
  { server: 'shop', method: 'GET', path: '/assets/app.js', caller: 'public', notFound: { path: `/assets/${canary}.js`, code: 'not_found' } },
  { server: 'shop', method: 'GET', path: '/admin/v1/audit/verify', caller: 'operator' },
  { server: 'shop', method: 'GET', path: '/livez', caller: 'public' },
  { server: 'shop', method: 'GET', path: '/readyz', caller: 'public' },
  { server: 'shop', method: 'GET', path: '/openapi.json', caller: 'public' },
  { server: 'shop', method: 'GET', path: '/metrics', caller: 'operator' },
  { server: 'shop', method: 'GET', path: '/api/settlements', caller: 'operator' },
  { server: 'shop', method: 'GET', path: `/api/settlements/${stb}/report.json`, caller: 'operator', malformedId: '/api/settlements/stb_X/report.json', notFound: { path: `/api/settlements/${stb}/report.json`, code: 'settlement_batch_not_found' } },
  { server: 'shop', method: 'GET', path: `/api/settlements/${stb}/report.csv`, caller: 'operator', malformedId: `/api/settlements/${cart}/report.csv`, notFound: { path: `/api/settlements/${stb}/report.csv`, code: 'settlement_batch_not_found' } },
  { server: 'shop', method: 'POST', path: '/webhooks/kessai', caller: 'public', body: { id: 'evt_1', type: 'payment_request.approved' }, headers: { 'kessai-signature': `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}` } },
];

function routeName(route: Route): string {
  return `${route.server}: ${route.method} ${route.path.replace(/[a-z]+_[0-9a-z]{26}/g, ':id')}`;
}

/** What a legitimate caller of the route would send besides the body: key, proof, certificate. */
async function credentials(route: Route, path: string = route.path): Promise<{ headers: Record<string, string>; dispatcher: Dispatcher }> {
  const extra = route.headers ?? {};
  if (route.caller === 'merchant') return { headers: { ...merchantHeaders(), ...extra }, dispatcher: anonymous };
  if (route.caller === 'terminal') return { headers: { ...(await proofFor(route.method, path)), ...extra }, dispatcher: anonymous };
  if (route.caller === 'operator') return { headers: { ...system.operatorHeaders(baseUrl(route.server)), ...extra }, dispatcher: anonymous };
  return { headers: extra, dispatcher: route.caller === 'peer' ? peer : anonymous };
}

async function call(route: Route, body?: RawBody, options: { path?: string; method?: Method; headers?: Record<string, string> } = {}): Promise<Answer> {
  const path = options.path ?? route.path;
  const method = options.method ?? route.method;
  const { headers, dispatcher } = await credentials(route, path);
  return send(route.server, method, path, { ...(body ? { body } : {}), headers: { ...headers, ...options.headers }, dispatcher });
}

/** Each top-level field of the wrong JSON type; a body without fields becomes an array. */
function mistyped(body: Record<string, unknown>): unknown {
  const entries = Object.entries(body);
  if (entries.length === 0) return [card];
  return Object.fromEntries(entries.map(([key, value]) => [key, typeof value === 'string' ? Number(card) : typeof value === 'number' ? card : [value]]));
}

interface BodyCase {
  name: string;
  code: ErrorCode;
  body: (route: Route) => RawBody | undefined;
}

const bodyCases: BodyCase[] = [
  { name: 'an unknown field (a card number where none belongs)', code: 'validation_failed', body: (route) => json({ ...route.body, card_number_copy: card }) },
  { name: 'every field of the wrong type', code: 'validation_failed', body: (route) => json(mistyped(route.body!)) },
  { name: 'an object without its required fields', code: 'validation_failed', body: (route) => (Object.keys(route.body!).length > 0 && !route.fieldsOptional ? json({}) : undefined) },
  { name: 'no body at all', code: 'validation_failed', body: (route) => (route.bodyOptional ? undefined : { text: '' }) },
  { name: 'JSON null', code: 'validation_failed', body: (route) => (route.bodyOptional ? undefined : { contentType: 'application/json', text: 'null' }) },
  { name: 'a string one character past its limit', code: 'validation_failed', body: (route) => (route.tooLong ? json(route.tooLong) : undefined) },
  { name: 'a body larger than bodyBytesMax', code: 'body_too_large', body: (route) => json({ ...route.body, padding: `${canary}${'x'.repeat(limits.bodyBytesMax)}` }) },
  { name: 'a text/plain body', code: 'unsupported_media_type', body: (route) => ({ contentType: 'text/plain', text: JSON.stringify(route.body) }) },
  { name: 'a form-encoded body', code: 'unsupported_media_type', body: () => ({ contentType: 'application/x-www-form-urlencoded', text: `card_number=${card}` }) },
  { name: 'an XML body', code: 'unsupported_media_type', body: () => ({ contentType: 'application/xml', text: `<card>${card}</card>` }) },
  { name: 'a body without a content type', code: 'unsupported_media_type', body: () => ({ text: `{"card_number":"${card}"}` }) },
  { name: 'an unparsable content type', code: 'unsupported_media_type', body: () => ({ contentType: 'json', text: `{"card_number":"${card}"}` }) },
  { name: 'malformed JSON (without echoing it)', code: 'validation_failed', body: () => ({ contentType: 'application/json', text: `{"card_number": "${card}", "note": "${canary}"` }) },
  { name: 'JSON with a trailing comma', code: 'validation_failed', body: () => ({ contentType: 'application/json', text: `{"card_number": "${card}",}` }) },
  { name: 'an empty JSON body', code: 'validation_failed', body: (route) => (route.bodyOptional ? undefined : { contentType: 'application/json', text: '' }) },
  { name: 'a __proto__ key', code: 'validation_failed', body: (route) => ({ contentType: 'application/json', text: JSON.stringify(route.body).replace(/^\{/, `{"__proto__": {"admin": true, "card": "${card}"}${Object.keys(route.body!).length > 0 ? ',' : ''}`) }) },
  { name: 'a constructor.prototype key', code: 'validation_failed', body: () => ({ contentType: 'application/json', text: `{"constructor": {"prototype": {"admin": true}}}` }) },
];

const postRoutes = routes.filter((route) => route.body !== undefined);

describe.each(postRoutes.map((route) => [routeName(route), route] as const))('%s refuses a bad body', (_name, route) => {
  const cases = bodyCases.filter((c) => c.body(route) !== undefined);
  it.each(cases.map((c) => [c.name, c.code, c] as const))('answers %s with %s', async (_case, code, bodyCase) => {
    expectProblem(await call(route, bodyCase.body(route)), code);
  });
});

// The table above names its codes in rows; this states one in an assertion (test/error-catalog.test.ts asks for one per code).
it('answers a text/plain body with unsupported_media_type (415)', async () => {
  const route = postRoutes[0]!;
  const answer = await call(route, { contentType: 'text/plain', text: JSON.stringify(route.body) });
  expect(answer.body.code).toBe('unsupported_media_type');
  expectProblem(answer, 'unsupported_media_type');
});

describe('every route refuses a path it does not know, a malformed id and a method it does not take', () => {
  const wrongPaths: Array<[Server, string]> = [
    ['auth', '/v1/nothing-here'],
    ['auth', '/v1/payment-requests/pr_x/refund'],
    ['auth', '/nothing-here'],
    // The browser wallet has its own host (apps/wallet/src/host.ts): the authentication server serves no wallet page.
    ['auth', '/wallet/'],
    ['settlement', '/internal/v1/nothing-here'],
    ['settlement', '/.well-known/nothing-here'],
    ['shop', '/api/nothing-here'],
    ['shop', `/webhooks/kessai/${canary}`],
  ];
  it.each(wrongPaths)('%s answers GET %s with not_found', async (server, path) => {
    expectProblem(await send(server, 'GET', path), 'not_found');
  });

  const withIds = routes.filter((route) => route.malformedId !== undefined);
  it.each(withIds.map((route) => [routeName(route), route] as const))('%s answers a malformed id with validation_failed', async (_name, route) => {
    expectProblem(await call(route, route.body ? json(route.body) : undefined, { path: route.malformedId! }), 'validation_failed');
  });

  it.each(withIds.map((route) => [routeName(route), route] as const))('%s answers an id longer than any id with validation_failed', async (_name, route) => {
    const path = route.path.replace(/(pr|cart|ord|cred|mer|stb|evt)_[0-9a-z]{26}/, `pr_${'0'.repeat(200)}`);
    expectProblem(await call(route, route.body ? json(route.body) : undefined, { path }), 'validation_failed');
  });

  it.each(withIds.map((route) => [routeName(route), route] as const))('%s answers an id with broken percent-encoding with validation_failed', async (_name, route) => {
    const path = route.path.replace(/(pr|cart|ord|cred|mer|stb|evt)_[0-9a-z]{26}/, '%E0%A4%A');
    expectProblem(await call(route, route.body ? json(route.body) : undefined, { path }), 'validation_failed');
  });

  // The preflight route answers OPTIONS at any path: it has no path of its own to refuse another method at.
  it.each(routes.filter((route) => route.method !== 'OPTIONS').map((route) => [routeName(route), route] as const))('%s answers another method with method_not_allowed, naming its own in Allow', async (_name, route) => {
    const answer = await call(route, json({}), { method: route.method === 'GET' ? 'DELETE' : 'PUT' });
    expectProblem(answer, 'method_not_allowed');
    expect(answer.allow.split(', ')).toContain(route.method);
  });
});

// ---- the route table covers every route the servers register --------------------------------------

function covers(route: Route, server: Server, registered: string): boolean {
  return route.server === server && routeCovers(route.method, route.path, registered);
}

describe('the route table', () => {
  const servers = (): Array<[Server, Parameters<typeof registeredRoutes>[0]]> => [
    ['auth', system.auth.app],
    ['settlement', system.settlements[0]!.app],
    ['shop', system.shop.app],
  ];

  it('covers every route each server registers, so no new route escapes these checks', () => {
    const uncovered: string[] = [];
    let count = 0;
    for (const [server, app] of servers()) {
      for (const registered of registeredRoutes(app)) {
        count++;
        if (!routes.some((route) => covers(route, server, registered))) uncovered.push(`${server}: ${registered}`);
      }
    }
    expect(count).toBeGreaterThanOrEqual(routes.length);
    expect(uncovered).toEqual([]);
  });

  it('names no route the servers do not register', () => {
    const registered = servers().flatMap(([server, app]) => registeredRoutes(app).map((entry) => [server, entry] as const));
    const stale = routes.filter((route) => !registered.some(([server, entry]) => covers(route, server, entry))).map(routeName);
    expect(stale).toEqual([]);
  });
});

describe('every route answers an id that names nothing with its not-found code', () => {
  const withUnknown = routes.filter((route) => route.notFound !== undefined);
  it.each(withUnknown.map((route) => [routeName(route), route.notFound!.code, route] as const))('%s answers with %s', async (_name, code, route) => {
    const { path, body } = route.notFound!;
    expectProblem(await call(route, body ? json(body) : undefined, { path }), code);
  });
});

describe('the operator endpoints refuse a caller without the operator token', () => {
  const operatorRoutes = routes.filter((route) => route.caller === 'operator');
  const tokens: Array<[string, (server: Server) => Record<string, string>]> = [
    ['no Authorization header', () => ({})],
    ['a wrong token', () => ({ authorization: `Bearer ${randomBytes(24).toString('base64url')}` })],
    ['the merchant API key', () => ({ authorization: `Bearer ${system.merchant.apiKey}` })],
    ['the token without its scheme', (server) => ({ authorization: system.operatorTokenOf(baseUrl(server)) })],
    ['the token with a card number appended', (server) => ({ authorization: `Bearer ${system.operatorTokenOf(baseUrl(server))}${card}` })],
    // Each role has its own operator credentials: another role's token (the broker's at a bank, a bank's at the broker) opens nothing.
    ['another role’s operator token', (server) => ({ authorization: `Bearer ${server === 'auth' ? system.operatorTokens.issuers['sakura-bank'] : system.operatorTokens.auth}` })],
  ];
  describe.each(operatorRoutes.map((route) => [routeName(route), route] as const))('%s', (_name, route) => {
    it.each(tokens)('answers %s with unauthenticated', async (_case, headers) => {
      const answer = await send(route.server, route.method, route.path, { ...(route.body ? { body: json(route.body) } : {}), headers: headers(route.server) });
      expectProblem(answer, 'unauthenticated');
    });
  });
});

// ---- the authentication server: API keys, Idempotency-Key, device proofs ---------------------------

describe('the merchant API refuses a caller without a valid API key', () => {
  const merchantRoutes = routes.filter((route) => route.caller === 'merchant');
  const keys: Array<[string, Record<string, string>]> = [
    ['no Authorization header', {}],
    ['an unknown API key', { authorization: `Bearer sk_test_${randomBytes(24).toString('base64url')}` }],
    ['a malformed API key', { authorization: `Bearer ${canary} ${card}` }],
    ['a Basic credential', { authorization: `Basic ${Buffer.from(`${card}:x`).toString('base64')}` }],
    ['a device proof instead of an API key', { authorization: `KessaiDevice ${jose}` }],
  ];
  describe.each(merchantRoutes.map((route) => [routeName(route), route] as const))('%s', (_name, route) => {
    it.each(keys)('answers %s with unauthenticated', async (_case, authorization) => {
      const headers = { 'idempotency-key': randomBytes(12).toString('hex'), ...authorization };
      expectProblem(await send('auth', route.method, route.path, { ...(route.body ? { body: json(route.body) } : {}), headers }), 'unauthenticated');
    });
  });
});

describe('the merchant API and its Idempotency-Key', () => {
  const merchantPosts = routes.filter((route) => route.caller === 'merchant' && route.method === 'POST');
  it.each(merchantPosts.map((route) => [routeName(route), route] as const))('%s answers a POST without Idempotency-Key with idempotency_key_missing', async (_name, route) => {
    const answer = await send('auth', 'POST', route.path, { body: json(route.body), headers: { authorization: `Bearer ${system.merchant.apiKey}` } });
    expectProblem(answer, 'idempotency_key_missing');
  });

  const badKeys: Array<[string, string]> = [
    ['longer than idempotencyKeyLengthMax', 'k'.repeat(limits.idempotencyKeyLengthMax + 1)],
    ['with a space in it', 'two words'],
  ];
  it.each(badKeys)('answers an Idempotency-Key %s with validation_failed', async (_case, key) => {
    expectProblem(await send('auth', 'POST', '/v1/payment-requests', { body: json(paymentRequest), headers: merchantHeaders(key) }), 'validation_failed');
  });

  it('answers the same key with another body with idempotency_key_reused', async () => {
    const key = randomBytes(12).toString('hex');
    expect((await send('auth', 'POST', '/v1/payment-requests', { body: json(paymentRequest), headers: merchantHeaders(key) })).status).toBe(201);
    const other = { ...paymentRequest, order_id: 'order-2' };
    expectProblem(await send('auth', 'POST', '/v1/payment-requests', { body: json(other), headers: merchantHeaders(key) }), 'idempotency_key_reused');
    expectProblem(await send('auth', 'POST', `/v1/payment-requests/${pr}/void`, { body: json({}), headers: merchantHeaders(key) }), 'idempotency_key_reused');
  });

  it('answers the same key with the same body with the stored answer, status and body', async () => {
    const key = randomBytes(12).toString('hex');
    const first = await send('auth', 'POST', '/v1/payment-requests', { body: json(paymentRequest), headers: merchantHeaders(key) });
    const second = await send('auth', 'POST', '/v1/payment-requests', { body: json(paymentRequest), headers: merchantHeaders(key) });
    expect(first.status).toBe(201);
    expect(second.status).toBe(first.status);
    expect(second.body).toEqual(first.body);
  });

  it('answers the same key with the same refused body with the same stored problem', async () => {
    const key = randomBytes(12).toString('hex');
    const mismatched = { ...paymentRequest, amount_minor: '2401' };
    const first = await send('auth', 'POST', '/v1/payment-requests', { body: json(mismatched), headers: merchantHeaders(key) });
    const second = await send('auth', 'POST', '/v1/payment-requests', { body: json(mismatched), headers: merchantHeaders(key) });
    expectProblem(first, 'amount_mismatch');
    expectProblem(second, 'amount_mismatch');
    expect(second.body).toEqual(first.body);
  });
});

describe('the merchant API refuses a payment request that breaks a rule', () => {
  const rows: Array<[string, Record<string, unknown>, ErrorCode]> = [
    ['an amount that is not the sum of the items', { ...paymentRequest, amount_minor: '2300' }, 'amount_mismatch'],
    ['an unknown currency', { ...paymentRequest, currency: 'XXX' }, 'validation_failed'],
    ['a lower-case currency', { ...paymentRequest, currency: 'jpy' }, 'validation_failed'],
    ['a negative amount', { ...paymentRequest, amount_minor: '-2400' }, 'validation_failed'],
    ['an amount with a leading zero', { ...paymentRequest, amount_minor: '02400' }, 'validation_failed'],
    ['an amount as a JSON number', { ...paymentRequest, amount_minor: 2400 }, 'validation_failed'],
    ['an amount past amountMinorMax', { ...paymentRequest, amount_minor: (limits.amountMinorMax + 1n).toString() }, 'validation_failed'],
    ['no line items', { ...paymentRequest, line_items: [] }, 'validation_failed'],
    ['more than lineItemsMax line items', { ...paymentRequest, amount_minor: String(1200 * (limits.lineItemsMax + 1)), line_items: Array.from({ length: limits.lineItemsMax + 1 }, () => ({ description: 'Sencha', quantity: 1, unit_price_minor: '1200' })) }, 'validation_failed'],
    ['a quantity of zero', { ...paymentRequest, line_items: [{ description: 'Sencha', quantity: 0, unit_price_minor: '1200' }] }, 'validation_failed'],
    ['a fractional quantity', { ...paymentRequest, line_items: [{ description: 'Sencha', quantity: 1.5, unit_price_minor: '1600' }] }, 'validation_failed'],
    ['a quantity past quantityMax', { ...paymentRequest, amount_minor: String(limits.quantityMax + 1), line_items: [{ description: 'Sencha', quantity: limits.quantityMax + 1, unit_price_minor: '1' }] }, 'validation_failed'],
    ['a description past stringLengthMax', { ...paymentRequest, line_items: [{ description: 'd'.repeat(limits.stringLengthMax + 1), quantity: 2, unit_price_minor: '1200' }] }, 'validation_failed'],
    ['an empty order id', { ...paymentRequest, order_id: '' }, 'validation_failed'],
    ['an unknown field inside a line item', { ...paymentRequest, line_items: [{ ...paymentRequest.line_items[0], card_number: card }] }, 'validation_failed'],
    ['a lifetime below paymentRequestTtlMsMin', { ...paymentRequest, expires_in_seconds: limits.paymentRequestTtlMsMin / 1000 - 1 }, 'validation_failed'],
    ['a lifetime past paymentRequestTtlMsMax', { ...paymentRequest, expires_in_seconds: limits.paymentRequestTtlMsMax / 1000 + 1 }, 'validation_failed'],
    ['a wallet handle that is not a credential id', { ...paymentRequest, wallet_handle: card }, 'validation_failed'],
    ['a wallet handle nobody enrolled', { ...paymentRequest, wallet_handle: newId('cred') }, 'credential_not_found'],
    ['a NUL character in the order id', { ...paymentRequest, order_id: 'order\u0000-1' }, 'validation_failed'],
    ['a NUL character in an item description', { ...paymentRequest, line_items: [{ description: 'Sencha\u0000', quantity: 2, unit_price_minor: '1200' }] }, 'validation_failed'],
  ];
  it.each(rows)('answers %s with %s', async (_case, body, code) => {
    expectProblem(await send('auth', 'POST', '/v1/payment-requests', { body: json(body), headers: merchantHeaders() }), code);
  });
});

describe('every route that takes an amount refuses one that is not a decimal integer string', () => {
  const at = (server: Server, path: string) => routes.find((route) => route.server === server && route.path === path)!;
  const takers: Array<[string, Route, (amount: string) => Record<string, unknown>]> = [
    ['auth: amount_minor of a payment request', at('auth', '/v1/payment-requests'), (amount) => ({ ...paymentRequest, amount_minor: amount })],
    ['auth: unit_price_minor of a line item', at('auth', '/v1/payment-requests'), (amount) => ({ ...paymentRequest, line_items: [{ ...paymentRequest.line_items[0], unit_price_minor: amount }] })],
    ['auth: amount_minor of a capture', at('auth', `/v1/payment-requests/${pr}/capture`), (amount) => ({ amount_minor: amount })],
    ['settlement: amt of an authorization', at('settlement', '/internal/v1/authorizations'), (amount) => ({ ...authorization, request: { ...authorization.request, amt: amount } })],
    ['settlement: amount_minor of a capture', at('settlement', `/internal/v1/authorizations/${pr}/capture`), (amount) => ({ amount_minor: amount })],
  ];
  const amounts = ['2400.0', '2.4e3', 'abc', '0x960', ' 2400', ''];
  const rows = takers.flatMap(([name, route, body]) => amounts.map((amount) => [name, amount, route, body(amount)] as const));
  it.each(rows)('%s answers %j with validation_failed', async (_name, _amount, route, body) => {
    expectProblem(await call(route, json(body)), 'validation_failed');
  });
});

describe('enrollment refuses card data that does not hold', () => {
  const holder = demoCard(card).holderName;
  const other = demoCard('4000056655665556');
  /** A PIN block to `issuerId`'s key, bound to the credential id, device key and card of the body, as a terminal encrypts it. */
  async function pinBlock(issuerId: string, credentialId: string, pin: string, cardNumber: string): Promise<string> {
    const enc = system.settlements.find((s) => s.issuer.id === issuerId)!.config.keys.current('enc');
    const dkt = await thumbprint(deviceJwk as JWK);
    return sealJson({ pin, cred: credentialId, dkt, cnh: await sha256Base64url(normalizeCardNumber(cardNumber)) }, enc, { typ: typ.enrollmentPin, cred: credentialId, dkt });
  }
  // Each row is a change to a re-seal enrollment whose PIN block is real: TARO YAMADA's PIN unless `pin` says otherwise, bound to the body's credential id and card unless `boundTo` or `forCard` names another.
  const rows: Array<[string, Record<string, unknown>, ErrorCode, { pin?: string; boundTo?: string; forCard?: string }?]> = [
    // Checked by the authentication server before the bank is called.
    ['a card number that fails the Luhn check', { card_number: '4242424242424241' }, 'card_invalid'],
    ['a card number with letters', { card_number: '4242abcd42424242' }, 'card_invalid'],
    ['a card number of dashes and spaces only', { card_number: '---- ---- ----' }, 'card_invalid'],
    ['a card number past 23 characters', { card_number: `${card}${card}` }, 'validation_failed'],
    ['an expiry in the past', { expiry: '01/20' }, 'card_expired'],
    ['an expiry that is not MM/YY', { expiry: '13/34' }, 'validation_failed'],
    ['a card number no issuer serves', { card_number: '378282246310005' }, 'issuer_unknown'],
    ['a card number in the ranges of another issuer than the one named', { card_number: '5555555555554444', holder_name: demoCard('5555555555554444').holderName }, 'issuer_unknown'],
    ['an issuer the directory does not list', { issuer_id: 'no-such-bank' }, 'issuer_unknown'],
    ['a sealed card for an issuer that re-seals', { sealed_card: jose, holder_name: undefined, card_number: undefined, expiry: undefined }, 'validation_failed'],
    ['card data in clear for a pass-through issuer', { issuer_id: 'fuji-bank' }, 'validation_failed'],
    ['a device key with its private part', { device_jwk: { ...deviceJwk, d: 'C'.repeat(43) } }, 'validation_failed'],
    ['a device key on another curve', { device_jwk: { ...deviceJwk, crv: 'P-384' } }, 'validation_failed'],
    ['an empty holder name', { holder_name: '' }, 'validation_failed'],
    ['a NUL character in the holder name', { holder_name: 'TARO\u0000YAMADA' }, 'validation_failed'],
    // Refused by the bank, one code whichever field was wrong (no oracle for card data).
    ['a card number its issuer never issued', { card_number: '4111111111111111' }, 'enrollment_refused'],
    ['a holder name the issuer does not know', { holder_name: `${holder} JR` }, 'enrollment_refused'],
    ['another expiry than the card’s', { expiry: '11/33' }, 'enrollment_refused'],
    ['a blocked card', { card_number: '4000000000000002', holder_name: demoCard('4000000000000002').holderName }, 'enrollment_refused', { pin: demoCard('4000000000000002').pin }],
    ['a wrong PIN', { card_number: other.cardNumber, holder_name: other.holderName, expiry: other.expiry }, 'enrollment_refused', { pin: '0000' }],
    ['a PIN block bound to another credential id', {}, 'pin_invalid', { boundTo: newId('cred') }],
    ['a PIN block for another card (the same PIN would otherwise enroll the device for it)', {}, 'pin_invalid', { forCard: other.cardNumber }],
  ];
  it.each(rows)('answers %s with %s, never repeating the card number', async (_case, change, code, pinOptions = {}) => {
    const credentialId = newId('cred');
    const issuerId = typeof change.issuer_id === 'string' && change.issuer_id !== 'no-such-bank' ? change.issuer_id : 'sakura-bank';
    const pin = pinOptions.pin ?? demoCard(card).pin;
    const cardNumber = pinOptions.forCard ?? (typeof change.card_number === 'string' ? change.card_number : card);
    const body = Object.fromEntries(Object.entries({ ...enrollment, credential_id: credentialId, pin_block: await pinBlock(issuerId, pinOptions.boundTo ?? credentialId, pin, cardNumber), ...change }).filter(([, value]) => value !== undefined));
    expectProblem(await send('auth', 'POST', '/v1/enrollments', { body: json(body) }), code);
  });

  it('registers the same enrollment with the right PIN, so the rows above fail for their one change', async () => {
    const credentialId = newId('cred');
    const answer = await send('auth', 'POST', '/v1/enrollments', { body: json({ ...enrollment, credential_id: credentialId, pin_block: await pinBlock('sakura-bank', credentialId, demoCard(card).pin, card) }) });
    expect(answer.status, answer.text).toBe(201);
    expect(answer.body).toMatchObject({ credential_id: credentialId, issuer: { id: 'sakura-bank', conversion_mode: 'reseal' } });
    for (const secret of cardNumbers) expect(answer.text).not.toContain(secret);
  });
});

describe('the terminal API refuses a missing, forged, misdirected or replayed device proof', () => {
  const terminalRoutes = routes.filter((route) => route.caller === 'terminal');
  const now = () => Math.floor(Date.now() / 1000);
  const proofs: Array<[string, (route: Route) => Promise<Record<string, string>>]> = [
    ['no Authorization header', async () => ({})],
    ['a merchant API key', async () => ({ authorization: `Bearer ${system.merchant.apiKey}` })],
    ['a proof that is not a JWT', async () => ({ authorization: `KessaiDevice ${canary}` })],
    ['an unsigned proof (alg none)', async (route) => ({ authorization: `KessaiDevice ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: wallet.wallet.credential_id, htm: route.method, htu: route.path, iat: now(), jti: 'x' })).toString('base64url')}.` })],
    ['a proof signed by another key', async (route) => proofFor(route.method, route.path, (await generateKeyPair('ES256')).privateKey)],
    ['a proof for a credential nobody enrolled', async (route) => proofFor(route.method, route.path, deviceKey, newId('cred'))],
    ['a proof naming a credential id with a NUL character', async (route) => craftedProof(route.method, route.path, { sub: 'cred_\u0000' })],
    ['a proof for another path', async (route) => proofFor(route.method, route.path === '/v1/terminal/events' ? `/v1/terminal/payment-requests/${pr}` : '/v1/terminal/events')],
    ['a proof for another method', async (route) => proofFor(route.method === 'GET' ? 'POST' : 'GET', route.path)],
    ['a proof of another type', async (route) => craftedProof(route.method, route.path, { typ: 'JWT' })],
    ['a proof issued ten minutes ago', async (route) => craftedProof(route.method, route.path, { iatSeconds: now() - 600 })],
    ['a proof issued ten minutes from now', async (route) => craftedProof(route.method, route.path, { iatSeconds: now() + 600 })],
  ];
  describe.each(terminalRoutes.map((route) => [routeName(route), route] as const))('%s', (_name, route) => {
    it.each(proofs)('answers %s with unauthenticated', async (_case, proof) => {
      const answer = await send('auth', route.method, route.path, { ...(route.body ? { body: json(route.body) } : {}), headers: await proof(route) });
      expectProblem(answer, 'unauthenticated');
    });
  });

  it('answers a proof longer than joseLengthMax, past what the HTTP parser reads, with validation_failed', async () => {
    const answer = await send('auth', 'GET', `/v1/terminal/payment-requests/${pr}`, { headers: { authorization: `KessaiDevice ${'a'.repeat(limits.joseLengthMax + 1)}` } });
    expectProblem(answer, 'validation_failed');
  });

  it('answers a replayed device proof with unauthenticated', async () => {
    const path = `/v1/terminal/payment-requests/${pr}/outcome`;
    const headers = await proofFor('GET', path);
    expectProblem(await send('auth', 'GET', path, { headers }), 'payment_request_not_found');
    expectProblem(await send('auth', 'GET', path, { headers }), 'unauthenticated');
  });
});

describe('the terminal API refuses an approval that the device key did not sign as sent', () => {
  async function pending(): Promise<{ id: string; path: string }> {
    const created = await merchant.createPaymentRequest({ ...paymentRequest, order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', wallet_handle: wallet.wallet.credential_id }, randomBytes(12).toString('hex'));
    return { id: created.id, path: `/v1/terminal/payment-requests/${created.id}/approve` };
  }

  it('answers an approval signed by another key with approval_invalid', async () => {
    const { id, path } = await pending();
    const body = await wallet.approvalBody(await wallet.fetchRequest(id), demoCard(card).pin);
    const [, payload] = body.approval.split('.');
    const forged = await signJson(JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')), (await generateKeyPair('ES256')).privateKey, { typ: typ.approval });
    expectProblem(await send('auth', 'POST', path, { body: json({ ...body, approval: forged }), headers: await proofFor('POST', path) }), 'approval_invalid');
  });

  it('answers an approval that is not a signature at all with approval_invalid', async () => {
    const { id, path } = await pending();
    const body = await wallet.approvalBody(await wallet.fetchRequest(id), demoCard(card).pin);
    expectProblem(await send('auth', 'POST', path, { body: json({ ...body, approval: jose }), headers: await proofFor('POST', path) }), 'approval_invalid');
  });

  it('answers an approval signed ten minutes ago with approval_stale', async () => {
    const { id, path } = await pending();
    const body = await wallet.approvalBody(await wallet.fetchRequest(id), demoCard(card).pin, { iat: Math.floor(Date.now() / 1000) - 600 });
    expectProblem(await send('auth', 'POST', path, { body: json(body), headers: await proofFor('POST', path) }), 'approval_stale');
  });

  it('answers a sealed credential that is not a JWE with credential_invalid', async () => {
    const { id, path } = await pending();
    const body = await wallet.approvalBody(await wallet.fetchRequest(id), demoCard(card).pin);
    expectProblem(await send('auth', 'POST', path, { body: json({ ...body, sealed_credential: 'a.b.c.d.e' }), headers: await proofFor('POST', path) }), 'credential_invalid');
  });

  it('answers a fifth event stream for one credential with stream_limit_reached', async () => {
    const path = '/v1/terminal/events';
    const abort = new AbortController();
    try {
      for (let open = 0; open < limits.sseStreamsPerCredentialMax; open++) {
        const stream = await request(`${system.auth.url}${path}`, { method: 'GET', dispatcher: anonymous, headers: await proofFor('GET', path), signal: abort.signal });
        expect(stream.statusCode).toBe(200);
        stream.body.on('error', () => undefined);
      }
      expectProblem(await send('auth', 'GET', path, { headers: await proofFor('GET', path) }), 'stream_limit_reached');
    } finally {
      abort.abort();
    }
  });
});

describe('capture and void refuse what the authorization does not allow', () => {
  let approved: string;
  beforeAll(async () => {
    const created = await merchant.createPaymentRequest({ ...paymentRequest, order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', wallet_handle: wallet.wallet.credential_id }, randomBytes(12).toString('hex'));
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), demoCard(card).pin);
    expect(outcome.status).toBe('approved');
    approved = created.id;
  });

  it('answers a capture of more than was authorized with capture_exceeds_authorization', async () => {
    expectProblem(await send('auth', 'POST', `/v1/payment-requests/${approved}/capture`, { body: json({ amount_minor: '2401' }), headers: merchantHeaders() }), 'capture_exceeds_authorization');
  });

  it('answers a capture of a request nobody approved with authorization_not_capturable', async () => {
    const created = await merchant.createPaymentRequest({ ...paymentRequest, order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY' }, randomBytes(12).toString('hex'));
    expectProblem(await send('auth', 'POST', `/v1/payment-requests/${created.id}/capture`, { body: json({}), headers: merchantHeaders() }), 'authorization_not_capturable');
  });

  it('answers a retry while the first capture is still running with idempotency_request_in_progress, then the stored answer', async () => {
    const key = randomBytes(12).toString('hex');
    const path = `/v1/payment-requests/${approved}/capture`;
    let release!: () => void;
    const arrived = new Promise<void>((resolve) => {
      captureGate = { arrived: resolve, release: new Promise<void>((done) => (release = done)) };
    });
    try {
      const first = send('auth', 'POST', path, { body: json({ amount_minor: '1000' }), headers: merchantHeaders(key) });
      await arrived;
      expectProblem(await send('auth', 'POST', path, { body: json({ amount_minor: '1000' }), headers: merchantHeaders(key) }), 'idempotency_request_in_progress');
      captureGate = undefined;
      release();
      const done = await first;
      expect(done.status, done.text).toBe(200);
      const again = await send('auth', 'POST', path, { body: json({ amount_minor: '1000' }), headers: merchantHeaders(key) });
      expect(again.status).toBe(200);
      expect(again.body).toEqual(done.body);
    } finally {
      captureGate = undefined;
      release();
    }
  });

  it('answers a void of a captured request with authorization_not_capturable', async () => {
    expectProblem(await send('auth', 'POST', `/v1/payment-requests/${approved}/void`, { body: json({}), headers: merchantHeaders() }), 'authorization_not_capturable');
  });
});

describe('the authentication server answers a CORS preflight only from the browser wallet’s origin, for the routes a terminal uses', () => {
  const preflight = (path: string, origin?: string) => send('auth', 'OPTIONS', path, { headers: { ...(origin ? { origin } : {}), 'access-control-request-method': 'POST' } });
  const walletOrigin = () => new URL(system.wallet.url).origin;

  it.each(['/v1/directory', '/v1/enrollments', `/v1/terminal/payment-requests/${pr}/approve`, '/.well-known/jwks.json'])('allows the wallet’s origin at %s', async (path) => {
    const answer = await preflight(path, walletOrigin());
    expect(answer.status, answer.text).toBe(204);
    expect(answer.allowOrigin).toBe(walletOrigin());
  });

  const refused: Array<[string, string, () => string | undefined]> = [
    ['no Origin', '/v1/enrollments', () => undefined],
    ['another origin', '/v1/enrollments', () => 'https://wallet.example.net'],
    ['the shop’s origin', '/v1/enrollments', () => new URL(system.shop.url).origin],
    ['the wallet’s origin, for a merchant route', '/v1/payment-requests', walletOrigin],
    ['the wallet’s origin, for an operator route', '/admin/v1/credentials', walletOrigin],
    ['the wallet’s origin, for a path it does not know', `/${canary}`, walletOrigin],
  ];
  it.each(refused)('answers a preflight with %s at %s with not_found', async (_case, path, origin) => {
    const answer = await preflight(path, origin());
    expectProblem(answer, 'not_found');
    expect(answer.allowOrigin).toBe('');
  });
});

// ---- the settlement server: mutual TLS, and what a peer may still get wrong ------------------------

describe('the settlement server', () => {
  const internal = routes.filter((route) => route.caller === 'peer');
  it.each(internal.map((route) => [routeName(route), route] as const))('%s answers a caller without a client certificate with client_certificate_required, also on a resumed TLS session', async (_name, route) => {
    // Each call closes its connection, so the next one resumes the TLS session: Node then reports
    // `authorized` although no certificate was ever presented.
    const bodies = route.method === 'GET' ? [undefined, undefined, undefined] : [json(route.body), json(route.body), { contentType: 'text/plain', text: card }, json(route.body)];
    for (const body of bodies) {
      expectProblem(await send('settlement', route.method, route.path, { ...(body ? { body } : {}), dispatcher: anonymous, closeAfter: true }), 'client_certificate_required');
    }
  });

  it('answers a sealed credential that does not open with credential_invalid, at enrollment and at authorization', async () => {
    expectProblem(await send('settlement', 'POST', '/internal/v1/enrollments', { body: json({ ...bankEnrollment, sealed_credential: `${jose}.x.y` }), dispatcher: peer }), 'credential_invalid');
    expectProblem(await send('settlement', 'POST', '/internal/v1/authorizations', { body: json(authorization), dispatcher: peer }), 'credential_invalid');
  });

  it('answers a revocation of a credential it never registered with credential_not_found, from the broker and from its operator', async () => {
    expectProblem(await send('settlement', 'POST', `/internal/v1/credentials/${newId('cred')}/revoke`, { body: json({ revoked_by: 'operator' }), dispatcher: peer }), 'credential_not_found');
    expectProblem(await send('settlement', 'POST', `/admin/v1/credentials/${newId('cred')}/revoke`, { headers: system.operatorHeaders(baseUrl('settlement')) }), 'credential_not_found');
  });

  it('answers a merchant name payers could be misled by with validation_failed, and onboards none', async () => {
    const id = newId('mer');
    for (const name of ['Kessai\u202eesuoH aeT', '   ', 'Kessai Tea H\u043euse']) {
      expectProblem(await send('settlement', 'POST', '/admin/v1/merchants', { body: json({ merchant_id: id, name }), headers: system.operatorHeaders(baseUrl('settlement')) }), 'validation_failed');
    }
    const listed = await send('settlement', 'GET', '/admin/v1/merchants', { headers: system.operatorHeaders(baseUrl('settlement')) });
    expect(listed.status).toBe(200);
    expect((listed.body.items as Array<{ merchant_id: string }>).map((m) => m.merchant_id)).not.toContain(id);
  });

  it('answers a capture or void of an authorization it never made with authorization_not_found', async () => {
    expectProblem(await send('settlement', 'POST', `/internal/v1/authorizations/${newId('pr')}/capture`, { body: json({ amount_minor: '100' }), dispatcher: peer }), 'authorization_not_found');
    expectProblem(await send('settlement', 'POST', `/internal/v1/authorizations/${newId('pr')}/void`, { body: json({}), dispatcher: peer }), 'authorization_not_found');
  });
});

// ---- the shop ------------------------------------------------------------------------------------

describe('the shop', () => {
  async function cartWithTea(): Promise<string> {
    const created = await send('shop', 'POST', '/api/carts');
    expect(created.status).toBe(201);
    const id = String(created.body.id);
    expect((await send('shop', 'POST', `/api/carts/${id}/items`, { body: json({ product_id: 'sencha-100g', quantity: 1 }) })).status).toBe(200);
    return id;
  }

  const items: Array<[string, Record<string, unknown>, ErrorCode]> = [
    ['a product it does not sell', { product_id: 'no-such-tea', quantity: 1 }, 'not_found'],
    ['a quantity of zero', { product_id: 'sencha-100g', quantity: 0 }, 'validation_failed'],
    ['a quantity past quantityMax', { product_id: 'sencha-100g', quantity: limits.quantityMax + 1 }, 'validation_failed'],
    ['a product id in capitals', { product_id: 'SENCHA-100G', quantity: 1 }, 'validation_failed'],
  ];
  it.each(items)('answers an item with %s with %s', async (_case, body, code) => {
    expectProblem(await send('shop', 'POST', `/api/carts/${await cartWithTea()}/items`, { body: json(body) }), code);
  });

  it('answers a checkout for a wallet nobody enrolled with credential_not_found', async () => {
    expectProblem(await send('shop', 'POST', `/api/carts/${await cartWithTea()}/checkout`, { body: json({ wallet_handle: newId('cred') }) }), 'credential_not_found');
  });

  it('answers a checkout of an empty cart with validation_failed', async () => {
    const created = await send('shop', 'POST', '/api/carts');
    expectProblem(await send('shop', 'POST', `/api/carts/${String(created.body.id)}/checkout`), 'validation_failed');
  });

  const signatures: Array<[string, Record<string, string>]> = [
    ['no Kessai-Signature header', {}],
    ['an empty Kessai-Signature', { 'kessai-signature': '' }],
    ['a Kessai-Signature past 1024 characters', { 'kessai-signature': `t=1,v1=${'0'.repeat(1024)}` }],
    ['a Kessai-Signature by another secret', { 'kessai-signature': `t=${Math.floor(Date.now() / 1000)},v1=${'a'.repeat(64)}` }],
    ['a Kessai-Signature that is not t=…,v1=…', { 'kessai-signature': canary }],
  ];
  it.each(signatures)('answers a webhook with %s with validation_failed', async (_case, headers) => {
    expectProblem(await send('shop', 'POST', '/webhooks/kessai', { body: json({ id: 'evt_1', type: 'payment_request.approved', data: { card_number: card } }), headers }), 'validation_failed');
  });
});
