/**
 * Rotation of a merchant's webhook secret: after rotation every delivery is signed with the new
 * secret and the previous one (two `v1=`), so the shop, still configured with the old secret,
 * keeps accepting events; once the previous secret is retired only the new one signs. A restart
 * does not bring a rotated-away secret back from the configuration.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { limits, verifyWebhook } from '@kessai/protocol';
import { buildAuthServer } from '@kessai/auth-server';
import type { WalletClient } from '@kessai/sdk';
import { registerKeysCommands } from '../apps/cli/src/keys-commands.ts';
import { checkout } from './support/shop.ts';
import { callJson, demoCard, enroll, startTestSystem, waitFor, type TestSystem } from './support/system.ts';

const signatures: string[] = [];
let system: TestSystem;
let wallet: WalletClient;
const cardNumber = '4242424242424242';

beforeAll(async () => {
  system = await startTestSystem({
    beforeListen: (role, app) => {
      if (role !== 'shop') return;
      app.addHook('onRequest', async (request) => {
        const header = request.headers['kessai-signature'];
        if (request.url === '/webhooks/kessai' && typeof header === 'string') signatures.push(header);
      });
    },
  });
  wallet = await enroll(system, cardNumber);
});
afterAll(async () => {
  await wallet?.close();
  await system?.stop();
});

const admin = (pathname: string) => callJson(system, 'POST', `${system.auth.url}${pathname}`, undefined, system.operatorHeaders(system.auth.url));
const merchantPath = () => `/admin/v1/merchants/${system.merchant.merchantId}/webhook-secret`;

/** A purchase at the shop approved by the wallet; resolves with the approved event's outbox row once its delivery was tried. */
async function purchase() {
  const order = await checkout(system, [{ index: 0, quantity: 1 }]);
  const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard(cardNumber).pin);
  expect(outcome.status).toBe('approved');
  return waitFor('the approved event to be tried', async () => {
    const [row] = await system.auth.db.query<{ body: string; delivered_at: unknown; last_status: number | null }>(
      "select body, delivered_at, last_status from webhook_outbox where event_type = 'payment_request.approved' and body like $1 and last_status is not null",
      [`%${order.payment_request_id}%`],
    );
    return row;
  });
}

/** The secrets each captured signature of `body` verifies with, among `secrets`. */
async function signersOf(body: string, secrets: Record<string, string>) {
  const found = new Set<string>();
  for (const header of signatures) {
    for (const [name, secret] of Object.entries(secrets)) {
      if (await verifyWebhook([secret], header, body, Date.now(), limits.webhookToleranceMs)) found.add(`${name} (${header.split(',').length - 1} v1)`);
    }
  }
  return [...found].sort();
}

describe('webhook secret rotation', () => {
  let fresh: string;

  it('signs with the new secret and the previous one after rotation, so the shop configured with the old secret keeps accepting events', async () => {
    const old = system.merchant.webhookSecret;
    const rotated = await admin(`${merchantPath()}/rotate`);
    expect(rotated.status).toBe(200);
    expect(rotated.body).toMatchObject({ merchant_id: system.merchant.merchantId, previous_secrets: 1 });
    fresh = rotated.body.webhook_secret;
    expect(fresh).toMatch(/^whsec_/);
    expect(fresh).not.toBe(old);

    const delivered = await purchase();
    expect(delivered.last_status).toBe(200);
    expect(await signersOf(delivered.body, { old, fresh })).toEqual(['fresh (2 v1)', 'old (2 v1)']);
  });

  it('keeps the rotated secret when the server starts again from a configuration that still names the old one', async () => {
    const again = await buildAuthServer(system.auth.context.config);
    await again.app.close();
    const [merchant] = await system.auth.db.query<{ webhook_secret: string }>('select webhook_secret from merchants where id = $1', [system.merchant.merchantId]);
    expect(merchant!.webhook_secret).toBe(fresh);
  });

  it('signs with the new secret only once the previous one is retired: a shop that never took the new secret refuses', async () => {
    const retired = await admin(`${merchantPath()}/retire-previous`);
    expect(retired.body).toEqual({ merchant_id: system.merchant.merchantId, retired: 1 });
    const [row] = await system.auth.db.query<{ secret: string | null; status: string }>('select secret, status from merchant_webhook_secrets where merchant_id = $1', [system.merchant.merchantId]);
    expect(row).toEqual({ secret: null, status: 'retired' });

    const refused = await purchase();
    expect(refused.delivered_at).toBeNull();
    expect(refused.last_status).toBe(400);
    expect(await signersOf(refused.body, { old: system.merchant.webhookSecret, fresh })).toEqual(['fresh (1 v1)']);
  });

  it('refuses the rotation endpoints without the operator token with unauthenticated, and an unknown merchant with not_found', async () => {
    const anonymous = await callJson(system, 'POST', `${system.auth.url}${merchantPath()}/rotate`);
    expect(anonymous.body.code).toBe('unauthenticated');
    const unknown = await admin('/admin/v1/merchants/mer_0000000000000000000000000a/webhook-secret/rotate');
    expect([unknown.status, unknown.body.code]).toEqual([404, 'not_found']);
  });

  it('kessai keys rotate --key webhook-secret prints the new secret once and configures the reference shop with both; retire drops the old one', async () => {
    const program = () => {
      const created = new Command('kessai').exitOverride();
      registerKeysCommands(created, system.dataDir);
      return created;
    };
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
    const merchantFile = path.join(system.dataDir, 'shop', 'merchant.json');
    const before = JSON.parse(await readFile(merchantFile, 'utf8'));
    try {
      await program().parseAsync(['keys', 'rotate', '--role', 'auth', '--key', 'webhook-secret', '--merchant', system.merchant.merchantId, '--url', system.auth.url], { from: 'user' });
      const rotated = JSON.parse(await readFile(merchantFile, 'utf8'));
      const shown = /new secret \(shown once\): (whsec_\S+)/.exec(written.join(''))?.[1];
      expect(rotated.webhookSecret).toBe(shown);
      expect(rotated.previousWebhookSecrets).toEqual([before.webhookSecret]);
      await program().parseAsync(['keys', 'retire', '--role', 'auth', '--key', 'webhook-secret', '--merchant', system.merchant.merchantId, '--url', system.auth.url], { from: 'user' });
      const after = JSON.parse(await readFile(merchantFile, 'utf8'));
      expect(after.previousWebhookSecrets).toBeUndefined();
      expect(after.webhookSecret).toBe(shown);
    } finally {
      process.stdout.write = write;
    }
    expect(written.join('')).toMatch(/retired: 1 previous webhook secret\(s\)/);
  });
});
