/**
 * One running system per fuzz file, with what the fuzz needs to reach past the first checks: an
 * enrolled wallet and its device key, a pending and an approved payment request, a cart with an
 * item and an order, and keep-alive agents for each TLS identity (none, the authentication
 * server's client certificate, and the shop's certificate, which is from the CA but no client's).
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { expect } from 'vitest';
import { Agent, request } from 'undici';
import { importJWK, type JWK } from 'jose';
import type { CreatePaymentRequest } from '@kessai/protocol';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { demoCard, enroll, startTestSystem, type TestSystem } from '../support/system.ts';
import { checkout } from '../support/shop.ts';
import { personalDataNeedles } from '../support/retention.ts';
import { batchSize } from './harness.ts';

export interface FuzzFixture {
  system: TestSystem;
  wallet: WalletClient;
  deviceKey: CryptoKey;
  anonymous: Agent;
  peer: Agent;
  stranger: Agent;
  /** `cart` is open with one item; `checkedOutCart` already has its order and payment request. */
  ids: { pending: string; approved: string; cart: string; checkedOutCart: string; order: string; cred: string };
  close(): Promise<void>;
}

export async function startFuzzFixture(): Promise<FuzzFixture> {
  const system = await startTestSystem();
  const pool = { connect: { ca: system.pki.caCertPem }, connections: batchSize };
  const anonymous = new Agent(pool);
  const leaf = system.pki.leaves['auth-server']!;
  const peer = new Agent({ ...pool, connect: { ...pool.connect, cert: leaf.certPem, key: leaf.keyPem } });
  const shopLeaf = system.pki.leaves.shop!;
  const stranger = new Agent({ ...pool, connect: { ...pool.connect, cert: shopLeaf.certPem, key: shopLeaf.keyPem } });
  const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  const wallet = await enroll(system, '4242424242424242');
  const deviceKey = (await importJWK(wallet.wallet.device_private_jwk as JWK, 'ES256')) as CryptoKey;
  const items: CreatePaymentRequest['line_items'] = [{ description: 'Sencha, 100 g', quantity: 2, unit_price_minor: '1200' }];
  const create = () => merchant.createPaymentRequest({ order_id: `order-${randomBytes(4).toString('hex')}`, currency: 'JPY', amount_minor: '2400', line_items: items, wallet_handle: wallet.wallet.credential_id }, randomBytes(12).toString('hex'));
  const pending = (await create()).id;
  const approved = (await create()).id;
  expect((await wallet.approve(await wallet.fetchRequest(approved), demoCard('4242424242424242').pin)).status).toBe('approved');
  await merchant.close();
  const order = await checkout(system, [{ index: 0, quantity: 1 }]);
  const post = async (url: string, body: string) => (await (await request(url, { method: 'POST', dispatcher: anonymous, headers: { 'content-type': 'application/json' }, body })).body.json()) as Record<string, unknown>;
  const cartWithTea = async () => {
    const id = String((await post(`${system.shop.url}/api/carts`, '{}')).id);
    await post(`${system.shop.url}/api/carts/${id}/items`, JSON.stringify({ product_id: 'sencha-100g', quantity: 1 }));
    return id;
  };
  const cart = await cartWithTea();
  // Checked out before the fuzz starts: a first checkout racing another with a different wallet
  // handle answers 502 (a known shop bug, docs/threat-model.md §7), which the fuzz would hit at random.
  const checkedOutCart = await cartWithTea();
  expect((await post(`${system.shop.url}/api/carts/${checkedOutCart}/checkout`, JSON.stringify({ wallet_handle: wallet.wallet.credential_id }))).payment_request_id).toMatch(/^pr_/);
  return {
    system,
    wallet,
    deviceKey,
    anonymous,
    peer,
    stranger,
    ids: { pending, approved, cart, checkedOutCart, order: order.order_id, cred: wallet.wallet.credential_id },
    async close() {
      await wallet.close();
      await Promise.all([anonymous.close(), peer.close(), stranger.close()]);
      await system.stop();
    },
  };
}

/** Every piece of personal data found in the authentication server's and shop's logs, with the first line holding it. */
export async function personalDataInLogs(system: TestSystem): Promise<{ lineCount: number; found: Array<{ needle: string; line: string }> }> {
  const logs = (await readFile(system.logFiles.auth, 'utf8')) + (await readFile(system.logFiles.shop, 'utf8'));
  const lines = logs.split('\n');
  const found = personalDataNeedles().flatMap((needle) => {
    const line = lines.find((candidate) => needle.pattern.test(candidate));
    return line === undefined ? [] : [{ needle: needle.label, line: line.slice(0, 400) }];
  });
  return { lineCount: lines.length, found };
}
