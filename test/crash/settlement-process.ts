/**
 * The crash test's settlement server as its own OS process, so the test can SIGKILL it: the real
 * buildSettlementServer (its real config, mutual TLS, group commit, expiry worker) on the database
 * and port the test names, with keys and certificates kept in a folder, so every restart is the
 * same issuer. Prints `listening <port>` once it accepts connections; SIGTERM stops it cleanly.
 *
 * Environment: KESSAI_CRASH_DIR (keys, PKI, logs; a PGlite data folder in `db/` unless
 * KESSAI_CRASH_DB_URL names a PostgreSQL database), KESSAI_CRASH_PORT, KESSAI_CRASH_CARDS (JSON
 * of the cards, balances as minor-unit strings, imported through the operator's import at start), KESSAI_CRASH_MERCHANTS (JSON of the merchants
 * the bank onboards, `[{id, name}]`: it pays no other), KESSAI_CRASH_HOLD_SECONDS.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { formatDecimalAmount, type Currency } from '@kessai/protocol';
import { buildSettlementServer, importAccounts, loadOrCreateCardKeys, type SettlementConfig } from '@kessai/settlement-server';
import { createLogger, loadOrCreateDevPki, loadOrCreateKeyRing, loadTestRateLimits, openDb } from '@kessai/service';

export const crashIssuerId = 'crash-bank';

/** The same leaves test/crash and startSystem use: the broker's client certificate and the issuer's server certificate. */
export const crashPkiLeaves = [
  { name: 'auth-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server' as const, 'client' as const] },
  { name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server' as const] },
];

async function main(): Promise<void> {
  const dir = process.env.KESSAI_CRASH_DIR;
  const port = Number(process.env.KESSAI_CRASH_PORT);
  if (!dir || !Number.isInteger(port) || port <= 0) throw new Error('KESSAI_CRASH_DIR and KESSAI_CRASH_PORT are required');
  const cards = JSON.parse(process.env.KESSAI_CRASH_CARDS ?? '[]') as Array<{ cardNumber: string; holderName: string; expiry: string; pin: string; status: string; balanceMinor: string; currency: Currency }>;
  const merchants = JSON.parse(process.env.KESSAI_CRASH_MERCHANTS ?? '[]') as Array<{ id: string; name: string }>;
  const dbUrl = process.env.KESSAI_CRASH_DB_URL;
  const db = await openDb(dbUrl ? { url: dbUrl } : { dataDir: path.join(dir, 'db') });
  const pki = await loadOrCreateDevPki(path.join(dir, 'pki'), crashPkiLeaves);
  const leaf = pki.leaves['settlement-server']!;
  const config: SettlementConfig = Object.freeze({
    issuerId: crashIssuerId,
    name: 'Crash Test Bank',
    conversionMode: 'reseal' as const,
    publicBaseUrl: `https://127.0.0.1:${port}`,
    db,
    logger: createLogger({ name: 'settlement-crash', file: path.join(dir, 'logs', 'settlement.log') }),
    keys: await loadOrCreateKeyRing(path.join(dir, 'keys'), [
      { name: 'cipher2', use: 'enc', alg: 'ECDH-ES+A256KW' },
      { name: 'authorization-signing', use: 'sig' },
    ]),
    cardKeys: await loadOrCreateCardKeys(path.join(dir, 'keys')),
    merchants,
    holdTimeoutSeconds: Number(process.env.KESSAI_CRASH_HOLD_SECONDS ?? 3600),
    expiryIntervalMs: 250,
    // Six workers pay through one device per card: the per-credential and per-card budgets would answer 429, which is not what this test is about.
    rateLimits: loadTestRateLimits,
    tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem },
  });
  const app = await buildSettlementServer(config);
  // Every restart imports the same cards again: the store answers unchanged.
  await importAccounts(db, config.cardKeys, cards.map((c) => ({ card_number: c.cardNumber, holder_name: c.holderName, expiry: c.expiry, pin: c.pin, balance: formatDecimalAmount(BigInt(c.balanceMinor), c.currency), currency: c.currency, kind: 'debit', status: c.status, test: 'true' })));
  await app.listen({ port, host: '127.0.0.1' });
  process.stdout.write(`listening ${port}\n`);
  process.once('SIGTERM', () => {
    void (async () => {
      await app.close();
      await db.close();
      process.exit(0);
    })();
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`settlement process failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
