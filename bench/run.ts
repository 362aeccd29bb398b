/**
 * `npm run bench`: what one payment costs here, as ratios to baselines measured in the same run.
 *   1. crypto: the JOSE and PIN-verification work one payment needs, alone, in this process (a ceiling);
 *   2. http: a bare Node HTTPS chain with the same hops (client → broker → issuer, mutual TLS);
 *   3. ledger: transfers per second through the settlement server's ledger code, one at a time
 *      and with many in flight (group commit), on PGlite and on PostgreSQL, against `pgbench`
 *      TPC-B on the same PostgreSQL (bench/ledger.ts, bench/pg.ts);
 *   4. end to end: the settlement and authentication servers as separate processes (bench/roles.ts)
 *      on PostgreSQL when a URL is given, else PGlite; terminals and merchant in this process;
 *      402 request → 403 push → 404–407 approval → 407 webhook → 409 capture, closed loop at each
 *      concurrency or open loop at `--rate`; client and server-side (Server-Timing) step times,
 *      CPU seconds per payment per process, errors by code (bench/e2e.ts).
 * Results go to bench/results/<time>.json with SVG charts beside it (<time>-*.svg).
 *
 * Options:
 *   --concurrency 1,4,16   --payments 60 (per level)   --quick (small counts, a smoke run)
 *   --ledger               the ledger part only (with the pgbench baseline)
 *   --rate N[/s]           end to end open loop at N payments/s for --duration s (default 30)
 *   --half-seconds 30      after the closed-loop levels, an open loop at half the best rate they
 *                          reached for this long: the p99 the latency target is judged at (0: skip)
 *   --soak S               end to end open loop (at --rate, default 4/s) for S seconds, sampling
 *                          each process's RSS every 10 s, after --warmup (default 180) seconds at
 *                          the same rate that are not judged
 *   --pg-url URL           admin URL of a PostgreSQL server (else KESSAI_BENCH_PG_URL or
 *                          KESSAI_TEST_PG_URL); without one, the PostgreSQL parts are skipped
 *   --ledger-seconds 5  --ledger-concurrency 1,16,64,256,1024  --pgbench-seconds 10  --pgbench-clients 1,8
 *   --profile DIR          the end-to-end servers write V8 CPU profiles (node --cpu-prof) into DIR
 *   --issuer ID            the demo issuer whose card pays end to end: sakura-bank (default; re-seal,
 *                          ECDH-ES cipher 2) or fuji-bank (pass-through, RSA-OAEP-256 cipher 2)
 *   --overload             load shedding (bench/overload.ts): capacity from a closed loop at
 *                          --overload-concurrency (default 3) and open-loop steps of 5 s above it
 *                          while latency stays fine, a baseline open loop at half of it, then
 *                          --overload-factor (default 3) × capacity, each for --overload-seconds
 *                          (default 10; 60 or more for a longer run): admitted latency against the
 *                          baseline, the share shed with 503, split outcomes (must be 0)
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir, cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openDb } from '@kessai/service';
import { chart, type Series } from './charts.ts';
import { measureCrypto } from './crypto-ceiling.ts';
import { Driver, type Payment, type PhaseResult, type Sample } from './e2e.ts';
import { measureHttpChain } from './http-chain.ts';
import { measureOverload, type OverloadReport } from './overload.ts';
import { measureLedger, type LedgerRun } from './ledger.ts';
import { findPgbench, runPgbench, scratchDatabase, serverSettings, type PgbenchRun, type ServerSettings } from './pg.ts';
import { startBenchSystem } from './roles.ts';
import { issueTargets, printTargets } from './targets.ts';
import type { Summary } from './stats.ts';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,4,16' },
    payments: { type: 'string', default: '60' },
    quick: { type: 'boolean', default: false },
    ledger: { type: 'boolean', default: false },
    rate: { type: 'string' },
    duration: { type: 'string', default: '30' },
    soak: { type: 'string' },
    warmup: { type: 'string', default: '180' },
    'half-seconds': { type: 'string', default: '30' },
    'pg-url': { type: 'string' },
    'ledger-seconds': { type: 'string', default: '5' },
    'ledger-concurrency': { type: 'string', default: '1,16,64,256,1024' },
    'pgbench-seconds': { type: 'string', default: '10' },
    'pgbench-clients': { type: 'string', default: '1,8' },
    profile: { type: 'string' },
    issuer: { type: 'string', default: 'sakura-bank' },
    overload: { type: 'boolean', default: false },
    'overload-seconds': { type: 'string', default: '10' },
    'overload-factor': { type: 'string', default: '3' },
    'overload-concurrency': { type: 'string', default: '3' },
  },
});
const list = (value: string, max: number) => value.split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0 && n <= max);
const levels = list(values.concurrency, 64);
const paymentsPerLevel = values.quick ? 8 : Math.min(Math.max(Number(values.payments), 4), 2_000);
const pgUrl = values['pg-url'] ?? process.env.KESSAI_BENCH_PG_URL ?? process.env.KESSAI_TEST_PG_URL;
const soakSeconds = values.soak === undefined ? undefined : Math.max(Number(values.soak), 20);
const warmupSeconds = Math.min(Math.max(Number(values.warmup), 0), 3_600);
const halfSeconds = values.quick ? 8 : Math.min(Math.max(Number(values['half-seconds']), 0), 600);
/** The issue's latency target: p99 of the whole flow at half of the maximum throughput. */
const flowP99TargetMs = 50;
const rate = values.rate === undefined ? (soakSeconds !== undefined ? 4 : undefined) : Number(values.rate.replace(/\/s$/, ''));
if (rate !== undefined && !(rate > 0 && rate <= 500)) throw new Error('--rate must be between 0 and 500 payments/s');
const parts = {
  ceilings: !values.ledger && soakSeconds === undefined && !values.overload,
  ledger: values.ledger || (values.rate === undefined && soakSeconds === undefined && !values.overload),
  endToEnd: !values.ledger,
};

