/**
 * Key rotation on running servers: a rotated key keeps opening and verifying as "previous" until it
 * is retired; a credential sealed under a previous key comes back re-sealed under the current one
 * at its next use (re-seal mode: cipher 1 at the authentication server; pass-through: cipher 2 at
 * the issuer); a retired key opens nothing (key_retired). The issuer's signing key rotates without
 * the shop losing old or new authorizations until retirement.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { keyList, typ } from '@kessai/protocol';
import { loadOrCreateKeyRing, reloadKeyRing } from '@kessai/service';
import { AuthorizationVerificationError, AuthorizationVerifier, MerchantClient, WalletClient } from '@kessai/sdk';
import { registerWalletCommands } from '@kessai/wallet';
import { registerKeysCommands } from '../apps/cli/src/keys-commands.ts';
import { callJson, demoCard, enroll, startTestSystem, type TestSystem } from './support/system.ts';
import { runKessai } from './support/cli.ts';
import { codeOf } from './support/errors.ts';
import { idempotencyKey } from './support/payer.ts';

let system: TestSystem;
let merchant: MerchantClient;
const clients: WalletClient[] = [];
beforeAll(async () => {
  system = await startTestSystem();
  merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
});
afterAll(async () => {
  for (const client of clients) await client.close();
  await merchant?.close();
  await system?.stop();
});

const settlementUrl = (issuerId: string) => system.settlements.find((s) => s.issuer.id === issuerId)!.url;
const admin = (baseUrl: string, method: 'GET' | 'POST', pathname: string, body?: unknown) => callJson(system, method, `${baseUrl}${pathname}`, body, system.operatorHeaders(baseUrl));
const headerOf = (jose: string) => JSON.parse(Buffer.from(jose.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;

async function walletFor(cardNumber: string): Promise<WalletClient> {
  const wallet = await enroll(system, cardNumber);
  clients.push(wallet);
  return wallet;
}

/** What another terminal holding an untouched copy of the storage would send. */
function copyOf(wallet: WalletClient): WalletClient {
  const copy = new WalletClient(structuredClone(wallet.wallet), { caCertPem: system.pki.caCertPem });
  clients.push(copy);
  return copy;
}

async function pay(wallet: WalletClient, cardNumber: string) {
  const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '300', line_items: [{ description: 'Yokan', quantity: 1, unit_price_minor: '300' }] }, idempotencyKey());
  return { id: created.id, outcome: await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin) };
}

