/**
 * The hash-chained audit log: on a scratch database, the chain refuses edits through its
 * triggers, and an attacker who disables them is still found at the right seq (an edited row, a
 * deleted row, two rows swapped); concurrent writers keep one chain. On a running system, a real
 * purchase leaves an intact chain on every server, naming actors, route patterns and outcomes and
 * no personal data, checked through `GET /admin/v1/audit/verify` and `kessai audit verify`. Domain
 * events (capture, void, refund, hold expiry, day close, revocation, key and webhook-secret
 * rotation) join the chain with ids, amounts and codes only.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits } from '@kessai/protocol';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { AuditLog, appendAuditEntries, auditLogOf, auditRowHash, createLogger, ensureAuditLog, openDb, verifyAuditChain, type AuditRow, type Db } from '@kessai/service';
import { businessDayOf, endOfDay } from '@kessai/settlement-server';
import { auditVerify } from '../apps/cli/src/audit-commands.ts';
import { pgliteTemplate, scratchPostgres } from './support/database.ts';
import { collectAuditRows, findPersonalData } from './support/retention.ts';
import { checkout, waitForOrder } from './support/shop.ts';
import { callJson, demoCard, enroll, startTestSystem, waitFor, type TestSystem } from './support/system.ts';
import { approvedRequest, idempotencyKey, startWithPayer } from './support/payer.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const logger = createLogger({ name: 'audit-test' });

describe('the audit chain on one database', () => {
  let db: Db;
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  beforeAll(async () => {
    scratch = await scratchPostgres('kessai_audit');
    db = scratch ? await openDb({ url: scratch.url }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
    await ensureAuditLog(db);
  });
  afterAll(async () => {
    await db?.close();
    await scratch?.drop();
  });

  /** A fresh chain of `n` rows, as an attacker with the database's owner rights would reset it. */
  async function freshChain(n: number): Promise<void> {
    await db.exec('ALTER TABLE audit_log DISABLE TRIGGER USER; TRUNCATE audit_log; ALTER TABLE audit_log ENABLE TRIGGER USER');
    await appendAuditEntries(db, Array.from({ length: n }, (_, i) => ({ actor: `merchant:mer_${i}`, action: 'POST /v1/payment-requests', resource: null, outcome: '201', origin: '127.0.0.1' })));
  }
  /** What someone with the database password does: switch the triggers off, then write. */
  const asAttacker = (sql: string) => db.exec(`ALTER TABLE audit_log DISABLE TRIGGER USER; ${sql}; ALTER TABLE audit_log ENABLE TRIGGER USER`);

  it('verifies an intact chain and reports its head', async () => {
    await freshChain(10);
    const result = await verifyAuditChain(db);
    expect(result).toMatchObject({ ok: true, rows: 10, headSeq: 10n });
    const [head] = await db.query<{ hash: string }>('select hash from audit_log where seq = 10');
    expect(result.ok && result.headHash).toBe(head!.hash);
  });

  it('refuses UPDATE, DELETE and TRUNCATE through its triggers', async () => {
    await freshChain(3);
    await expect(db.query("update audit_log set outcome = '200' where seq = 2")).rejects.toThrow(/append-only/);
    await expect(db.query('delete from audit_log where seq = 3')).rejects.toThrow(/append-only/);
    await expect(db.exec('truncate audit_log')).rejects.toThrow(/append-only/);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true, rows: 3 });
  });

  it('finds an edited outcome at its seq', async () => {
    await freshChain(10);
    await asAttacker("update audit_log set outcome = '403 unauthenticated' where seq = 4");
    expect(await verifyAuditChain(db)).toEqual({ ok: false, rows: 3, brokenAt: 4n, reason: 'hash' });
  });

  it('finds an edited row even when its hash was recomputed, at the next seq', async () => {
    await freshChain(10);
    const [row] = await db.query<AuditRow>('select * from audit_log where seq = 6');
    const forged = auditRowHash({ ...row!, actor: 'operator' });
    await asAttacker(`update audit_log set actor = 'operator', hash = '${forged}' where seq = 6`);
    expect(await verifyAuditChain(db)).toEqual({ ok: false, rows: 6, brokenAt: 7n, reason: 'prev_hash' });
  });

  it('finds a deleted row at its seq, the first one included', async () => {
    await freshChain(10);
    await asAttacker('delete from audit_log where seq = 5');
    expect(await verifyAuditChain(db)).toEqual({ ok: false, rows: 4, brokenAt: 5n, reason: 'missing' });
    await freshChain(3);
    await asAttacker('delete from audit_log where seq = 1');
    expect(await verifyAuditChain(db)).toEqual({ ok: false, rows: 0, brokenAt: 1n, reason: 'missing' });
  });

  it('finds two rows swapped at the first of them', async () => {
    await freshChain(10);
    await asAttacker('update audit_log set seq = 1000 where seq = 3; update audit_log set seq = 3 where seq = 4; update audit_log set seq = 4 where seq = 1000');
    expect(await verifyAuditChain(db)).toEqual({ ok: false, rows: 2, brokenAt: 3n, reason: 'prev_hash' });
  });

  it('keeps one linear chain under concurrent writers (two connections on PostgreSQL)', async () => {
    await freshChain(0);
    const second = scratch ? await openDb({ url: scratch.url }) : db;
    try {
      const writers = [new AuditLog(db, logger), new AuditLog(second, logger)];
      const entries = Array.from({ length: 300 }, (_, i) => ({ actor: `credential:cred_${i}`, action: 'POST /v1/terminal/payment-requests/:id/approve', resource: null, outcome: '200', origin: '127.0.0.1' }));
      await Promise.all([
        ...entries.map((entry, i) => writers[i % 2]!.record(entry)),
        ...Array.from({ length: 10 }, (_, i) => appendAuditEntries(i % 2 ? db : second, [{ actor: 'system', action: 'direct', outcome: 'ok' }])),
      ]);
      await Promise.all(writers.map((writer) => writer.flush()));
      expect(await verifyAuditChain(db)).toMatchObject({ ok: true, rows: 310, headSeq: 310n });
    } finally {
      if (second !== db) await second.close();
    }
  });

  it('writes the entries recorded within auditBatchDelayMs of the first in one transaction', async () => {
    await freshChain(0);
    let transactions = 0;
    const counting: Db = { ...db, query: db.query.bind(db), exec: db.exec.bind(db), close: db.close.bind(db), transaction: (fn) => ((transactions += 1), db.transaction(fn)) };
    const writer = new AuditLog(counting, logger);
    const first = writer.record({ actor: 'system', action: 'authorization.decided', resource: 'pr_1', outcome: 'approved' });
    await new Promise((resolve) => setTimeout(resolve, limits.auditBatchDelayMs / 4));
    const second = writer.record({ actor: 'peer:auth-server', action: 'POST /internal/v1/authorizations', resource: 'pr_1', outcome: '200' });
    expect(transactions).toBe(0);
    await Promise.all([first, second]);
    expect(transactions).toBe(1);
    expect(await verifyAuditChain(db)).toMatchObject({ ok: true, rows: 2, headSeq: 2n });
  });

  it('verifies offline from a database URL with kessai audit verify --database-url (exit 1 when broken)', async () => {
    if (!scratch) {
      // PGlite has no URL to give the command; the same verifyAuditChain runs on PGlite above.
      expect(db.kind).toBe('pglite');
      return;
    }
    await freshChain(5);
    const intact = await auditVerify({ dataDir: '.', role: 'all', databaseUrl: scratch.url });
    expect(intact.exitCode).toBe(0);
    expect(intact.lines.join('\n')).toMatch(/intact, 5 rows/);
    await asAttacker('delete from audit_log where seq = 2');
    const broken = await auditVerify({ dataDir: '.', role: 'all', databaseUrl: scratch.url });
    expect(broken.exitCode).toBe(1);
    expect(broken.lines.join('\n')).toMatch(/BROKEN at seq 2 \(row missing\)/);
    const elsewhere = new URL(scratch.url);
    elsewhere.pathname = '/postgres';
    const noTable = await auditVerify({ dataDir: '.', role: 'all', databaseUrl: elsewhere.href });
    expect(noTable.exitCode).toBe(2);
    expect(noTable.lines[0]).toMatch(/^database: could not verify/);
  });

  it('has one definition: the roles’ migrations hold no copy of the shared SQL, which every server applies at start', async () => {
    const migrations = ['apps/auth-server/migrations/0004_audit_log.sql', 'apps/settlement-server/migrations/0005_audit_log.sql', 'apps/shop/migrations/0003_audit_log.sql'];
    for (const file of migrations) {
      const text = await readFile(path.join(root, file), 'utf8');
      expect(text.replace(/^--.*\n/gm, '').trim(), file).toBe('SELECT 1;');
    }
  });
});

