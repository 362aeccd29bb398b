/**
 * Enrollment (steps 301–305) refusals, and the credential's life at the authentication server:
 * each refusal its own test with its code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair } from 'jose';

import { errorCatalog, limits, type KessaiError } from '@kessai/protocol';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { callJson, enroll, startTestSystem, type TestSystem } from './support/system.ts';
import { codeOf } from './support/errors.ts';

let system: TestSystem;
beforeAll(async () => {
  system = await startTestSystem();
});
afterAll(async () => {
  await system?.stop();
});


function enrollCard(cardNumber: string, expiry = '12/34', holderName = 'TARO YAMADA', pin = '7392') {
  return WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName, cardNumber, expiry, pin });
}

describe('enrollment refusals', () => {
  it('refuses a card number that fails the Luhn check with card_invalid', async () => {
    expect(await codeOf(enrollCard('4242424242424241'))).toBe('card_invalid');
  });

  it('refuses an expired card with card_expired', async () => {
    expect(await codeOf(enrollCard('4242424242424242', '01/20'))).toBe('card_expired');
  });

  it('refuses a card range no issuer in the directory serves with issuer_unknown', async () => {
    expect(await codeOf(enrollCard('378282246310005'))).toBe('issuer_unknown');
  });

  /**
   * The issuer's refusals look the same whichever field was wrong (no oracle for card data):
   * one code, one status, one body, in both conversion modes.
   */
  const refused: Array<[string, string, string, string, string]> = [
    ['a card the issuer never issued', '4111111111111111', '12/34', 'TARO YAMADA', '7392'],
    ['a holder name that does not match the account', '4242424242424242', '12/34', 'SOMEONE ELSE', '7392'],
    ['an expiry that does not match the account', '4242424242424242', '11/34', 'TARO YAMADA', '7392'],
    ['a wrong PIN', '4242424242424242', '12/34', 'TARO YAMADA', '0001'],
    ['a card the issuer has blocked', '4000000000000002', '12/34', 'YUKI SATO', '3917'],
    ['a pass-through card the issuer never issued', '5105105105105118', '12/34', 'KENJI ITO', '8264'],
    ['a pass-through card with a wrong PIN', '5555555555554444', '12/34', 'KENJI ITO', '0001'],
    ['a pass-through card the issuer has blocked', '5105105105105100', '12/34', 'SHO WATANABE', '4629'],
  ];
  it.each(refused)('refuses %s with enrollment_refused, the same answer as every other refusal', async (_case, cardNumber, expiry, holderName, pin) => {
    const error = await enrollCard(cardNumber, expiry, holderName, pin).then(
      () => undefined,
      (err: unknown) => err as KessaiError,
    );
    expect(error?.code).toBe('enrollment_refused');
    expect(error?.status).toBe(422);
    expect(error?.message).toBe(errorCatalog.enrollment_refused.title);
  });

  it('accepts a card number typed with spaces', async () => {
    const stored = await enrollCard('4242 4242 4242 4242');
    expect(stored.credential_id).toMatch(/^cred_/);
  });

  it('refuses a device key sent with its private part with validation_failed', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const response = await callJson(system, 'POST', `${system.auth.url}/v1/enrollments`, { holder_name: 'TARO YAMADA', card_number: '4242424242424242', expiry: '12/34', device_jwk: jwk });
    expect(response.status).toBe(400);
    expect(response.body.code).toBe('validation_failed');
    expect(JSON.stringify(response.body)).not.toContain('4242424242424242');
  });

  it('stores the device key and the sealed credential so the wallet can pay from them alone', async () => {
    const stored = await enrollCard('4242424242424242');
    const header = JSON.parse(Buffer.from(stored.sealed_credential.split('.')[0]!, 'base64url').toString('utf8'));
    expect(header).toMatchObject({ typ: 'kessai-credential+jwe', alg: 'ECDH-ES+A256KW', enc: 'A256GCM', cred: stored.credential_id, iss: 'sakura-bank' });
    expect(typeof header.dkt).toBe('string');
    expect(stored.device_private_jwk).toHaveProperty('d');
    const [record] = await system.auth.db.query<Record<string, unknown>>('select * from credentials where id = $1', [stored.credential_id]);
    expect(Object.keys(record!).sort()).toEqual(['created_at', 'device_jkt', 'device_jwk', 'id', 'issuer_id', 'issuer_revoke_tried_at', 'issuer_revoked_at', 'last_used_at', 'status']);
    expect(record!.device_jwk).not.toHaveProperty('d');
  });
});

