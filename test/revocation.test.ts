/**
 * Revocation of a lost storage: the recovery code shown once at enrollment revokes the credential
 * from any device (no device key), the operator revokes without it, and every later use of the
 * credential is refused with credential_revoked. Only the code's verifier is kept.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { Writable } from 'node:stream';
import { KessaiError, limits, recoveryCode } from '@kessai/protocol';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { registerWalletCommands } from '@kessai/wallet';
import { registerCredentialsCommands } from '../apps/cli/src/credentials-commands.ts';
import { collectAuthAndShopRetention } from './support/retention.ts';
import { callJson, demoCard, startTestSystem, type TestSystem } from './support/system.ts';
import { codeOf } from './support/errors.ts';
import { idempotencyKey } from './support/payer.ts';

let system: TestSystem;
let merchant: MerchantClient;
beforeAll(async () => {
  // The recovery route's per-address rate limit (limits.rateLimits.recovery) is test/rate-limits.test.ts's
  // subject; raised here so that this file's many revocations from one address test the lockout per credential and address.
  system = await startTestSystem({ rateLimits: { limits: { recovery: { perMinute: 600, burst: 100 }, enrollmentPerCard: { perMinute: 600, burst: 100 } } }, sseHeartbeatMs: 200 });
  merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
});
afterAll(async () => {
  await merchant?.close();
  await system?.stop();
});

const codesSeen: string[] = [];

async function enrollWithCode(cardNumber = '4242424242424242') {
  const card = demoCard(cardNumber);
  const { wallet, recoveryCode: code } = await WalletClient.enrollment({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin });
  codesSeen.push(code.expose());
  return { client: new WalletClient(wallet, { caCertPem: system.pki.caCertPem }), code: code.expose() };
}

const revoke = (credentialId: string, code: string) => WalletClient.revoke({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, credentialId, recoveryCode: code });
const paymentRequest = (walletHandle?: string) =>
  merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '500', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '500' }], ...(walletHandle ? { wallet_handle: walletHandle } : {}) }, idempotencyKey());

/** Every terminal endpoint, called by a wallet whose credential may be revoked: the code each answers. */
async function everyTerminalCall(client: WalletClient, requestId: string) {
  const view = { view: { rid: requestId, merchant: { id: system.merchant.merchantId, name: 'x' }, order_id: 'o', currency: 'JPY' as const, amount_minor: '500', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '500' }], expires_at: new Date(Date.now() + 60_000).toISOString(), iat: 0, livemode: false } };
  const abort = new AbortController();
  try {
    return {
      listen: await codeOf(client.listen(abort.signal).next()),
      fetch: await codeOf(client.fetchRequest(requestId)),
      approve: await codeOf(client.approve(view, demoCard('4242424242424242').pin)),
      decline: await codeOf(client.decline(view)),
      outcome: await codeOf(client.outcome(requestId)),
    };
  } finally {
    abort.abort();
  }
}

const allRevoked = { listen: 'credential_revoked', fetch: 'credential_revoked', approve: 'credential_revoked', decline: 'credential_revoked', outcome: 'credential_revoked' };

