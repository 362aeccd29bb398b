/**
 * Merchants at the broker are created by its operator, not configured: `kessai merchants create`
 * (POST /admin/v1/merchants at the authentication server) answers the API key once and keeps only
 * its hash; the key creates payment requests once a bank has onboarded the merchant. Keys roll as
 * Stripe's do: the old key works during the overlap and is refused after it, or at once with --now.
 */
import { describe, expect, it } from 'vitest';
import { merchantsAtBroker } from './support/cli.ts';
import { sha256Base64url } from '@kessai/protocol';
import { MerchantClient } from '@kessai/sdk';
import { codeOf } from './support/errors.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { callJson } from './support/system.ts';

const kessai = merchantForFile();
const auth = () => kessai.system.auth;

const { cli: kessaiCli, atBroker } = merchantsAtBroker(() => kessai.system.dataDir, () => auth().url);

/** A payment request created with `apiKey`: its id, or the code it was refused with. */
async function paymentRequestWith(apiKey: string): Promise<string> {
  const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: auth().url, apiKey, caCertPem: kessai.system.pki.caCertPem });
  try {
    const created = merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '800', line_items: [{ description: 'Matcha', quantity: 1, unit_price_minor: '800' }] }, idempotencyKey());
    const code = await codeOf(created);
    return code === 'no error' ? (await created).id : code;
  } finally {
    await merchant.close();
  }
}

/** Creates a merchant by command, onboards it at Sakura; its id and API key. */
async function createdMerchant(name: string): Promise<{ id: string; apiKey: string; printed: string }> {
  const printed = await atBroker('merchants', 'create', '--name', name, '--webhook-url', `${kessai.system.shop.url}/webhooks/kessai`);
  const id = /^created: (mer_[0-9a-z]{26}) /m.exec(printed)![1]!;
  const apiKey = /^api key \(shown once, stored only as a hash\): (sk_\S+)$/m.exec(printed)![1]!;
  const sakura = kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
  await kessaiCli(['merchants', 'onboard', '--issuer', 'sakura-bank', '--id', id, '--name', name, '--url', sakura.url]);
  return { id, apiKey, printed };
}

describe('merchants created by the broker’s operator', () => {
  it('kessai merchants create shows the API key once, keeps only its hash, and the key creates a payment request', async () => {
    const { id, apiKey, printed } = await createdMerchant('Matcha Bar');
    expect(printed).toMatch(/^webhook secret \(shown once\): whsec_[A-Za-z0-9_-]{32}$/m);
    const [row] = await auth().db.query<Record<string, unknown>>('select * from merchants where id = $1', [id]);
    expect(row!.api_key_hash).toBe(await sha256Base64url(apiKey));
    expect(JSON.stringify(row)).not.toContain(apiKey);
    expect(await paymentRequestWith(apiKey)).toMatch(/^pr_/);

    const shown = await atBroker('merchants', 'show', id);
    expect(shown).toContain(`${id}  Matcha Bar  webhook ${kessai.system.shop.url}/webhooks/kessai  keys: current test …${apiKey.slice(-4)}`);
    expect(shown).not.toContain(apiKey);
    const listed = await atBroker('merchants', 'list');
    expect(listed).toContain(`${id}  Matcha Bar`);
    expect(listed).toContain(`${kessai.system.merchant.merchantId}  Kessai Tea House`);
    expect(listed).not.toContain(apiKey);
  });

  it('refuses a second merchant of the same name, case-insensitively, with merchant_name_taken', async () => {
    const answer = await callJson(kessai.system, 'POST', `${auth().url}/admin/v1/merchants`, { name: 'matcha bar' }, kessai.system.operatorHeaders(auth().url));
    expect([answer.status, answer.body.code]).toEqual([409, 'merchant_name_taken']);
  });

  it('kessai merchants rotate-key: the old key keeps working during the overlap, and is refused once it has passed', async () => {
    const { id, apiKey: old } = await createdMerchant('Hojicha House');
    const printed = await atBroker('merchants', 'rotate-key', id, '--overlap', '2');
    const fresh = /^new api key \(shown once, stored only as a hash\): (sk_\S+)$/m.exec(printed)![1]!;
    expect(printed).toMatch(/the previous key works until \d{4}-/);
    expect(await paymentRequestWith(fresh)).toMatch(/^pr_/);
    expect(await paymentRequestWith(old)).toMatch(/^pr_/);
    expect(await atBroker('merchants', 'show', id)).toContain(`keys: current test …${fresh.slice(-4)}, previous test …${old.slice(-4)} until`);
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(await paymentRequestWith(old)).toBe('unauthenticated');
    expect(await paymentRequestWith(fresh)).toMatch(/^pr_/);
  });

  it('kessai merchants rotate-key --now retires the old key at once; retire-previous-keys ends an overlap early', async () => {
    const { id, apiKey: first } = await createdMerchant('Genmaicha Corner');
    const second = /^new api key .*: (sk_\S+)$/m.exec(await atBroker('merchants', 'rotate-key', id, '--now'))![1]!;
    expect(await paymentRequestWith(first)).toBe('unauthenticated');
    expect(await paymentRequestWith(second)).toMatch(/^pr_/);
    const third = /^new api key .*: (sk_\S+)$/m.exec(await atBroker('merchants', 'rotate-key', id))![1]!;
    expect(await paymentRequestWith(second)).toMatch(/^pr_/);
    expect(await atBroker('merchants', 'retire-previous-keys', id)).toBe(`retired: 1 previous API key(s) of ${id}\n`);
    expect(await paymentRequestWith(second)).toBe('unauthenticated');
    expect(await paymentRequestWith(third)).toMatch(/^pr_/);
  });

  it('refuses a roll while merchantApiKeysMax keys work with api_key_limit_reached; a roll --now is still allowed', async () => {
    const { id } = await createdMerchant('Kukicha Stand');
    const roll = (body: unknown) => callJson(kessai.system, 'POST', `${auth().url}/admin/v1/merchants/${id}/api-keys/roll`, body, kessai.system.operatorHeaders(auth().url));
    expect((await roll({})).status).toBe(200);
    expect((await roll({})).status).toBe(200);
    const third = await roll({});
    expect([third.status, third.body.code]).toEqual([409, 'api_key_limit_reached']);
    expect((await roll({ overlap_seconds: 0 })).status).toBe(200);
  });

  it('rotates the webhook secret through the same surface, and refuses an unknown merchant with not_found and a caller without the operator token with unauthenticated', async () => {
    const { id } = await createdMerchant('Bancha Kiosk');
    const rotated = await atBroker('merchants', 'rotate-webhook-secret', id);
    expect(rotated).toMatch(/^new webhook secret \(shown once\): whsec_/m);
    expect(await atBroker('merchants', 'show', id)).toContain('previous webhook secrets: 1');
    expect(await atBroker('merchants', 'rotate-webhook-secret', id, '--retire-previous')).toBe(`retired: 1 previous webhook secret(s) of ${id}\n`);
    await expect(atBroker('merchants', 'show', 'mer_0000000000000000000000000a')).rejects.toThrow(/not_found/);
    const anonymous = await callJson(kessai.system, 'POST', `${auth().url}/admin/v1/merchants`, { name: 'Anon Tea' });
    expect([anonymous.status, anonymous.body.code]).toEqual([401, 'unauthenticated']);
  });
});
