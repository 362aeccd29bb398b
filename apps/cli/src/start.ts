/** `kessai start`: the whole system on fixed localhost ports, data under one folder, until Ctrl-C. */
import path from 'node:path';
import { formatAmount } from '@kessai/protocol';
import { createLogger, operatorTokenPath, survivesDatabaseFaults } from '@kessai/service';
import { demoIssuers } from './demo-data.ts';
import { defaultPorts, startSystem, type DbSource } from './system.ts';

export interface StartOptions {
  dataDir: string;
  /** Per-role PostgreSQL URLs from the environment; a role without one uses PGlite. */
  databaseUrls: { auth?: string; shop?: string; issuers: Record<string, string | undefined> };
  logToStdout: boolean;
}

export async function start(options: StartOptions): Promise<void> {
  const url = (value: string | undefined): DbSource | undefined => (value ? { url: value } : undefined);
  const issuerDbs: Record<string, DbSource> = {};
  for (const [id, value] of Object.entries(options.databaseUrls.issuers)) if (value) issuerDbs[id] = { url: value };
  // Every role in this one process: a database fault that escaped db.ts must not stop them all (docs/operations.md, Failure semantics).
  survivesDatabaseFaults(createLogger({ name: 'kessai', file: path.join(path.resolve(options.dataDir), 'logs', 'kessai.log'), stdout: options.logToStdout }));
  console.log(`Kessai: starting in ${path.resolve(options.dataDir)} (first start generates the CA, keys and databases; this can take a minute)`);
  const system = await startSystem({
    dataDir: options.dataDir,
    ports: defaultPorts,
    databases: { ...(url(options.databaseUrls.auth) ? { auth: url(options.databaseUrls.auth) } : {}), ...(url(options.databaseUrls.shop) ? { shop: url(options.databaseUrls.shop) } : {}), issuers: issuerDbs },
    stdoutLogs: options.logToStdout,
  });
  const lines = [
    '',
    'Kessai is running.',
    `  authentication server (30)  ${system.auth.url}`,
    `  directory key               ${system.directoryKey.file}   (what wallets trust the issuer list with)`,
    ...system.settlements.map((s) => `  settlement server (40)      ${s.url}   ${s.issuer.name}, ${s.issuer.conversionMode === 'reseal' ? 're-seal (embodiment 1)' : 'pass-through (embodiment 2)'}`),
    `  shop (50)                   ${system.shop.url}/api/products`,
    `  development CA              ${system.pki.caCertPath}`,
    `  merchant API key            ${path.join(system.dataDir, 'shop', 'merchant.json')}`,
    `  logs                        ${path.join(system.dataDir, 'logs')}`,
    '',
    'Pages (built by npm run build:web; the browser warns about the development CA, or import it):',
    `  storefront                  ${system.shop.url}/store/`,
    `  order page                  ${system.shop.url}/order/?id=ord_…   (checkout opens it)`,
    `  browser wallet              ${system.wallet.url}/wallet/   (its own origin; the directory key built in)`,
    '',
    'Operator consoles (sign in with that role’s own operator token):',
    `  authentication server       ${system.auth.url}/console/`,
    ...system.settlements.map((s) => `  settlement server           ${s.url}/console/   ${s.issuer.name}`),
    `  operator tokens             ${operatorTokenPath(system.dataDir, 'auth')}, ${path.join(system.dataDir, 'settlement-<issuer>', 'operator-token')}, ${operatorTokenPath(system.dataDir, 'shop')}`,
    '',
    'Test cards (expiry 12/34):',
    ...demoIssuers.flatMap((issuer) => issuer.cards.map((card) => `  ${card.cardNumber.replace(/(\d{4})(?=\d)/g, '$1 ')}  PIN ${card.pin}  ${card.holderName.padEnd(14)} ${issuer.name}: ${card.purpose}`)),
    '',
    'Pay from a terminal (the storage folder stands for a removable drive: create it first):',
    '  mkdir -p wallets/my-wallet      (git ignores wallets/: the folder holds the device\'s private key)',
    `  npm run kessai -- wallet enroll --storage ./wallets/my-wallet --auth ${system.auth.url} --ca ${system.pki.caCertPath} --directory-key ${system.directoryKey.file}`,
    '  npm run kessai -- wallet listen --storage ./wallets/my-wallet',
    `  (then check out at the shop: see README.md, or run npm run demo for a scripted walk-through; prices in ${formatAmount(1200n, 'JPY')} style)`,
    '',
    'Ctrl-C stops.',
  ];
  console.log(lines.join('\n'));
  await new Promise<void>((resolve) => {
    // The first Ctrl-C stops cleanly; a signal that arrives while stopping (a terminal sends one to
    // every process of the group, tsx relays another) is ignored.
    process.on('SIGINT', () => resolve());
    process.on('SIGTERM', () => resolve());
  });
  console.log('\nKessai: stopping…');
  await system.close();
  console.log('Kessai: stopped.');
}

// One rule for the variable's name (`kessai start` reads one per demo issuer).
export { issuerDatabaseEnv } from '@kessai/settlement-server';

export const issuerIds = demoIssuers.map((i) => i.id);
