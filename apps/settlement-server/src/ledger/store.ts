/**
 * The SQL store beside the pure rules: applies a batch of transfers inside the caller's
 * transaction. It locks the transfers the batch names, then the accounts, each in id order
 * (SELECT … FOR UPDATE), runs the rules over an in-memory copy, and writes the changes back, so
 * every committed state has debits = credits per currency. Two batches inserting the same new id
 * at once: one fails with a unique violation (23505) and is retried by its caller (group-commit.ts).
 */
import { newId, type Currency } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import {
  applyTransfer,
  expirePending,
  type Account,
  type LedgerState,
  type PendingState,
  type Transfer,
  type TransferInput,
  type TransferKind,
  type TransferResult,
} from './rules.ts';

export type AccountKind = 'cardholder' | 'merchant' | 'issuer_funding' | 'credit_line';

interface AccountRow {
  id: string;
  currency: string;
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
  debits_must_not_exceed_credits: boolean;
  credits_must_not_exceed_debits: boolean;
}

interface TransferRow {
  id: string;
  kind: TransferKind;
  debit_account_id: string;
  credit_account_id: string;
  amount: bigint;
  currency: string;
  pending_id: string | null;
  timeout_seconds: number;
  state: PendingState | null;
  expires_at: Date | null;
}

const toAccount = (row: AccountRow): Account => ({
  id: row.id,
  currency: row.currency,
  debitsPending: BigInt(row.debits_pending),
  debitsPosted: BigInt(row.debits_posted),
  creditsPending: BigInt(row.credits_pending),
  creditsPosted: BigInt(row.credits_posted),
  debitsMustNotExceedCredits: row.debits_must_not_exceed_credits,
  creditsMustNotExceedDebits: row.credits_must_not_exceed_debits,
});

const toTransfer = (row: TransferRow): Transfer => ({
  id: row.id,
  kind: row.kind,
  debitAccountId: row.debit_account_id,
  creditAccountId: row.credit_account_id,
  amount: BigInt(row.amount),
  currency: row.currency,
  pendingId: row.pending_id,
  timeoutSeconds: Number(row.timeout_seconds),
  state: row.state,
  expiresAtMs: row.expires_at ? new Date(row.expires_at).getTime() : null,
});

export async function createAccount(
  tx: Queryable,
  kind: AccountKind,
  currency: Currency,
  flags: { debitsMustNotExceedCredits?: boolean; creditsMustNotExceedDebits?: boolean } = {},
): Promise<string> {
  const id = newId('acct');
  await tx.query(
    'insert into ledger_accounts (id, kind, currency, debits_must_not_exceed_credits, credits_must_not_exceed_debits) values ($1, $2, $3, $4, $5)',
    [id, kind, currency, flags.debitsMustNotExceedCredits ?? false, flags.creditsMustNotExceedDebits ?? false],
  );
  return id;
}

export async function readAccount(db: Queryable, id: string): Promise<Account> {
  const [row] = await db.query<AccountRow>('select * from ledger_accounts where id = $1', [id]);
  if (!row) throw new Error(`ledger account ${id} missing`);
  return toAccount(row);
}

export async function readTransfer(db: Queryable, id: string): Promise<Transfer | undefined> {
  const [row] = await db.query<TransferRow>('select * from transfers where id = $1', [id]);
  return row ? toTransfer(row) : undefined;
}

/**
 * One statement's worth of SQL with its parameters, numbered from $1: several of them are joined
 * into one statement (`joinWrites`), each a WITH part, so a ledger job's writes cost one round trip.
 */
export interface SqlPart {
  sql: string;
  params: unknown[];
}

