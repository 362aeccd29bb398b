/**
 * Step 403's push channel: terminals listening over server-sent events are told about payment
 * requests addressed to their credential. `PushHub` delivers inside one process (PGlite, one
 * server). `PgPushHub` also carries each publication to every other authentication server on the
 * same PostgreSQL database through LISTEN/NOTIFY: the notification holds ids only (origin process,
 * credential id, request id — never personal data or the signed view), and each receiving process
 * that has a listener for that credential loads the request and signs its own view.
 */
import { randomBytes } from 'node:crypto';
import { limits } from '@kessai/protocol';
import type { DbListener, Logger } from '@kessai/service';
import type { AuthConfig } from './config.ts';
import { signTerminalView, type PaymentRequestRow } from './payment-requests.ts';

/**
 * `credentialChecked`: the request's own insert found the credential active a moment ago (step
 * 402 in this process), so the stream need not read its status again before writing it.
 */
export interface PushEvent {
  type: 'payment_request';
  request: string;
  credentialChecked?: boolean;
}

type Listener = (event: PushEvent) => void;

export interface PublishOptions {
  /** The publisher checked the credential active in the statement that stored the request (insertPaymentRequest). */
  credentialChecked?: boolean;
}

/** The NOTIFY channel every authentication server on one database listens on. */
export const pushChannel = 'kessai_push';

export class PushHub {
  readonly #listeners = new Map<string, Set<Listener>>();
  #count = 0;

  /** Returns an unsubscribe function, or undefined when a stream limit (of this process) is reached. */
  subscribe(credentialId: string, listener: Listener): (() => void) | undefined {
    const set = this.#listeners.get(credentialId) ?? new Set<Listener>();
    if (set.size >= limits.sseStreamsPerCredentialMax || this.#count >= limits.sseStreamsMax) return undefined;
    set.add(listener);
    this.#listeners.set(credentialId, set);
    this.#count++;
    return () => {
      if (set.delete(listener)) this.#count--;
      if (set.size === 0) this.#listeners.delete(credentialId);
    };
  }

  /** Tells this process's listeners of `credentialId` about a request (its signed view). */
  // step 403: the signed view is pushed to the listening terminal
  publish(credentialId: string, view: string, options: PublishOptions = {}): void {
    this.deliver(credentialId, view, options);
  }

  protected deliver(credentialId: string, view: string, options: PublishOptions = {}): void {
    const checked = options.credentialChecked ? { credentialChecked: true } : {};
    const event: PushEvent = { type: 'payment_request', request: view, ...checked };
    for (const listener of this.#listeners.get(credentialId) ?? []) listener(event);
  }

  protected listening(credentialId: string): boolean {
    return this.#listeners.has(credentialId);
  }

  protected credentials(): string[] {
    return [...this.#listeners.keys()];
  }

  get size(): number {
    return this.#count;
  }

  async close(): Promise<void> {}
}

interface Notice {
  /** Origin process, so it does not deliver twice to its own listeners. */
  o: string;
  /** Credential id the request is addressed to. */
  c: string;
  /** Payment request id. */
  r: string;
}

const idPattern = /^[A-Za-z0-9_-]{1,64}$/;

function parseNotice(payload: string): Notice | undefined {
  try {
    const value = JSON.parse(payload) as Partial<Notice>;
    if (typeof value.o === 'string' && typeof value.c === 'string' && typeof value.r === 'string' && idPattern.test(value.c) && idPattern.test(value.r)) return value as Notice;
  } catch {
    // not ours
  }
  return undefined;
}

/** Several authentication servers on one PostgreSQL: local delivery plus NOTIFY to the others. */
export class PgPushHub extends PushHub {
  readonly #config: AuthConfig;
  readonly #logger: Logger;
  readonly #origin = randomBytes(9).toString('base64url');
  #listener: DbListener | undefined;

  constructor(config: AuthConfig) {
    super();
    this.#config = config;
    this.#logger = config.logger;
  }

  async start(): Promise<void> {
    if (!this.#config.db.listen) throw new Error('PgPushHub needs a PostgreSQL database');
    this.#listener = await this.#config.db.listen(pushChannel, (payload) => void this.#received(payload), () => void this.#resync());
  }

  override publish(credentialId: string, view: string, options: PublishOptions = {}): void {
    const requestId = requestIdOf(view);
    this.deliver(credentialId, view, options);
    if (!requestId) return;
    const notice: Notice = { o: this.#origin, c: credentialId, r: requestId };
    this.#config.db.query('select pg_notify($1, $2)', [pushChannel, JSON.stringify(notice)]).catch((err: unknown) => this.#logger.warn({ err }, 'push: notify failed'));
  }

  async #received(payload: string): Promise<void> {
    const notice = parseNotice(payload);
    if (!notice || notice.o === this.#origin || !this.listening(notice.c)) return;
    try {
      const [row] = await this.#config.db.query<PaymentRequestRow>("select * from payment_requests where id = $1 and wallet_handle = $2 and status = 'pending' and expires_at > now()", [notice.r, notice.c]);
      if (row) this.deliver(notice.c, await this.#view(row));
    } catch (err) {
      this.#logger.warn({ err, request: notice.r }, 'push: delivery of a notified request failed');
    }
  }

  /** After the listening connection came back: notifications sent meanwhile are lost, so resend what is pending. */
  async #resync(): Promise<void> {
    this.#logger.info('push: listening connection reopened');
    for (const credentialId of this.credentials()) {
      try {
        const rows = await this.#config.db.query<PaymentRequestRow>("select * from payment_requests where wallet_handle = $1 and status = 'pending' and expires_at > now() order by created_at limit $2", [credentialId, limits.listPageMax]);
        for (const row of rows) this.deliver(credentialId, await this.#view(row));
      } catch (err) {
        this.#logger.warn({ err }, 'push: resync failed');
      }
    }
  }

  async #view(row: PaymentRequestRow): Promise<string> {
    const [merchant] = await this.#config.db.query<{ name: string }>('select name from merchants where id = $1', [row.merchant_id]);
    return signTerminalView(row, merchant?.name ?? row.merchant_id, this.#config.keys, new Date());
  }

  override async close(): Promise<void> {
    await this.#listener?.close();
  }
}

/** The request id inside a signed view this server produced (JWS payload `rid`). */
function requestIdOf(view: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(view.split('.')[1] ?? '', 'base64url').toString('utf8')) as { rid?: unknown };
    return typeof payload.rid === 'string' && idPattern.test(payload.rid) ? payload.rid : undefined;
  } catch {
    return undefined;
  }
}

/** The hub for this server's database: cross-process on PostgreSQL, in-process on PGlite. */
export async function createPushHub(config: AuthConfig): Promise<PushHub> {
  if (config.db.kind !== 'postgres' || !config.db.listen) return new PushHub();
  const hub = new PgPushHub(config);
  await hub.start();
  return hub;
}