describe('the audit log of a running system', () => {
  let system: TestSystem;
  beforeAll(async () => {
    system = await startTestSystem();
  });
  afterAll(() => system?.stop());

  const roleUrls = () => [['auth', system.auth.url], ['shop', system.shop.url], ...system.settlements.map((s) => [`settlement-${s.issuer.id}`, s.url])] as Array<[string, string]>;
  const verifyAt = (url: string, token = system.operatorTokenOf(url)) => callJson(system, 'GET', `${url}/admin/v1/audit/verify`, undefined, { authorization: `Bearer ${token}` });

  it('records a real purchase on every server and the chains verify', async () => {
    for (const cardNumber of ['4242424242424242', '5555555555554444']) {
      const wallet = await enroll(system, cardNumber);
      const order = await checkout(system, [{ index: 0, quantity: 1 }], wallet.wallet.credential_id);
      const outcome = await wallet.approve(await wallet.fetchRequest(order.payment_request_id), demoCard(cardNumber).pin);
      expect(outcome.status).toBe('approved');
      await waitForOrder(system, order.order_id, 'captured');
      await wallet.close();
    }
    // A refusal is recorded with its code.
    const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
    await merchant.createPaymentRequest({ order_id: 'o-mismatch', currency: 'JPY', amount_minor: '100', line_items: [{ description: 'Tea', quantity: 1, unit_price_minor: '90' }] }, 'audit-mismatch-key').catch(() => undefined);
    await merchant.close();

    for (const [role, url] of roleUrls()) {
      const answer = await verifyAt(url);
      expect(answer.status, role).toBe(200);
      expect(answer.body.ok, role).toBe(true);
      expect(answer.body.rows, role).toBeGreaterThan(0);
    }
    const auth = await system.auth.db.query<{ actor: string; action: string; outcome: string; origin: string; resource: string | null }>('select actor, action, outcome, origin, resource from audit_log order by seq');
    expect(auth).toContainEqual(expect.objectContaining({ actor: `merchant:${system.merchant.merchantId}`, action: 'POST /v1/payment-requests', outcome: '201', origin: '127.0.0.1' }));
    expect(auth).toContainEqual(expect.objectContaining({ actor: `merchant:${system.merchant.merchantId}`, action: 'POST /v1/payment-requests', outcome: '422 amount_mismatch' }));
    expect(auth).toContainEqual(expect.objectContaining({ action: 'POST /v1/terminal/payment-requests/:id/approve', outcome: '200' }));
    expect(auth.find((row) => row.action === 'POST /v1/terminal/payment-requests/:id/approve')?.actor).toMatch(/^credential:cred_/);
    expect(auth.find((row) => row.action === 'POST /v1/payment-requests/:id/capture')?.resource).toMatch(/^pr_/);
    expect(auth.every((row) => !row.action.includes('?') && !/\/pr_|\/cred_/.test(row.action)), 'route patterns, never raw URLs').toBe(true);
    for (const settlement of system.settlements) {
      const rows = await settlement.config.db.query<{ actor: string; action: string; outcome: string }>('select actor, action, outcome from audit_log order by seq');
      expect(rows).toContainEqual(expect.objectContaining({ action: 'authorization.decided', outcome: 'approved' }));
      expect(rows).toContainEqual(expect.objectContaining({ actor: 'peer:auth-server', action: 'POST /internal/v1/authorizations', outcome: '200' }));
    }
  });

  it('keeps no personal data in any server’s audit log', async () => {
    const { text, rows } = await collectAuditRows(system);
    expect(rows).toBeGreaterThan(10);
    expect(findPersonalData(text)).toEqual([]);
  });

  it('serves verify to the operator only', async () => {
    const answer = await verifyAt(system.auth.url, 'op_not-the-operator-token-at-all');
    expect(answer.status).toBe(401);
    expect(answer.body.code).toBe('unauthenticated');
  });

  it('kessai audit verify checks each role through its server, and exits 1 on a broken chain', async () => {
    for (const [role, url] of roleUrls()) {
      const result = await auditVerify({ dataDir: system.dataDir, role: role as 'auth', url });
      expect(result.exitCode, result.lines.join('\n')).toBe(0);
      expect(result.lines[0]).toMatch(new RegExp(`^${role}: intact, \\d+ rows, head seq \\d+ hash [0-9a-f]{64}$`));
    }
    await system.shop.db.exec("ALTER TABLE audit_log DISABLE TRIGGER USER; UPDATE audit_log SET outcome = '403 unauthenticated' WHERE seq = 2; ALTER TABLE audit_log ENABLE TRIGGER USER");
    const broken = await auditVerify({ dataDir: system.dataDir, role: 'shop', url: system.shop.url });
    expect(broken.exitCode).toBe(1);
    expect(broken.lines[0]).toMatch(/^shop: BROKEN at seq 2 \(row edited\)/);
  });
});

