/**
 * A compromised authentication server (DESIGN.md §1, "Trust model"): the real system — real
 * servers, HTTPS and mutual TLS, JOSE, databases — with the broker's behaviour replaced by hostile
 * hooks, and the attacker holding everything the broker holds: its keys (cipher 1), its client
 * certificate to the banks, its database and its operator token. Each attack is its own test and
 * fails at the wallet or the bank with its code; each group shows the honest path passing beside
 * it, so no test passes by refusing everything. docs/threat-model.md maps each line to its test.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { exportJWK, generateKeyPair } from 'jose';
import {
  apiKeyLivemode,
  Directory,
  generateKeyEntry,
  itemsHash,
  limits,
  newId,
  openJson,
  readHeader,
  sealJson,
  sha256Base64url,
  signDirectory,
  signJson,
  thumbprint,
  typ,
  type CreatePaymentRequest,
  type DirectoryPayload,
  type ErrorCode,
} from '@kessai/protocol';
import { AuthorizationVerifier, MerchantClient, WalletClient } from '@kessai/sdk';
import { loadTestRateLimits } from '@kessai/service';
import { ledgerTotals, panLookup } from '@kessai/settlement-server';
import { reseal } from '../../apps/auth-server/src/conversion/reseal.ts';
import { callJson, demoCard, enroll, startTestSystem, type TestSystem } from '../support/system.ts';
import { cardAccount, idempotencyKey } from '../support/payer.ts';
import { codeOf } from '../support/errors.ts';
import { decodePart, expectProblem, sendRaw, type Answer } from './support.ts';

const taro = demoCard('4242424242424242'); // Sakura Demo Bank, re-seal
const kenji = demoCard('5555555555554444'); // Fuji Direct Bank, pass-through
/** The enrollment budget per card at the bank, lowered for this file so its limit is reached. */
const enrollmentPerCard = { perMinute: 1, burst: 16 };

interface ApproveBody {
  sealed_credential: string;
  approval: string;
  pin: string;
}

/** What the hostile broker does instead of its job, switched per test. */
const hostile = {
  /** Rewrites the signed directory it relays. */
  directory: undefined as ((jws: string) => Promise<string>) | undefined,
  /** Keeps approvals instead of forwarding them to the bank (answering the terminal with a refusal, payment_request_not_pending, so it stops asking). */
  holdApprovals: false,
  held: new Map<string, ApproveBody>(),
  /** Rewrites the enrollment answer it sends the terminal. */
  enrollmentAnswer: undefined as ((answer: Record<string, unknown>) => Promise<Record<string, unknown>>) | undefined,
  /** Everything terminals sent it: enrollments and approvals, as received. */
  received: [] as string[],
  /** Rewrites the payment-request view it shows terminals, signed again with its own key (as only it can). */
  view: undefined as ((payload: Record<string, unknown>) => Record<string, unknown>) | undefined,
};

let system: TestSystem;
let merchant: MerchantClient;
/** The broker's client certificate: what a compromised broker presents to a bank. */
let broker: Agent;

beforeAll(async () => {
  system = await startTestSystem({
    rateLimits: { ...loadTestRateLimits, limits: { ...loadTestRateLimits.limits, enrollmentPerCard } },
    beforeListen(role, app) {
      if (role !== 'auth-server') return;
      app.addHook('preHandler', async (request, reply) => {
        const route = request.routeOptions.url ?? '';
        if (route === '/v1/enrollments' || route.endsWith('/approve')) hostile.received.push(JSON.stringify(request.body));
        if (hostile.holdApprovals && route.endsWith('/approve')) {
          hostile.held.set((request.params as { id: string }).id, request.body as ApproveBody);
          return reply.code(409).type('application/problem+json').send({ type: 'urn:kessai:error:payment_request_not_pending', title: 'held', status: 409, code: 'payment_request_not_pending' });
        }
        return undefined;
      });
      app.addHook('onSend', async (request, reply, payload) => {
        if (request.url === '/v1/enrollments' && hostile.enrollmentAnswer && typeof payload === 'string') return JSON.stringify(await hostile.enrollmentAnswer(JSON.parse(payload) as Record<string, unknown>));
        if (request.routeOptions.url === '/v1/terminal/payment-requests/:id' && hostile.view && typeof payload === 'string' && reply.statusCode === 200) return JSON.stringify({ request: await resignedView((JSON.parse(payload) as { request: string }).request, hostile.view) });
        if (request.url !== '/v1/directory' || !hostile.directory || typeof payload !== 'string') return payload;
        return JSON.stringify({ directory: await hostile.directory((JSON.parse(payload) as { directory: string }).directory) });
      });
    },
  });
  merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  const leaf = system.pki.leaves['auth-server']!;
  broker = new Agent({ connect: { ca: system.pki.caCertPem, cert: leaf.certPem, key: leaf.keyPem } });
});
afterAll(async () => {
  await merchant?.close();
  await broker?.close();
  await system?.stop();
});

const bankOf = (issuerId: string) => system.settlements.find((s) => s.issuer.id === issuerId)!;