describe('cipher 1 (re-seal mode, the authentication server)', () => {
  const cardNumber = '4242424242424242';

  it('keeps opening a credential under the previous key, hands it back re-sealed under the new kid, and after retirement refuses an un-re-sealed copy with key_retired', async () => {
    const wallet = await walletFor(cardNumber);
    const stale = copyOf(wallet);
    const oldKid = headerOf(wallet.wallet.sealed_credential).kid as string;

    const rotated = await admin(system.auth.url, 'POST', '/admin/v1/keys/rotate', { key: 'cipher1' });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ key: 'cipher1', use: 'enc', alg: 'ECDH-ES+A256KW', status: 'current' });
    const newKid = rotated.body.kid as string;
    expect(newKid).not.toBe(oldKid);
    const listed = keyList.parse((await admin(system.auth.url, 'GET', '/admin/v1/keys')).body).keys.filter((key) => key.key === 'cipher1');
    expect(listed.map((key) => [key.kid, key.status])).toEqual([[newKid, 'current'], [oldKid, 'previous']]);

    // The next use: paid, and the credential comes back under the new kid with its bindings intact.
    const first = await pay(wallet, cardNumber);
    expect(first.outcome.status).toBe('approved');
    const renewed = first.outcome.sealed_credential!;
    expect(headerOf(renewed)).toMatchObject({ kid: newKid, typ: typ.credential, cred: wallet.wallet.credential_id, iss: 'sakura-bank' });
    expect(wallet.wallet.sealed_credential).toBe(renewed);
    expect((await pay(wallet, cardNumber)).outcome.sealed_credential).toBeUndefined();

    const retired = await admin(system.auth.url, 'POST', '/admin/v1/keys/retire', { key: 'cipher1', kid: oldKid });
    expect(retired.body).toMatchObject({ kid: oldKid, status: 'retired' });
    expect((await pay(wallet, cardNumber)).outcome.status).toBe('approved');
    expect(await codeOf(pay(stale, cardNumber))).toBe('key_retired');
  });

  it('refuses to retire the current key with key_in_use, and an unknown key or kid with key_not_found', async () => {
    const keys = keyList.parse((await admin(system.auth.url, 'GET', '/admin/v1/keys')).body).keys;
    const current = keys.find((key) => key.key === 'cipher1' && key.status === 'current')!;
    const inUse = await admin(system.auth.url, 'POST', '/admin/v1/keys/retire', { key: 'cipher1', kid: current.kid });
    expect([inUse.status, inUse.body.code]).toEqual([409, 'key_in_use']);
    expect((await admin(system.auth.url, 'POST', '/admin/v1/keys/retire', { key: 'cipher1', kid: 'no-such-kid' })).body.code).toBe('key_not_found');
    expect((await admin(system.auth.url, 'POST', '/admin/v1/keys/rotate', { key: 'cipher9' })).body.code).toBe('key_not_found');
    const anonymous = await callJson(system, 'GET', `${system.auth.url}/admin/v1/keys`);
    expect(anonymous.body.code).toBe('unauthenticated');
  });

  it('still refuses a re-sealed credential whose protected header was edited (alg or kid) with credential_invalid', async () => {
    const wallet = await walletFor(cardNumber);
    const [, ...rest] = wallet.wallet.sealed_credential.split('.');
    const header = headerOf(wallet.wallet.sealed_credential);
    for (const edit of [{ alg: 'RSA-OAEP-256' }, { kid: 'someone-elses-kid' }]) {
      const tampered = [Buffer.from(JSON.stringify({ ...header, ...edit })).toString('base64url'), ...rest].join('.');
      const forged = new WalletClient({ ...structuredClone(wallet.wallet), sealed_credential: tampered }, { caCertPem: system.pki.caCertPem });
      clients.push(forged);
      expect(await codeOf(pay(forged, cardNumber))).toBe('credential_invalid');
    }
  });

  it('persists the rotation: the key files read back give the ring the running server uses, and another process sharing them picks up a later rotation', async () => {
    const specs = [
      { name: 'cipher1', use: 'enc' },
      { name: 'request-signing', use: 'sig' },
    ] as const;
    const live = system.auth.context.config.keys;
    const otherProcess = await loadOrCreateKeyRing(path.join(system.dataDir, 'auth', 'keys'), specs);
    expect(otherProcess.jwks()).toEqual(live.jwks());
    const oldKid = live.current('enc').kid;
    const rotated = await admin(system.auth.url, 'POST', '/admin/v1/keys/rotate', { key: 'cipher1' });
    await admin(system.auth.url, 'POST', '/admin/v1/keys/retire', { key: 'cipher1', kid: oldKid });
    expect(otherProcess.current('enc').kid).toBe(oldKid);
    await reloadKeyRing(otherProcess);
    expect(otherProcess.current('enc').kid).toBe(rotated.body.kid);
    expect(otherProcess.isRetired(oldKid)).toBe(true);
    expect(otherProcess.jwks()).toEqual(live.jwks());
  });
});

describe('the authentication server’s request-signing key', () => {
  it('publishes current and previous keys, and a wallet verifies views signed by the new key', async () => {
    const wallet = await walletFor('4242424242424242');
    await pay(wallet, '4242424242424242'); // the wallet has fetched the old set
    const rotated = await admin(system.auth.url, 'POST', '/admin/v1/keys/rotate', { key: 'request-signing' });
    const published = (await callJson(system, 'GET', `${system.auth.url}/.well-known/jwks.json`)).body.keys.map((key: { kid: string }) => key.kid);
    expect(published).toHaveLength(2);
    expect(published[0]).toBe(rotated.body.kid);
    expect((await pay(wallet, '4242424242424242')).outcome.status).toBe('approved');
  });
});

