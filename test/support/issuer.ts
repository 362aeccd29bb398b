/**
 * A settlement server (a demo issuer) running inside the test process — so a test can hook into
 * its request pipeline — on a database the test opened, with its keys under `<dataDir>/settlement`,
 * listening on a free port. Tests that need the issuer as its own process use
 * `kessai serve settlement` through support/processes.ts instead.
 */
import path from 'node:path';
import { createLogger, freePort, loadOrCreateKeyRing, type Db } from '@kessai/service';
import { buildSettlementServer, demoCardRows, importAccounts, loadOrCreateCardKeys, type DemoIssuer } from '@kessai/settlement-server';

export interface InProcessIssuer {
  app: Awaited<ReturnType<typeof buildSettlementServer>>;
  url: string;
}

export async function startInProcessIssuer(options: {
  issuer: DemoIssuer;
  dataDir: string;
  db: Db;
  pki: { caCertPem: string; leaves: Record<string, { keyPem: string; certPem: string } | undefined> };
  merchants: Array<{ id: string; name: string }>;
  /** Hooks to add before it listens (fault injection). */
  beforeListen?: (app: InProcessIssuer['app']) => void;
}): Promise<InProcessIssuer> {
  const { issuer, dataDir, db, pki } = options;
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const leaf = pki.leaves['settlement-server']!;
  const app = await buildSettlementServer(
    Object.freeze({
      issuerId: issuer.id,
      name: issuer.name,
      conversionMode: issuer.conversionMode,
      publicBaseUrl: url,
      db,
      logger: createLogger({ name: 'settlement', file: path.join(dataDir, 'logs', 'settlement.log') }),
      keys: await loadOrCreateKeyRing(path.join(dataDir, 'settlement', 'keys'), [
        { name: 'cipher2', use: 'enc', alg: issuer.cipher2 },
        { name: 'authorization-signing', use: 'sig' },
      ]),
      cardKeys: await loadOrCreateCardKeys(path.join(dataDir, 'settlement', 'keys')),
      merchants: options.merchants,
      tls: { keyPem: leaf.keyPem, certPem: leaf.certPem, caCertPem: pki.caCertPem },
    }),
  );
  await importAccounts(db, await loadOrCreateCardKeys(path.join(dataDir, 'settlement', 'keys')), demoCardRows(issuer.cards));
  options.beforeListen?.(app);
  await app.listen({ port, host: '127.0.0.1' });
  return { app, url };
}
