/**
 * The end-to-end payment, driven against role processes (roles.ts): the merchant's request
 * addressed to a terminal (402), the push to that terminal over server-sent events (403), the
 * approval through conversion, authorization and recording (404–407), the webhook that tells the
 * merchant (407's notification), and the capture (409). Closed loop at a concurrency, or open loop
 * at a fixed arrival rate. Client-side step times, plus the authentication server's own timings
 * from its Server-Timing headers (read through undici's diagnostics channel), CPU seconds per
 * payment per process, and errors by code.
 */
import { subscribe } from 'node:diagnostics_channel';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { MerchantClient, WalletClient, type VerifiedRequest } from '@kessai/sdk';
import { cpuSecondsOf, rssOf, statementsOf, type BenchSystem } from './roles.ts';
import { summarize, type Summary } from './stats.ts';

/** Server-Timing entries by `idem:<key>` or `<METHOD> <path>`. */
const serverTimings = new Map<string, Record<string, number>>();
subscribe('undici:request:headers', (message) => {
  const { request, response } = message as { request: { method: string; path: string; headers: unknown }; response: { headers: Buffer[] } };
  let timing: string | undefined;
  for (let i = 0; i < response.headers.length; i += 2) if (response.headers[i]!.toString().toLowerCase() === 'server-timing') timing = response.headers[i + 1]!.toString();
  if (!timing) return;
  const entries = Object.fromEntries(timing.split(',').map((part) => {
    const [name, dur] = part.trim().split(';dur=');
    return [name!, Number(dur)];
  }));
  const headers = Array.isArray(request.headers) ? request.headers.map(String).join('\n') : String(request.headers);
  const key = /idempotency-key(?::\s*|\n)([^\r\n]+)/i.exec(headers)?.[1];
  serverTimings.set(key ? `idem:${key.trim()}` : `${request.method} ${request.path}`, entries);
});

export interface Payment {
  /** Seconds since the run's start when the payment began and ended. */
  startedAt: number;
  endedAt: number;
  ok: boolean;
  error?: string;
  /** The step a failed payment stopped at: what the payer or merchant was told last. */
  step?: 'request' | 'push' | 'approve' | 'capture';
  flowMs: number;
  client: Record<string, number>;
  server: Record<string, number>;
  approvedAt: number;
  id: string;
}

/** One sample of the open loop: RSS (bytes) and share of one core used since the previous sample, per process. */
export interface Sample {
  at: number;
  rss: Record<string, number>;
  cpuShare: Record<string, number>;
  loadAverage1m: number;
}

export interface PhaseResult {
  mode: 'closed' | 'open';
  concurrency?: number;
  rate?: number;
  seconds: number;
  payments: number;
  paymentsPerSecond: number;
  flow: Summary;
  client: Record<string, Summary>;
  server: Record<string, Summary>;
  notification: Summary;
  errors: Record<string, number>;
  cpuSecondsPerPayment: Record<string, number>;
  cpuUtilization: Record<string, number>;
  /** Statements each server sent to its database per successful payment (its db_statements_total), workers' polling included. */
  statementsPerPayment: Record<string, number>;
  /**
   * The same less the idle rate (measureIdleStatements) × the phase's seconds: an estimate of the
   * payment path's own statements, informative only — on a busy machine worker passes slow down and
   * this over-subtracts (it is clamped at 0). The targets judge statementsPerPayment.
   */
  paymentStatementsPerPayment: Record<string, number>;
}

export class Driver {
  readonly #system: BenchSystem;
  readonly merchant: MerchantClient;
  readonly wallets: Array<{ client: WalletClient; waiting: Map<string, (r: VerifiedRequest) => void>; early: Map<string, VerifiedRequest>; abort: AbortController }> = [];
  #sequence = 0;
  readonly origin = performance.now();

  constructor(system: BenchSystem) {
    this.#system = system;
    this.merchant = new MerchantClient({ baseUrl: system.auth.url, apiKey: system.apiKey, caCertPem: system.caCertPem });
  }

