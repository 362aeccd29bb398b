/**
 * docs/protocol.md against the code, so the two cannot drift: every json example marked
 * `<!-- schema: X -->` parses with the zod schema X of messages.ts (or of directory.ts or settlement.ts), every
 * wire-message schema has an example, and the known-answer vectors of docs/protocol/vectors are
 * reproduced (hash, HMAC) or verified and opened (JWS, JWE, JWT) with the protocol's own functions
 * and the stored test keys.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { decodeJwt, decodeProtectedHeader, importJWK } from 'jose';
import { Webhook } from 'standardwebhooks';
import {
  Directory,
  KeyRing,
  checkApproval,
  checkEnrollmentAnswer,
  checkEnrollmentPinBinding,
  checkPaymentPinBinding,
  itemsHash,
  keyEntryFromJwk,
  limits,
  openJson,
  sha256Base64url,
  signStandardWebhook,
  signWebhook,
  standardWebhooksSecret,
  thumbprint,
  typ,
  verifyDeviceProof,
  verifyJson,
  verifyStandardWebhook,
  verifyWebhook,
  type JWK,
} from '@kessai/protocol';
import * as messages from '../packages/protocol/src/messages.ts';
import * as directorySchemas from '../packages/protocol/src/directory.ts';
import * as settlementSchemas from '../packages/protocol/src/settlement.ts';
import { codeOf } from './support/errors.ts';

const docsDir = new URL('../docs/', import.meta.url);
const protocolMd = readFileSync(new URL('protocol.md', docsDir), 'utf8');
const vectorsDir = new URL('protocol/vectors/', docsDir);

// ---- The examples of protocol.md ---------------------------------------------------------------

interface Example {
  schema: string;
  line: number;
  text: string;
}

const markerPattern = /^<!--\s*schema:\s*([A-Za-z0-9_]+)\s*-->$/;

/** The json blocks of a markdown page with the schema marker right before each, and what is wrong with the markers. */
function examplesOf(markdown: string): { examples: Example[]; problems: string[] } {
  const lines = markdown.split('\n');
  const examples: Example[] = [];
  const problems: string[] = [];
  const previousNonBlank = (index: number) => {
    for (let i = index - 1; i >= 0; i--) if ((lines[i] ?? '').trim() !== '') return i;
    return -1;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (!line.startsWith('```')) continue;
    const end = lines.findIndex((l, j) => j > i && l.trim() === '```');
    if (end < 0) {
      problems.push(`fence at line ${i + 1} is never closed`);
      break;
    }
    if (line === '```json') {
      const marker = markerPattern.exec((lines[previousNonBlank(i)] ?? '').trim());
      if (marker?.[1]) examples.push({ schema: marker[1], line: i + 1, text: lines.slice(i + 1, end).join('\n') });
      else problems.push(`json block at line ${i + 1} has no <!-- schema: X --> marker right before it`);
    }
    i = end;
  }
  lines.forEach((line, i) => {
    if (!markerPattern.test(line.trim())) return;
    const next = lines.findIndex((l, j) => j > i && l.trim() !== '');
    if ((lines[next] ?? '').trim() !== '```json') problems.push(`schema marker at line ${i + 1} is not followed by a json block`);
  });
  return { examples, problems };
}

/** Schemas of messages.ts that only ever appear nested inside a message that has its own example. */
const nestedOnly: Record<string, string> = {
  lineItem: 'inside createPaymentRequest, paymentRequestView and terminalRequestPayload',
  issuerSummary: 'inside enrollmentResponse',
  directoryIssuer: 'inside directoryPayload',
  publicJwk: 'inside publicJwkSet',
};

const { examples, problems } = examplesOf(protocolMd);
/** The wire messages: messages.ts, and the signed issuer directory of directory.ts. */
const exported = { ...messages, ...directorySchemas } as unknown as Record<string, unknown>;
const objectSchemas = Object.entries(exported)
  .filter(([, value]) => value instanceof z.ZodObject)
  .map(([name]) => name)
  .sort();

