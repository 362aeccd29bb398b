/**
 * Test doubles for the shop's peers, on one local HTTPS server with a certificate from the dev
 * PKI: an issuer's JWKS (which tests rotate) and the authentication server's merchant API
 * (payment requests kept in memory, with Idempotency-Key replay). Not a model of the real server:
 * just enough to see what the shop sends and to answer it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  generateKeyEntry,
  newId,
  signJson,
  typ,
  type AuthorizationPayload,
  type CreatePaymentRequest,
  type JWK,
  type KeyEntry,
  type PaymentRequestView,
} from '@kessai/protocol';
import { createLogger, loadOrCreateDevPki, openDb, type Db } from '@kessai/service';
import { buildShop, type Shop } from '../src/app.ts';
import { pgliteTemplate, scratchPostgres } from '../../../test/support/database.ts';

export interface RecordedCall {
  method: string;
  path: string;
  idempotencyKey: string | undefined;
  authorization: string | undefined;
  body: unknown;
}

export class FakePeers {
  readonly baseUrl: string;
  readonly caCertPem: string;
  readonly merchantId = newId('mer');
  readonly calls: RecordedCall[] = [];
  /** The keys the JWKS publishes; tests replace it to rotate. */
  jwks: { keys: JWK[] } = { keys: [] };
  jwksFetches = 0;
  /** When set, the merchant API answers this status with a problem. */
  failMerchantApi: { status: number; code: string } | undefined;
  readonly requests = new Map<string, PaymentRequestView>();
  readonly #replies = new Map<string, PaymentRequestView>();
  readonly #server: https.Server;
  readonly #dir: string;

  private constructor(server: https.Server, dir: string, caCertPem: string) {
    this.#server = server;
    this.#dir = dir;
    this.caCertPem = caCertPem;
    this.baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  static async start(): Promise<FakePeers> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kessai-shop-fakes-'));
    const pki = await loadOrCreateDevPki(path.join(dir, 'tls'), [{ name: 'peer', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] }]);
    const leaf = pki.leaves.peer!;
    const holder: { peers?: FakePeers } = {};
    const server = https.createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
      let text = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (text += chunk));
      req.on('end', () => {
        const [status, body] = holder.peers!.handle(req.method ?? 'GET', req.url ?? '/', req.headers, text);
        res.writeHead(status, { 'content-type': status < 300 ? 'application/json' : 'application/problem+json' });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    holder.peers = new FakePeers(server, dir, pki.caCertPem);
    return holder.peers;
  }

  get jwksUri(): string {
    return `${this.baseUrl}/issuer-a/jwks.json`;
  }

  /** Sets a payment request's state as the authentication server would after step 407. */
  settle(id: string, changes: Partial<Pick<PaymentRequestView, 'status' | 'authorization' | 'decline_code' | 'captured_minor'>>): PaymentRequestView {
    const view = this.requests.get(id);
    if (!view) throw new Error(`no payment request ${id}`);
    const next = { ...view, ...changes };
    this.requests.set(id, next);
    return next;
  }

  callsTo(method: string, suffix: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && c.path.endsWith(suffix));
  }

  handle(method: string, url: string, headers: IncomingHttpHeaders, text: string): [number, unknown] {
    const body = text ? (JSON.parse(text) as unknown) : undefined;
    const idempotencyKey = headers['idempotency-key'] as string | undefined;
    if (method === 'GET' && url === '/issuer-a/jwks.json') {
      this.jwksFetches++;
      return [200, this.jwks];
    }
    this.calls.push({ method, path: url, idempotencyKey, authorization: headers.authorization, body });
    if (this.failMerchantApi) return [this.failMerchantApi.status, { type: 'about:blank', title: 'failed', status: this.failMerchantApi.status, code: this.failMerchantApi.code }];
    if (method === 'POST' && idempotencyKey) {
      const replay = this.#replies.get(`${url} ${idempotencyKey}`);
      if (replay) return [url === '/v1/payment-requests' ? 201 : 200, replay];
    }
    const match = /^\/v1\/payment-requests(?:\/(pr_[a-z0-9]+)(?:\/(capture|void))?)?$/.exec(url);
    if (!match) return [404, { type: 'about:blank', title: 'No such resource', status: 404, code: 'not_found' }];
    const [, id, action] = match;
    let status = 200;
    let view: PaymentRequestView | undefined;
    if (method === 'POST' && !id) {
      view = this.#create(body as CreatePaymentRequest);
      status = 201;
    } else if (id && method === 'GET' && !action) {
      view = this.requests.get(id);
    } else if (id && method === 'POST' && action) {
      const current = this.requests.get(id);
      view = current && (action === 'capture' ? this.settle(id, { status: 'captured', captured_minor: current.amount_minor }) : this.settle(id, { status: 'voided' }));
    }
    if (!view) return [404, { type: 'about:blank', title: 'No such payment request', status: 404, code: 'payment_request_not_found' }];
    if (method === 'POST' && idempotencyKey) this.#replies.set(`${url} ${idempotencyKey}`, view);
    return [status, view];
  }

  #create(body: CreatePaymentRequest): PaymentRequestView {
    const id = newId('pr');
    const view: PaymentRequestView = {
      id,
      merchant_id: this.merchantId,
      order_id: body.order_id,
      status: 'pending',
      currency: body.currency,
      amount_minor: body.amount_minor,
      captured_minor: '0',
      line_items: body.line_items,
      payment_link: `${this.baseUrl}/pay/${id}`,
      created_at: new Date().toISOString(),
      expires_at: new Date(Date.now() + 15 * 60_000).toISOString(),
      livemode: false,
      authorization: null,
      decline_code: null,
    };
    this.requests.set(id, view);
    return view;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await rm(this.#dir, { recursive: true, force: true });
  }
}

