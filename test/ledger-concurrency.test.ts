/**
 * Step 406 under load: 200 authorizations for one cardholder arrive at the settlement server at
 * once, through its real mutual-TLS endpoint; the balance covers only some of them. Exactly as
 * many as fit are approved, the rest declined insufficient_funds, the balance is never negative
 * (sampled while they run), debits equal credits, and the holds were group-committed (many per
 * database transaction, counted by the rows' xmin).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { newId, Secret } from '@kessai/protocol';
import { createAccount, createTransfers, insertCard, ledgerTotals, readAccount } from '@kessai/settlement-server';
import { demoMerchantName } from '@kessai/cli/demo-data';
import { BankCaller, type EnrolledDevice } from './support/bank.ts';
import { startTestSystem, type TestSystem } from './support/system.ts';

const authorizationsCount = 200;
/** Devices of the one cardholder the authorizations come through (each enrolled at the bank, step 303). */
const devicesCount = 10;
const amountMinor = 700n;
const balanceMinor = 50_000n; // covers 71 of the 200
const card = { cardNumber: '4000000000000028', holderName: 'RUSH HOUR', expiry: '12/34', pin: '4711' };
const items = [{ description: 'Onigiri', quantity: 1, unit_price_minor: amountMinor.toString() }];

let system: TestSystem;
let agent: Agent;
let bank: BankCaller;
let merchant: { id: string; name: string };
let devices: EnrolledDevice[];
let accountId: string;

const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

beforeAll(async () => {
  system = await startTestSystem();
  const client = system.pki.leaves['auth-server']!;
  const tls = { caCertPem: system.pki.caCertPem, certPem: client.certPem, keyPem: client.keyPem };
  agent = new Agent({ connections: 50, connect: { ca: tls.caCertPem, cert: tls.certPem, key: tls.keyPem } });
  bank = new BankCaller(sakura().url, 'sakura-bank', tls);
  merchant = { id: system.merchant.merchantId, name: demoMerchantName };
  const db = sakura().config.db;
  accountId = await db.transaction(async (tx) => {
    const id = await createAccount(tx, 'cardholder', 'JPY', { debitsMustNotExceedCredits: true });
    const [funding] = await tx.query<{ id: string }>("select id from ledger_accounts where kind = 'issuer_funding' and currency = 'JPY'");
    expect(await createTransfers(tx, [{ id: newId('xfer'), kind: 'single', debitAccountId: funding!.id, creditAccountId: id, amount: balanceMinor, currency: 'JPY' }], new Date())).toEqual(['ok']);
    await insertCard(tx, sakura().config.cardKeys, { cardNumber: card.cardNumber, holderName: card.holderName, expiry: card.expiry, accountId: id, status: 'active', pin: new Secret(card.pin) });
    return id;
  });
  devices = [];
  for (let i = 0; i < devicesCount; i++) devices.push(await bank.enroll(card));
});
afterAll(async () => {
  await bank?.close();
  await agent?.close();
  await system?.stop();
});

/** What a terminal and an honest broker send for the i-th payment, through one of the cardholder's enrolled devices. */
function authorizeBody(_: unknown, i: number) {
  // The card was inserted with no test flag: a live card, paid by live approvals.
  return bank.authorizeBody(devices[i % devicesCount]!, card, merchant, { approvedAmount: amountMinor.toString(), items, lm: true });
}

describe('concurrent authorizations against one account', () => {
  it(`approves exactly as many of ${authorizationsCount} simultaneous authorizations as the balance covers, and never overdraws`, async () => {
    const bodies = await Promise.all(Array.from({ length: authorizationsCount }, authorizeBody));
    const db = sakura().config.db;
    const samples: bigint[] = [];
    let running = true;
    const sampler = (async () => {
      while (running) {
        const a = await readAccount(db, accountId);
        samples.push(a.creditsPosted - a.debitsPosted - a.debitsPending);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const started = performance.now();
    const responses = await Promise.all(bodies.map(async (body) => {
      const response = await request(`${sakura().url}/internal/v1/authorizations`, { method: 'POST', dispatcher: agent, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      const json = await response.body.json() as { authorization: string };
      expect(response.statusCode).toBe(200);
      return JSON.parse(Buffer.from(json.authorization.split('.')[1]!, 'base64url').toString('utf8')) as { decision: string; code: string | null };
    }));
    const elapsedMs = performance.now() - started;
    running = false;
    await sampler;

    const fits = Number(balanceMinor / amountMinor);
    expect(responses.filter((r) => r.decision === 'approved')).toHaveLength(fits);
    expect(responses.filter((r) => r.decision === 'declined').every((r) => r.code === 'insufficient_funds')).toBe(true);
    const after = await readAccount(db, accountId);
    expect(after.debitsPending).toBe(BigInt(fits) * amountMinor);
    expect(after.creditsPosted - after.debitsPosted - after.debitsPending).toBe(balanceMinor - BigInt(fits) * amountMinor);
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.every((s) => s >= 0n)).toBe(true);
    for (const row of await ledgerTotals(db)) expect([row.debits_pending, row.debits_posted]).toEqual([row.credits_pending, row.credits_posted]);
    const [{ transactions } = { transactions: 0n }] = await db.query<{ transactions: bigint }>("select count(distinct created_at)::int8 as transactions from transfers where debit_account_id = $1 and kind = 'pending'", [accountId]);
    console.info(`${authorizationsCount} authorizations in ${elapsedMs.toFixed(0)} ms on ${db.kind}; ${fits} holds written in ${transactions} transactions`);
    expect(Number(transactions)).toBeLessThan(fits);
  });
});
