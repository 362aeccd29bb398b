/**
 * The settlement console's read API (`/admin/v1/...`, operator token only): ledger accounts with
 * their balances, recent authorizations, transfers and refunds, and captured volume per hour or
 * day. Every list is bounded by limits.listPageMax. Nothing here reads the `cards` table: an
 * account is shown by its id and kind, never by the card number, holder name or expiry behind it.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { limits, signedAmountString } from '@kessai/protocol';
import { requireOperator, consolePage, consolePageOf, decimalString, isoOrNull } from '@kessai/service';
import type { SettlementConfig } from './config.ts';

const amount = signedAmountString;
const timestamp = z.string();
const listQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(limits.listPageMax).default(limits.listPageMax) });

const accountView = z.strictObject({
  id: z.string(),
  /** cardholder, merchant, issuer_funding, or a settlement account (fee_income, merchant_payout). */
  kind: z.string(),
  currency: z.string(),
  /** The merchant an account of kind `merchant` belongs to; null for the others. */
  merchant_id: z.string().nullable(),
  debits_pending: amount,
  debits_posted: amount,
  credits_pending: amount,
  credits_posted: amount,
  /** credits_posted − debits_posted − debits_pending (docs/ledger.md); negative for issuer funding. */
  available: amount,
  created_at: timestamp,
});

const authorizationView = z.strictObject({
  id: z.string(),
  request_id: z.string(),
  merchant_id: z.string(),
  account_id: z.string().nullable(),
  currency: z.string(),
  amount: amount,
  decision: z.enum(['approved', 'declined']),
  decline_code: z.string().nullable(),
  status: z.string(),
  captured_amount: amount,
  refunded_amount: amount,
  hold_state: z.string().nullable(),
  hold_expires_at: timestamp.nullable(),
  created_at: timestamp,
});

const transferKind = z.enum(['single', 'pending', 'post_pending', 'void_pending']);
const transferView = z.strictObject({
  id: z.string(),
  kind: transferKind,
  debit_account_id: z.string(),
  credit_account_id: z.string(),
  currency: z.string(),
  amount: amount,
  pending_id: z.string().nullable(),
  state: z.string().nullable(),
  expires_at: timestamp.nullable(),
  created_at: timestamp,
});

const refundView = z.strictObject({
  id: z.string(),
  authorization_id: z.string(),
  request_id: z.string(),
  merchant_id: z.string(),
  currency: z.string(),
  amount: amount,
  transfer_id: z.string(),
  created_at: timestamp,
});

const volumeBucket = z.strictObject({ bucket_start: timestamp, currency: z.string(), captured: amount, captures: z.number().int() });

// The consoles' shared list helpers (packages/service/src/console-pages.ts).
const page = consolePage;
const pageOf = consolePageOf;
const iso = isoOrNull;
const decimal = decimalString;

interface AccountRow {
  id: string;
  kind: string;
  currency: string;
  merchant_id: string | null;
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
  created_at: Date;
}

interface AuthorizationRow {
  id: string;
  request_id: string;
  merchant_id: string;
  account_id: string | null;
  currency: string;
  amount: bigint;
  decision: 'approved' | 'declined';
  decline_code: string | null;
  status: string;
  captured_amount: bigint;
  refunded_amount: bigint;
  hold_state: string | null;
  hold_expires_at: Date | null;
  created_at: Date;
}

interface TransferRow {
  id: string;
  kind: z.infer<typeof transferKind>;
  debit_account_id: string;
  credit_account_id: string;
  currency: string;
  amount: bigint;
  pending_id: string | null;
  state: string | null;
  expires_at: Date | null;
  created_at: Date;
}

interface RefundRow {
  id: string;
  authorization_id: string;
  request_id: string;
  merchant_id: string;
  currency: string;
  amount: bigint;
  transfer_id: string;
  created_at: Date;
}

/** An account row as the console shows it: `available` is what docs/ledger.md defines. */
function accountOf(row: AccountRow) {
  return {
    id: row.id,
    kind: row.kind,
    currency: row.currency,
    merchant_id: row.merchant_id,
    debits_pending: decimal(row.debits_pending),
    debits_posted: decimal(row.debits_posted),
    credits_pending: decimal(row.credits_pending),
    credits_posted: decimal(row.credits_posted),
    available: (BigInt(row.credits_posted) - BigInt(row.debits_posted) - BigInt(row.debits_pending)).toString(),
    created_at: iso(row.created_at)!,
  };
}

/** An authorization row with its hold's state and expiry. */
function authorizationOf(row: AuthorizationRow) {
  return {
    id: row.id,
    request_id: row.request_id,
    merchant_id: row.merchant_id,
    account_id: row.account_id,
    currency: row.currency,
    amount: decimal(row.amount),
    decision: row.decision,
    decline_code: row.decline_code,
    status: row.status,
    captured_amount: decimal(row.captured_amount),
    refunded_amount: decimal(row.refunded_amount),
    hold_state: row.hold_state,
    hold_expires_at: iso(row.hold_expires_at),
    created_at: iso(row.created_at)!,
  };
}