/** A settlement server's signing key and the authorizations it signs. */
export class FakeIssuer {
  readonly id: string;
  readonly key: KeyEntry;
  private constructor(id: string, key: KeyEntry) {
    this.id = id;
    this.key = key;
  }
  static async create(id = 'issuer-a'): Promise<FakeIssuer> {
    return new FakeIssuer(id, (await generateKeyEntry('sig')).entry);
  }
  sign(payload: Partial<AuthorizationPayload> & Pick<AuthorizationPayload, 'rid' | 'mid' | 'amt' | 'cur'>, header: { typ?: string; kid?: string } = {}): Promise<string> {
    const full: AuthorizationPayload = { iss: this.id, aid: newId('auth'), decision: 'approved', code: null, lm: false, iat: Math.floor(Date.now() / 1000), ...payload };
    return signJson(full, this.key.privateKey!, { typ: header.typ ?? typ.authorization, kid: header.kid ?? this.key.kid });
  }
}

/** A shop on a fresh database (PGlite from the run's template, or scratch PostgreSQL), pointed at `peers`. */
export interface TestShop extends Shop {
  db: Db;
  peers: FakePeers;
  issuer: FakeIssuer;
  webhookSecret: string;
  stop(): Promise<void>;
}

export async function startTestShop(options: { autoCapture?: boolean; issuers?: Record<string, string>; livemode?: boolean } = {}): Promise<TestShop> {
  const peers = await FakePeers.start();
  const issuer = await FakeIssuer.create('issuer-a');
  peers.jwks = { keys: [issuer.key.publicJwk] };
  const scratch = await scratchPostgres('kessai_shop');
  const db = await openDb(scratch ? { url: scratch.url } : { pgliteTemplate: await pgliteTemplate() });
  const webhookSecret = `whsec_${newId('evt')}`;
  const shop = await buildShop({
    logger: createLogger({ name: 'shop-test' }),
    db,
    merchantApiKey: options.livemode ? 'sk_live_shop' : 'sk_test_shop',
    authBaseUrl: peers.baseUrl,
    caCertPem: peers.caCertPem,
    webhookSecrets: [webhookSecret],
    issuers: options.issuers ?? { 'issuer-a': peers.jwksUri },
    ...(options.autoCapture === undefined ? {} : { autoCapture: options.autoCapture }),
    publicBaseUrl: 'https://127.0.0.1:8445',
  });
  return {
    ...shop,
    db,
    peers,
    issuer,
    webhookSecret,
    async stop() {
      await shop.close();
      await db.close();
      await scratch?.drop();
      await peers.close();
    },
  };
}