describe('credentials at the authentication server', () => {
  let merchant: MerchantClient;
  beforeAll(() => {
    merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  });
  afterAll(async () => {
    await merchant.close();
  });
  const body = (walletHandle: string) => ({ order_id: 'order-1', currency: 'JPY' as const, amount_minor: '1200', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '1200' }], wallet_handle: walletHandle });

  it('refuses a payment request for an unknown wallet handle with credential_not_found', async () => {
    expect(await codeOf(merchant.createPaymentRequest(body('cred_0000000000000000000000000a'), randomBytes(8).toString('hex')))).toBe('credential_not_found');
  });

  it('lets a payer retry a checkout that named an unknown wallet, with another handle or none', async () => {
    const cart = await callJson(system, 'POST', `${system.shop.url}/api/carts`, {});
    await callJson(system, 'POST', `${system.shop.url}/api/carts/${cart.body.id}/items`, { product_id: 'tenugui', quantity: 1 });
    const unknown = await callJson(system, 'POST', `${system.shop.url}/api/carts/${cart.body.id}/checkout`, { wallet_handle: 'cred_0000000000000000000000000a' });
    expect(unknown.body.code).toBe('credential_not_found');
    const wallet = await enroll(system, '4000056655665556');
    const retried = await callJson(system, 'POST', `${system.shop.url}/api/carts/${cart.body.id}/checkout`, { wallet_handle: wallet.wallet.credential_id });
    expect(retried.status).toBe(200);
    expect(retried.body.payment_request_id).toMatch(/^pr_/);
  });

  it('refuses every use of a revoked credential with credential_revoked', async () => {
    const wallet = await enroll(system, '4000056655665556');
    const created = await merchant.createPaymentRequest(body(wallet.wallet.credential_id), randomBytes(8).toString('hex'));
    await system.auth.db.query("update credentials set status = 'revoked' where id = $1", [wallet.wallet.credential_id]);
    expect(await codeOf(wallet.fetchRequest(created.id))).toBe('credential_revoked');
    expect(await codeOf(merchant.createPaymentRequest(body(wallet.wallet.credential_id), randomBytes(8).toString('hex')))).toBe('credential_revoked');
  });

  it('limits the event streams one credential may hold open with stream_limit_reached', async () => {
    const wallet = await enroll(system, '4000056655665556');
    const aborts: AbortController[] = [];
    try {
      const streams = [];
      for (let i = 0; i < 4; i++) {
        const abort = new AbortController();
        aborts.push(abort);
        const stream = wallet.listen(abort.signal);
        streams.push(stream);
        void stream.next().catch(() => undefined);
      }
      // Let the four streams reach the server before the fifth.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const fifth = new AbortController();
      aborts.push(fifth);
      expect(await codeOf(wallet.listen(fifth.signal).next())).toBe('stream_limit_reached');
    } finally {
      for (const abort of aborts) abort.abort();
    }
  });

  it('answers issuer_unavailable when the issuer cannot be reached', async () => {
    const fuji = system.settlements.find((s) => s.issuer.id === 'fuji-bank')!;
    await fuji.app.close();
    expect(await codeOf(enrollCard('5555555555554444', '12/34', 'KENJI ITO'))).toBe('issuer_unavailable');
  });
});

describe('the issuer registers each credential, and at most credentialsPerCardMax per card', () => {
  let limited: TestSystem;
  beforeAll(async () => {
    limited = await startTestSystem({ credentialsPerCardMax: limits.credentialsPerCardMax });
  });
  afterAll(async () => {
    await limited?.stop();
  });
  const layla = { holderName: 'LAYLA HASSAN', cardNumber: '4000004140000005', expiry: '12/34', pin: '5821' };
  const enrollLayla = (target: TestSystem) => WalletClient.enrollment({ authBaseUrl: target.auth.url, caCertPem: target.pki.caCertPem, directoryKey: target.directoryKey.publicJwk, ...layla });

  it('keeps the credential id, device-key thumbprint, card account and status in the issuer’s own registry', async () => {
    const { wallet } = await enrollLayla(limited);
    const bank = limited.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    const [row] = await bank.config.db.query<Record<string, unknown>>('select id, device_jkt, account_id, status from credentials where id = $1', [wallet.credential_id]);
    const [authRecord] = await limited.auth.db.query<{ device_jkt: string }>('select device_jkt from credentials where id = $1', [wallet.credential_id]);
    expect(row).toMatchObject({ id: wallet.credential_id, device_jkt: authRecord!.device_jkt, status: 'active' });
    expect(String(row!.account_id)).toMatch(/^acct_/);
  });

  it(`refuses a card’s credential past credentialsPerCardMax (${limits.credentialsPerCardMax}) active ones with credential_limit_reached, and takes one again after a revocation`, async () => {
    const bank = limited.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
    const active = async () => (await bank.config.db.query<{ count: number }>("select count(*)::int as count from credentials where status = 'active' and account_id = (select account_id from credentials limit 1)"))[0]!.count;
    const enrolled = [];
    while ((await active()) < limits.credentialsPerCardMax) enrolled.push(await enrollLayla(limited));
    expect(await codeOf(enrollLayla(limited))).toBe('credential_limit_reached');
    const revoked = await callJson(limited, 'POST', `${limited.auth.url}/v1/credentials/${enrolled[0]!.wallet.credential_id}/revoke`, { recovery_code: enrolled[0]!.recoveryCode.expose() });
    expect(revoked.status).toBe(200);
    expect((await enrollLayla(limited)).wallet.credential_id).toMatch(/^cred_/);
  });
});