describe('revocation with the recovery code (from any device)', () => {
  it('gives the payer a recovery code of five groups of four at enrollment and keeps only its argon2id verifier', async () => {
    const { client, code } = await enrollWithCode();
    expect(recoveryCode.safeParse(code).success).toBe(true);
    const [row] = await system.auth.db.query<{ verifier: string }>('select verifier from credential_recovery where credential_id = $1', [client.wallet.credential_id]);
    expect(row!.verifier).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(JSON.stringify(client.wallet)).not.toContain(code);
    await client.close();
  });

  it('refuses a wrong recovery code with recovery_code_invalid and leaves the credential working', async () => {
    const { client } = await enrollWithCode();
    const created = await paymentRequest();
    expect(await codeOf(revoke(client.wallet.credential_id, 'AAAA-BBBB-CCCC-DDDD-EEEE'))).toBe('recovery_code_invalid');
    expect(await codeOf(revoke(client.wallet.credential_id, 'not a code'))).toBe('recovery_code_invalid');
    expect((await client.fetchRequest(created.id)).view.rid).toBe(created.id);
    await client.close();
  });

  it('refuses a credential nobody enrolled with credential_not_found', async () => {
    expect(await codeOf(revoke('cred_0000000000000000000000000a', 'AAAA-BBBB-CCCC-DDDD-EEEE'))).toBe('credential_not_found');
  });

  it('revokes with the right code typed loosely, answers a retry with the same revocation, and then every terminal endpoint refuses with credential_revoked', async () => {
    const { client, code } = await enrollWithCode();
    const created = await paymentRequest();
    const first = await revoke(client.wallet.credential_id, code.toLowerCase().replace(/-/g, ' '));
    expect(first).toMatchObject({ credential_id: client.wallet.credential_id, status: 'revoked', revoked_by: 'payer' });
    const again = await revoke(client.wallet.credential_id, code);
    expect(again).toEqual(first);
    expect(await everyTerminalCall(client, created.id)).toEqual(allRevoked);
    expect(await codeOf(paymentRequest(client.wallet.credential_id))).toBe('credential_revoked');
    await client.close();
  });

  it(`locks the recovery path from that address after recoveryAttemptsMax (${limits.recoveryAttemptsMax}) wrong codes with recovery_locked, even for the right code`, async () => {
    const { client, code } = await enrollWithCode();
    for (let i = 0; i < limits.recoveryAttemptsMax; i++) expect(await codeOf(revoke(client.wallet.credential_id, 'AAAA-BBBB-CCCC-DDDD-EEEE'))).toBe('recovery_code_invalid');
    expect(await codeOf(revoke(client.wallet.credential_id, code))).toBe('recovery_locked');
    const [row] = await system.auth.db.query<{ locked_until: Date | string }>("select locked_until from credential_recovery_failures where credential_id = $1 and source = '127.0.0.1'", [client.wallet.credential_id]);
    expect(new Date(row!.locked_until).getTime()).toBeGreaterThan(Date.now() + limits.recoveryLockoutMs - 60_000);
    // The lock is on revocation only; the payer who still has the storage can pay.
    const created = await paymentRequest();
    expect((await client.fetchRequest(created.id)).view.rid).toBe(created.id);
    await client.close();
  });
});

describe('revocation by the operator', () => {
  it('refuses the operator endpoint without the operator token with unauthenticated', async () => {
    const { client } = await enrollWithCode();
    const response = await callJson(system, 'POST', `${system.auth.url}/admin/v1/credentials/${client.wallet.credential_id}/revoke`, undefined, { authorization: 'Bearer not-the-operator-token' });
    expect(response.status).toBe(401);
    expect(response.body.code).toBe('unauthenticated');
    await client.close();
  });

  it('revokes without the recovery code, idempotently, and then every terminal endpoint refuses with credential_revoked', async () => {
    const { client } = await enrollWithCode();
    const created = await paymentRequest();
    const url = `${system.auth.url}/admin/v1/credentials/${client.wallet.credential_id}/revoke`;
    const first = await callJson(system, 'POST', url, undefined, system.operatorHeaders(system.auth.url));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ credential_id: client.wallet.credential_id, status: 'revoked', revoked_by: 'operator' });
    const again = await callJson(system, 'POST', url, undefined, system.operatorHeaders(system.auth.url));
    expect(again.body).toEqual(first.body);
    expect(await everyTerminalCall(client, created.id)).toEqual(allRevoked);
    await client.close();
  });

  it('ends an event stream that was open when the credential was revoked, with credential_revoked', async () => {
    const { client } = await enrollWithCode();
    const abort = new AbortController();
    const stream = client.listen(abort.signal);
    try {
      // A request pushed while the credential is active arrives; the stream is live.
      const first = stream.next();
      const created = await paymentRequest(client.wallet.credential_id);
      expect((await first).value?.view.rid).toBe(created.id);
      const revoked = await callJson(system, 'POST', `${system.auth.url}/admin/v1/credentials/${client.wallet.credential_id}/revoke`, undefined, system.operatorHeaders(system.auth.url));
      expect(revoked.status).toBe(200);
      // The next re-check (every sseHeartbeatMs, 200 ms here) ends the stream. (The request may come
      // twice first: pushed, and again as pending when the stream opened while it was being made.)
      const nextOf = () => stream.next().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      let next = await nextOf();
      while (!(next instanceof Error) && !next.done && next.value.view.rid === created.id) next = await nextOf();
      expect(next).toBeInstanceOf(KessaiError);
      expect((next as KessaiError).code).toBe('credential_revoked');
    } finally {
      abort.abort();
      await client.close();
    }
  });
});

