/**
 * One demo settlement server (role 40) as its own OS process, for the benchmark (so its CPU and
 * memory are its own): `tsx bench/settlement-process.ts <config.json>`. The JSON names the data
 * folder (pki/ and settlement-<issuer>/keys/ as `kessai start` lays them out), the issuer id, the
 * port, and a PostgreSQL URL (else PGlite under the data folder). Prints `{"listening":…}` once up;
 * SIGTERM closes it. Rate limits are raised: one load generator is all its traffic.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildSettlementServer, loadOrCreateCardKeys } from '@kessai/settlement-server';
import { demoIssuers } from '@kessai/cli/demo-data';
import { createLogger, loadOrCreateDevPki, loadOrCreateKeyRing, loadTestRateLimits, openDb } from '@kessai/service';

interface SettlementProcessConfig {
  dataDir: string;
  issuerId: string;
  port: number;
  databaseUrl?: string;
}

const options = JSON.parse(await readFile(process.argv[2]!, 'utf8')) as SettlementProcessConfig;
const issuer = demoIssuers.find((i) => i.id === options.issuerId);
if (!issuer) throw new Error(`no demo issuer ${options.issuerId}`);
const dataDir = path.resolve(options.dataDir);
const pki = await loadOrCreateDevPki(path.join(dataDir, 'pki'), [{ name: 'settlement-server', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], usages: ['server'] }]);
const leaf = pki.leaves['settlement-server']!;
const db = await openDb(options.databaseUrl ? { url: options.databaseUrl } : { dataDir: path.join(dataDir, `settlement-${issuer.id}`, 'db') });
const logger = createLogger({ name: `settlement-${issuer.id}`, file: path.join(dataDir, 'logs', `settlement-${issuer.id}.log`) });
const publicBaseUrl = `https://127.0.0.1:${options.port}`;
const app = await buildSettlementServer(
  Object.freeze({
    issuerId: issuer.id,
    name: issuer.name,
    conversionMode: issuer.conversionMode,
    publicBaseUrl,
    db,
    logger,
    keys: await loadOrCreateKeyRing(path.join(dataDir, `settlement-${issuer.id}`, 'keys'), [
      { name: 'cipher2', use: 'enc', alg: issuer.cipher2 },
      { name: 'authorization-signing', use: 'sig' },
    ]),
    cardKeys: await loadOrCreateCardKeys(path.join(dataDir, `settlement-${issuer.id}`, 'keys')),
    seedCards: issuer.cards,
    tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem },
    rateLimits: loadTestRateLimits,
  }),
);
await app.listen({ port: options.port, host: '127.0.0.1' });
console.log(JSON.stringify({ listening: publicBaseUrl, pid: process.pid }));
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await app.close().catch(() => undefined);
  await db.close().catch(() => undefined);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
