/**
 * The append-only audit log every Kessai server keeps in its own database: who (actor), what
 * (action: a route pattern or a domain event), when, outcome, origin (source address) and
 * resource (Kessai ids only), each row hash-chained to the one before it, so an edit, a deletion or
 * a reordering is found by verifyAuditChain (`GET /admin/v1/audit/verify`, `kessai audit verify`).
 * It holds no personal data: actors and resources are ids, actions are route patterns, never URLs.
 *
 * Limits:
 * - hash = SHA-256 over the JSON array [seq, at (ISO 8601), actor, action, resource, outcome,
 *   origin, prev_hash]; the first row's prev_hash is 64 zeros. Appends take an advisory lock, so
 *   the chain stays one line under concurrency and across processes sharing one PostgreSQL.
 * - A trigger refuses UPDATE, DELETE and TRUNCATE. Someone who can drop the trigger can still
 *   rewrite the whole chain from the edited row on, or cut its tail: keep the head (seq and hash,
 *   printed by verify) somewhere they cannot write to detect that.
 * - Rows are written in batches after the response is sent, auditBatchDelayMs after the first of
 *   them; a crash can lose the batch not yet written.
 */
import { peerCertificateOf } from './peer-certificate.ts';
import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { isErrorCode, limits } from '@kessai/protocol';
import { logPassFailure } from './db-faults.ts';
import { sqlState, type Db, type Queryable } from './db.ts';
import type { Logger } from './logger.ts';
import { requireOperator } from './operator.ts';
import { auditActorOf } from './audit-actor.ts';
import type { KessaiApp } from './server.ts';

/** The audit table, its append-only triggers, applied by every server at start (idempotent). */
export const auditLogSql = `
CREATE TABLE IF NOT EXISTS audit_log (
  seq bigint PRIMARY KEY CHECK (seq > 0),
  at timestamptz NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  resource text,
  outcome text NOT NULL,
  origin text,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE OR REPLACE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
`;

const lockSql = "SELECT pg_advisory_xact_lock(hashtext('kessai.audit_log'))";
export const auditGenesisHash = '0'.repeat(64);

/** Creates the table and (re)arms its triggers; serialized across processes. */
export async function ensureAuditLog(db: Db): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(lockSql);
    await tx.exec(auditLogSql);
  });
}

export interface AuditEntry {
  /** `merchant:mer_…`, `credential:cred_…`, `operator`, `peer:<certificate CN>`, `anonymous`, `system`. */
  actor: string;
  /** `POST /v1/payment-requests/:id/capture`, or a domain event such as `authorization.decided`. */
  action: string;
  /** Kessai ids the action is about, space-separated. */
  resource?: string | null;
  /** A status code and error code (`422 amount_mismatch`), or a domain outcome (`approved`). */
  outcome: string;
  /** The source address. */
  origin?: string | null;
  at?: Date;
}

export interface AuditRow {
  seq: bigint;
  at: Date;
  actor: string;
  action: string;
  resource: string | null;
  outcome: string;
  origin: string | null;
  prev_hash: string;
  hash: string;
}