describe('the command lines', () => {
  function capture() {
    let text = '';
    const stream = new Writable({ write(chunk, _encoding, done) { text += String(chunk); done(); } });
    return { stream, text: () => text };
  }

  it('kessai wallet enroll prints the recovery code once and keeps it off the storage; kessai wallet revoke uses it from another device', async () => {
    const storage = path.join(system.dataDir, 'storage-revoke');
    await mkdir(storage);
    const caFile = path.join(system.dataDir, 'pki', 'ca.cert.pem');
    const card = demoCard('4242424242424242');
    const out = capture();
    const err = capture();
    const io = { stdin: process.stdin, stdout: out.stream, stderr: err.stream, env: { KESSAI_TEST_PIN: card.pin } };
    const program = new Command('kessai').exitOverride();
    registerWalletCommands(program, io);
    await program.parseAsync(['wallet', 'enroll', '--storage', storage, '--auth', system.auth.url, '--ca', caFile, '--directory-key', system.directoryKey.file, '--pin-from-env', 'KESSAI_TEST_PIN', '--name', card.holderName, '--card', card.cardNumber, '--expiry', card.expiry], { from: 'user' });
    const code = /recovery code: ([0-9A-Z-]{24})/.exec(out.text())?.[1];
    const credentialId = /credential (cred_[0-9a-z]{26})/.exec(out.text())?.[1];
    expect(code).toBeDefined();
    codesSeen.push(code!);
    for (const file of ['wallet.json', 'device-key.jwk', 'ca.cert.pem']) expect(await readFile(path.join(storage, file), 'utf8')).not.toContain(code!);

    const revoker = new Command('kessai').exitOverride();
    registerWalletCommands(revoker, io);
    await revoker.parseAsync(['wallet', 'revoke', '--credential', credentialId!, '--auth', system.auth.url, '--ca', caFile, '--recovery-code', code!], { from: 'user' });
    expect(out.text()).toContain(`revoked: credential ${credentialId} at`);
    const [row] = await system.auth.db.query<{ status: string }>('select status from credentials where id = $1', [credentialId]);
    expect(row!.status).toBe('revoked');
  });

  it('kessai credentials revoke revokes through the operator endpoint', async () => {
    const { client } = await enrollWithCode();
    const program = new Command('kessai').exitOverride();
    registerCredentialsCommands(program, system.dataDir);
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
    try {
      await program.parseAsync(['credentials', 'revoke', client.wallet.credential_id, '--url', system.auth.url], { from: 'user' });
    } finally {
      process.stdout.write = write;
    }
    expect(written.join('')).toContain(`revoked: credential ${client.wallet.credential_id}`);
    expect(await codeOf(client.fetchRequest((await paymentRequest()).id))).toBe('credential_revoked');
    await client.close();
  });
});

describe('what the authentication server keeps', () => {
  it('never keeps a recovery code in a table or a log line, only its verifier', async () => {
    expect(codesSeen.length).toBeGreaterThan(3);
    const { text } = await collectAuthAndShopRetention(system);
    for (const code of codesSeen) {
      expect(text).not.toContain(code);
      expect(text).not.toContain(code.replace(/-/g, ''));
      expect(text.toLowerCase()).not.toContain(code.toLowerCase().replace(/-/g, ' '));
    }
  });
});
