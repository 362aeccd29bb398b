/**
 * `kessai audit verify`: checks the hash chain of each server's audit log, either through the
 * running servers (`GET /admin/v1/audit/verify`, with the data folder's CA and operator token) or
 * offline, straight from one role's PostgreSQL database (`--database-url`). Prints one line per
 * role and exits non-zero when a chain is broken or a server cannot be asked.
 */
import type { Command } from 'commander';
import { KessaiError } from '@kessai/protocol';
import { auditVerificationView, auditVerifyResponse, openDb, verifyAuditChain, type AuditVerifyResponse } from '@kessai/service';
import { demoIssuers } from './demo-data.ts';
import { defaultRoleUrl, operatorCall } from './operator.ts';

export type AuditRole = 'auth' | 'shop' | `settlement-${string}`;

export interface AuditVerifyOptions {
  dataDir: string;
  /** One role, or every role of `kessai start`. */
  role: AuditRole | 'all';
  /** The server of a single role, when it is not on its default port. */
  url?: string;
  /** Verify this database directly instead of asking a server. */
  databaseUrl?: string;
}

export const auditRoles = (): AuditRole[] => ['auth', ...demoIssuers.map((issuer) => `settlement-${issuer.id}` as const), 'shop'];

/** One line per checked chain and the exit code: 0 all intact, 1 a chain broken, 2 a chain could not be read. */
export async function auditVerify(options: AuditVerifyOptions): Promise<{ exitCode: number; lines: string[] }> {
  if (options.databaseUrl) {
    try {
      const db = await openDb({ url: options.databaseUrl, poolSizeMax: 1 });
      try {
        const view = auditVerificationView(await verifyAuditChain(db));
        return { exitCode: view.ok ? 0 : 1, lines: [describe('database', view)] };
      } finally {
        await db.close();
      }
    } catch (err) {
      // The driver's message names the database or table, never a row's values.
      return { exitCode: 2, lines: [`database: could not verify (${(err as Error).message})`] };
    }
  }
  const roles = options.role === 'all' ? auditRoles() : [options.role];
  if (options.url && roles.length !== 1) throw new KessaiError('validation_failed', '--url needs a single --role');
  const lines: string[] = [];
  let exitCode = 0;
  for (const role of roles) {
    try {
      const view = await operatorCall({ dataDir: options.dataDir, role, url: options.url ?? defaultRoleUrl(role) }, 'GET', '/admin/v1/audit/verify', auditVerifyResponse);
      lines.push(describe(role, view));
      if (!view.ok) exitCode = Math.max(exitCode, 1);
    } catch (err) {
      lines.push(`${role}: could not verify (${err instanceof KessaiError ? err.code : (err as Error).message})`);
      exitCode = 2;
    }
  }
  return { exitCode, lines };
}

function describe(role: string, view: AuditVerifyResponse): string {
  return view.ok
    ? `${role}: intact, ${view.rows} rows, head seq ${view.head_seq ?? '0'} hash ${view.head_hash ?? ''}`
    : `${role}: BROKEN at seq ${view.broken_at} (${view.reason === 'missing' ? 'row missing' : view.reason === 'prev_hash' ? 'does not follow the row before' : 'row edited'}) after ${view.rows} intact rows`;
}

export function registerAuditCommands(program: Command, dataDirDefault: string): Command {
  const audit = program.command('audit').description('operator: the servers’ hash-chained audit logs');
  audit
    .command('verify')
    .description('verify the audit log chain of one role or all of them (exit 1 if broken)')
    .option('--role <role>', `auth, shop, settlement-<issuer id>, or all`, 'all')
    .option('--data-dir <dir>', 'the data folder of the running system (CA and operator token)', dataDirDefault)
    .option('--url <url>', 'the server of the single --role, if not on its default port')
    .option('--database-url <url>', 'verify one role’s PostgreSQL database directly (offline)')
    .action(async (options: { role: string; dataDir: string; url?: string; databaseUrl?: string }, command: Command) => {
      if (options.role !== 'all' && options.role !== 'auth' && options.role !== 'shop' && !options.role.startsWith('settlement-')) {
        command.error(`kessai audit: --role must be auth, shop, settlement-<issuer id> or all`, { exitCode: 2, code: 'kessai.validation_failed' });
      }
      const result = await auditVerify({ dataDir: options.dataDir, role: options.role as AuditRole | 'all', ...(options.url ? { url: options.url } : {}), ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}) });
      for (const line of result.lines) process.stdout.write(`${line}\n`);
      process.exitCode = result.exitCode;
    });
  return audit;
}
