/**
 * The bank's own Prometheus metrics, on the server's registry (packages/service/src/metrics.ts):
 * authorization answers by decision and decline code (a counter of this process's answers), and the ledger's group commit — jobs per batch and seconds per batch transaction.
 * Labels are bounded: decisions and the decline catalogue's codes, never an id or an amount.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { declineCodes } from '@kessai/protocol';

const knownDeclines = new Set<string>(declineCodes);

export interface BankMetrics {
  authorizationDecided(decision: unknown, code: unknown): void;
  ledgerBatch(jobs: number, seconds: number): void;
}

export function bankMetrics(registry: Registry): BankMetrics {
  const authorizations = new Counter({
    name: 'kessai_bank_authorizations_total',
    help: 'Authorization answers, by decision (approved, declined) and decline code (none when approved); a repeated request answered with its stored decision counts again',
    labelNames: ['decision', 'code'],
    registers: [registry],
  });
  const batchJobs = new Histogram({
    name: 'kessai_ledger_batch_jobs',
    help: 'Ledger jobs committed per group-commit transaction',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  const batchSeconds = new Histogram({
    name: 'kessai_ledger_batch_duration_seconds',
    help: 'Time of one group-commit batch, from its first attempt to its commit',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return {
    authorizationDecided(decision, code) {
      const decided = decision === 'approved' || decision === 'declined' ? decision : 'other';
      authorizations.inc({ decision: decided, code: typeof code === 'string' && knownDeclines.has(code) ? code : decided === 'declined' ? 'other' : 'none' });
    },
    ledgerBatch(jobs, seconds) {
      batchJobs.observe(jobs);
      batchSeconds.observe(seconds);
    },
  };
}
