/**
 * Step 409, end of day, through the real system over HTTPS: payments captured (in full and in
 * part) and refunded are closed into settlement batches by the operator, with the merchant's fee
 * charged to fee income and the rest paid out; the report (JSON and CSV, through the merchant API
 * and the shop) adds up exactly to the payout transfer and the ledger's balances; a second close
 * changes nothing; another merchant cannot read the batch; the current day cannot be closed; the
 * schedule closes a day by itself; and `kessai settle` drives a running system. The settlement
 * clock is moved forward instead of waiting for a day to end.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { closedBatchFeed, limits, newId, sha256Base64url, type SettlementBatchView } from '@kessai/protocol';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { addDays, businessDayOf, endOfDay, readAccount } from '@kessai/settlement-server';
import { callJson, enroll, waitFor, type TestSystem } from './support/system.ts';
import { runKessaiProcess } from './support/cli.ts';
import { pollSettlementEvents } from '../apps/auth-server/src/settlement-events.ts';
import { codeOf } from './support/errors.ts';
import { approvedRequest, idempotencyKey, startWithPayer } from './support/payer.ts';

const sakuraCard = '4000056655665556';
const fujiCard = '5555555555554444';
/** The settlement clock all settlement servers read; the tests move it past the end of a day. */
let clockMs = Date.now();
const today = businessDayOf(new Date(clockMs), 'UTC');
const tomorrow = addDays(today, 1);

let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
let fujiWallet: WalletClient;
let stop = async () => {};
beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(sakuraCard, { settlement: { clock: () => new Date(clockMs), workerIntervalMs: 100, closeDelayMs: 60_000 } }));
  fujiWallet = await enroll(system, fujiCard);
});
afterAll(async () => {
  await fujiWallet?.close();
  await stop();
});

const issuer = (id: string) => system.settlements.find((s) => s.issuer.id === id)!;
const closeDay = (id: string, date?: string) => callJson(system, 'POST', `${issuer(id).url}/admin/v1/settlement-batches/close`, date === undefined ? {} : { date }, system.operatorHeaders(issuer(id).url));

async function getText(url: string, headers: Record<string, string>): Promise<{ status: number; text: string; contentType: string }> {
  const agent = new Agent({ connect: { ca: system.pki.caCertPem } });
  try {
    const response = await request(url, { method: 'GET', dispatcher: agent, headers });
    return { status: response.statusCode, text: await response.body.text(), contentType: String(response.headers['content-type'] ?? '') };
  } finally {
    await agent.close();
  }
}

async function merchantAccount(issuerId: string): Promise<string> {
  const [row] = await issuer(issuerId).config.db.query<{ account_id: string }>("select account_id from merchant_accounts where merchant_id = $1 and currency = 'JPY'", [system.merchant.merchantId]);
  return row!.account_id;
}
const posted = async (issuerId: string, accountId: string) => {
  const account = await readAccount(issuer(issuerId).config.db, accountId);
  return account.creditsPosted - account.debitsPosted;
};
const transferCount = async (issuerId: string) => (await issuer(issuerId).config.db.query<{ n: number }>('select count(*)::int4 as n from transfers'))[0]!.n;

const runCli = (args: string[]) => runKessaiProcess(args, { KESSAI_DATA_DIR: system.dataDir });


