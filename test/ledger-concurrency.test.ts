/**
 * Step 406 under load: 200 authorizations for one cardholder arrive at the settlement server at
 * once, through its real mutual-TLS endpoint; the balance covers only some of them. Exactly as
 * many as fit are approved, the rest declined insufficient_funds, the balance is never negative
 * (sampled while they run), debits equal credits, and the holds were group-committed (many per
 * database transaction, counted by the rows' xmin).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportJWK, generateKeyPair } from 'jose';
import { Agent, request } from 'undici';
import { base64url, itemsHash, keyEntryFromJwk, KeyRing, newId, sealJson, Secret, signJson, thumbprint, typ, type JWK } from '@kessai/protocol';
import { createAccount, createTransfers, insertCard, ledgerTotals, readAccount } from '@kessai/settlement-server';
import { startTestSystem, type TestSystem } from './support/system.ts';

const authorizationsCount = 200;
const amountMinor = 700n;
const balanceMinor = 50_000n; // covers 71 of the 200
const card = { cardNumber: '4000000000000028', holderName: 'RUSH HOUR', expiry: '12/34', pin: '4711' };

let system: TestSystem;
let agent: Agent;
let issuerKeys: KeyRing;
let accountId: string;

const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

beforeAll(async () => {
  system = await startTestSystem();
  const client = system.pki.leaves['auth-server']!;
  agent = new Agent({ connections: 50, connect: { ca: system.pki.caCertPem, cert: client.certPem, key: client.keyPem } });
  const jwks = await (await request(`${sakura().url}/.well-known/jwks.json`, { dispatcher: agent })).body.json() as { keys: JWK[] };
  issuerKeys = new KeyRing(await Promise.all(jwks.keys.map((k) => keyEntryFromJwk(k))));
  const db = sakura().config.db;
  accountId = await db.transaction(async (tx) => {
    const id = await createAccount(tx, 'cardholder', 'JPY', { debitsMustNotExceedCredits: true });
    const [funding] = await tx.query<{ id: string }>("select id from ledger_accounts where kind = 'issuer_funding' and currency = 'JPY'");
    expect(await createTransfers(tx, [{ id: newId('xfer'), kind: 'single', debitAccountId: funding!.id, creditAccountId: id, amount: balanceMinor, currency: 'JPY' }], new Date())).toEqual(['ok']);
    await insertCard(tx, sakura().config.cardKeys, { cardNumber: card.cardNumber, holderName: card.holderName, expiry: card.expiry, accountId: id, status: 'active', pin: new Secret(card.pin) });
    return id;
  });
});
afterAll(async () => {
  await agent?.close();
  await system?.stop();
});

/** What a terminal and an honest broker send for one payment (as test/issuer.test.ts builds it). */
async function authorizeBody() {
  const device = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(device.publicKey);
  const deviceJwk = { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };
  const rid = newId('pr');
  const mid = newId('mer');
  const items = [{ description: 'Onigiri', quantity: 1, unit_price_minor: amountMinor.toString() }];
  const sealed = await sealJson({ v: 1, holder_name: card.holderName, card_number: card.cardNumber, expiry: card.expiry, device_jwk: deviceJwk }, issuerKeys.current('enc'), { typ: typ.credential, cred: newId('cred'), iss: 'sakura-bank', dkt: await thumbprint(deviceJwk) });
  const ih = await itemsHash(items);
  const nonce = base64url(crypto.getRandomValues(new Uint8Array(18)));
  const approval = await signJson({ rid, mid, amt: amountMinor.toString(), cur: 'JPY', ih, iat: Math.floor(Date.now() / 1000), nonce }, device.privateKey, { typ: typ.approval });
  const pin = await sealJson({ pin: card.pin, rid }, issuerKeys.current('enc'), { typ: typ.pin, rid });
  return { request: { rid, mid, amt: amountMinor.toString(), cur: 'JPY', ih }, sealed_credential: sealed, approval, pin };
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