describe('cipher 2 (pass-through mode, the issuer)', () => {
  const cardNumber = '5555555555554444';

  it('re-seals a credential under the previous cipher 2 key at the issuer, hands it back through the broker, and refuses an un-re-sealed copy after retirement with key_retired', async () => {
    const issuerUrl = settlementUrl(demoCard(cardNumber).issuer.id);
    expect(demoCard(cardNumber).issuer.conversionMode).toBe('pass_through');
    const wallet = await walletFor(cardNumber);
    const stale = copyOf(wallet);
    const oldKid = headerOf(wallet.wallet.sealed_credential).kid as string;
    const rotated = await admin(issuerUrl, 'POST', '/admin/v1/keys/rotate', { key: 'cipher2' });
    const published = (await callJson(system, 'GET', `${issuerUrl}/.well-known/jwks.json`)).body.keys.filter((key: { use: string }) => key.use === 'enc').map((key: { kid: string }) => key.kid);
    expect(published).toEqual([rotated.body.kid, oldKid]);

    const first = await pay(wallet, cardNumber);
    expect(first.outcome.status).toBe('approved');
    expect(headerOf(first.outcome.sealed_credential!)).toMatchObject({ kid: rotated.body.kid, cred: wallet.wallet.credential_id, iss: demoCard(cardNumber).issuer.id });
    await admin(issuerUrl, 'POST', '/admin/v1/keys/retire', { key: 'cipher2', kid: oldKid });
    expect((await pay(wallet, cardNumber)).outcome.status).toBe('approved');
    expect(await codeOf(pay(stale, cardNumber))).toBe('key_retired');
  });
});

describe('cipher 2 (re-seal mode, the issuer)', () => {
  it('keeps paying while the broker still seals to the previous cipher 2 key, and after that key is retired the broker fetches the issuer’s keys again: one attempt refused with key_retired, the next paid', async () => {
    const cardNumber = '4000056655665556';
    const issuerUrl = settlementUrl(demoCard(cardNumber).issuer.id);
    const wallet = await walletFor(cardNumber);
    expect((await pay(wallet, cardNumber)).outcome.status).toBe('approved'); // the broker has cached the issuer's keys
    const before = keyList.parse((await admin(issuerUrl, 'GET', '/admin/v1/keys')).body).keys.find((key) => key.key === 'cipher2' && key.status === 'current')!;
    await admin(issuerUrl, 'POST', '/admin/v1/keys/rotate', { key: 'cipher2' });
    // The broker's cached JWKS still names the previous key as current: it keeps opening.
    expect((await pay(wallet, cardNumber)).outcome.status).toBe('approved');
    await admin(issuerUrl, 'POST', '/admin/v1/keys/retire', { key: 'cipher2', kid: before.kid });
    // The broker's cached keys and this wallet's directory both still name the retired key: one attempt
    // is refused with key_retired, after which both read the issuer's keys again (the broker its
    // JWKS, the wallet the re-signed directory) and the same wallet pays.
    expect(await codeOf(pay(wallet, cardNumber))).toBe('key_retired');
    expect((await pay(wallet, cardNumber)).outcome.status).toBe('approved');
  });
});

describe('the issuer’s authorization-signing key', () => {
  it('lets the shop verify authorizations signed before and after rotation until the old key is retired', async () => {
    const cardNumber = '4000056655665556';
    const issuerId = demoCard(cardNumber).issuer.id;
    const jwksUri = `${settlementUrl(issuerId)}/.well-known/jwks.json`;
    const wallet = await walletFor(cardNumber);
    const before = await pay(wallet, cardNumber);
    const oldKid = headerOf(before.outcome.authorization!).kid as string;
    const rotated = await admin(settlementUrl(issuerId), 'POST', '/admin/v1/keys/rotate', { key: 'authorization-signing' });
    const after = await pay(wallet, cardNumber);
    expect(after.outcome.status).toBe('approved');
    expect(headerOf(after.outcome.authorization!).kid).toBe(rotated.body.kid);

    const expected = (id: string) => ({ rid: id, mid: system.merchant.merchantId, amountMinor: 300n, currency: 'JPY' as const });
    const verifier = new AuthorizationVerifier({ issuers: { [issuerId]: jwksUri }, caCertPem: system.pki.caCertPem });
    try {
      expect((await verifier.verify(before.outcome.authorization!, expected(before.id))).rid).toBe(before.id);
      expect((await verifier.verify(after.outcome.authorization!, expected(after.id))).rid).toBe(after.id);
    } finally {
      await verifier.close();
    }

    await admin(settlementUrl(issuerId), 'POST', '/admin/v1/keys/retire', { key: 'authorization-signing', kid: oldKid });
    const fresh = new AuthorizationVerifier({ issuers: { [issuerId]: jwksUri }, caCertPem: system.pki.caCertPem });
    try {
      const refused = await fresh.verify(before.outcome.authorization!, expected(before.id)).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(AuthorizationVerificationError);
      expect((refused as AuthorizationVerificationError).reason).toBe('key_unknown');
      expect((await fresh.verify(after.outcome.authorization!, expected(after.id))).rid).toBe(after.id);
    } finally {
      await fresh.close();
    }
  });
});