export function auditRowHash(row: Omit<AuditRow, 'hash'>): string {
  const canonical = JSON.stringify([row.seq.toString(), row.at.toISOString(), row.actor, row.action, row.resource, row.outcome, row.origin, row.prev_hash]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

interface ChainHead {
  seq: bigint;
  hash: string;
}

/** The chain head each database handle wrote last: the next append starts from it without reading it. */
const lastHeads = new WeakMap<Db, ChainHead>();

/**
 * Appends entries in order after the chain's current head. Usually one statement: an insert after
 * the head this process wrote last, which inserts nothing unless that row is still the head (its
 * seq and hash present, the next seq free: the primary key refuses a second writer's same seq, so
 * two processes cannot fork the chain), under the chain's lock like every append. When it inserts nothing or collides (another process
 * appended, a restored database), the entries are appended the locked way: one transaction that
 * takes the chain's lock and reads the head (appendAuditEntriesIn).
 */
export async function appendAuditEntries(db: Db, entries: readonly AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const head = lastHeads.get(db);
  lastHeads.delete(db);
  if (head) {
    const built = auditInsert(entries, head);
    // The chain's lock, held to the end of this one-statement transaction: a locked append (below,
    // or a day close) never reads the head while this insert is uncommitted.
    const locked = "WITH l AS (SELECT pg_advisory_xact_lock(hashtext('kessai.audit_log')))";
    const guard = 'WHERE EXISTS (SELECT 1 FROM audit_log WHERE seq = $1 AND hash = $2)';
    const rows = `SELECT v.* FROM (VALUES ${built.tuples.join(', ')}) AS v CROSS JOIN l ${guard}`;
    const sql = `${locked} INSERT INTO audit_log (seq, at, actor, action, resource, outcome, origin, prev_hash, hash) ${rows} RETURNING seq`;
    const inserted = await db.query(sql, [head.seq, head.hash, ...built.values]).catch((err: unknown) => {
      if (sqlState(err) === '23505') return []; // another writer took the next seq: append the locked way
      throw err;
    });
    if (inserted.length === entries.length) {
      lastHeads.set(db, built.last);
      return;
    }
  }
  lastHeads.set(db, await db.transaction((tx) => appendAuditEntriesIn(tx, entries)));
}

/** The rows after `head`, hashed in order: placeholders from $3 on (typed, for INSERT … SELECT), their values, the new head. */
function auditInsert(entries: readonly AuditEntry[], head: ChainHead): { tuples: string[]; values: unknown[]; last: ChainHead } {
  let seq = head.seq;
  let prev = head.hash;
  const types = ['bigint', 'timestamptz', 'text', 'text', 'text', 'text', 'text', 'text', 'text'];
  const values: unknown[] = [];
  const tuples: string[] = [];
  for (const entry of entries) {
    seq += 1n;
    const row = { seq, at: entry.at ?? new Date(), actor: entry.actor, action: entry.action, resource: entry.resource ?? null, outcome: entry.outcome, origin: entry.origin ?? null, prev_hash: prev };
    prev = auditRowHash(row);
    const base = values.length + 3;
    tuples.push(`(${types.map((type, i) => `$${base + i}::${type}`).join(', ')})`);
    values.push(row.seq, row.at, row.actor, row.action, row.resource, row.outcome, row.origin, row.prev_hash, prev);
  }
  return { tuples, values, last: { seq, hash: prev } };
}

/**
 * Appends entries inside the caller's transaction, so they commit or roll back with the change they
 * record (a settlement day close). Takes the chain's lock until that transaction ends. Returns the
 * new head.
 */
export async function appendAuditEntriesIn(tx: Queryable, entries: readonly AuditEntry[]): Promise<ChainHead> {
  await tx.query(lockSql);
  const [head] = await tx.query<ChainHead>('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
  const from = { seq: head?.seq ?? 0n, hash: head?.hash ?? auditGenesisHash };
  if (entries.length === 0) return from;
  const built = auditInsert(entries, from);
  // $1 and $2 are not used by this statement: the row placeholders are numbered from $3.
  const renumbered = built.tuples.map((t) => t.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) - 2}`));
  await tx.query(`INSERT INTO audit_log (seq, at, actor, action, resource, outcome, origin, prev_hash, hash) VALUES ${renumbered.join(', ')}`, built.values);
  return built.last;
}

export type AuditVerification =
  | { ok: true; rows: number; headSeq: bigint; headHash: string }
  | { ok: false; rows: number; brokenAt: bigint; reason: 'missing' | 'prev_hash' | 'hash' };

/**
 * Walks the chain from seq 1 and returns the first broken seq: a missing row (a gap), a row whose
 * prev_hash is not its predecessor's hash (reordered or inserted), or one whose content no longer
 * matches its hash (edited).
 */
export async function verifyAuditChain(db: Queryable): Promise<AuditVerification> {
  let expected = 1n;
  let prev = auditGenesisHash;
  let rows = 0;
  for (;;) {
    const page = await db.query<AuditRow>('SELECT seq, at, actor, action, resource, outcome, origin, prev_hash, hash FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2', [expected, limits.auditVerifyPageMax]);
    for (const row of page) {
      if (row.seq !== expected) return { ok: false, rows, brokenAt: expected, reason: 'missing' };
      if (row.prev_hash !== prev) return { ok: false, rows, brokenAt: row.seq, reason: 'prev_hash' };
      if (auditRowHash(row) !== row.hash) return { ok: false, rows, brokenAt: row.seq, reason: 'hash' };
      prev = row.hash;
      expected += 1n;
      rows += 1;
    }
    if (page.length < limits.auditVerifyPageMax) return { ok: true, rows, headSeq: expected - 1n, headHash: prev };
  }
}

/**
 * A server's writer: `record` queues an entry and resolves once it is in the chain. The first
 * entry waits auditBatchDelayMs, so the entries recorded meanwhile (a request's domain events and
 * its own row, its neighbours') are written together in one transaction, at most auditBatchMax
 * at a time; entries queued while a batch is being written go together in the next one.
 * A failed write is logged and never fails the request that caused it.
 */
export class AuditLog {
  readonly #db: Db;
  readonly #logger: Logger;
  #pending: Array<{ entry: AuditEntry; done: () => void }> = [];
  #writing: Promise<void> | undefined;

  constructor(db: Db, logger: Logger) {
    this.#db = db;
    this.#logger = logger;
  }

  record(entry: AuditEntry): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#pending.push({ entry: { ...entry, at: entry.at ?? new Date() }, done: resolve });
      this.#writing ??= new Promise((wait) => setTimeout(wait, limits.auditBatchDelayMs)).then(() => this.#drain());
    });
  }

  /** Resolves once every entry recorded so far is written (or its failure logged). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, limits.auditBatchMax);
        try {
          await appendAuditEntries(this.#db, batch.map((item) => item.entry));
        } catch (err) {
          logPassFailure(this.#logger, err, 'audit log append failed', { entries: batch.length });
        }
        for (const item of batch) item.done();
      }
    } finally {
      this.#writing = undefined;
    }
  }
}

// ---- domain events -------------------------------------------------------------------------------

/** Each server's writer, found from what domain code already holds: its database or its logger. */
const domainWriters = new WeakMap<object, AuditLog>();
/** The same writer on the server's Fastify instance (and, by inheritance, every plugin's). */
const auditLogKey = Symbol('kessai.auditLog');

/** The audit log of the server that owns `owner` (its Db, its Logger, or its Fastify instance), if it keeps one. */
export function auditLogOf(owner: object | null | undefined): AuditLog | undefined {
  if (owner === null || owner === undefined) return undefined;
  return domainWriters.get(owner) ?? (owner as { [auditLogKey]?: AuditLog })[auditLogKey];
}

/**
 * Appends a domain event (`authorization.captured`, `credential.revoked`, …) to the chain of the
 * server that owns `owner`; nothing where no audit log was set up (a bare database in a unit test).
 * Entries name ids, amounts and codes only. Never fails the caller: the writer logs a failed append.
 */
export function recordDomainEvent(owner: object | null | undefined, entry: AuditEntry): Promise<void> {
  return auditLogOf(owner)?.record(entry) ?? Promise.resolve();
}

export { auditActorOf, setAuditActor } from './audit-actor.ts';

/** A Kessai id (`pr_…`, `cred_…`): the only part of a URL an audit row repeats. */
const idShape = /^[a-z]{2,5}_[0-9a-hjkmnp-tv-z]{26}$/;
const stateChanging = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const errorCodes = new WeakMap<FastifyRequest, string>();

function actorOf(request: FastifyRequest, status: number): string {
  const named = auditActorOf(request);
  if (named) return named;
  if ((request.routeOptions.url ?? '').startsWith('/admin/') && status < 400) return 'operator';
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (socket.authorized) {
    const cn = peerCertificateOf(socket)?.subject?.CN;
    if (typeof cn === 'string' && cn.length > 0) return `peer:${cn}`;
  }
  return 'anonymous';
}

/**
 * Hooks that record every state-changing request after its answer: the route pattern (never the
 * raw URL), the ids in the path, the actor, the status and error code, and the source address.
 */
export function auditRequests(app: KessaiApp, audit: AuditLog): void {
  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (stateChanging.has(request.method) && reply.statusCode >= 400 && typeof payload === 'string' && payload.length <= limits.bodyBytesMax) {
      try {
        const code = (JSON.parse(payload) as { code?: unknown }).code;
        if (isErrorCode(code)) errorCodes.set(request, code);
      } catch {
        // Not a problem document: the status alone is the outcome.
      }
    }
    return payload;
  });
  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!stateChanging.has(request.method)) return;
    const ids = Object.values((request.params ?? {}) as Record<string, unknown>).filter((value): value is string => typeof value === 'string' && idShape.test(value));
    const code = errorCodes.get(request);
    void audit.record({
      actor: actorOf(request, reply.statusCode),
      action: `${request.method} ${request.routeOptions.url ?? '(no route)'}`,
      resource: ids.length > 0 ? ids.join(' ') : null,
      outcome: code ? `${reply.statusCode} ${code}` : String(reply.statusCode),
      origin: request.ip,
    });
  });
  app.addHook('onClose', () => audit.flush());
}

const auditVerifyResponse = z.strictObject({
  ok: z.boolean(),
  rows: z.number().int(),
  head_seq: z.string().optional(),
  head_hash: z.string().optional(),
  broken_at: z.string().optional(),
  reason: z.enum(['missing', 'prev_hash', 'hash']).optional(),
});
export type AuditVerifyResponse = z.infer<typeof auditVerifyResponse>;
export { auditVerifyResponse };

/** `GET /admin/v1/audit/verify`: the operator's check of this server's chain (after pending rows are written). */
export async function auditAdminRoutes(plugin: FastifyInstance, db: Db, audit: AuditLog, operatorToken: string): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  app.addHook('onRequest', requireOperator(operatorToken));
  const verifySchema = {
    summary: "Verify the audit log's hash chain",
    operationId: 'verifyAuditLog',
    response: { 200: auditVerifyResponse },
  };
  app.get('/admin/v1/audit/verify', { schema: verifySchema }, async () => {
    await audit.flush();
    return auditVerificationView(await verifyAuditChain(db));
  });
}

export function auditVerificationView(result: AuditVerification): AuditVerifyResponse {
  return result.ok
    ? { ok: true, rows: result.rows, head_seq: result.headSeq.toString(), head_hash: result.headHash }
    : { ok: false, rows: result.rows, broken_at: result.brokenAt.toString(), reason: result.reason };
}

/**
 * Everything a server does to keep its audit log: the table, the request hooks and, with an
 * operator token, the verify endpoint. Returns the writer for domain events.
 */
export async function setUpAuditLog(app: KessaiApp, db: Db, logger: Logger, operatorToken: string | undefined): Promise<AuditLog> {
  await ensureAuditLog(db);
  const audit = new AuditLog(db, logger);
  domainWriters.set(db, audit);
  domainWriters.set(logger, audit);
  app.decorate(auditLogKey, audit);
  auditRequests(app, audit);
  if (operatorToken) await app.register((plugin) => auditAdminRoutes(plugin, db, audit, operatorToken));
  return audit;
}