function progress(label: string, done: number, total: number): void {
  const width = 30;
  const filled = Math.round((Math.min(done, total) / total) * width);
  process.stderr.write(`\r${label.padEnd(40)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
  if (done >= total) process.stderr.write('\n');
}

interface LedgerReport {
  runs: LedgerRun[];
  postgres?: ServerSettings;
  pgbench?: PgbenchRun[];
  skipped: string[];
  /** Best durable PostgreSQL transfers/s over best pgbench TPC-B tps, same server, same run. */
  ratioToPgbench?: number;
}

async function ledgerPart(): Promise<LedgerReport> {
  const seconds = values.quick ? 2 : Number(values['ledger-seconds']);
  const concurrency = list(values['ledger-concurrency'], 4_096);
  const report: LedgerReport = { runs: [], skipped: [] };
  const liteDir = await mkdtemp(path.join(tmpdir(), 'kessai-bench-ledger-'));
  const lite = await openDb({ dataDir: liteDir });
  try {
    report.runs.push(...(await measureLedger(lite, 'pglite', { concurrency, seconds, accounts: 1_000 }, progress)));
  } finally {
    await lite.close();
    await rm(liteDir, { recursive: true, force: true });
  }
  if (!pgUrl) {
    report.skipped.push('PostgreSQL ledger run and pgbench: no --pg-url, KESSAI_BENCH_PG_URL or KESSAI_TEST_PG_URL');
    return report;
  }
  report.postgres = await serverSettings(pgUrl);
  const scratch = await scratchDatabase(pgUrl, 'kessai_bench_ledger');
  const db = await openDb({ url: scratch.url, poolSizeMax: 4 });
  try {
    report.runs.push(...(await measureLedger(db, 'postgres', { concurrency, seconds, accounts: 1_000 }, progress)));
  } finally {
    await db.close();
    await scratch.drop();
  }
  const pgbench = await findPgbench();
  if (!pgbench) {
    report.skipped.push('pgbench baseline: no pgbench binary (apt-get install postgresql-contrib, or postgresql-client)');
    return report;
  }
  report.pgbench = await runPgbench(pgbench, pgUrl, { clients: list(values['pgbench-clients'], 256), scale: 1, seconds: values.quick ? 3 : Number(values['pgbench-seconds']) }, (label) => process.stderr.write(`${label}\n`));
  const bestLedger = Math.max(...report.runs.filter((r) => r.backend === 'postgres').map((r) => r.transfersPerSecond));
  const bestPgbench = Math.max(...report.pgbench.map((r) => r.tps));
  report.ratioToPgbench = bestLedger / bestPgbench;
  return report;
}

interface EndToEndReport {
  backend: 'pglite' | 'postgres';
  phases: PhaseResult[];
  /** Open loop: RSS and CPU share per process over time (every 2 s, or 10 s in a soak). */
  samples?: Sample[];
  /** The open loop at half the best closed-loop rate, and the latency target judged on it. */
  atHalfMaximum?: { rate: number; flowP99Ms: number; targetMs: number; met: boolean };
  soak?: {
    seconds: number;
    rate: number;
    /** Seconds at the same rate before the judged window, not judged (start-up, JIT, heap, pools). */
    warmupSeconds: number;
    /** Mean RSS of the last minute over the first minute of the judged window, minus 1. */
    growthFromFirstMinute: Record<string, number>;
    /** The highest one-minute mean RSS in the judged window over its first minute, minus 1. */
    peakGrowthFromFirstMinute: Record<string, number>;
    withinTenPercent: boolean;
    /** RSS every 10 s during the warm-up, for the chart. */
    warmupSamples: Sample[];
  };
  overload?: OverloadReport;
  /** Statements per second each server sent while idle (its workers' polling), before the closed-loop levels. */
  idleStatementsPerSecond?: Record<string, number>;
}

/** The overload part (--overload): a baseline rate, then past capacity; load shedding judged. */
async function overloadPart(
  driver: Driver,
  report: EndToEndReport,
  all: Array<{ phase: string; payments: Payment[] }>,
): Promise<void> {
  const concurrency = Math.min(Math.max(Number(values['overload-concurrency']), 1), 64);
  await driver.enroll(concurrency, (done, total) => progress('enrolling terminals', done, total));
  await driver.pay(0);
  const measured = await measureOverload(
    driver,
    {
      concurrency,
      capacityPayments: values.quick ? concurrency * 8 : concurrency * 40,
      stepSeconds: values.quick ? 3 : 5,
      seconds: values.quick ? 5 : Math.min(Math.max(Number(values['overload-seconds']), 2), 3_600),
      factor: Math.min(Math.max(Number(values['overload-factor']), 1), 20),
    },
    progress,
  );
  report.overload = measured.report;
  report.phases.push(measured.report.baseline, measured.report.overload);
  all.push({ phase: `baseline ${measured.report.baseline.rate}/s`, payments: measured.payments.baseline }, { phase: `overload ${measured.report.overload.rate}/s`, payments: measured.payments.overload });
}

/**
 * Each role's mean RSS over the soak's last minute, and its highest one-minute mean, against its
 * first minute.
 */
function soakGrowth(samples: Sample[], seconds: number) {
  const mean = (role: string, from: number, to: number) => {
    const window = samples.filter((s) => s.at >= from && s.at < to);
    return window.reduce((sum, s) => sum + s.rss[role]!, 0) / Math.max(window.length, 1);
  };
  const roles = Object.keys(samples[0]!.rss);
  const first = (role: string) => mean(role, 0, 60);
  const growthFromFirstMinute = Object.fromEntries(roles.map((role) => [role, mean(role, seconds - 60, Number.POSITIVE_INFINITY) / first(role) - 1]));
  const minutes = Array.from({ length: Math.max(Math.floor(seconds / 60), 1) }, (_, i) => i * 60);
  const peakGrowthFromFirstMinute = Object.fromEntries(roles.map((role) => [role, Math.max(...minutes.map((at) => mean(role, at, at + 60))) / first(role) - 1]));
  const servers = roles.filter((role) => !role.startsWith('load generator'));
  return { growthFromFirstMinute, peakGrowthFromFirstMinute, servers };
}

async function endToEndPart(): Promise<{ report: EndToEndReport; payments: Array<{ phase: string; payments: Payment[] }> }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-bench-'));
  const system = await startBenchSystem(dataDir, pgUrl, values.profile === undefined ? undefined : path.resolve(values.profile), values.issuer, !values.overload);
  const driver = new Driver(system);
  const report: EndToEndReport = { backend: system.backend, phases: [] };
  const all: Array<{ phase: string; payments: Payment[] }> = [];
  try {
    if (values.overload) {
      await overloadPart(driver, report, all);
    } else if (rate === undefined) {
      await driver.enroll(Math.max(...levels), (done, total) => progress('enrolling terminals', done, total));
      await driver.pay(0); // warm up: keys, issuer metadata, connections
      report.idleStatementsPerSecond = await driver.measureIdleStatements(3); // the workers' polling, subtracted from the payment path's statements
      for (const concurrency of levels) {
        const { payments, result } = await driver.closed(concurrency, paymentsPerLevel, (done, total) => progress(`end to end, concurrency ${concurrency}`, done, total));
        report.phases.push(result);
        all.push({ phase: `concurrency ${concurrency}`, payments });
      }
      const best = Math.max(...report.phases.map((p) => p.paymentsPerSecond));
      if (halfSeconds > 0 && best > 0) {
        const half = Math.round(best * 5) / 10;
        const { payments, result } = await driver.open(half, halfSeconds, (done, total) => progress(`open loop ${half}/s (half the best)`, done, total), 2_000);
        report.phases.push(result);
        all.push({ phase: `open loop ${half}/s`, payments });
        report.atHalfMaximum = { rate: half, flowP99Ms: result.flow.p99, targetMs: flowP99TargetMs, met: result.flow.count > 0 && result.flow.p99 < flowP99TargetMs && Object.keys(result.errors).length === 0 };
      }
    } else {
      await driver.enroll(16, (done, total) => progress('enrolling terminals', done, total));
      await driver.pay(0);
      const seconds = soakSeconds ?? (values.quick ? 10 : Number(values.duration));
      const warmup = soakSeconds && warmupSeconds > 0 ? await driver.open(rate, warmupSeconds, (done, total) => progress(`open loop ${rate}/s (warm-up, not judged)`, done, total), 10_000) : undefined;
      const { payments, result, samples } = await driver.open(rate, seconds, (done, total) => progress(`open loop ${rate}/s${soakSeconds ? ' (soak)' : ''}`, done, total), soakSeconds ? 10_000 : 2_000);
      report.phases.push(result);
      report.samples = samples;
      all.push({ phase: `open loop ${rate}/s`, payments });
      if (soakSeconds) {
        // The judged window follows the warm-up: each server's mean RSS over its last minute, and
        // its highest one-minute mean, against its first minute. The load generator keeps every
        // payment's result, so its growth is recorded but not judged.
        const { growthFromFirstMinute, peakGrowthFromFirstMinute, servers } = soakGrowth(samples, seconds);
        report.soak = {
          seconds,
          rate,
          warmupSeconds: warmup ? warmupSeconds : 0,
          growthFromFirstMinute,
          peakGrowthFromFirstMinute,
          withinTenPercent: servers.every((role) => peakGrowthFromFirstMinute[role]! <= 0.1),
          warmupSamples: warmup?.samples ?? [],
        };
        if (warmup) {
          report.phases.unshift(warmup.result);
          all.unshift({ phase: `warm-up ${rate}/s`, payments: warmup.payments });
        }
      }
    }
  } finally {
    await driver.close();
    await system.close();
    await rm(dataDir, { recursive: true, force: true });
  }
  return { report, payments: all };
}

// The machine may be shared: its load average is recorded at the start and the end.
const loadAtStart = loadavg();
const crypto = parts.ceilings ? await measureCrypto(values.quick ? 10 : 60, (done, total) => progress('crypto ceiling', done, total)) : undefined;
const http = parts.ceilings ? await measureHttpChain(values.quick ? 100 : 1_000, 16, (done, total) => progress('bare HTTPS chain', done, total)) : undefined;
const ledger = parts.ledger ? await ledgerPart() : undefined;
const e2e = parts.endToEnd ? await endToEndPart() : undefined;
const best = e2e ? Math.max(...e2e.report.phases.map((r) => r.paymentsPerSecond)) : undefined;
const report = {
  at: new Date().toISOString(),
  machine: { cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, loadAverage1mAtStart: loadAtStart[0] ?? 0, loadAverage1mAtEnd: loadavg()[0] ?? 0 },
  options: values,
  crypto,
  http,
  ledger,
  endToEnd: e2e?.report,
  ratios: {
    ...(best !== undefined && crypto ? { endToEndToCryptoCeiling: best / crypto.paymentsPerSecondCeiling } : {}),
    ...(best !== undefined && http ? { endToEndToHttpChain: best / http.requestsPerSecond } : {}),
    ...(ledger?.ratioToPgbench !== undefined ? { ledgerToPgbench: ledger.ratioToPgbench } : {}),
  },
  targets: issueTargets({
    ...(crypto ? { cryptoMsPerPayment: crypto.msPerPayment } : {}),
    ...(http ? { httpChainRequestsPerSecond: http.requestsPerSecond } : {}),
    phases: e2e?.report.phases ?? [],
    ...(e2e?.report.atHalfMaximum ? { halfFlowP99Ms: e2e.report.atHalfMaximum.flowP99Ms } : {}),
    ...(ledger?.ratioToPgbench !== undefined ? { ledgerToPgbench: ledger.ratioToPgbench } : {}),
  }),
};
const resultsDir = path.join(import.meta.dirname, 'results');
await mkdir(resultsDir, { recursive: true });
const stem = path.join(resultsDir, report.at.replace(/[:.]/g, '-'));
await writeFile(`${stem}.json`, `${JSON.stringify(report, null, 2)}\n`);
const charts: string[] = [];
const writeChart = async (name: string, svg: string) => {
  await writeFile(`${stem}-${name}.svg`, svg);
  charts.push(`${stem}-${name}.svg`);
};
if (ledger) {
  const series: Series[] = (['pglite', 'postgres'] as const).map((backend) => ({ name: `ledger, ${backend}`, points: ledger.runs.filter((r) => r.backend === backend).map((r) => [r.concurrency, r.transfersPerSecond] as [number, number]) })).filter((s) => s.points.length > 0);
  const hLines = (ledger.pgbench ?? []).map((r) => ({ name: `pgbench TPC-B -c ${r.clients}`, y: r.tps }));
  await writeChart('ledger', chart({ title: 'Ledger transfers/s vs transfers in flight (durable commits)', xLabel: 'submitters in flight (log scale)', yLabel: 'transfers/s (pgbench: tps)', series, logX: true, hLines }));
}
if (e2e) {
  await writeChart('latency', chart({ title: 'Payment latency over time (402 → 409)', xLabel: 'seconds since the load generator started', yLabel: 'ms per payment', series: e2e.payments.map(({ phase, payments }) => ({ name: phase, dots: true, points: payments.filter((p) => p.ok).map((p) => [p.endedAt, p.flowMs] as [number, number]) })) }));
  const closed = e2e.report.phases.filter((p) => p.mode === 'closed');
  if (closed.length > 0) {
    await writeChart('throughput', chart({
      title: `End-to-end payments/s vs concurrency (${e2e.report.backend})`,
      xLabel: 'payments in flight (closed loop)',
      yLabel: 'payments/s',
      series: [{ name: 'payments/s', points: closed.map((p) => [p.concurrency!, p.paymentsPerSecond] as [number, number]) }],
      ...(crypto ? { hLines: [{ name: 'crypto ceiling, 1 core', y: crypto.paymentsPerSecondCeiling }] } : {}),
    }));
  }
  const samples = e2e.report.samples;
  if (samples && samples.length > 1) {
    const roles = Object.keys(samples[0]!.rss);
    const short = (role: string) => role.replace(/ \(.*\)$/, '');
    if (e2e.report.soak) {
      const { warmupSeconds: w, warmupSamples } = e2e.report.soak;
      const rssPoints = (role: string) => [...warmupSamples.map((s) => [s.at - w, s.rss[role]! / 2 ** 20] as [number, number]), ...samples.map((s) => [s.at, s.rss[role]! / 2 ** 20] as [number, number])];
      await writeChart('rss', chart({ title: `RSS per process, ${e2e.report.soak.rate} payments/s: ${w} s warm-up (negative time), then ${e2e.report.soak.seconds} s judged`, xLabel: 'seconds since the judged window began', yLabel: 'MiB', series: roles.map((role) => ({ name: short(role), points: rssPoints(role) })) }));
    }
    await writeChart('cpu', chart({
      title: 'CPU per process over time (open loop)',
      xLabel: 'seconds',
      yLabel: '% of one core; machine load average × 10',
      series: [
        ...roles.map((role) => ({ name: short(role), points: samples.slice(1).map((s) => [s.at, (s.cpuShare[role] ?? 0) * 100] as [number, number]) })),
        { name: 'load average × 10', points: samples.map((s) => [s.at, s.loadAverage1m * 10] as [number, number]) },
      ],
    }));
  }
}

const ms = (s: Summary) => `${s.p50.toFixed(1)} / ${s.p95.toFixed(1)} / ${s.p99.toFixed(1)} / ${s.max.toFixed(1)}`;
console.log(`\nKessai benchmark (${report.machine.cores} cores, Node ${report.machine.node}, load average ${report.machine.loadAverage1mAtStart.toFixed(1)} → ${report.machine.loadAverage1mAtEnd.toFixed(1)}) — ${stem}.json`);
if (crypto) console.log(`crypto one payment needs (the re-seal path, ECDH-ES cipher 2), alone: ${crypto.msPerPayment.toFixed(2)} ms → ceiling ${crypto.paymentsPerSecondCeiling.toFixed(1)} payments/s (keyed PIN check ${crypto.breakdownMs['settlement: keyed PIN verify']?.toFixed(2)} ms of it)`);
if (http) console.log(`bare HTTPS chain, 2 hops with mutual TLS: ${http.requestsPerSecond.toFixed(0)} requests/s at concurrency ${http.concurrency}`);
if (ledger) {
  console.log('\nledger    | in flight | transfers/s | transfers per transaction | errors');
  for (const r of ledger.runs) console.log(`${r.backend.padEnd(9)} | ${String(r.concurrency).padStart(9)} | ${r.transfersPerSecond.toFixed(0).padStart(11)} | ${r.transfersPerTransaction.toFixed(1).padStart(25)} | ${JSON.stringify(r.errors)}${r.balanced ? '' : ' UNBALANCED'}`);
  for (const r of ledger.pgbench ?? []) console.log(`pgbench TPC-B (scale ${r.scale}, ${r.clients} clients, ${r.threads} threads, ${r.seconds} s): ${r.tps.toFixed(0)} tps`);
  if (ledger.postgres) console.log(`PostgreSQL ${ledger.postgres.version}, fsync ${ledger.postgres.fsync}, synchronous_commit ${ledger.postgres.synchronousCommit}`);
  if (ledger.ratioToPgbench !== undefined) console.log(`best durable ledger transfers/s on PostgreSQL = ${ledger.ratioToPgbench.toFixed(1)}× best pgbench TPC-B tps (target ≥ 10×)`);
  for (const s of ledger.skipped) console.log(`skipped: ${s}`);
}
if (e2e) {
  console.log(`\nend to end on ${e2e.report.backend}, roles in separate processes, a card of ${values.issuer}`);
  console.log('phase           | payments/s | flow p50 / p95 / p99 / max ms | errors');
  for (const r of e2e.report.phases) console.log(`${(r.mode === 'closed' ? `closed c=${r.concurrency}` : `open ${r.rate}/s`).padEnd(15)} | ${r.paymentsPerSecond.toFixed(1).padStart(10)} | ${ms(r.flow).padEnd(29)} | ${JSON.stringify(r.errors)}`);
  for (const r of e2e.report.phases) {
    console.log(`\n${r.mode === 'closed' ? `concurrency ${r.concurrency}` : `open loop ${r.rate}/s`}: step p50 / p95 ms (client | server)`);
    for (const [name, s] of Object.entries(r.client)) console.log(`  client ${name.padEnd(36)} ${s.p50.toFixed(1)} / ${s.p95.toFixed(1)}`);
    for (const [name, s] of Object.entries(r.server)) console.log(`  server ${name.padEnd(36)} ${s.p50.toFixed(1)} / ${s.p95.toFixed(1)}`);
    console.log(`  407 webhook after the approval answer     ${r.notification.p50.toFixed(1)} / ${r.notification.p95.toFixed(1)} (${r.notification.count} received)`);
    for (const [role, n] of Object.entries(r.statementsPerPayment)) console.log(`  statements ${role.padEnd(37)} ${n.toFixed(1)} per payment, ${r.paymentStatementsPerPayment[role]!.toFixed(1)} less idle polling, an estimate (${(e2e.report.idleStatementsPerSecond?.[role] ?? 0).toFixed(0)}/s)`);
    for (const [role, s] of Object.entries(r.cpuSecondsPerPayment)) console.log(`  CPU ${role.padEnd(44)} ${(s * 1000).toFixed(1)} ms/payment, ${(r.cpuUtilization[role]! * 100).toFixed(0)}% of a core`);
  }
  if (e2e.report.atHalfMaximum) {
    const h = e2e.report.atHalfMaximum;
    console.log(`\nflow p99 at half the best rate (open loop ${h.rate}/s): ${h.flowP99Ms.toFixed(1)} ms (target < ${h.targetMs} ms: ${h.met ? 'met' : 'NOT met'})`);
  }
  if (e2e.report.overload) {
    const o = e2e.report.overload;
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    console.log(`\noverload: capacity ${o.capacity.paymentsPerSecond.toFixed(1)} payments/s; baseline ${o.baseline.rate}/s, overload ${o.overload.rate}/s (${o.factor}×), ${o.seconds} s each`);
    console.log(`  capacity search: closed loop c=${o.capacity.concurrency} errors ${JSON.stringify(o.capacity.errors)}; ${o.capacity.steps.map((step) => `${step.rate}/s p99 ${step.flowP99Ms.toFixed(0)} ms shed ${(step.shedShare * 100).toFixed(1)}% ${step.fine ? 'fine' : 'not fine'}`).join('; ')}`);
    console.log(`  admitted payments/s under overload: ${o.overload.paymentsPerSecond.toFixed(1)} (capacity ${o.capacity.paymentsPerSecond.toFixed(1)})`);
    console.log(`  flow p50 / p99 ms: baseline ${o.baseline.flow.p50.toFixed(0)} / ${o.baseline.flow.p99.toFixed(0)}, closed loop c=${o.capacity.concurrency} ${o.capacity.flow.p50.toFixed(0)} / ${o.capacity.flow.p99.toFixed(0)}, admitted under overload ${o.overload.flow.p50.toFixed(0)} / ${o.overload.flow.p99.toFixed(0)}`);
    console.log(`  approve p50 / p99 over baseline: ${o.ratios.approveP50.toFixed(2)}× / ${o.ratios.approveP99.toFixed(2)}×; whole flow ${o.ratios.flowP50.toFixed(2)}× / ${o.ratios.flowP99.toFixed(2)}×`);
    console.log(`  shed with 503: ${pct(o.shedShare)} of ${o.started} started (${JSON.stringify(o.shedByStep)}); other errors ${JSON.stringify(o.overload.errors)}`);
    console.log(`  split outcomes (wallet told "not paid", broker recorded approved): ${o.splitOutcomes} (must be 0); still in doubt: ${o.stillInDoubt}`);
  }
  if (e2e.report.soak) {
    const s = e2e.report.soak;
    const growth = (g: Record<string, number>) => Object.entries(g).map(([role, value]) => `${role.replace(/ \(.*\)$/, '')} ${(value * 100).toFixed(1)}%`).join(', ');
    console.log(`\nsoak ${s.seconds} s at ${s.rate}/s after ${s.warmupSeconds} s of warm-up; RSS against the first minute of the judged window`);
    console.log(`  last minute:             ${growth(s.growthFromFirstMinute)}`);
    console.log(`  highest one-minute mean: ${growth(s.peakGrowthFromFirstMinute)} → servers ${s.withinTenPercent ? 'within' : 'NOT within'} +10%`);
  }

}
if (best !== undefined && crypto && http) console.log(`\nbest end to end = ${((report.ratios.endToEndToCryptoCeiling ?? 0) * 100).toFixed(1)}% of the one-core crypto ceiling${values.issuer === 'sakura-bank' ? '' : ' (measured for the re-seal path, not this issuer\'s)'}, ${((report.ratios.endToEndToHttpChain ?? 0) * 100).toFixed(2)}% of the bare HTTPS chain`);
for (const file of charts) console.log(`chart: ${file}`);
printTargets(report.targets);
