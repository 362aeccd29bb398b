/**
 * `npm run bench`: what one payment costs here, as ratios to ceilings measured in the same run.
 *   1. crypto: the JOSE and argon2 work one payment needs, alone, in this process (a ceiling);
 *   2. http: a bare Node HTTPS chain with the same hops (client → broker → issuer, mutual TLS);
 *   3. end to end: the real system (PGlite, TLS, real keys and PINs), closed loop at each
 *      concurrency: payment request (402), fetch by the terminal (403), approval through
 *      conversion, authorization and record (404–407).
 * Everything shares this machine's cores; results go to bench/results/<time>.json.
 * Options: --concurrency 1,4,16  --payments 60 (per level)  --quick (small counts, for a smoke run)
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { startSystem } from '@kessai/cli/system';
import { demoIssuers } from '@kessai/cli/demo-data';
import { MerchantClient, WalletClient } from '@kessai/sdk';
import { measureCrypto } from './crypto-ceiling.ts';
import { measureHttpChain } from './http-chain.ts';
import { summarize, type Summary } from './stats.ts';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,4,16' },
    payments: { type: 'string', default: '60' },
    quick: { type: 'boolean', default: false },
  },
});
const levels = values.concurrency.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0 && n <= 64);
const paymentsPerLevel = values.quick ? 8 : Math.min(Math.max(Number(values.payments), 4), 2_000);

function progress(label: string, done: number, total: number): void {
  const width = 30;
  const filled = Math.round((done / total) * width);
  process.stderr.write(`\r${label.padEnd(28)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
  if (done === total) process.stderr.write('\n');
}

async function endToEnd(): Promise<Array<{ concurrency: number; paymentsPerSecond: number; flow: Summary; steps: Record<string, Summary>; errors: Record<string, number> }>> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-bench-'));
  const system = await startSystem({ dataDir, ports: { auth: 0, shop: 0, issuers: {} }, workerIntervalMs: 200 });
  const card = demoIssuers[0]!.cards[0]!;
  const merchant = new MerchantClient({ baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  const results = [];
  try {
    const wallets: WalletClient[] = [];
    for (let i = 0; i < Math.max(...levels); i++) {
      const stored = await WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry });
      wallets.push(new WalletClient(stored, { caCertPem: system.pki.caCertPem }));
      progress('enrolling terminals', i + 1, Math.max(...levels));
    }
    let sequence = 0;
    for (const concurrency of levels) {
      const flow: number[] = [];
      const steps: Record<string, number[]> = { '402 request': [], '403 fetch': [], '404-407 approve': [] };
      const errors: Record<string, number> = {};
      let claimed = 0;
      let done = 0;
      const started = performance.now();
      await Promise.all(
        wallets.slice(0, concurrency).map(async (wallet) => {
          while (claimed < paymentsPerLevel) {
            claimed++;
            const n = ++sequence;
            const t0 = performance.now();
            try {
              const created = await merchant.createPaymentRequest({ order_id: `bench-${n}`, currency: 'JPY', amount_minor: '100', line_items: [{ description: 'Tenugui', quantity: 1, unit_price_minor: '100' }] }, `bench-${n}`);
              const t1 = performance.now();
              const request = await wallet.fetchRequest(created.id);
              const t2 = performance.now();
              const outcome = await wallet.approve(request, card.pin);
              const t3 = performance.now();
              if (outcome.status !== 'approved') errors[outcome.decline_code ?? outcome.status] = (errors[outcome.decline_code ?? outcome.status] ?? 0) + 1;
              steps['402 request']!.push(t1 - t0);
              steps['403 fetch']!.push(t2 - t1);
              steps['404-407 approve']!.push(t3 - t2);
              flow.push(t3 - t0);
            } catch (err) {
              const code = (err as { code?: string }).code ?? 'exception';
              errors[code] = (errors[code] ?? 0) + 1;
            }
            done++;
            progress(`end to end, concurrency ${concurrency}`, done, paymentsPerLevel);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      results.push({ concurrency, paymentsPerSecond: flow.length / seconds, flow: summarize(flow), steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summarize(v)])), errors });
    }
    for (const wallet of wallets) await wallet.close();
  } finally {
    await merchant.close();
    await system.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return results;
}

const crypto = await measureCrypto(values.quick ? 10 : 60, (done, total) => progress('crypto ceiling', done, total));
const http = await measureHttpChain(values.quick ? 100 : 1_000, Math.max(...levels), (done, total) => progress('bare HTTPS chain', done, total));
const e2e = await endToEnd();
const best = Math.max(...e2e.map((r) => r.paymentsPerSecond));
const report = {
  at: new Date().toISOString(),
  machine: { cores: cpus().length, node: process.version },
  crypto,
  http,
  endToEnd: e2e,
  ratios: {
    endToEndToCryptoCeiling: best / crypto.paymentsPerSecondCeiling,
    endToEndToHttpChain: best / http.requestsPerSecond,
  },
};
await mkdir(path.join(import.meta.dirname, 'results'), { recursive: true });
const file = path.join(import.meta.dirname, 'results', `${report.at.replace(/[:.]/g, '-')}.json`);
await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);

const ms = (s: Summary) => `${s.p50.toFixed(1)} / ${s.p95.toFixed(1)} / ${s.p99.toFixed(1)} / ${s.max.toFixed(1)}`;
console.log(`\nKessai benchmark (${report.machine.cores} cores, Node ${report.machine.node}) — ${file}`);
console.log(`crypto one payment needs, alone: ${crypto.msPerPayment.toFixed(2)} ms → ceiling ${crypto.paymentsPerSecondCeiling.toFixed(1)} payments/s (argon2id PIN check ${crypto.breakdownMs['settlement: argon2id PIN verify']?.toFixed(2)} ms of it)`);
console.log(`bare HTTPS chain, 2 hops with mutual TLS: ${http.requestsPerSecond.toFixed(0)} requests/s at concurrency ${http.concurrency}`);
console.log('\nconcurrency | payments/s | flow p50 / p95 / p99 / max ms | 402 p50 | 403 p50 | 404-407 p50 | errors');
for (const r of e2e) {
  console.log(`${String(r.concurrency).padStart(11)} | ${r.paymentsPerSecond.toFixed(1).padStart(10)} | ${ms(r.flow).padEnd(29)} | ${r.steps['402 request']!.p50.toFixed(1).padStart(7)} | ${r.steps['403 fetch']!.p50.toFixed(1).padStart(7)} | ${r.steps['404-407 approve']!.p50.toFixed(1).padStart(11)} | ${JSON.stringify(r.errors)}`);
}
console.log(`\nbest end to end = ${(report.ratios.endToEndToCryptoCeiling * 100).toFixed(1)}% of the crypto ceiling, ${(report.ratios.endToEndToHttpChain * 100).toFixed(2)}% of the bare HTTPS chain`);