  /** Enrolls terminals until there are `count`, each listening for its pushes. */
  async enroll(count: number, onProgress: (done: number, total: number) => void): Promise<void> {
    const { card, caCertPem, auth } = this.#system;
    while (this.wallets.length < count) {
      const client = new WalletClient(await WalletClient.enroll({ authBaseUrl: auth.url, caCertPem, directoryKey: this.#system.directoryKey, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }), { caCertPem });
      const entry = { client, waiting: new Map<string, (r: VerifiedRequest) => void>(), early: new Map<string, VerifiedRequest>(), abort: new AbortController() };
      this.wallets.push(entry);
      void (async () => {
        try {
          for await (const pushed of client.listen(entry.abort.signal)) {
            const resolve = entry.waiting.get(pushed.view.rid);
            if (resolve) resolve(pushed);
            else entry.early.set(pushed.view.rid, pushed);
          }
        } catch {
          // aborted at the end of the run
        }
      })();
      onProgress(this.wallets.length, count);
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the event streams open
  }

  async pay(walletIndex: number): Promise<Payment> {
    const wallet = this.wallets[walletIndex % this.wallets.length]!;
    const n = ++this.#sequence;
    const key = `bench-${process.pid}-${n}`;
    const t0 = performance.now();
    const client: Record<string, number> = {};
    const server: Record<string, number> = {};
    let id = '';
    let approvedAt = 0;
    let step: Payment['step'] = 'request';
    let timer: NodeJS.Timeout | undefined;
    const at = (t: number) => (t - this.origin) / 1000;
    try {
      const pushed = new Promise<VerifiedRequest>((resolve, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('push timed out'), { code: 'push_timeout' })), 30_000);
        wallet.waiting.set(key, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
      });
      const created = await this.merchant.createPaymentRequest({ order_id: key, currency: 'JPY', amount_minor: '10', line_items: [{ description: 'Tenugui', quantity: 1, unit_price_minor: '10' }], wallet_handle: wallet.client.wallet.credential_id }, key);
      id = created.id;
      const t1 = performance.now();
      const resolve = wallet.waiting.get(key)!;
      wallet.waiting.delete(key);
      wallet.waiting.set(id, resolve);
      const early = wallet.early.get(id);
      if (early) {
        wallet.early.delete(id);
        resolve(early);
      }
      step = 'push';
      const request = await pushed;
      wallet.waiting.delete(id);
      const t2 = performance.now();
      step = 'approve';
      const outcome = await wallet.client.approve(request, this.#system.card.pin);
      const t3 = performance.now();
      approvedAt = t3;
      if (outcome.status !== 'approved') throw Object.assign(new Error(outcome.status), { code: outcome.decline_code ?? outcome.status });
      step = 'capture';
      await this.merchant.capture(id, {}, `${key}-capture`);
      const t4 = performance.now();
      client['402 request'] = t1 - t0;
      client['403 push'] = t2 - t1;
      client['404-407 approve'] = t3 - t2;
      client['409 capture'] = t4 - t3;
      const created402 = serverTimings.get(`idem:${key}`);
      const approve404 = serverTimings.get(`POST /v1/terminal/payment-requests/${id}/approve`);
      const capture409 = serverTimings.get(`idem:${key}-capture`);
      serverTimings.delete(`idem:${key}`);
      serverTimings.delete(`POST /v1/terminal/payment-requests/${id}/approve`);
      serverTimings.delete(`idem:${key}-capture`);
      if (created402?.total !== undefined) server['402 request'] = created402.total;
      if (approve404?.total !== undefined) server['404-407 approve (total)'] = approve404.total;
      if (approve404?.conversion !== undefined) server['405 conversion'] = approve404.conversion;
      if (approve404?.authorization !== undefined) server['406 authorization (issuer round trip)'] = approve404.authorization;
      if (approve404?.record !== undefined) server['407 record'] = approve404.record;
      if (capture409?.total !== undefined) server['409 capture (total)'] = capture409.total;
      return { startedAt: at(t0), endedAt: at(t4), ok: true, flowMs: t4 - t0, client, server, approvedAt, id };
    } catch (err) {
      // A request refused before its push (shed, say) must not leave the push's timer to fire later.
      clearTimeout(timer);
      wallet.waiting.delete(key);
      if (id) wallet.waiting.delete(id);
      const code = (err as { code?: string }).code ?? 'exception';
      return { startedAt: at(t0), endedAt: at(performance.now()), ok: false, error: code, step, flowMs: performance.now() - t0, client, server, approvedAt, id };
    }
  }

  /** CPU seconds used so far by each role's process (this process = terminals and merchant). */
  cpu(): Record<string, number> {
    const own = process.cpuUsage();
    return {
      'auth-server (30)': cpuSecondsOf(this.#system.auth.pid),
      'settlement-server (40)': cpuSecondsOf(this.#system.settlement.pid),
      'load generator (terminals 10, merchant 50)': (own.user + own.system) / 1e6,
    };
  }

  /** Statements each server has sent to its database so far (their /metrics). */
  async statements(): Promise<Record<string, number>> {
    const { auth, settlement, caCertPem } = this.#system;
    const [broker, bank] = await Promise.all([statementsOf(auth, caCertPem), statementsOf(settlement, caCertPem)]);
    return { 'auth-server (30)': broker, 'settlement-server (40)': bank };
  }

  #statementsBefore: Record<string, number> = {};
  /** Statements per second each server sends with no payment running (its workers' polling). */
  idleStatementsPerSecond: Record<string, number> = {};

  /** Measures the servers' idle statement rate over `seconds` with nothing else running. */
  async measureIdleStatements(seconds: number): Promise<Record<string, number>> {
    const before = await this.statements();
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const after = await this.statements();
    const elapsed = (performance.now() - started) / 1000;
    this.idleStatementsPerSecond = Object.fromEntries(Object.entries(after).map(([role, n]) => [role, (n - (before[role] ?? 0)) / elapsed]));
    return this.idleStatementsPerSecond;
  }

  rss(): Record<string, number> {
    return {
      'auth-server (30)': rssOf(this.#system.auth.pid),
      'settlement-server (40)': rssOf(this.#system.settlement.pid),
      'load generator (terminals 10, merchant 50)': process.memoryUsage().rss,
    };
  }

  /** Summarizes a phase; waits up to 2 s for the approvals' webhooks. */
  async summarize(payments: Payment[], phase: Pick<PhaseResult, 'mode' | 'concurrency' | 'rate'>, seconds: number, cpuBefore: Record<string, number>): Promise<PhaseResult> {
    const cpuAfter = this.cpu();
    const okPayments = payments.filter((p) => p.ok);
    // A payment's statements include its two webhook deliveries (approved, captured): counted once they arrived.
    const deadline = performance.now() + 2_000;
    const arrived = (p: Payment, type: string) => this.#system.webhooks.has(`${p.id} payment_request.${type}`);
    const delivered = (p: Payment) => arrived(p, 'approved') && arrived(p, 'captured');
    while (performance.now() < deadline && !okPayments.every(delivered)) await new Promise((resolve) => setTimeout(resolve, 50));
    const statementsAfter = await this.statements();
    const notification = okPayments.flatMap((p) => {
      const arrived = this.#system.webhooks.get(`${p.id} payment_request.approved`);
      return arrived === undefined ? [] : [arrived - p.approvedAt];
    });
    const errors: Record<string, number> = {};
    for (const p of payments) if (!p.ok) errors[p.error!] = (errors[p.error!] ?? 0) + 1;
    const collect = (pick: (p: Payment) => Record<string, number>) => {
      const names = [...new Set(okPayments.flatMap((p) => Object.keys(pick(p))))];
      return Object.fromEntries(names.map((name) => [name, summarize(okPayments.flatMap((p) => (pick(p)[name] === undefined ? [] : [pick(p)[name]!])))]));
    };
    const cpuSecondsPerPayment: Record<string, number> = {};
    const cpuUtilization: Record<string, number> = {};
    for (const role of Object.keys(cpuAfter)) {
      const used = cpuAfter[role]! - (cpuBefore[role] ?? 0);
      cpuSecondsPerPayment[role] = okPayments.length ? used / okPayments.length : 0;
      cpuUtilization[role] = used / seconds;
    }
    const statementsPerPayment: Record<string, number> = {};
    const paymentStatementsPerPayment: Record<string, number> = {};
    for (const [role, count] of Object.entries(statementsAfter)) {
      const sent = count - (this.#statementsBefore[role] ?? 0);
      const idle = (this.idleStatementsPerSecond[role] ?? 0) * seconds;
      statementsPerPayment[role] = okPayments.length ? sent / okPayments.length : 0;
      paymentStatementsPerPayment[role] = okPayments.length ? Math.max(sent - idle, 0) / okPayments.length : 0;
    }
    return {
      ...phase,
      seconds,
      payments: okPayments.length,
      paymentsPerSecond: okPayments.length / seconds,
      flow: summarize(okPayments.map((p) => p.flowMs)),
      client: collect((p) => p.client),
      server: collect((p) => p.server),
      notification: summarize(notification),
      errors,
      cpuSecondsPerPayment,
      cpuUtilization,
      statementsPerPayment,
      paymentStatementsPerPayment,
    };
  }

  async closed(concurrency: number, total: number, onProgress: (done: number, total: number) => void): Promise<{ payments: Payment[]; result: PhaseResult }> {
    this.#statementsBefore = await this.statements();
    const cpuBefore = this.cpu();
    const payments: Payment[] = [];
    let claimed = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async (_, worker) => {
        while (claimed < total) {
          claimed++;
          payments.push(await this.pay(worker));
          onProgress(payments.length, total);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return { payments, result: await this.summarize(payments, { mode: 'closed', concurrency }, seconds, cpuBefore) };
  }

  /**
   * Open loop: a payment starts every 1/rate s whatever the ones before are doing. Every
   * `sampleEveryMs` it samples each process's RSS and the CPU it used since the last sample.
   */
  async open(rate: number, seconds: number, onProgress: (done: number, total: number) => void, sampleEveryMs = 10_000): Promise<{ payments: Payment[]; result: PhaseResult; samples: Sample[] }> {
    this.#statementsBefore = await this.statements();
    const cpuBefore = this.cpu();
    const payments: Payment[] = [];
    const running: Array<Promise<void>> = [];
    const started = performance.now();
    const total = Math.round(rate * seconds);
    const samples: Sample[] = [{ at: 0, rss: this.rss(), cpuShare: {}, loadAverage1m: loadavg()[0] ?? 0 }];
    let lastCpu = cpuBefore;
    let lastAt = started;
    const sampler = setInterval(() => {
      const now = performance.now();
      const cpu = this.cpu();
      const cpuShare = Object.fromEntries(Object.keys(cpu).map((role) => [role, (cpu[role]! - lastCpu[role]!) / ((now - lastAt) / 1000)]));
      samples.push({ at: (now - started) / 1000, rss: this.rss(), cpuShare, loadAverage1m: loadavg()[0] ?? 0 });
      lastCpu = cpu;
      lastAt = now;
    }, sampleEveryMs);
    try {
      for (let i = 0; i < total; i++) {
        const due = started + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        running.push(this.pay(i).then((p) => void payments.push(p)));
        onProgress(Math.floor((performance.now() - started) / 1000), seconds);
      }
      await Promise.all(running);
    } finally {
      clearInterval(sampler);
    }
    onProgress(seconds, seconds);
    const elapsed = (performance.now() - started) / 1000;
    return { payments, samples, result: await this.summarize(payments, { mode: 'open', rate }, elapsed, cpuBefore) };
  }

  async close(): Promise<void> {
    for (const w of this.wallets) {
      w.abort.abort();
      await w.client.close();
    }
    await this.merchant.close();
  }
}