/** The view re-signed by the broker's own signing key after `change`: a view every wallet takes as the broker's. */
async function resignedView(jws: string, change: (payload: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
  const key = system.auth.context.config.keys.current('sig');
  return signJson(change(decodePart(jws, 1)), key.privateKey!, { typ: typ.requestView, kid: key.kid });
}

/** A device key of the broker's own, with a fresh credential id: what it would enroll or mint a credential with. */
async function brokerDevice() {
  const device = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(device.publicKey);
  const deviceJwk = { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };
  return { device, deviceJwk, cred: newId('cred'), dkt: await thumbprint(deviceJwk) };
}

/** A call to a bank's /internal API with the broker's own client certificate. */
function toBank(issuerId: string, path: string, body: unknown): Promise<Answer> {
  return sendRaw(broker, `${bankOf(issuerId).url}${path}`, { text: JSON.stringify(body) });
}

const lines: CreatePaymentRequest['line_items'] = [
  { description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' },
  { description: 'Chasen', quantity: 1, unit_price_minor: '3300' },
];

function paymentRequest(wallet: WalletClient, client: MerchantClient = merchant) {
  return client.createPaymentRequest({ order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', amount_minor: '5700', line_items: lines, wallet_handle: wallet.wallet.credential_id }, idempotencyKey());
}

/** A request the payer approved with `pin`, held by the hostile broker instead of forwarded. */
async function heldApproval(wallet: WalletClient, pin: string, client: MerchantClient = merchant) {
  const created = await paymentRequest(wallet, client);
  const request = await wallet.fetchRequest(created.id);
  hostile.holdApprovals = true;
  try {
    expect(await codeOf(wallet.approve(request, pin))).toBe('payment_request_not_pending');
  } finally {
    hostile.holdApprovals = false;
  }
  return { id: created.id, request, body: hostile.held.get(created.id)! };
}

/** What the broker forwards to the bank for a held approval (re-sealed with cipher 2 in re-seal mode), with `request` fields replaced. */
async function forwarded(issuerId: string, id: string, body: ApproveBody, request: Partial<{ rid: string; mid: string; amt: string; cur: string; line_items: typeof lines }> = {}) {
  const bank = bankOf(issuerId);
  const sealed = bank.issuer.conversionMode === 'reseal' ? await reseal(body.sealed_credential, system.auth.context.config.keys, bank.config.keys.current('enc')) : body.sealed_credential;
  return { request: { rid: id, mid: system.merchant.merchantId, amt: '5700', cur: 'JPY', line_items: lines, ...request }, sealed_credential: sealed, approval: body.approval, pin: body.pin };
}

async function authorizeAtBank(issuerId: string, payload: unknown): Promise<Answer> {
  return toBank(issuerId, '/internal/v1/authorizations', payload);
}

function decisionOf(answer: Answer): { decision: string; code: string | null; amt: string; lm?: boolean } {
  expect(answer.status, answer.text).toBe(200);
  return decodePart(String(answer.body.authorization), 1) as { decision: string; code: string | null; amt: string; lm?: boolean };
}

async function pinFailures(cardNumber: string): Promise<number> {
  const bank = bankOf(demoCard(cardNumber).issuer.id);
  const [row] = await bank.config.db.query<{ count: number }>('select count(*)::int as count from pin_failures where pan_lookup = $1', [panLookup(bank.config.cardKeys, cardNumber)]);
  return row!.count;
}

async function balance(cardNumber: string): Promise<bigint> {
  const account = await cardAccount(system, cardNumber);
  return account.creditsPosted - account.debitsPosted - account.debitsPending;
}

/** The genuine directory's payload, as the broker relays it. */
async function genuineDirectory(): Promise<{ jws: string; payload: DirectoryPayload }> {
  const answer = await callJson(system, 'GET', `${system.auth.url}/v1/directory`);
  return { jws: answer.body.directory as string, payload: decodePart(answer.body.directory as string, 1) as unknown as DirectoryPayload };
}

/** The broker's own enc key in place of `issuerId`'s, in a directory it signs itself. */
async function forgedDirectory(issuerId: string, signWith: 'broker' | 'unsigned-edit'): Promise<(jws: string) => Promise<string>> {
  const { entry } = await generateKeyEntry('enc');
  const brokerSigning = await generateKeyPair('ES256');
  return async (jws) => {
    const payload = decodePart(jws, 1) as unknown as DirectoryPayload;
    const issuers = payload.issuers.map((issuer) => (issuer.id === issuerId ? { ...issuer, keys: [entry.publicJwk, ...issuer.keys.filter((k) => k.use === 'sig')] as typeof issuer.keys } : issuer));
    if (signWith === 'broker') return signDirectory(issuers, brokerSigning.privateKey, 'broker-key', new Date());
    const parts = jws.split('.');
    return [parts[0], Buffer.from(JSON.stringify({ ...payload, issuers })).toString('base64url'), parts[2]].join('.');
  };
}

function enrollInput(card: typeof taro, pin = card.pin) {
  return { authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin };
}

// ---- The directory ------------------------------------------------------------------------------

describe('a broker cannot choose the keys a wallet encrypts PINs and card data to (the signed directory)', () => {
  it('the wallet takes the issuer key from the directory the pinned key verifies: the bank’s current key (control)', async () => {
    const wallet = await enroll(system, taro.cardNumber);
    try {
      const fromDirectory = (await (await wallet.directory()).keys('sakura-bank')).current('enc');
      expect(fromDirectory.kid).toBe(bankOf('sakura-bank').config.keys.current('enc').kid);
    } finally {
      await wallet.close();
    }
  });

  it.each([
    ['re-signed with a key of the broker’s own', 'broker'],
    ['edited without a new signature', 'unsigned-edit'],
  ] as const)('refuses at enrollment a directory naming the broker’s key, %s, with directory_invalid — before any PIN block is made', async (_case, signWith) => {
    const before = hostile.received.length;
    hostile.directory = await forgedDirectory('sakura-bank', signWith);
    try {
      expect(await codeOf(WalletClient.enroll(enrollInput(taro)))).toBe('directory_invalid');
    } finally {
      hostile.directory = undefined;
    }
    expect(hostile.received.length).toBe(before);
  });

  it('refuses at payment a directory rewritten after enrollment with directory_invalid, and pays once it is genuine again', async () => {
    const enrolled = await enroll(system, kenji.cardNumber);
    await enrolled.close();
    const created = await paymentRequest(enrolled);
    hostile.directory = await forgedDirectory('fuji-bank', 'broker');
    const rewritten = new WalletClient(enrolled.wallet, { caCertPem: system.pki.caCertPem });
    try {
      expect(await codeOf(rewritten.approve(await rewritten.fetchRequest(created.id), kenji.pin))).toBe('directory_invalid');
    } finally {
      hostile.directory = undefined;
      await rewritten.close();
    }
    const honest = new WalletClient(enrolled.wallet, { caCertPem: system.pki.caCertPem });
    try {
      expect((await honest.approve(await honest.fetchRequest(created.id), kenji.pin)).status).toBe('approved');
    } finally {
      await honest.close();
    }
  });

  it('a directory verifies only with the pinned key: the genuine one under another key is refused', async () => {
    const { jws } = await genuineDirectory();
    const other = await generateKeyPair('ES256');
    expect(await codeOf(Directory.verify(jws, other.publicKey))).toBe('directory_invalid');
    const pinned = (await generateKeyEntry('sig')).entry; // a well-formed key that is not the directory's
    expect(await codeOf(Directory.verify(jws, pinned.publicKey))).toBe('directory_invalid');
  });
});

describe('a broker cannot tell a wallet it enrolled when the bank did not register it', () => {
  it.each([
    ['a receipt the broker signed itself', async (answer: Record<string, unknown>) => {
      const key = await generateKeyPair('ES256');
      return { ...answer, registration: await signJson(decodePart(String(answer.registration), 1), key.privateKey, { typ: typ.registration, kid: String(decodePart(String(answer.registration), 0).kid) }) };
    }],
    ['the bank’s receipt for another credential', async (answer: Record<string, unknown>) => ({ ...answer, registration: otherReceipt })],
  ] as const)('refuses an enrollment answer carrying %s with directory_invalid', async (_case, rewrite) => {
    hostile.enrollmentAnswer = rewrite;
    try {
      expect(await codeOf(WalletClient.enroll(enrollInput(kenji)))).toBe('directory_invalid');
    } finally {
      hostile.enrollmentAnswer = undefined;
    }
  });

  let otherReceipt = '';
  beforeAll(async () => {
    hostile.enrollmentAnswer = async (answer) => {
      otherReceipt = String(answer.registration);
      return answer;
    };
    try {
      await (await enroll(system, kenji.cardNumber)).close(); // the honest path (control), whose receipt the broker keeps
    } finally {
      hostile.enrollmentAnswer = undefined;
    }
    expect(otherReceipt).toMatch(/^ey/);
  });
});

// ---- PIN harvesting --------------------------------------------------------------------------------

describe('PIN harvesting: the broker receives only ciphertext it cannot open', () => {
  it.each([
    ['re-seal', taro],
    ['pass-through', kenji],
  ] as const)('%s: the enrollment and payment PIN blocks open with no key the broker holds, are under the bank’s directory key, and no body carries the PIN', async (_mode, card) => {
    const from = hostile.received.length;
    const wallet = await enroll(system, card.cardNumber);
    try {
      const created = await paymentRequest(wallet);
      expect((await wallet.approve(await wallet.fetchRequest(created.id), card.pin)).status).toBe('approved');
    } finally {
      await wallet.close();
    }
    const bodies = hostile.received.slice(from).map((text) => JSON.parse(text) as Record<string, string>);
    const pinBlocks = bodies.map((body) => body.pin_block ?? body.pin).filter((value): value is string => typeof value === 'string');
    expect(pinBlocks).toHaveLength(2);
    const bankKid = bankOf(card.issuer.id).config.keys.current('enc').kid;
    for (const block of pinBlocks) {
      expect(readHeader(block, 'pin_invalid').kid).toBe(bankKid);
      // Every key the broker holds (its cipher 1 ring) fails to open it.
      expect(await codeOf(openJson(block, system.auth.context.config.keys, String(readHeader(block, 'pin_invalid').typ), 'pin_invalid'))).toBe('pin_invalid');
    }
    for (const text of hostile.received.slice(from)) expect(text).not.toContain(`"${card.pin}"`);
  });
});

// ---- Enrollment ------------------------------------------------------------------------------------

describe('enrollment: the broker cannot enroll a device of its own for a card whose data it saw', () => {
  let seen: Record<string, string>;
  let payerPinBlock: string;

  beforeAll(async () => {
    const from = hostile.received.length;
    const wallet = await enroll(system, taro.cardNumber); // the honest path (control): the payer enrolls
    await wallet.close();
    seen = JSON.parse(hostile.received[from]!) as Record<string, string>;
    payerPinBlock = seen.pin_block!;
  });

  /** The broker's enrollment at the bank with its own device key and the card data it saw. */
  async function brokerEnrollment(pinBlock: (binding: { cred: string; dkt: string }) => Promise<string>) {
    const { deviceJwk, cred, dkt } = await brokerDevice();
    const sealed = await sealJson({ v: 1, holder_name: seen.holder_name, card_number: seen.card_number, expiry: seen.expiry, device_jwk: deviceJwk }, bankOf('sakura-bank').config.keys.current('enc'), { typ: typ.credential, cred, iss: 'sakura-bank', dkt });
    return toBank('sakura-bank', '/internal/v1/enrollments', { credential_id: cred, device_jwk: deviceJwk, sealed_credential: sealed, pin_block: await pinBlock({ cred, dkt }) });
  }

  it('the broker saw the card data in re-seal mode (the patent’s step 303), and only there', () => {
    expect(seen.card_number).toBe(taro.cardNumber);
  });

  it('refuses its own device with a guessed PIN with enrollment_refused', async () => {
    const enc = bankOf('sakura-bank').config.keys.current('enc');
    const cnh = await sha256Base64url(taro.cardNumber);
    expectProblem(await brokerEnrollment(({ cred, dkt }) => sealJson({ pin: '0000', cred, dkt, cnh }, enc, { typ: typ.enrollmentPin, cred, dkt })), 'enrollment_refused');
  });

  it('refuses its own device with the payer’s PIN block (bound to the payer’s credential and device key) with pin_invalid', async () => {
    expectProblem(await brokerEnrollment(async () => payerPinBlock), 'pin_invalid');
  });

  it('refuses the payer’s own device and PIN block with another card’s data (the PIN block names its card) with pin_invalid', async () => {
    const jiro = demoCard('4000000000009995');
    const deviceJwk = JSON.parse(JSON.stringify(seen.device_jwk)) as { kty: 'EC'; crv: 'P-256'; x: string; y: string };
    const dkt = await thumbprint(deviceJwk);
    const other = await sealJson({ v: 1, holder_name: jiro.holderName, card_number: jiro.cardNumber, expiry: jiro.expiry, device_jwk: deviceJwk }, bankOf('sakura-bank').config.keys.current('enc'), { typ: typ.credential, cred: seen.credential_id!, iss: 'sakura-bank', dkt });
    expectProblem(await toBank('sakura-bank', '/internal/v1/enrollments', { credential_id: seen.credential_id, device_jwk: deviceJwk, sealed_credential: other, pin_block: payerPinBlock }), 'pin_invalid');
  });
});

describe('a replayed enrollment does not reset the wrong-PIN count between a broker’s guesses', () => {
  const layla = demoCard('4000004140000005');

  it('locks the card at the third wrong guess though the payer’s own enrollment is replayed between guesses, and the replay answers as before', async () => {
    const from = hostile.received.length;
    const wallet = await enroll(system, layla.cardNumber); // the payer's honest enrollment, which the broker keeps
    await wallet.close();
    const payerEnrollment = JSON.parse(hostile.received[from]!) as Record<string, string>;
    const replay = async () => {
      const bank = bankOf('sakura-bank');
      const sealed = await sealJson({ v: 1, holder_name: payerEnrollment.holder_name, card_number: payerEnrollment.card_number, expiry: payerEnrollment.expiry, device_jwk: payerEnrollment.device_jwk }, bank.config.keys.current('enc'), { typ: typ.credential, cred: payerEnrollment.credential_id!, iss: 'sakura-bank', dkt: await thumbprint(payerEnrollment.device_jwk as unknown as { kty: 'EC'; crv: 'P-256'; x: string; y: string }) });
      return toBank('sakura-bank', '/internal/v1/enrollments', { credential_id: payerEnrollment.credential_id, device_jwk: payerEnrollment.device_jwk, sealed_credential: sealed, pin_block: payerEnrollment.pin_block });
    };
    const guess = async (pin: string) => {
      const { deviceJwk, cred, dkt } = await brokerDevice();
      const enc = bankOf('sakura-bank').config.keys.current('enc');
      const sealed = await sealJson({ v: 1, holder_name: layla.holderName, card_number: layla.cardNumber, expiry: layla.expiry, device_jwk: deviceJwk }, enc, { typ: typ.credential, cred, iss: 'sakura-bank', dkt });
      const pinBlock = await sealJson({ pin, cred, dkt, cnh: await sha256Base64url(layla.cardNumber) }, enc, { typ: typ.enrollmentPin, cred, dkt });
      return (await toBank('sakura-bank', '/internal/v1/enrollments', { credential_id: cred, device_jwk: deviceJwk, sealed_credential: sealed, pin_block: pinBlock })).body.code;
    };
    expect(await guess('1111')).toBe('enrollment_refused');
    expect(await guess('2222')).toBe('enrollment_refused');
    expect((await replay()).status).toBe(200); // a retry of the payer's registration: answered again, the count untouched
    expect(await guess('3333')).toBe('enrollment_refused'); // the third wrong PIN in a row: the card locks
    expect(await guess(layla.pin)).toBe('enrollment_refused'); // locked: the right PIN enrolls no device
    const bank = bankOf('sakura-bank');
    const [card] = await bank.config.db.query<{ status: string }>('select status from cards where pan_lookup = $1', [panLookup(bank.config.cardKeys, layla.cardNumber)]);
    expect(card!.status).toBe('locked');
  });
});

// ---- What the bank does not know ---------------------------------------------------------------

describe('the bank refuses credentials, device keys and merchants it does not know', () => {
  it('refuses a credential the broker minted (its own device key, card data it saw, even the right PIN) with credential_unknown', async () => {
    const wallet = await enroll(system, taro.cardNumber);
    try {
      const { id } = await heldApproval(wallet, taro.pin);
      const { device, deviceJwk, cred, dkt } = await brokerDevice();
      const bank = bankOf('sakura-bank');
      const sealed = await sealJson({ v: 1, holder_name: taro.holderName, card_number: taro.cardNumber, expiry: taro.expiry, device_jwk: deviceJwk }, bank.config.keys.current('enc'), { typ: typ.credential, cred, iss: 'sakura-bank', dkt });
      const nonce = randomBytes(18).toString('base64url');
      const pin = await sealJson({ pin: taro.pin, rid: id, nonce, dkt }, bank.config.keys.current('enc'), { typ: typ.pin, rid: id, nonce, dkt });
      const approval = await signJson({ rid: id, mid: system.merchant.merchantId, mnm: 'Kessai Tea House', amt: '900000', cur: 'JPY', ih: await itemsHash(lines), iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600, nonce, pbh: await sha256Base64url(pin) }, device.privateKey, { typ: typ.approval });
      const before = await balance(taro.cardNumber);
      expectProblem(await authorizeAtBank('sakura-bank', { request: { rid: id, mid: system.merchant.merchantId, amt: '900000', cur: 'JPY', line_items: lines }, sealed_credential: sealed, approval, pin }), 'credential_unknown');
      // The same credential id the payer registered, with the broker's device key in it: also unknown.
      const stolenId = await sealJson({ v: 1, holder_name: taro.holderName, card_number: taro.cardNumber, expiry: taro.expiry, device_jwk: deviceJwk }, bank.config.keys.current('enc'), { typ: typ.credential, cred: wallet.wallet.credential_id, iss: 'sakura-bank', dkt });
      expectProblem(await authorizeAtBank('sakura-bank', { request: { rid: id, mid: system.merchant.merchantId, amt: '900000', cur: 'JPY', line_items: lines }, sealed_credential: stolenId, approval, pin }), 'credential_unknown');
      expect(await balance(taro.cardNumber)).toBe(before);
    } finally {
      await wallet.close();
    }
  });

  it('refuses a credential revoked at the bank even after the broker marks it active again, with credential_revoked (the same approval passed before)', async () => {
    const stored = await WalletClient.enrollment(enrollInput(kenji));
    const wallet = new WalletClient(stored.wallet, { caCertPem: system.pki.caCertPem });
    try {
      const control = await heldApproval(wallet, kenji.pin);
      const kept = await heldApproval(wallet, kenji.pin);
      expect(decisionOf(await authorizeAtBank('fuji-bank', await forwarded('fuji-bank', control.id, control.body))).decision).toBe('approved');
      const revoked = await callJson(system, 'POST', `${system.auth.url}/v1/credentials/${wallet.wallet.credential_id}/revoke`, { recovery_code: stored.recoveryCode.expose() });
      expect(revoked.status).toBe(200);
      // The compromised broker restores its own record; the bank's registry is not its to change.
      await system.auth.db.query("update credentials set status = 'active' where id = $1", [wallet.wallet.credential_id]);
      expectProblem(await authorizeAtBank('fuji-bank', await forwarded('fuji-bank', kept.id, kept.body)), 'credential_revoked');
    } finally {
      await wallet.close();
    }
  });

  it('refuses a merchant the bank has not onboarded (the broker’s own, named like a real one) with merchant_unknown, and moves no money', async () => {
    const apiKey = `sk_test_${randomBytes(24).toString('base64url')}`;
    await system.auth.db.query('insert into merchants (id, name, api_key_hash, webhook_secret) values ($1, $2, $3, $4)', [newId('mer'), 'Kessai Tea House', await sha256Base64url(apiKey), `whsec_${randomBytes(24).toString('base64url')}`]);
    const invented = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey, caCertPem: system.pki.caCertPem });
    const wallet = await enroll(system, taro.cardNumber);
    try {
      const before = await balance(taro.cardNumber);
      const created = await paymentRequest(wallet, invented);
      expect(await codeOf(wallet.approve(await wallet.fetchRequest(created.id), taro.pin))).toBe('merchant_unknown');
      expect(await balance(taro.cardNumber)).toBe(before);
      // Control: the onboarded merchant is paid.
      const honest = await paymentRequest(wallet);
      expect((await wallet.approve(await wallet.fetchRequest(honest.id), taro.pin)).status).toBe('approved');
    } finally {
      await invented.close();
      await wallet.close();
    }
  });

  describe('a known merchant other than the one the payer approved', () => {
    const other = { id: newId('mer'), name: 'Other Tea Stall' };
    beforeAll(async () => {
      // The bank's operator onboards a second merchant (its own token, its own API).
      for (const bank of system.settlements) {
        const onboarded = await callJson(system, 'POST', `${bank.url}/admin/v1/merchants`, { merchant_id: other.id, name: other.name }, system.operatorHeaders(bank.url));
        expect(onboarded.status, JSON.stringify(onboarded.body)).toBe(200);
      }
    });

    it('refuses an approval for merchant A forwarded as a payment to merchant B with approval_mismatch', async () => {
      const wallet = await enroll(system, taro.cardNumber);
      try {
        const { id, body } = await heldApproval(wallet, taro.pin);
        expectProblem(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body, { mid: other.id })), 'approval_mismatch');
        expect(decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body))).decision).toBe('approved');
      } finally {
        await wallet.close();
      }
    });

    it('refuses to onboard a second merchant under a name the bank already pays (any case) with validation_failed: payers tell merchants apart by name', async () => {
      const bank = bankOf('sakura-bank');
      const twin = await callJson(system, 'POST', `${bank.url}/admin/v1/merchants`, { merchant_id: newId('mer'), name: 'KESSAI TEA HOUSE' }, system.operatorHeaders(bank.url));
      expect(twin.status).toBe(400);
      expect(twin.body).toMatchObject({ code: 'validation_failed' });
      const renamed = await callJson(system, 'POST', `${bank.url}/admin/v1/merchants`, { merchant_id: system.merchant.merchantId, name: 'Kessai Tea House' }, system.operatorHeaders(bank.url));
      expect(renamed.status).toBe(200); // the same merchant keeps its own name
    });

    it('refuses merchant B shown to the payer under merchant A’s name (the approval names what the payer saw) with approval_mismatch', async () => {
      const apiKey = `sk_test_${randomBytes(24).toString('base64url')}`;
      await system.auth.db.query('insert into merchants (id, name, api_key_hash, webhook_secret) values ($1, $2, $3, $4) on conflict (id) do update set name = excluded.name, api_key_hash = excluded.api_key_hash', [other.id, 'Kessai Tea House', await sha256Base64url(apiKey), `whsec_${randomBytes(24).toString('base64url')}`]);
      const disguised = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey, caCertPem: system.pki.caCertPem });
      const wallet = await enroll(system, kenji.cardNumber);
      try {
        const created = await paymentRequest(wallet, disguised);
        const request = await wallet.fetchRequest(created.id);
        expect(request.view.merchant.name).toBe('Kessai Tea House');
        expect(await codeOf(wallet.approve(request, kenji.pin))).toBe('approval_mismatch');
      } finally {
        await disguised.close();
        await wallet.close();
      }
    });
  });
});