/** A transfer row. */
function transferOf(row: TransferRow) {
  return {
    id: row.id,
    kind: row.kind,
    debit_account_id: row.debit_account_id,
    credit_account_id: row.credit_account_id,
    currency: row.currency,
    amount: decimal(row.amount),
    pending_id: row.pending_id,
    state: row.state,
    expires_at: iso(row.expires_at),
    created_at: iso(row.created_at)!,
  };
}

/** A refund row with its authorization's request, merchant and currency. */
function refundOf(row: RefundRow) {
  return {
    id: row.id,
    authorization_id: row.authorization_id,
    request_id: row.request_id,
    merchant_id: row.merchant_id,
    currency: row.currency,
    amount: decimal(row.amount),
    transfer_id: row.transfer_id,
    created_at: iso(row.created_at)!,
  };
}

/** Registered by app.ts only when the config has an operator token (requireOperator refuses a missing one). */
export async function adminConsoleRoutes(plugin: FastifyInstance, config: SettlementConfig): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(config.operatorToken ?? ''));
  const db = config.db;

  app.get('/admin/v1/accounts', { schema: { summary: 'List ledger accounts (operator console)', operationId: 'adminListAccounts', querystring: listQuery, response: { 200: page(accountView) } } }, async (request) => {
    const { limit } = request.query;
    // Explicit columns from ledger_accounts and merchant_accounts only: the cards table is never joined.
    const rows = await db.query<AccountRow>(
      `select a.id, a.kind, a.currency, m.merchant_id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted, a.created_at
         from ledger_accounts a left join merchant_accounts m on m.account_id = a.id
        order by a.created_at desc, a.id limit $1`,
      [limit + 1],
    );
    return pageOf(rows, limit, accountOf);
  });

  app.get('/admin/v1/authorizations', { schema: { summary: 'List authorizations (operator console)', operationId: 'adminListAuthorizations', querystring: listQuery, response: { 200: page(authorizationView) } } }, async (request) => {
    const { limit } = request.query;
    const rows = await db.query<AuthorizationRow>(
      `select a.id, a.request_id, a.merchant_id, a.account_id, a.currency, a.amount, a.decision, a.decline_code, a.status,
              a.captured_amount, a.refunded_amount, t.state as hold_state, t.expires_at as hold_expires_at, a.created_at
         from authorizations a left join transfers t on t.id = a.hold_transfer_id
        order by a.created_at desc, a.id desc limit $1`,
      [limit + 1],
    );
    return pageOf(rows, limit, authorizationOf);
  });

  const transferQuery = listQuery.extend({ kind: transferKind.optional() });
  app.get('/admin/v1/transfers', { schema: { summary: 'List ledger transfers (operator console)', operationId: 'adminListTransfers', querystring: transferQuery, response: { 200: page(transferView) } } }, async (request) => {
    const { limit, kind } = request.query;
    const rows = await db.query<TransferRow>(
      `select id, kind, debit_account_id, credit_account_id, currency, amount, pending_id, state, expires_at, created_at
         from transfers where $2::text is null or kind = $2
        order by created_at desc, id desc limit $1`,
      [limit + 1, kind ?? null],
    );
    return pageOf(rows, limit, transferOf);
  });

  app.get('/admin/v1/refunds', { schema: { summary: 'List refunds (operator console)', operationId: 'adminListRefunds', querystring: listQuery, response: { 200: page(refundView) } } }, async (request) => {
    const { limit } = request.query;
    const rows = await db.query<RefundRow>(
      `select r.id, r.authorization_id, a.request_id, a.merchant_id, a.currency, r.amount, r.transfer_id, r.created_at
         from refunds r join authorizations a on a.id = r.authorization_id
        order by r.created_at desc, r.id desc limit $1`,
      [limit + 1],
    );
    return pageOf(rows, limit, refundOf);
  });

  // Captured volume: the posted amounts of captures (post_pending transfers), summed in SQL per
  // UTC hour or day and currency; the latest listPageMax buckets, oldest first.
  const volumeQuery = z.strictObject({ bucket: z.enum(['hour', 'day']).default('hour') });
  const volumeResponse = z.strictObject({ bucket: z.enum(['hour', 'day']), limit: z.number().int(), buckets: z.array(volumeBucket) });
  app.get('/admin/v1/volume', { schema: { summary: 'Captured volume per hour or day', operationId: 'getCapturedVolume', querystring: volumeQuery, response: { 200: volumeResponse } } }, async (request) =>
    capturedVolume(db, request.query.bucket),
  );
}

/** The latest listPageMax buckets of captured volume per currency, oldest first. */
async function capturedVolume(db: SettlementConfig['db'], bucket: 'hour' | 'day') {
  const rows = await db.query<{ bucket_start: Date; currency: string; captured: bigint; captures: bigint }>(
    `select * from (
       select date_trunc($1, created_at at time zone 'UTC') at time zone 'UTC' as bucket_start, currency,
              sum(amount)::int8 as captured, count(*)::int8 as captures
         from transfers where kind = 'post_pending'
        group by 1, 2 order by 1 desc, 2 limit $2) latest
      order by bucket_start, currency`,
    [bucket, limits.listPageMax],
  );
  const bucketOf = (row: (typeof rows)[number]) => ({
    bucket_start: iso(row.bucket_start)!,
    currency: row.currency,
    captured: decimal(row.captured),
    captures: Number(row.captures),
  });
  return { bucket, limit: limits.listPageMax, buckets: rows.map(bucketOf) };
}