describe('docs/protocol.md', () => {
  it('marks every json example with a schema, and every marker sits right before a json example', () => {
    expect(examples.length).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  it.each(examples)('the $schema example at line $line is valid for its schema', ({ schema, text }) => {
    const value: unknown = JSON.parse(text);
    if (schema === 'none') return;
    // settlement.ts's schemas may have examples here too (the settlement events); ledger.md shows the rest.
    const zodSchema = exported[schema] ?? (settlementSchemas as unknown as Record<string, unknown>)[schema];
    expect(zodSchema, `${schema} is not a zod schema exported by messages.ts, directory.ts or settlement.ts`).toBeInstanceOf(z.ZodType);
    const result = (zodSchema as z.ZodType).safeParse(value);
    expect(result.error?.issues ?? []).toEqual([]);
    expect(result.success).toBe(true);
  });

  it('shows an example of every wire-message schema of messages.ts and directory.ts', () => {
    for (const name of Object.keys(nestedOnly)) expect(objectSchemas, `allow-listed ${name} is not an object schema of messages.ts`).toContain(name);
    const shown = new Set(examples.map((example) => example.schema));
    const missing = objectSchemas.filter((name) => !shown.has(name) && !Object.hasOwn(nestedOnly, name));
    expect(missing).toEqual([]);
  });

  it('names every JOSE typ of the protocol', () => {
    const missing = Object.values(typ).filter((value) => !protocolMd.includes(value));
    expect(missing).toEqual([]);
  });

  it('uses only vector artefacts as JWS and JWE examples, so each one can be verified with the published test keys', () => {
    const artefacts = new Set(
      readdirSync(vectorsDir)
        .map((file) => readVector<{ jws?: string; jwe?: string; jwt?: string }>(file))
        .flatMap((vector) => [vector.jws, vector.jwe, vector.jwt])
        .filter((value): value is string => typeof value === 'string'),
    );
    const inExamples = examples.flatMap((example) => [...example.text.matchAll(/"(eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){2,4})"/g)].map((match) => match[1]));
    expect(inExamples.length).toBeGreaterThan(0);
    expect(inExamples.filter((value) => !artefacts.has(value ?? ''))).toEqual([]);
  });
});

// ---- Known-answer vectors ----------------------------------------------------------------------

function readVector<T>(file: string): T {
  return JSON.parse(readFileSync(new URL(file, vectorsDir), 'utf8')) as T;
}


type Header = Record<string, unknown>;
interface JwsVector {
  keys: Record<string, JWK>;
  jws: string;
  expected: { protected_header: Header; payload: Record<string, unknown> };
}
interface JweVector {
  keys: Record<string, JWK>;
  jwe: string;
  expected: { protected_header: Header; plaintext: Record<string, unknown> };
}
interface ItemsHashVector {
  cases: Array<{ name: string; line_items: messages.LineItem[]; canonical_json: string; items_hash: string }>;
}
interface StandardWebhookVector {
  secret: string;
  standard_webhooks_secret: string;
  id: string;
  timestamp: number;
  body: string;
  expected_signature: string;
}

interface WebhookVector {
  secret: string;
  timestamp: number;
  body: string;
  expected_header: string;
}
interface DeviceProofVector {
  keys: { device_public_jwk: JWK };
  request: { method: string; path: string; credential_id: string };
  jwt: string;
  verify_at_ms: number;
  expected: { protected_header: Header; claims: { sub: string; htm: string; htu: string; iat: number; jti: string } };
}

const vectorFiles = [
  'approval-jws.json',
  'authorization-jws.json',
  'credential-jwe-cipher1.json',
  'credential-jwe-resealed.json',
  'credential-jwe-rsa-oaep-256.json',
  'device-proof-jwt.json',
  'directory-jws.json',
  'enrollment-pin-jwe-rsa-oaep-256.json',
  'enrollment-pin-jwe.json',
  'items-hash.json',
  'payment-request-view-jws.json',
  'pin-jwe.json',
  'registration-jws.json',
  'standard-webhook-signature.json',
  'webhook-signature.json',
];

/** The one key of a vector whose name ends with `suffix`. */
function keyOf(vector: { keys: Record<string, JWK> }, suffix: string): JWK {
  const found = Object.entries(vector.keys).find(([name]) => name.endsWith(suffix));
  if (!found) throw new TypeError(`vector has no key named …${suffix}`);
  return found[1];
}

async function verifyingKey(privateJwk: JWK): Promise<CryptoKey> {
  return (await keyEntryFromJwk(privateJwk)).publicKey;
}

async function openingKeys(privateJwk: JWK): Promise<KeyRing> {
  return new KeyRing([await keyEntryFromJwk(privateJwk)]);
}

describe('known-answer vectors (docs/protocol/vectors)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('checks every vector file there is', () => {
    expect(readdirSync(vectorsDir).sort()).toEqual(vectorFiles);
  });

  it('reproduces each items hash from its line items', async () => {
    const { cases } = readVector<ItemsHashVector>('items-hash.json');
    expect(cases.length).toBeGreaterThan(1);
    for (const { line_items, canonical_json, items_hash } of cases) {
      for (const item of line_items) messages.lineItem.parse(item);
      expect(JSON.stringify(line_items.map((item) => [item.description, item.quantity, item.unit_price_minor]))).toBe(canonical_json);
      expect(await sha256Base64url(canonical_json)).toBe(items_hash);
      expect(await itemsHash(line_items)).toBe(items_hash);
    }
  });

  it('reproduces the webhook signature header exactly, and verifies it only inside the tolerance and for the same body', async () => {
    const { secret, timestamp, body, expected_header } = readVector<WebhookVector>('webhook-signature.json');
    expect(await signWebhook(secret, body, timestamp)).toBe(expected_header);
    messages.webhookEvent.parse(JSON.parse(body));
    const atMs = timestamp * 1000;
    expect(await verifyWebhook([secret], expected_header, body, atMs, limits.webhookToleranceMs)).toBe(true);
    expect(await verifyWebhook(['whsec_another', secret], expected_header, body, atMs, limits.webhookToleranceMs)).toBe(true);
    expect(await verifyWebhook([secret], expected_header, body, atMs + limits.webhookToleranceMs + 1000, limits.webhookToleranceMs)).toBe(false);
    expect(await verifyWebhook([secret], expected_header, body.replace('"5700"', '"57000"'), atMs, limits.webhookToleranceMs)).toBe(false);
  });

  it('reproduces the Standard Webhooks signature exactly, as the standardwebhooks package computes it', async () => {
    const vector = readVector<StandardWebhookVector>('standard-webhook-signature.json');
    const { secret, id, timestamp, body, expected_signature } = vector;
    expect(standardWebhooksSecret(secret)).toBe(vector.standard_webhooks_secret);
    expect(await signStandardWebhook([secret], id, body, timestamp)).toBe(expected_signature);
    expect(new Webhook(vector.standard_webhooks_secret).sign(id, new Date(timestamp * 1000), body)).toBe(expected_signature);
    const headers = { id, timestamp: String(timestamp), signature: `v1,bm90IGl0 ${expected_signature}` };
    const atMs = timestamp * 1000;
    expect(await verifyStandardWebhook(['whsec_another', secret], headers, body, atMs, limits.webhookToleranceMs)).toBe(true);
    expect(await verifyStandardWebhook([secret], headers, body, atMs + limits.webhookToleranceMs + 1000, limits.webhookToleranceMs)).toBe(false);
    expect(await verifyStandardWebhook([secret], headers, body.replace('"5700"', '"57000"'), atMs, limits.webhookToleranceMs)).toBe(false);
  });

  it('verifies the approval JWS with the device key, and its ih is the hash of its line items', async () => {
    const vector = readVector<JwsVector & { line_items: messages.LineItem[] }>('approval-jws.json');
    const key = (await importJWK(keyOf(vector, 'device_public_jwk'), 'ES256')) as CryptoKey;
    const { header, value } = await verifyJson(vector.jws, key, typ.approval, 'approval_invalid');
    expect(header).toEqual(vector.expected.protected_header);
    expect(value).toEqual(vector.expected.payload);
    const approval = messages.approvalPayload.parse(value);
    expect(approval.ih).toBe(await itemsHash(vector.line_items));
    // The approval rule both servers run passes at its signing time, and refuses it after its expiry.
    const expected = { rid: approval.rid, mid: approval.mid, mnm: approval.mnm, amt: approval.amt, cur: approval.cur, ih: await itemsHash(vector.line_items), lm: false };
    expect(checkApproval(approval, expected, approval.iat * 1000)).toEqual(approval);
    expect(await codeOf(Promise.resolve().then(() => checkApproval(approval, expected, (approval.exp + 3600) * 1000)))).toBe('approval_stale');
    expect(await codeOf(Promise.resolve().then(() => checkApproval(approval, { ...expected, mnm: 'Kessai Tea House (another)' }, approval.iat * 1000)))).toBe('approval_mismatch');
    // A test approval (lm false) for a live request is another payment.
    expect(await codeOf(Promise.resolve().then(() => checkApproval(approval, { ...expected, lm: true }, approval.iat * 1000)))).toBe('approval_mismatch');
    const { d: _d, ...publicPart } = keyOf(vector, 'device_private_jwk');
    expect(await thumbprint(publicPart)).toBe(await thumbprint(keyOf(vector, 'device_public_jwk')));
    expect(await codeOf(verifyJson(vector.jws, key, typ.authorization, 'approval_invalid'))).toBe('approval_invalid');
  });

  it('verifies the payment-request view JWS with the authentication server key', async () => {
    const vector = readVector<JwsVector>('payment-request-view-jws.json');
    const { header, value } = await verifyJson(vector.jws, await verifyingKey(keyOf(vector, 'signing_private_jwk')), typ.requestView, 'approval_invalid');
    expect(header).toEqual(vector.expected.protected_header);
    expect(value).toEqual(vector.expected.payload);
    messages.terminalRequestPayload.parse(value);
  });

  it('verifies the authorization JWS with the settlement server key', async () => {
    const vector = readVector<JwsVector>('authorization-jws.json');
    const key = await verifyingKey(keyOf(vector, 'signing_private_jwk'));
    const { header, value } = await verifyJson(vector.jws, key, typ.authorization, 'issuer_refused');
    expect(header).toEqual(vector.expected.protected_header);
    expect(value).toEqual(vector.expected.payload);
    messages.authorizationPayload.parse(value);
    expect(await codeOf(verifyJson(vector.jws, key, typ.approval, 'approval_invalid'))).toBe('approval_invalid');
  });

  it.each(['credential-jwe-cipher1.json', 'credential-jwe-resealed.json', 'credential-jwe-rsa-oaep-256.json'])(
    'opens the sealed credential of %s and finds its header bound to the device key inside',
    async (file) => {
      const vector = readVector<JweVector>(file);
      const keys = await openingKeys(keyOf(vector, 'private_jwk'));
      const { header, value } = await openJson(vector.jwe, keys, typ.credential, 'credential_invalid');
      expect(header).toEqual(vector.expected.protected_header);
      expect(value).toEqual(vector.expected.plaintext);
      const plaintext = messages.credentialPlaintext.parse(value);
      expect(header.dkt).toBe(await thumbprint(plaintext.device_jwk));
      expect(await codeOf(openJson(vector.jwe, keys, typ.pin, 'pin_invalid'))).toBe('pin_invalid');
    },
  );

  it('re-seals (step 405) without changing the plaintext or the bindings', () => {
    const before = readVector<JweVector>('credential-jwe-cipher1.json').expected;
    const after = readVector<JweVector>('credential-jwe-resealed.json').expected;
    expect(after.plaintext).toEqual(before.plaintext);
    for (const field of ['typ', 'cred', 'iss', 'dkt']) expect(after.protected_header[field]).toBe(before.protected_header[field]);
    expect(after.protected_header.kid).not.toBe(before.protected_header.kid);
  });

  it('opens the RSA-OAEP-256 credential with RSA-OAEP-256 and A256GCM', () => {
    const { protected_header } = readVector<JweVector>('credential-jwe-rsa-oaep-256.json').expected;
    expect([protected_header.alg, protected_header.enc, protected_header.epk]).toEqual(['RSA-OAEP-256', 'A256GCM', undefined]);
  });

  it('opens the PIN JWE with the settlement server key and finds it bound to the payment request, the approval nonce and the device key', async () => {
    const vector = readVector<JweVector>('pin-jwe.json');
    const keys = await openingKeys(keyOf(vector, 'private_jwk'));
    const { header, value } = await openJson(vector.jwe, keys, typ.pin, 'pin_invalid');
    expect(header).toEqual(vector.expected.protected_header);
    expect(value).toEqual(vector.expected.plaintext);
    const plain = messages.pinPlaintext.parse(value);
    const approval = readVector<JwsVector>('approval-jws.json');
    const binding = { rid: String(approval.expected.payload.rid), nonce: String(approval.expected.payload.nonce), dkt: await thumbprint(keyOf(approval, 'device_public_jwk')) };
    expect(() => checkPaymentPinBinding(header as Record<string, unknown>, plain, binding)).not.toThrow();
    for (const other of [{ rid: 'pr_00000000000000000000000000' }, { nonce: 'AAAAAAAAAAAAAAAAAAAAAAAA' }, { dkt: 'A'.repeat(43) }]) {
      expect(await codeOf(Promise.resolve().then(() => checkPaymentPinBinding(header as Record<string, unknown>, plain, { ...binding, ...other })))).toBe('pin_invalid');
    }
    expect(await codeOf(openJson(vector.jwe, keys, typ.credential, 'credential_invalid'))).toBe('credential_invalid');
    expect(await codeOf(openJson(vector.jwe, keys, typ.enrollmentPin, 'pin_invalid'))).toBe('pin_invalid');
  });

  it.each(['enrollment-pin-jwe.json', 'enrollment-pin-jwe-rsa-oaep-256.json'])(
    'opens the enrollment PIN block of %s with the issuer key and finds it bound to the credential id and device key of the card data sealed beside it',
    async (file) => {
      const vector = readVector<JweVector>(file);
      const keys = await openingKeys(keyOf(vector, 'private_jwk'));
      const { header, value } = await openJson(vector.jwe, keys, typ.enrollmentPin, 'pin_invalid');
      expect(header).toEqual(vector.expected.protected_header);
      expect(value).toEqual(vector.expected.plaintext);
      const plain = messages.enrollmentPinPlaintext.parse(value);
      // The card data of the same enrollment: cipher 1 (re-seal) or sealed by the terminal for the issuer (pass-through).
      const card = readVector<JweVector>(file.includes('rsa') ? 'credential-jwe-rsa-oaep-256.json' : 'credential-jwe-cipher1.json').expected;
      const binding = { cred: String(card.protected_header.cred), dkt: await thumbprint(messages.credentialPlaintext.parse(card.plaintext).device_jwk) };
      expect(() => checkEnrollmentPinBinding(header as Record<string, unknown>, plain, binding)).not.toThrow();
      expect(await codeOf(Promise.resolve().then(() => checkEnrollmentPinBinding(header as Record<string, unknown>, plain, { ...binding, cred: 'cred_00000000000000000000000000' })))).toBe('pin_invalid');
      expect(await codeOf(Promise.resolve().then(() => checkEnrollmentPinBinding(header as Record<string, unknown>, plain, { ...binding, dkt: 'A'.repeat(43) })))).toBe('pin_invalid');
      expect(await codeOf(openJson(vector.jwe, keys, typ.pin, 'pin_invalid'))).toBe('pin_invalid');
    },
  );

  it('verifies the directory JWS with the pinned directory key only, and finds in it the issuer keys of the other vectors', async () => {
    const vector = readVector<JwsVector>('directory-jws.json');
    const pinned = (await importJWK(keyOf(vector, 'directory_public_jwk'), 'ES256')) as CryptoKey;
    const { header, value } = await verifyJson(vector.jws, pinned, typ.directory, 'directory_invalid');
    expect(header).toEqual(vector.expected.protected_header);
    expect(value).toEqual(vector.expected.payload);
    directorySchemas.directoryPayload.parse(value);
    const { d: _d, ...publicPart } = keyOf(vector, 'directory_private_jwk');
    expect(publicPart).toEqual(keyOf(vector, 'directory_public_jwk'));

    const directory = await Directory.verify(vector.jws, pinned);
    expect(directory.issuerForCard('4242424242424242').id).toBe('sakura-bank');
    expect(directory.issuerForCard('5555555555554444').id).toBe('fuji-bank');
    const publicOf = (jwk: JWK) => Object.fromEntries(Object.entries(jwk).filter(([member]) => !['d', 'p', 'q', 'dp', 'dq', 'qi'].includes(member)));
    const sakura = await directory.keys('sakura-bank');
    expect(sakura.current('enc').publicJwk).toEqual(publicOf(keyOf(readVector<JweVector>('pin-jwe.json'), 'private_jwk')));
    expect(sakura.current('sig').publicJwk).toEqual(publicOf(keyOf(readVector<JwsVector>('authorization-jws.json'), 'signing_private_jwk')));
    expect((await directory.keys('fuji-bank')).current('enc').publicJwk).toEqual(publicOf(keyOf(readVector<JweVector>('credential-jwe-rsa-oaep-256.json'), 'private_jwk')));

    // Signed by any other key, or read as another typ, it is refused.
    const otherKey = await verifyingKey(keyOf(readVector<JwsVector>('registration-jws.json'), 'signing_private_jwk'));
    expect(await codeOf(Directory.verify(vector.jws, otherKey))).toBe('directory_invalid');
    expect(await codeOf(verifyJson(vector.jws, pinned, typ.registration, 'issuer_refused'))).toBe('issuer_refused');
  });

  it('verifies the registration JWS with the issuer key from the directory, and a terminal accepts the enrollment answer that carries it, for this credential and device key only', async () => {
    const vector = readVector<JwsVector>('registration-jws.json');
    const directoryVector = readVector<JwsVector>('directory-jws.json');
    const directory = await Directory.verify(directoryVector.jws, (await importJWK(keyOf(directoryVector, 'directory_public_jwk'), 'ES256')) as CryptoKey);
    const keys = await directory.keys('sakura-bank');
    const { header, value } = await verifyJson(vector.jws, (kid) => keys.byKid(kid)?.publicKey, typ.registration, 'directory_invalid');
    expect(header).toEqual(vector.expected.protected_header);
    expect(value).toEqual(vector.expected.payload);
    const receipt = messages.registrationPayload.parse(value);

    const credential = readVector<JweVector>('credential-jwe-cipher1.json');
    const issuer = directory.issuer('sakura-bank');
    const answer = { credential_id: receipt.cred, issuer: { id: issuer.id, name: issuer.name, conversion_mode: issuer.conversion_mode }, registration: vector.jws, sealed_credential: credential.jwe };
    const expected = { credentialId: String(credential.expected.protected_header.cred), dkt: String(credential.expected.protected_header.dkt) };
    await expect(checkEnrollmentAnswer(answer, issuer, keys, expected)).resolves.toBeUndefined();
    expect(await codeOf(checkEnrollmentAnswer(answer, issuer, keys, { ...expected, dkt: 'A'.repeat(43) }))).toBe('directory_invalid');
    expect(await codeOf(checkEnrollmentAnswer(answer, directory.issuer('fuji-bank'), await directory.keys('fuji-bank'), expected))).toBe('directory_invalid');
    expect(await codeOf(verifyJson(vector.jws, (kid) => keys.byKid(kid)?.publicKey, typ.authorization, 'issuer_refused'))).toBe('issuer_refused');
  });

  it('accepts the device proof at its time for its method and path, and refuses it later or elsewhere', async () => {
    const vector = readVector<DeviceProofVector>('device-proof-jwt.json');
    const key = (await importJWK(vector.keys.device_public_jwk, 'ES256')) as CryptoKey;
    const { claims } = vector.expected;
    expect(decodeProtectedHeader(vector.jwt)).toEqual(vector.expected.protected_header);
    expect(decodeJwt(vector.jwt)).toEqual(claims);
    const expected = { credentialId: vector.request.credential_id, method: vector.request.method, path: vector.request.path, maxAgeMs: limits.deviceProofAgeMsMax, skewMs: limits.clockSkewMs };

    vi.setSystemTime(vector.verify_at_ms);
    expect(await verifyDeviceProof(vector.jwt, key, expected)).toEqual({ jti: claims.jti, iat: claims.iat });
    expect(await codeOf(verifyDeviceProof(vector.jwt, key, { ...expected, path: `${vector.request.path}x` }))).toBe('unauthenticated');
    expect(await codeOf(verifyDeviceProof(vector.jwt, key, { ...expected, method: 'GET' }))).toBe('unauthenticated');

    vi.setSystemTime(claims.iat * 1000 + limits.deviceProofAgeMsMax + limits.clockSkewMs + 1000);
    expect(await codeOf(verifyDeviceProof(vector.jwt, key, expected))).toBe('unauthenticated');
  });

  it('tells one enrollment and one payment: the vectors agree on credential, device key, issuer, request, merchant and amount', () => {
    const approval = readVector<JwsVector>('approval-jws.json');
    const view = readVector<JwsVector>('payment-request-view-jws.json').expected.payload;
    const authorization = readVector<JwsVector>('authorization-jws.json').expected.payload;
    const credential = readVector<JweVector>('credential-jwe-cipher1.json').expected;
    const pin = readVector<JweVector>('pin-jwe.json').expected.plaintext;
    const enrollmentPin = readVector<JweVector>('enrollment-pin-jwe.json').expected.plaintext;
    const registration = readVector<JwsVector>('registration-jws.json').expected.payload;
    const proof = readVector<DeviceProofVector>('device-proof-jwt.json');
    const signed = approval.expected.payload;
    const merchant = view.merchant as { id: string; name: string };
    expect([view.rid, authorization.rid, pin.rid]).toEqual([signed.rid, signed.rid, signed.rid]);
    expect([merchant.id, merchant.name, authorization.mid]).toEqual([signed.mid, signed.mnm, signed.mid]);
    expect([view.amount_minor, view.currency, authorization.amt, authorization.cur]).toEqual([signed.amt, signed.cur, signed.amt, signed.cur]);
    expect(signed.exp).toBe(Math.floor(Date.parse(String(view.expires_at)) / 1000));
    expect([view.livemode, signed.lm, authorization.lm]).toEqual([false, false, false]);
    expect(pin.nonce).toBe(signed.nonce);
    expect(credential.plaintext.device_jwk).toEqual(keyOf(approval, 'device_public_jwk'));
    expect(proof.keys.device_public_jwk).toEqual(keyOf(approval, 'device_public_jwk'));
    expect(proof.expected.claims.sub).toBe(credential.protected_header.cred);
    const { cred, iss, dkt } = credential.protected_header;
    expect([enrollmentPin.cred, enrollmentPin.dkt, pin.dkt]).toEqual([cred, dkt, dkt]);
    expect([registration.iss, registration.cred, registration.dkt, authorization.iss]).toEqual([iss, cred, dkt, iss]);
    expect(Number(registration.iat)).toBeLessThan(Number(view.iat));
  });
});