describe('settlement batches', () => {
  let batch: SettlementBatchView;
  let fujiBatch: SettlementBatchView;
  let payments: { full: string; partial: string };

  it('refuses to close the current day or a future one with settlement_day_not_over', async () => {
    for (const date of [today, tomorrow]) {
      const refused = await closeDay('sakura-bank', date);
      expect(refused).toMatchObject({ status: 409, body: { code: 'settlement_day_not_over' } });
    }
    expect(await closeDay('sakura-bank', '2026-02-30')).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
    expect((await callJson(system, 'POST', `${issuer('sakura-bank').url}/admin/v1/settlement-batches/close`, {}, {})).status).toBe(401);
  });

  it('closes the day: one batch per merchant and issuer, fees to fee income, the rest paid out to the merchant', async () => {
    // This merchant pays 3 % + JPY 5 per captured payment at sakura-bank; fuji-bank charges its default 2.5 %.
    const fee = await callJson(system, 'POST', `${issuer('sakura-bank').url}/admin/v1/fee-schedules`, { merchant_id: system.merchant.merchantId, currency: 'JPY', basis_points: 300, fixed_minor: '5' }, system.operatorHeaders(issuer('sakura-bank').url));
    expect(fee).toMatchObject({ status: 200, body: { basis_points: 300, fixed_minor: '5' } });
    const full = await approvedRequest(merchant, wallet, sakuraCard, 5_000n);
    await merchant.capture(full, {}, idempotencyKey());
    const partial = await approvedRequest(merchant, wallet, sakuraCard, 3_000n);
    await merchant.capture(partial, { amountMinor: 2_000n }, idempotencyKey());
    await merchant.refund(full, 1_500n, idempotencyKey());
    const uncaptured = await approvedRequest(merchant, wallet, sakuraCard, 700n); // held only: not settled
    const atFuji = await approvedRequest(merchant, fujiWallet, fujiCard, 1_000n);
    await merchant.capture(atFuji, {}, idempotencyKey());
    payments = { full, partial };
    expect(uncaptured).toBeTruthy();

    const account = await merchantAccount('sakura-bank');
    expect(await posted('sakura-bank', account)).toBe(5_500n);
    clockMs = endOfDay(today, 'UTC').getTime() + 1_000;
    const closed = await closeDay('sakura-bank', today);
    expect(closed.status).toBe(200);
    expect(closed.body).toMatchObject({ business_day: today, time_zone: 'UTC', already_closed: false });
    expect(closed.body.batches).toHaveLength(1);
    batch = closed.body.batches[0];
    // Fees: 5000 × 3 % + 5 = 155 and 2000 × 3 % + 5 = 65; the refund keeps its capture's fee.
    expect(batch).toMatchObject({ issuer_id: 'sakura-bank', merchant_id: system.merchant.merchantId, currency: 'JPY', business_day: today, captured_minor: '7000', refunded_minor: '1500', fees_minor: '220', net_minor: '5280', carried_in_minor: '0', payout_minor: '5280', carried_out_minor: '0', line_count: 3, fee_transfer_id: `${batch.id}.fee`, payout_transfer_id: `${batch.id}.payout` });
    // The merchant's account is emptied: the fee to fee income, the rest out of the bank.
    expect(await posted('sakura-bank', account)).toBe(0n);
    const fuji = await closeDay('fuji-bank', today);
    expect(fuji.body.batches).toHaveLength(1);
    expect(fuji.body.batches[0]).toMatchObject({ issuer_id: 'fuji-bank', captured_minor: '1000', fees_minor: '25', payout_minor: '975', fee_schedule: { basis_points: 250, fixed_minor: '0' } });
    fujiBatch = fuji.body.batches[0];
  });

  it('the broker learns of each closed batch from its issuer and tells the merchant once: settlement_batch.closed listed, delivered, streamed, resendable', async () => {
    // Another broker process asks the issuers at the same time as the running one: still one event per batch.
    await Promise.all([pollSettlementEvents({ ...system.auth.context }, new Date()), pollSettlementEvents({ ...system.auth.context }, new Date())]);
    const events = await waitFor('both batches announced', async () => {
      const page = await merchant.listEvents({ types: ['settlement_batch.closed'] }).page();
      return page.items.length >= 2 ? page.items : undefined;
    });
    // Batch ids derive from day, merchant and currency: both issuers' batches of today share one, and each is announced.
    expect(events.map((event) => event.data).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual([fujiBatch, batch].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))));
    expect(events.every((event) => event.type === 'settlement_batch.closed' && event.livemode === false)).toBe(true);
    const ids = events.map((event) => event.id);
    // Delivered to the shop, which acknowledges it and fulfils nothing.
    await waitFor('the events delivered', async () => {
      const rows = await system.auth.db.query<{ status: string }>('select status from webhook_outbox where id = any($1)', [ids]);
      return rows.length === 2 && rows.every((row) => row.status === 'delivered') ? true : undefined;
    });
    const processed = await system.shop.db.query<{ type: string }>('select type from processed_webhook_events where event_id = any($1)', [ids]);
    expect(processed.map((row) => row.type)).toEqual(['settlement_batch.closed', 'settlement_batch.closed']);
    // Asked again from the start (a lost cursor), the issuers' batches are not announced twice.
    await system.auth.db.query("update settlement_event_cursors set cursor = null, next_poll_at = now() - interval '1 second'");
    await pollSettlementEvents({ ...system.auth.context }, new Date());
    const rows = await system.auth.db.query<{ n: number }>("select count(*)::int4 as n from webhook_outbox where event_type = 'settlement_batch.closed'");
    expect(rows[0]!.n).toBe(2);
    // The issuer's feed pages by its cursors exactly: after the first batch comes the next, never the first again.
    const feedUrl = (query: string) => `${issuer('sakura-bank').url}/internal/v1/settlement-batches${query}`;
    const feed = (query: string) => system.auth.context.http.call('GET', feedUrl(query), { schema: closedBatchFeed, unavailable: 'issuer_unavailable' });
    const all = await feed('');
    expect(all.items.map((item) => item.batch)).toEqual([batch]);
    expect(all.items[0]!.payment_request_ids.sort()).toEqual([payments.full, payments.partial].sort());
    expect(await feed(`?after=${encodeURIComponent(all.items[0]!.cursor)}&limit=1`)).toEqual({ items: [], has_more: false });
    for (const bad of ['?after=1:pr_x', '?after=stb_x', `?limit=${limits.settlementEventsPageMax + 1}`, '?limit=0', '?since=1']) {
      expect(await codeOf(feed(bad)), bad).toBe('validation_failed');
    }
    // Resent like any event; streamed like any event.
    const headers = { authorization: `Bearer ${system.merchant.apiKey}`, 'idempotency-key': idempotencyKey() };
    const resent = await callJson(system, 'POST', `${system.auth.url}/v1/webhook-events/${ids[0]}/resend`, {}, headers);
    expect(resent).toMatchObject({ status: 200, body: { id: ids[0], event_type: 'settlement_batch.closed', payment_request_id: null } });
    const [before] = await system.auth.db.query<{ id: string }>("select id from webhook_outbox where merchant_id = $1 and event_type <> 'settlement_batch.closed' order by created_at desc, id desc limit 1", [system.merchant.merchantId]);
    const agent = new Agent({ connect: { ca: system.pki.caCertPem } });
    const controller = new AbortController();
    try {
      const stream = await request(`${system.auth.url}/v1/events/stream`, { dispatcher: agent, signal: controller.signal, headers: { authorization: headers.authorization, 'last-event-id': before!.id } });
      let text = '';
      for await (const chunk of stream.body) {
        text += (chunk as Buffer).toString();
        if (ids.every((id) => text.includes(`id: ${id}\nevent: settlement_batch.closed\n`))) break;
      }
      expect(text).toContain('"type":"settlement_batch.closed"');
    } finally {
      controller.abort();
      await agent.close();
    }
  });

  it('the report adds up exactly to the payout transfer and the ledger, in JSON and in CSV, through the merchant API and the shop', async () => {
    const report = await merchant.settlementReport(batch.id);
    expect(report.batch).toEqual(batch);
    expect(report.lines.map((l) => [l.kind, l.payment_request_id, l.amount_minor, l.fee_minor, l.net_minor])).toEqual([
      ['capture', payments.full, '5000', '155', '4845'],
      ['capture', payments.partial, '2000', '65', '1935'],
      ['refund', payments.full, '1500', '0', '-1500'],
    ]);
    expect(report.totals).toEqual({ captured_minor: '7000', refunded_minor: '1500', fees_minor: '220', net_minor: '5280', carried_in_minor: '0', payout_minor: '5280', carried_out_minor: '0' });

    const csv = await merchant.settlementReportCsv(batch.id);
    const rows = csv.trimEnd().split('\r\n').map((line) => line.split(','));
    const header = rows[0]!;
    const col = (name: string) => header.indexOf(name);
    const lines = rows.slice(1).filter((row) => row[0] === 'capture' || row[0] === 'refund');
    expect(lines).toHaveLength(3);
    const sum = (name: string, kind?: string) => lines.filter((row) => kind === undefined || row[0] === kind).reduce((total, row) => total + BigInt(row[col(name)]!), 0n);
    const payoutRow = rows.find((row) => row[0] === 'payout')!;
    expect(sum('net_minor')).toBe(BigInt(payoutRow[col('net_minor')]!));

    // The ledger: the payout transfer, the fee transfer, and the settlement accounts they credit.
    const db = issuer('sakura-bank').config.db;
    const transfers = await db.query<{ id: string; amount: bigint; debit_account_id: string; credit_account_id: string }>('select id, amount, debit_account_id, credit_account_id from transfers where id = any($1::text[]) order by id', [[batch.fee_transfer_id, batch.payout_transfer_id]]);
    const [feeTransfer, payoutTransfer] = transfers;
    expect(BigInt(payoutTransfer!.amount)).toBe(sum('net_minor'));
    expect(BigInt(feeTransfer!.amount)).toBe(sum('fee_minor'));
    const account = await merchantAccount('sakura-bank');
    expect([feeTransfer!.debit_account_id, payoutTransfer!.debit_account_id]).toEqual([account, account]);
    expect(await posted('sakura-bank', feeTransfer!.credit_account_id)).toBe(sum('fee_minor'));
    expect(await posted('sakura-bank', payoutTransfer!.credit_account_id)).toBe(sum('net_minor'));
    // Every capture and refund line is a transfer of exactly that amount on the merchant's account.
    for (const row of lines) {
      const [t] = await db.query<{ amount: bigint; debit_account_id: string; credit_account_id: string }>('select amount, debit_account_id, credit_account_id from transfers where id = $1', [row[col('transfer_id')]]);
      expect(BigInt(t!.amount)).toBe(BigInt(row[col('amount_minor')]!));
      expect(row[0] === 'capture' ? t!.credit_account_id : t!.debit_account_id).toBe(account);
    }
    expect(sum('amount_minor', 'capture') - sum('amount_minor', 'refund') - sum('fee_minor')).toBe(sum('net_minor'));

    // The shop's back office lists its batches at both issuers and passes the CSV through.
    const listed = await callJson(system, 'GET', `${system.shop.url}/api/settlements`, undefined, system.operatorHeaders(system.shop.url));
    expect(listed.status).toBe(200);
    expect(listed.body.batches.map((b: SettlementBatchView) => b.issuer_id).sort()).toEqual(['fuji-bank', 'sakura-bank']);
    const download = await getText(`${system.shop.url}/api/settlements/${batch.id}/report.csv`, system.operatorHeaders(system.shop.url));
    expect(download).toMatchObject({ status: 200, text: csv });
    expect(download.contentType).toMatch(/^text\/csv/);
    expect((await getText(`${system.shop.url}/api/settlements/${batch.id}/report.csv`, {})).status).toBe(401);
    expect((await merchant.listSettlementBatches().page()).items).toEqual(listed.body.batches);

    // The merchant API pages them as every list does: newest first, limit and starting_after.
    const all: SettlementBatchView[] = [];
    for await (const each of merchant.listSettlementBatches({ limit: 1 })) all.push(each);
    expect(all).toEqual(listed.body.batches);
    expect(all).toHaveLength(2);
    const headers = { authorization: `Bearer ${system.merchant.apiKey}` };
    const first = await callJson(system, 'GET', `${system.auth.url}/v1/settlement-batches?limit=1`, undefined, headers);
    expect(first.body).toEqual({ items: [all[0]], limit: 1, has_more: true });
    const second = await callJson(system, 'GET', `${system.auth.url}/v1/settlement-batches?limit=1&starting_after=${all[0]!.id}`, undefined, headers);
    expect(second.body).toMatchObject({ items: [all[1]], limit: 1, has_more: false });
    expect(new Date(all[0]!.created_at).getTime()).toBeGreaterThanOrEqual(new Date(all[1]!.created_at).getTime());
  });

  it("the operator reads any merchant's report, JSON and CSV, the same the merchant gets; without the token unauthenticated", async () => {
    const url = `${issuer('sakura-bank').url}/admin/v1/settlement-batches/${batch.id}/report`;
    const json = await callJson(system, 'GET', url, undefined, system.operatorHeaders(url));
    expect(json.status).toBe(200);
    expect(json.body).toEqual(await merchant.settlementReport(batch.id));
    const csv = await getText(`${url}?format=csv`, system.operatorHeaders(url));
    expect(csv).toMatchObject({ status: 200, text: await merchant.settlementReportCsv(batch.id) });
    const refused = await callJson(system, 'GET', url, undefined, {});
    expect([refused.status, refused.body.code]).toEqual([401, 'unauthenticated']);
    const unknown = await callJson(system, 'GET', `${issuer('sakura-bank').url}/admin/v1/settlement-batches/stb_${'0'.repeat(26)}/report`, undefined, system.operatorHeaders(issuer('sakura-bank').url));
    expect([unknown.status, unknown.body.code]).toEqual([404, 'settlement_batch_not_found']);
  });

  it('closing the same day again returns the same batches, makes no transfer and leaves every balance as it was', async () => {
    const account = await merchantAccount('sakura-bank');
    const before = { transfers: await transferCount('sakura-bank'), merchant: await readAccount(issuer('sakura-bank').config.db, account) };
    clockMs += 3_600_000;
    const again = await closeDay('sakura-bank', today);
    expect(again.body).toMatchObject({ business_day: today, already_closed: true });
    expect(again.body.batches).toEqual([batch]);
    expect(await transferCount('sakura-bank')).toBe(before.transfers);
    expect(await readAccount(issuer('sakura-bank').config.db, account)).toEqual(before.merchant);
  });

  it('another merchant sees none of these batches: settlement_batch_not_found', async () => {
    const apiKey = `sk_test_${randomBytes(24).toString('base64url')}`;
    await system.auth.db.query('insert into merchants (id, name, api_key_hash, webhook_url, webhook_secret) values ($1, $2, $3, null, $4)', [newId('mer'), 'Other shop', await sha256Base64url(apiKey), `whsec_${randomBytes(24).toString('base64url')}`]);
    const other = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey, caCertPem: system.pki.caCertPem });
    try {
      expect((await other.listSettlementBatches().page()).items).toEqual([]);
      const cursor = await callJson(system, 'GET', `${system.auth.url}/v1/settlement-batches?starting_after=${batch.id}`, undefined, { authorization: `Bearer ${apiKey}` });
      expect([cursor.status, cursor.body.code]).toEqual([404, 'starting_after_not_found']);
      expect(await codeOf(other.settlementReport(batch.id))).toBe('settlement_batch_not_found');
      expect(await codeOf(other.settlementReportCsv(batch.id))).toBe('settlement_batch_not_found');
    } finally {
      await other.close();
    }
    const unknown = `stb_${'0'.repeat(26)}`;
    expect(await codeOf(merchant.settlementReport(unknown))).toBe('settlement_batch_not_found');
    const viaShop = await callJson(system, 'GET', `${system.shop.url}/api/settlements/${unknown}/report.json`, undefined, system.operatorHeaders(system.shop.url));
    expect(viaShop).toMatchObject({ status: 404, body: { code: 'settlement_batch_not_found' } });
  });

  it('the schedule closes the previous day by itself once the cut-off has passed', async () => {
    const late = await approvedRequest(merchant, wallet, sakuraCard, 800n);
    await merchant.capture(late, {}, idempotencyKey());
    // Tomorrow ends; one minute later (closeDelayMs) the worker closes it, with this capture.
    clockMs = endOfDay(tomorrow, 'UTC').getTime() + 61_000;
    const scheduled = await waitFor('the schedule to close tomorrow', async () => {
      const list = await callJson(system, 'GET', `${issuer('sakura-bank').url}/admin/v1/settlement-batches?date=${tomorrow}`, undefined, system.operatorHeaders(issuer('sakura-bank').url));
      return list.body.batches.length > 0 ? (list.body.batches as SettlementBatchView[]) : undefined;
    });
    expect(scheduled).toHaveLength(1);
    expect(scheduled[0]).toMatchObject({ business_day: tomorrow, captured_minor: '800', fees_minor: '29', payout_minor: '771', line_count: 1 });
    const report = await merchant.settlementReport(scheduled[0]!.id);
    expect(report.lines.map((l) => l.payment_request_id)).toEqual([late]);
  });

  it('kessai settle close and list drive the running servers, and a second close says the day was already closed', async () => {
    const url = issuer('sakura-bank').url;
    const closed = await runCli(['settle', 'close', '--date', today, '--issuer', 'sakura-bank', '--url', url, '--data-dir', system.dataDir, '--json']);
    expect(closed.code, closed.stderr).toBe(0);
    const [answer] = JSON.parse(closed.stdout) as Array<{ issuer: string; already_closed: boolean; batches: SettlementBatchView[] }>;
    expect(answer).toMatchObject({ issuer: 'sakura-bank', already_closed: true });
    expect(answer!.batches.map((b) => b.id)).toEqual([batch.id]);
    const listed = await runCli(['settle', 'list', '--issuer', 'sakura-bank', '--url', url, '--data-dir', system.dataDir]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(batch.id);
    expect(listed.stdout).toContain('payout 5280');
    // The day after tomorrow has not ended on the settlement clock.
    const refused = await runCli(['settle', 'close', '--date', addDays(tomorrow, 1), '--issuer', 'sakura-bank', '--url', url, '--data-dir', system.dataDir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('settlement_day_not_over');
    const elsewhere = await runCli(['settle', 'list', '--issuer', 'sakura-bank', '--url', url, '--data-dir', path.join(system.dataDir, 'no-such-folder')]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain('pass the --data-dir that kessai start uses');
  }, 120_000);
});