// ---- The mode: what the payer's device signed against the card's own flag ---------------------------

describe('a broker cannot make a live payment test, or a test card pay a live one (view livemode → approval lm → the card’s flag)', () => {
  const live = { id: '', client: undefined as unknown as MerchantClient };
  /** A live card, imported at Sakura with no test column (live is the default). */
  const liveCard = { cardNumber: '4000000000000051', holderName: 'MEI KONDO', expiry: '05/35', pin: '4096' };
  let liveWallet: WalletClient;
  let testWallet: WalletClient;
  beforeAll(async () => {
    const created = await callJson(system, 'POST', `${system.auth.url}/admin/v1/merchants`, { name: 'Live Tea Counter', livemode: true }, system.operatorHeaders(system.auth.url));
    live.id = created.body.merchant.merchant_id;
    live.client = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: created.body.api_key, caCertPem: system.pki.caCertPem });
    const sakura = bankOf('sakura-bank');
    await callJson(system, 'POST', `${sakura.url}/admin/v1/merchants`, { merchant_id: live.id, name: 'Live Tea Counter' }, system.operatorHeaders(sakura.url));
    const row = { card_number: liveCard.cardNumber, holder_name: liveCard.holderName, expiry: liveCard.expiry, pin: liveCard.pin, balance: '100000', currency: 'JPY', kind: 'debit' };
    expect((await callJson(system, 'POST', `${sakura.url}/admin/v1/accounts/import`, { rows: [row] }, system.operatorHeaders(sakura.url))).body.created).toBe(1);
    liveWallet = new WalletClient(await WalletClient.enroll({ ...enrollInput(taro), ...liveCard }), { caCertPem: system.pki.caCertPem });
    testWallet = await enroll(system, taro.cardNumber);
  });
  afterAll(async () => {
    await live.client?.close();
    await liveWallet?.close();
    await testWallet?.close();
  });

  /** A live request the payer approved, held by the broker, after the broker showed it as `shownLive` (re-signing the view). */
  async function heldLiveApproval(wallet: WalletClient, pin: string, shownLive: boolean) {
    hostile.view = shownLive ? undefined : (payload) => ({ ...payload, livemode: false });
    try {
      const held = await heldApproval(wallet, pin, live.client);
      expect(held.request.view.livemode).toBe(shownLive); // what the wallet showed: "TEST" when false
      return held;
    } finally {
      hostile.view = undefined;
    }
  }

  it('a live request paid with a live card, shown as it is: approved, the authorization saying lm true (the control)', async () => {
    const { id, body } = await heldLiveApproval(liveWallet, liveCard.pin, true);
    const decision = decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body, { mid: live.id })));
    expect([decision.decision, decision.lm]).toEqual(['approved', true]);
  });

  it('declines a live request the broker showed as "test" to a payer with a live card with livemode_mismatch: the device signed what it was shown, and the bank compares it with the card', async () => {
    const { id, body } = await heldLiveApproval(liveWallet, liveCard.pin, false);
    const decision = decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body, { mid: live.id })));
    expect([decision.decision, decision.code, decision.lm]).toEqual(['declined', 'livemode_mismatch', false]);
  });

  it('declines a test card on a live request shown as it is with livemode_mismatch (the payer’s device says live, the card is a test card)', async () => {
    const { id, body } = await heldLiveApproval(testWallet, taro.pin, true);
    const decision = decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body, { mid: live.id })));
    expect([decision.decision, decision.code]).toEqual(['declined', 'livemode_mismatch']);
  });

  it('a broker and a payer who call a live order "test" and pay it with a public test card get an authorization saying lm false, which no live shop ships against', async () => {
    const { id, body } = await heldLiveApproval(testWallet, taro.pin, false);
    const answer = await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body, { mid: live.id }));
    expect([decisionOf(answer).decision, decisionOf(answer).lm]).toEqual(['approved', false]);
    // The live shop's check (apps/shop/src/fulfilment.ts; apps/shop/test: `… refuses a test authorization for a live order …`):
    // the issuer's signature verifies, for this request, merchant and amount — in the other mode.
    const verifier = new AuthorizationVerifier({ issuers: { 'sakura-bank': `${bankOf('sakura-bank').url}/.well-known/jwks.json` }, caCertPem: system.pki.caCertPem });
    try {
      const verified = await verifier.verify(String(answer.body.authorization), { rid: id, mid: live.id, amountMinor: 5700n, currency: 'JPY' });
      expect(verified.lm === apiKeyLivemode('sk_live_')).toBe(false);
    } finally {
      await verifier.close();
    }
  });
});