describe('domain events in the audit chain', () => {
  const card = '4242424242424242';
  /** The settlement clock: moved past the end of today to close it. */
  let clockMs = Date.now();
  const today = businessDayOf(new Date(clockMs), 'UTC');
  let system: TestSystem;
  let merchant: MerchantClient;
  let wallet: WalletClient;
  let stop = async () => {};
  beforeAll(async () => {
    // Holds time out after 3 s, so one left uncaptured expires within the test.
    ({ system, merchant, wallet, stop } = await startWithPayer(card, { holdTimeoutSeconds: 3, expiryIntervalMs: 200, settlement: { clock: () => new Date(clockMs), timeZone: 'UTC', closeDelayMs: 60_000 } }));
  });
  afterAll(() => stop());

  const issuer = () => system.settlements.find((s) => s.issuer.id === demoCard(card).issuer.id)!;
  type Row = { actor: string; action: string; resource: string | null; outcome: string };
  const rowsOf = (db: Db) => db.query<Row>('select actor, action, resource, outcome from audit_log order by seq');

  it('holds capture, void, refund, expiry, day close, revocation, key and webhook-secret rotation, and the chains still verify', async () => {
    const paid = await approvedRequest(merchant, wallet, card, 2_400n);
    await merchant.capture(paid, {}, idempotencyKey());
    const refund = await merchant.refund(paid, 400n, idempotencyKey());
    const voided = await approvedRequest(merchant, wallet, card, 700n);
    await merchant.void(voided, idempotencyKey());
    // A retried capture changes nothing, and is no second event.
    const key = idempotencyKey();
    await merchant.capture(paid, {}, key).catch(() => undefined);
    const expiring = await approvedRequest(merchant, wallet, card, 500n);

    // The payer revokes a second device's credential with its recovery code; the operator revokes the first.
    const { wallet: second, recoveryCode } = await WalletClient.enrollment({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: demoCard(card).holderName, cardNumber: card, expiry: demoCard(card).expiry, pin: demoCard(card).pin });
    await WalletClient.revoke({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, credentialId: second.credential_id, recoveryCode: recoveryCode.expose() });
    expect((await callJson(system, 'POST', `${system.auth.url}/admin/v1/credentials/${wallet.wallet.credential_id}/revoke`, undefined, system.operatorHeaders(system.auth.url))).status).toBe(200);
    // Twice: the second answers the first revocation and is no second event.
    expect((await callJson(system, 'POST', `${system.auth.url}/admin/v1/credentials/${wallet.wallet.credential_id}/revoke`, undefined, system.operatorHeaders(system.auth.url))).status).toBe(200);

    // Key rotation and retirement, and a webhook secret rotation.
    const rotated = await callJson(system, 'POST', `${system.auth.url}/admin/v1/keys/rotate`, { key: 'request-signing' }, system.operatorHeaders(system.auth.url));
    expect(rotated.status).toBe(200);
    const keys = await callJson(system, 'GET', `${system.auth.url}/admin/v1/keys`, undefined, system.operatorHeaders(system.auth.url));
    const previous = (keys.body.keys as Array<{ key: string; kid: string; status: string }>).find((k) => k.key === 'request-signing' && k.status === 'previous')!;
    expect((await callJson(system, 'POST', `${system.auth.url}/admin/v1/keys/retire`, { key: 'request-signing', kid: previous.kid }, system.operatorHeaders(system.auth.url))).status).toBe(200);
    expect((await callJson(system, 'POST', `${system.auth.url}/admin/v1/merchants/${system.merchant.merchantId}/webhook-secret/rotate`, undefined, system.operatorHeaders(system.auth.url))).status).toBe(200);

    // The uncaptured hold expires on its own.
    await waitFor('the expiry event', async () => {
      await auditLogOf(issuer().config.db)?.flush();
      return (await rowsOf(issuer().config.db)).find((row) => row.action === 'authorization.expired' && row.resource === expiring);
    });

    // Today ends on the settlement clock and the operator closes it (or the schedule does first).
    clockMs = endOfDay(today, 'UTC').getTime() + 1_000;
    const closed = await callJson(system, 'POST', `${issuer().url}/admin/v1/settlement-batches/close`, { date: today }, system.operatorHeaders(issuer().url));
    expect(closed.status).toBe(200);
    const batch = (closed.body.batches as Array<{ id: string }>)[0]!.id;

    for (const url of [system.auth.url, issuer().url]) {
      const verified = await callJson(system, 'GET', `${url}/admin/v1/audit/verify`, undefined, system.operatorHeaders(url));
      expect(verified.body, url).toMatchObject({ ok: true });
    }
    const settlement = await rowsOf(issuer().config.db);
    const events = settlement.filter((row) => !row.action.includes(' '));
    const aid = (rid: string) => expect.stringMatching(new RegExp(`^${rid} auth_[0-9a-z]{26}$`));
    expect(events).toContainEqual({ actor: 'system', action: 'authorization.captured', resource: aid(paid), outcome: 'captured 2400 JPY' });
    expect(events.filter((row) => row.action === 'authorization.captured' && row.resource?.startsWith(paid))).toHaveLength(1);
    expect(events).toContainEqual({ actor: 'system', action: 'authorization.refunded', resource: expect.stringMatching(new RegExp(`^${paid} auth_[0-9a-z]{26} ${refund.id}$`)), outcome: 'refunded 400 JPY' });
    expect(events).toContainEqual({ actor: 'system', action: 'authorization.voided', resource: aid(voided), outcome: 'voided' });
    expect(events).toContainEqual({ actor: 'system', action: 'authorization.expired', resource: expiring, outcome: 'expired' });
    expect(events).toContainEqual({ actor: 'system', action: 'settlement.day_closed', resource: batch, outcome: `closed ${today} 1 batches` });

    const auth = await rowsOf(system.auth.db);
    expect(auth).toContainEqual({ actor: `credential:${second.credential_id}`, action: 'credential.revoked', resource: second.credential_id, outcome: 'revoked by payer' });
    expect(auth.filter((row) => row.action === 'credential.revoked' && row.resource === wallet.wallet.credential_id)).toEqual([{ actor: 'operator', action: 'credential.revoked', resource: wallet.wallet.credential_id, outcome: 'revoked by operator' }]);
    expect(auth).toContainEqual({ actor: 'operator', action: 'key.rotated', resource: `request-signing ${String(rotated.body.kid)}`, outcome: 'rotated' });
    expect(auth).toContainEqual({ actor: 'operator', action: 'key.retired', resource: `request-signing ${previous.kid}`, outcome: 'retired' });
    expect(auth).toContainEqual({ actor: 'operator', action: 'webhook_secret.rotated', resource: system.merchant.merchantId, outcome: 'rotated, 1 previous' });
    // Ids, amounts and codes only.
    expect(findPersonalData(JSON.stringify([...settlement, ...auth]))).toEqual([]);
    expect(JSON.stringify(auth)).not.toContain('whsec_');
  });
});
