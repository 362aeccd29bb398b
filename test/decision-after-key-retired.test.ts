/**
 * A decision the bank committed is never answered as a refusal. The authorization route re-seals a
 * pass-through credential under the current cipher 2 key after the decision (renew.ts): when that
 * key's predecessor was retired while the authorization ran, the re-seal is skipped (logged) and the
 * decision answered as it is — a 4xx here would make the broker take the request for "nothing held"
 * (pending again) while the bank holds the funds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { retireKey } from '@kessai/service';
import { KessaiError } from '@kessai/protocol';
import { idempotencyKey } from './support/payer.ts';
import { callJson, demoCard, enroll, startTestSystem, type TestSystem } from './support/system.ts';

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

const cardNumber = '5555555555554444'; // fuji-bank, pass-through
const fuji = () => system.settlements.find((s) => s.issuer.id === 'fuji-bank')!;
const headerOf = (jose: string) => JSON.parse(Buffer.from(jose.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;

describe('a decision the bank committed while a key was retired', () => {
  it('does not leave the broker pending while the bank holds the funds (cipher 2 key retired during the authorization)', async () => {
    const enrolled = await enroll(system, cardNumber);
    clients.push(enrolled);
    const oldKid = headerOf(enrolled.wallet.sealed_credential).kid as string;
    const rotated = await callJson(system, 'POST', `${fuji().url}/admin/v1/keys/rotate`, { key: 'cipher2' }, system.operatorHeaders(fuji().url));
    expect(rotated.status).toBe(200);
    // A terminal that reads the directory now: its PIN block goes to the new key; the credential is still under the old one.
    const wallet = new WalletClient(structuredClone(enrolled.wallet), { caCertPem: system.pki.caCertPem });
    clients.push(wallet);
    const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '300', line_items: [{ description: 'Yokan', quantity: 1, unit_price_minor: '300' }] }, idempotencyKey());
    const request = await wallet.fetchRequest(created.id);

    // The operator retires the old key while this authorization runs (after the credential was opened).
    const db = fuji().config.db as { query: (sql: string, params?: readonly unknown[]) => Promise<unknown[]> };
    const query = db.query.bind(db);
    let retired = false;
    db.query = async (sql, params) => {
      const rows = await query(sql, params);
      // The registry's read (authorize.ts partiesOf), the first statement after the credential is opened.
      if (!retired && sql.includes('select id, device_jkt, pan_lookup, account_id, status from credentials')) {
        retired = true;
        await retireKey(fuji().config.keys, 'cipher2', oldKid);
      }
      return rows;
    };
    let told: string;
    try {
      told = await wallet.approve(request, demoCard(cardNumber).pin).then(
        (outcome) => outcome.status,
        (err: unknown) => `error ${err instanceof KessaiError ? err.code : String(err)}`,
      );
    } finally {
      db.query = query;
    }
    expect(retired).toBe(true);
    const [bank] = await fuji().config.db.query<{ status: string; decision: string }>('select status, decision from authorizations where request_id = $1', [created.id]);
    const [broker] = await system.auth.db.query<{ status: string }>('select status from payment_requests where id = $1', [created.id]);
    // Before the fix: bank { held, approved }, broker pending, wallet told an error (key_retired).
    expect(bank).toMatchObject({ status: 'held', decision: 'approved' });
    expect({ broker: broker?.status, told }).toEqual({ broker: 'approved', told: 'approved' });
  });
});