describe('the command-line wallet', () => {
  it('writes the credential handed back re-sealed under the new cipher 1 key to its storage', async () => {
    const cardNumber = '4242424242424242';
    const card = demoCard(cardNumber);
    const storage = path.join(system.dataDir, 'storage-rotation');
    await mkdir(storage);
    let out = '';
    const sink = new Writable({ write(chunk, _encoding, done) { out += String(chunk); done(); } });
    const io = { stdin: process.stdin, stdout: sink, stderr: sink, env: { KESSAI_TEST_PIN: card.pin } };
    const run = async (args: string[]) => {
      const program = new Command('kessai').exitOverride();
      registerWalletCommands(program, io);
      await program.parseAsync(['wallet', ...args], { from: 'user' });
    };
    await run(['enroll', '--storage', storage, '--auth', system.auth.url, '--ca', path.join(system.dataDir, 'pki', 'ca.cert.pem'), '--directory-key', system.directoryKey.file, '--pin-from-env', 'KESSAI_TEST_PIN', '--name', card.holderName, '--card', card.cardNumber, '--expiry', card.expiry]);
    const stored = async () => JSON.parse(await readFile(path.join(storage, 'wallet.json'), 'utf8')) as { sealed_credential: string };
    const oldKid = headerOf((await stored()).sealed_credential).kid;
    const rotated = await admin(system.auth.url, 'POST', '/admin/v1/keys/rotate', { key: 'cipher1' });
    const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '300', line_items: [{ description: 'Yokan', quantity: 1, unit_price_minor: '300' }] }, idempotencyKey());
    await run(['pay', created.id, '--storage', storage, '--pin-from-env', 'KESSAI_TEST_PIN', '--yes']);
    expect(out).toContain(`approved: ${created.id}`);
    expect(out).toContain('re-sealed under the current key');
    expect(headerOf((await stored()).sealed_credential).kid).toBe(rotated.body.kid);
    expect(rotated.body.kid).not.toBe(oldKid);
  });
});

describe('kessai keys', () => {
  const kessai = (args: string[]) => runKessai((program) => registerKeysCommands(program, system.dataDir), args);

  it('lists, rotates and retires through the operator endpoints', async () => {
    const url = settlementUrl('fuji-bank');
    const before = await kessai(['keys', 'list', '--role', 'settlement-fuji-bank', '--url', url, '--key', 'authorization-signing']);
    expect(before).toMatch(/authorization-signing\s+\S+\s+sig\s+ES256\s+\S+\s+current/);
    const rotated = await kessai(['keys', 'rotate', '--role', 'settlement-fuji-bank', '--url', url, '--key', 'authorization-signing']);
    const newKid = /^rotated: authorization-signing\s+(\S+)/.exec(rotated)?.[1];
    const oldKid = /authorization-signing\s+(\S+)/.exec(before)?.[1];
    expect(newKid).toBeDefined();
    const retired = await kessai(['keys', 'retire', '--role', 'settlement-fuji-bank', '--url', url, '--key', 'authorization-signing', '--kid', oldKid!]);
    expect(retired).toMatch(/retired\n$/);
    const after = await kessai(['keys', 'list', '--role', 'settlement-fuji-bank', '--url', url, '--key', 'authorization-signing']);
    expect(after.trim().split('\n').map((row) => row.trim().split(/\s+/).at(-1))).toEqual(['current', 'retired']);
  });
});