/** `part` with its placeholders moved up by `offset` ($1 → $(1 + offset)). */
export function shiftParams(sql: string, offset: number): string {
  return sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + offset}`);
}

/**
 * Data-modifying statements (insert, update, delete; no RETURNING needed) as one statement: each
 * a WITH part, all run against the statement's snapshot, so no two of them may touch the same row.
 * Nothing to write: no statement.
 */
export async function runWrites(tx: Queryable, parts: readonly SqlPart[]): Promise<void> {
  if (parts.length === 0) return;
  if (parts.length === 1) {
    await tx.query(parts[0]!.sql, parts[0]!.params);
    return;
  }
  const params: unknown[] = [];
  const ctes = parts.map((part, i) => {
    const sql = shiftParams(part.sql, params.length);
    params.push(...part.params);
    return `w${i} as (${sql})`;
  });
  await tx.query(`with ${ctes.join(', ')} select 1`, params);
}

/** The columns of a ledger load's rows: a transfer's (k = 't') or an account's (k = 'a'), the other's null. */
export type LoadedRow = { k: 't' | 'a' | 'x'; info?: unknown } & Partial<TransferRow> & Partial<AccountRow>;

const transferColumns =
  'id, currency, kind, debit_account_id, credit_account_id, amount, pending_id, timeout_seconds, state, expires_at';
const accountColumns =
  'debits_pending, debits_posted, credits_pending, credits_posted, debits_must_not_exceed_credits, credits_must_not_exceed_debits';
const noTransfer =
  'null::text, null::text, null::text, null::int8, null::text, null::int4, null::text, null::timestamptz';
const noAccount = 'null::int8, null::int8, null::int8, null::int8, null::bool, null::bool';
/** noAccount named, for the first branch (which names the union's columns). */
const noAccountNamed = accountColumns
  .split(', ')
  .map((column, i) => `${noAccount.split(', ')[i]} as ${column}`)
  .join(', ');

/**
 * The WITH parts and row query of a ledger load, for a statement that may do more (authorize.ts):
 * locks the transfers `transferIds` names, then the accounts `accountIds` names and those the
 * transfers name, each in id order, and returns their rows (k 't' and 'a'). `transferIds` and
 * `accountIds` are SQL expressions of type text[]: placeholders of the caller's statement, or
 * subqueries of its other parts. `info`, a json expression of the caller's, adds one row (k 'x',
 * ledger columns null) whose `info` column holds it.
 */
export function ledgerLoadSql(transferIds: string, accountIds: string, info?: string): { ctes: string; rows: string } {
  const ctes = `lt as materialized (select * from transfers where id = any(${transferIds}) order by id for update),
    la as materialized (select * from ledger_accounts
      where id = any(${accountIds})
         or id in (select debit_account_id from lt) or id in (select credit_account_id from lt)
      order by id for update)`;
  const none = info === undefined ? '' : ', null::json';
  const infoNamed = info === undefined ? '' : ', null::json as info';
  const rows = `select 't' as k, ${transferColumns}, ${noAccountNamed}${infoNamed} from lt
    union all select 'a', id, currency, ${noTransfer}, ${accountColumns}${none} from la${
      info === undefined
        ? ''
        : `
    union all select 'x', null::text, null::text, ${noTransfer}, ${noAccount}, ${info}`
    }`;
  return { ctes, rows };
}

/** What a ledger load returned, as the rules' state (and a copy to tell the changes by). */
export function loadedState(rows: readonly LoadedRow[]): { state: LedgerState; before: LedgerState } {
  const transfers = new Map(
    rows.filter((row) => row.k === 't').map((row) => [row.id!, toTransfer(row as TransferRow)]),
  );
  const accounts = new Map(rows.filter((row) => row.k === 'a').map((row) => [row.id!, toAccount(row as AccountRow)]));
  return { state: { accounts, transfers }, before: { accounts: new Map(accounts), transfers: new Map(transfers) } };
}

/** Loads and locks (transfers first, then accounts, each in id order) what a batch touches: one statement. */
async function load(
  tx: Queryable,
  transferIds: string[],
  accountIds: string[],
): Promise<{ state: LedgerState; before: LedgerState }> {
  const { ctes, rows } = ledgerLoadSql('$1::text[]', '$2::text[]');
  return loadedState(
    await tx.query<LoadedRow>(`with ${ctes} ${rows}`, [
      [...new Set(transferIds)].sort(),
      [...new Set(accountIds)].sort(),
    ]),
  );
}

/**
 * What the rules changed, as writes (runWrites): new transfers, pending transfers' new states,
 * account balances — one part each, however many rows. created_at is the database transaction's
 * start (now()), so one batch's transfers share it.
 */
export function ledgerWrites(state: LedgerState, before: LedgerState): SqlPart[] {
  const parts: SqlPart[] = [];
  const created = [...state.transfers.values()].filter((t) => !before.transfers.has(t.id));
  if (created.length > 0) {
    parts.push({
      sql: `insert into transfers (id, kind, debit_account_id, credit_account_id, amount, currency, pending_id, timeout_seconds, state, expires_at)
       select id, kind, debit, credit, amount, currency, pending_id, timeout, state, expires_at
       from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[], $8::int4[], $9::text[], $10::timestamptz[])
         as x (id, kind, debit, credit, amount, currency, pending_id, timeout, state, expires_at)`,
      params: [
        created.map((t) => t.id),
        created.map((t) => t.kind),
        created.map((t) => t.debitAccountId),
        created.map((t) => t.creditAccountId),
        created.map((t) => t.amount.toString()),
        created.map((t) => t.currency),
        created.map((t) => t.pendingId),
        created.map((t) => t.timeoutSeconds),
        created.map((t) => t.state),
        created.map((t) => (t.expiresAtMs === null ? null : new Date(t.expiresAtMs).toISOString())),
      ],
    });
  }
  const resolved = [...state.transfers.values()].filter((t) => {
    const old = before.transfers.get(t.id);
    return old !== undefined && old.state !== t.state;
  });
  if (resolved.length > 0) {
    parts.push({
      sql: 'update transfers set state = x.state from unnest($1::text[], $2::text[]) as x (id, state) where transfers.id = x.id',
      params: [resolved.map((t) => t.id), resolved.map((t) => t.state)],
    });
  }
  const changed = [...state.accounts.values()].filter((a) => before.accounts.get(a.id) !== a);
  if (changed.length > 0) {
    parts.push({
      sql: `update ledger_accounts set debits_pending = x.dp, debits_posted = x.dpo, credits_pending = x.cp, credits_posted = x.cpo
       from unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[]) as x (id, dp, dpo, cp, cpo) where ledger_accounts.id = x.id`,
      params: [
        changed.map((a) => a.id),
        changed.map((a) => a.debitsPending.toString()),
        changed.map((a) => a.debitsPosted.toString()),
        changed.map((a) => a.creditsPending.toString()),
        changed.map((a) => a.creditsPosted.toString()),
      ],
    });
  }
  return parts;
}

/** Writes what the rules changed (ledgerWrites) and `extra` writes of the caller's, in one statement. */
async function store(
  tx: Queryable,
  state: LedgerState,
  before: LedgerState,
  extra: readonly SqlPart[] = [],
): Promise<void> {
  await runWrites(tx, [...ledgerWrites(state, before), ...extra]);
}

/**
 * Creates a batch of transfers, in order, inside the caller's transaction: one result per input
 * (a later transfer sees the effects of the earlier ones). `now` stamps them and decides expiry.
 */
export async function createTransfers(
  tx: Queryable,
  batch: readonly TransferInput[],
  now: Date,
): Promise<TransferResult[]> {
  const nowMs = now.getTime();
  return createTransfersEach(
    tx,
    batch.map((transfer) => ({ transfer, nowMs })),
  );
}

/**
 * createTransfers where each transfer has its own `now` (ms): what group commit uses to merge
 * submissions made at different moments into one round of locks and writes. Each transfer is
 * judged exactly as if it had been created alone at its own `now`, after the ones before it.
 */
export async function createTransfersEach(
  tx: Queryable,
  items: ReadonlyArray<{ transfer: TransferInput; nowMs: number }>,
): Promise<TransferResult[]> {
  if (items.length === 0) return [];
  const transferIds = items.flatMap(({ transfer: t }) => (t.pendingId ? [t.id, t.pendingId] : [t.id]));
  const accountIds = items.flatMap(({ transfer: t }) =>
    [t.debitAccountId, t.creditAccountId].filter((id): id is string => id !== undefined),
  );
  const { state, before } = await load(tx, transferIds, accountIds);
  const results = items.map(({ transfer, nowMs }) => applyTransfer(state, transfer, nowMs));
  await store(tx, state, before);
  return results;
}

/** The expiry pass: releases up to `limit` pending transfers whose timeout has passed. Returns their ids. */
export async function expirePendingTransfers(tx: Queryable, now: Date, limit: number): Promise<string[]> {
  const due = await tx.query<{ id: string }>(
    "select id from transfers where state = 'pending' and expires_at <= $1 order by id limit $2",
    [now, limit],
  );
  if (due.length === 0) return [];
  const { state, before } = await load(
    tx,
    due.map((row) => row.id),
    [],
  );
  const nowMs = now.getTime();
  const expired = due.map((row) => row.id).filter((id) => expirePending(state, id, nowMs));
  await store(tx, state, before);
  return expired;
}

/** Sums of debits and credits, pending and posted, per currency over all accounts: the invariant is debits = credits. */
interface LedgerTotal {
  currency: string;
  debits_pending: bigint;
  credits_pending: bigint;
  debits_posted: bigint;
  credits_posted: bigint;
}

/**
 * Per currency, each column summed over every account: numeric in SQL, since a sum over many accounts may pass 64
 * bits.
 */
export async function ledgerTotals(db: Queryable): Promise<LedgerTotal[]> {
  const rows = await db.query<Record<keyof LedgerTotal, string>>(
    `select currency, sum(debits_pending)::text as debits_pending, sum(credits_pending)::text as credits_pending,
            sum(debits_posted)::text as debits_posted, sum(credits_posted)::text as credits_posted
     from ledger_accounts group by currency order by currency`,
  );
  return rows.map((r) => ({
    currency: r.currency,
    debits_pending: BigInt(r.debits_pending),
    credits_pending: BigInt(r.credits_pending),
    debits_posted: BigInt(r.debits_posted),
    credits_posted: BigInt(r.credits_posted),
  }));
}