// ---- Every field of the approval, at the bank ---------------------------------------------------

describe('every field of the approval is checked at the bank (each check fails its own test when removed)', () => {
  let wallet: WalletClient;
  beforeAll(async () => {
    wallet = await enroll(system, taro.cardNumber);
  });
  afterAll(() => wallet?.close());

  const changes: Array<[string, (id: string, other: string) => Record<string, unknown>]> = [
    ['request id (the approval of one request forwarded for another)', (_id, other) => ({ rid: other })],
    ['amount', () => ({ amt: '900000' })],
    ['currency', () => ({ cur: 'KWD' })],
    ['items (another list with the same total)', () => ({ line_items: [{ description: 'Gyokuro', quantity: 1, unit_price_minor: '5700' }] })],
  ];
  it.each(changes)('refuses a forwarded request whose %s differs from the approval with approval_mismatch; the unchanged one is approved', async (_field, change) => {
    const { id, body } = await heldApproval(wallet, taro.pin);
    const other = (await paymentRequest(wallet)).id;
    const changed = await forwarded('sakura-bank', id, body);
    expectProblem(await authorizeAtBank('sakura-bank', { ...changed, request: { ...changed.request, ...change(id, other) } }), 'approval_mismatch');
    expect(decisionOf(await authorizeAtBank('sakura-bank', changed)).decision).toBe('approved');
  });

  it.each([
    ['issued too long ago (iat)', () => ({ iat: Math.floor((Date.now() - limits.approvalAgeMsMax - 2 * limits.clockSkewMs) / 1000) })],
    ['past its expiry (exp)', () => ({ exp: Math.floor((Date.now() - 2 * limits.clockSkewMs) / 1000) })],
  ])('refuses an approval %s with approval_stale', async (_case, override) => {
    const created = await paymentRequest(wallet);
    const request = await wallet.fetchRequest(created.id);
    const stale = await wallet.approvalBody(request, taro.pin, override());
    expectProblem(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', created.id, stale)), 'approval_stale');
    const fresh = await wallet.approvalBody(request, taro.pin);
    expect(decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', created.id, fresh))).decision).toBe('approved');
  });

  it('refuses a PIN block the broker sealed itself beside a genuine approval (guessing the PIN) with pin_invalid, and tests no PIN', async () => {
    const { id, body } = await heldApproval(wallet, taro.pin);
    const header = readHeader(body.pin, 'pin_invalid') as { rid: string; nonce: string; dkt: string };
    const enc = bankOf('sakura-bank').config.keys.current('enc');
    const failuresBefore = await pinFailures(taro.cardNumber);
    for (const guessed of ['0000', taro.pin]) {
      const forged = await sealJson({ pin: guessed, rid: header.rid, nonce: header.nonce, dkt: header.dkt }, enc, { typ: typ.pin, rid: header.rid, nonce: header.nonce, dkt: header.dkt });
      expectProblem(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, { ...body, pin: forged })), 'pin_invalid');
    }
    expect(await pinFailures(taro.cardNumber)).toBe(failuresBefore);
    expect(decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', id, body))).decision).toBe('approved');
  });

  it('refuses a PIN block of another approval of the same request with pin_invalid, even where the approval signed its hash (bound to the nonce: a faulty terminal)', async () => {
    const created = await paymentRequest(wallet);
    const request = await wallet.fetchRequest(created.id);
    const first = await wallet.approvalBody(request, taro.pin);
    const second = await wallet.approvalBody(request, taro.pin, { pbh: await sha256Base64url(first.pin) });
    expectProblem(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', created.id, { ...second, pin: first.pin })), 'pin_invalid');
    const honest = await wallet.approvalBody(request, taro.pin);
    expect(decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', created.id, honest))).decision).toBe('approved');
  });

  it('refuses a PIN block moved to another request with pin_invalid', async () => {
    const a = await heldApproval(wallet, taro.pin);
    const b = await heldApproval(wallet, taro.pin);
    expectProblem(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', b.id, { ...b.body, pin: a.body.pin })), 'pin_invalid');
  });

  it('refuses a PIN block moved to another request even where the approval signed its hash and both carry the same nonce (a faulty terminal), with pin_invalid', async () => {
    const nonce = randomBytes(18).toString('base64url');
    const a = await paymentRequest(wallet);
    const b = await paymentRequest(wallet);
    const forA = await wallet.approvalBody(await wallet.fetchRequest(a.id), taro.pin, { nonce });
    const forB = await wallet.approvalBody(await wallet.fetchRequest(b.id), taro.pin, { nonce, pbh: await sha256Base64url(forA.pin) });
    expectProblem(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', b.id, { ...forB, pin: forA.pin })), 'pin_invalid');
    const honest = await wallet.approvalBody(await wallet.fetchRequest(b.id), taro.pin, { nonce });
    expect(decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', b.id, honest))).decision).toBe('approved');
  });

  it('answers a replayed approval with the decision already made and holds the money once', async () => {
    const { id, body } = await heldApproval(wallet, taro.pin);
    const payload = await forwarded('sakura-bank', id, body);
    const before = await balance(taro.cardNumber);
    const first = await authorizeAtBank('sakura-bank', payload);
    const again = await authorizeAtBank('sakura-bank', payload);
    expect(decisionOf(first).decision).toBe('approved');
    expect(again.body.authorization).toBe(first.body.authorization);
    expect(await balance(taro.cardNumber)).toBe(before - 5700n);
  });

  it('captures with the authorization when asked for automatic capture (posted whole, ledger balanced), refunds after it, and a reversal of that attempt undoes the posting', async () => {
    const bank = bankOf('sakura-bank');
    const spendable = await balance(taro.cardNumber);
    const paid = await heldApproval(wallet, taro.pin);
    const answer = await authorizeAtBank('sakura-bank', { ...(await forwarded('sakura-bank', paid.id, paid.body)), capture_method: 'automatic' });
    expect(decodePart(String(answer.body.authorization), 1)).toMatchObject({ decision: 'approved', cap: 'automatic' });
    expect(await balance(taro.cardNumber)).toBe(spendable - 5700n);
    const [row] = await bank.config.db.query<{ status: string; captured_amount: bigint }>('select status, captured_amount from authorizations where request_id = $1', [paid.id]);
    expect(row).toEqual({ status: 'captured', captured_amount: 5700n });
    // No hold is left to capture: a capture of the whole amount answers as captured already.
    expect((await toBank('sakura-bank', `/internal/v1/authorizations/${paid.id}/capture`, { amount_minor: '5700' })).body).toMatchObject({ status: 'captured', captured_minor: '5700' });
    expect((await toBank('sakura-bank', `/internal/v1/authorizations/${paid.id}/refunds`, { refund_id: newId('rf'), amount_minor: '700' })).body).toMatchObject({ refunded_minor: '700' });
    expect(await balance(taro.cardNumber)).toBe(spendable - 5000n);
    // Another payment whose answer the broker lost: the reversal of its attempt gives the money back and voids it.
    const lost = await heldApproval(wallet, taro.pin);
    const { nonce } = decodePart(lost.body.approval, 1) as { nonce: string };
    expect((await authorizeAtBank('sakura-bank', { ...(await forwarded('sakura-bank', lost.id, lost.body)), capture_method: 'automatic' })).status).toBe(200);
    expect(await balance(taro.cardNumber)).toBe(spendable - 10700n);
    expect((await toBank('sakura-bank', `/internal/v1/authorizations/${lost.id}/reversal`, { nonce })).body).toMatchObject({ status: 'voided' });
    expect(await balance(taro.cardNumber)).toBe(spendable - 5000n);
    // A repeated reversal changes nothing more.
    expect((await toBank('sakura-bank', `/internal/v1/authorizations/${lost.id}/reversal`, { nonce })).body).toMatchObject({ status: 'voided' });
    expect(await balance(taro.cardNumber)).toBe(spendable - 5000n);
    for (const total of await ledgerTotals(bank.config.db)) expect([total.debits_pending, total.debits_posted]).toEqual([total.credits_pending, total.credits_posted]);
  });

  it('refuses an approval whose nonce the bank has spent, even where its decision is gone (the nonce backstop), with approval_replayed', async () => {
    const { id, body } = await heldApproval(wallet, '0001');
    const payload = await forwarded('sakura-bank', id, body);
    const first = await authorizeAtBank('sakura-bank', payload);
    expect(decisionOf(first).code).toBe('pin_incorrect');
    // The same attempt again (a broker's retry) gets the same signed decline, and counts no second wrong PIN.
    const again = await authorizeAtBank('sakura-bank', payload);
    expect(again.body.authorization).toBe(first.body.authorization);
    // As if the decline had been purged: only the spent nonce is left to stop a second wrong-PIN count.
    await bankOf('sakura-bank').config.db.query('delete from pin_retry_declines where request_id = $1', [id]);
    expectProblem(await authorizeAtBank('sakura-bank', payload), 'approval_replayed');
    // A right PIN resets the count the first attempt left.
    const control = await heldApproval(wallet, taro.pin);
    expect(decisionOf(await authorizeAtBank('sakura-bank', await forwarded('sakura-bank', control.id, control.body))).decision).toBe('approved');
  });
});

// ---- Operator credentials and online PIN guessing ------------------------------------------------

describe('the broker’s credentials open nothing at the bank but /internal', () => {
  it.each([
    ['unlock a card', '/admin/v1/cards/unlock', { account_id: `acct_${'0'.repeat(26)}` }],
    ['onboard a merchant', '/admin/v1/merchants', { merchant_id: newId('mer'), name: 'Broker Shop' }],
    ['revoke a credential', `/admin/v1/credentials/${newId('cred')}/revoke`, undefined],
  ])('refuses the broker’s operator token to %s with unauthenticated, even with its client certificate', async (_what, path, body) => {
    const answer = await sendRaw(broker, `${bankOf('sakura-bank').url}${path}`, { method: 'POST', text: JSON.stringify(body ?? {}), headers: { authorization: `Bearer ${system.operatorTokens.auth}` } });
    expectProblem(answer, 'unauthenticated');
  });

  it('the bank’s own token does (control)', async () => {
    const answer = await callJson(system, 'GET', `${bankOf('sakura-bank').url}/admin/v1/merchants`, undefined, system.operatorHeaders(bankOf('sakura-bank').url));
    expect(answer.status).toBe(200);
    expect(answer.body.items.some((m: { merchant_id: string }) => m.merchant_id === system.merchant.merchantId)).toBe(true);
  });
});

describe('online PIN guessing through /internal ends at the card’s limits, whatever the operator unlocks', () => {
  const hanako = demoCard('4000056655665556');

  /** One enrollment attempt of the broker's own device for HANAKO's card with `pin`: the answer's code. */
  async function guess(pin: string, cardNumber = hanako.cardNumber): Promise<ErrorCode | 'registered'> {
    const { deviceJwk, cred, dkt } = await brokerDevice();
    const enc = bankOf('sakura-bank').config.keys.current('enc');
    const sealed = await sealJson({ v: 1, holder_name: hanako.holderName, card_number: cardNumber, expiry: hanako.expiry, device_jwk: deviceJwk }, enc, { typ: typ.credential, cred, iss: 'sakura-bank', dkt });
    const answer = await toBank('sakura-bank', '/internal/v1/enrollments', { credential_id: cred, device_jwk: deviceJwk, sealed_credential: sealed, pin_block: await sealJson({ pin, cred, dkt, cnh: await sha256Base64url(cardNumber) }, enc, { typ: typ.enrollmentPin, cred, dkt }) });
    return answer.status === 200 ? 'registered' : (answer.body.code as ErrorCode);
  }

  const unlock = async () => {
    const bank = bankOf('sakura-bank');
    const accountId = (await bank.config.db.query<{ account_id: string }>('select account_id from cards where pan_lookup = $1', [panLookup(bank.config.cardKeys, hanako.cardNumber)]))[0]!.account_id;
    const answer = await callJson(system, 'POST', `${bank.url}/admin/v1/cards/unlock`, { account_id: accountId }, system.operatorHeaders(bank.url));
    expect(answer.status).toBe(200);
  };

  it(`locks the card after pinAttemptsMax wrong PINs, and after pinFailuresWindowMax (${limits.pinFailuresWindowMax}) across operator unlocks refuses even the right PIN`, async () => {
    const wrong = ['1111', '2222', '3333', '4444', '5555', '6666'];
    expect(await guess(wrong[0]!)).toBe('enrollment_refused');
    expect(await guess(wrong[1]!)).toBe('enrollment_refused');
    expect(await guess(wrong[2]!)).toBe('enrollment_refused'); // the third locks the card
    expect(await guess(hanako.pin)).toBe('enrollment_refused'); // locked: even the right PIN
    // The bank's operator unlocks after every few misses (the worst case); the velocity record stays.
    await unlock();
    expect(await guess(wrong[3]!)).toBe('enrollment_refused');
    expect(await guess(wrong[4]!)).toBe('enrollment_refused');
    await unlock();
    expect(await guess(wrong[5]!)).toBe('enrollment_refused');
    await unlock();
    expect(await guess(hanako.pin)).toBe('enrollment_refused');
    const bank = bankOf('sakura-bank');
    const [row] = await bank.config.db.query<{ count: number }>('select count(*)::int as count from pin_failures');
    expect(row!.count).toBeGreaterThanOrEqual(limits.pinFailuresWindowMax);
  });

  it(`stops enrollments of one card past its budget (enrollmentPerCard) with rate_limited, whichever device or address`, async () => {
    const unknownCard = '4000002760003184'; // Luhn-valid, in Sakura's range, no account
    const codes: string[] = [];
    for (let attempt = 0; attempt <= enrollmentPerCard.burst; attempt++) codes.push(await guess('1234', unknownCard));
    expect(codes.slice(0, enrollmentPerCard.burst).every((code) => code === 'enrollment_refused')).toBe(true);
    expect(codes.at(-1)).toBe('rate_limited');
  });
});
