/**
 * The SDK as a merchant installs it (issue 14, item 2): `npm run build -w @kessai/sdk` compiles
 * @kessai/protocol and @kessai/sdk to ESM + .d.ts, scripts/stage-packages.mjs stages their
 * publishable manifests, `npm pack` packs them, and a project in os.tmpdir() — outside the
 * repository — installs the tarballs offline (their dependencies packed from this repository's
 * node_modules, as the registry is not reachable here). Plain `node` (no tsx) then creates a payment
 * request against a running system, a wallet approves it, and `node` captures it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WalletClient } from '@kessai/sdk';
import { demoCard, enroll, startTestSystem, type TestSystem } from './support/system.ts';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const cardNumber = '4242424242424242';
let system: TestSystem;
let wallet: WalletClient;
let project: string;

beforeAll(async () => {
  project = await mkdtemp(path.join(tmpdir(), 'kessai-sdk-package-'));
  await run('npm', ['run', 'build', '-w', '@kessai/sdk'], { cwd: root });
  const stage = path.join(project, 'stage');
  await run('node', [path.join(root, 'scripts/stage-packages.mjs'), stage]);
  const tarballs = path.join(project, 'tarballs');
  const pack = (dir: string) => run('npm', ['pack', '--ignore-scripts', '--pack-destination', tarballs, dir], { cwd: project });
  await run('mkdir', ['-p', tarballs]);
  for (const dir of ['kessai-protocol', 'kessai-sdk']) await pack(path.join(stage, dir));
  for (const dep of ['jose', 'zod', 'undici']) await pack(path.join(root, 'node_modules', dep));
  const app = path.join(project, 'app');
  await run('mkdir', ['-p', app]);
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'shop-app', private: true, type: 'module' }));
  const files = (await readdir(tarballs)).map((name) => path.join(tarballs, name));
  await run('npm', ['install', '--offline', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', ...files], { cwd: app });
  system = await startTestSystem();
  wallet = await enroll(system, cardNumber);
}, 240_000);
afterAll(async () => {
  await wallet?.close();
  await system?.stop();
  if (project) await rm(project, { recursive: true, force: true });
});

/** A plain ESM script using the installed package: `node app/step.mjs <json args>` prints one JSON line. */
const script = `
import { MerchantClient } from '@kessai/sdk';
const [step, args] = [process.argv[2], JSON.parse(process.argv[3])];
const client = new MerchantClient({ baseUrl: args.baseUrl, apiKey: args.apiKey, caCertPem: args.caCertPem });
try {
  const view = step === 'create'
    ? await client.createPaymentRequest({ order_id: args.orderId, currency: 'JPY', amount_minor: '1200',
        line_items: [{ description: 'Sencha, 100 g', quantity: 1, unit_price_minor: '1200' }] })
    : await client.capture(args.id, {});
  console.log(JSON.stringify({ id: view.id, status: view.status, captured_minor: view.captured_minor }));
} finally {
  await client.close();
}
`;

describe('the packed SDK, installed outside the repository', () => {
  it('creates, and after the wallet approves, captures a payment with plain node', async () => {
    await writeFile(path.join(project, 'app', 'step.mjs'), script);
    const args = { baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem };
    const node = async (step: string, extra: object) =>
      JSON.parse((await run('node', ['step.mjs', step, JSON.stringify({ ...args, ...extra })], { cwd: path.join(project, 'app') })).stdout) as { id: string; status: string; captured_minor: string };
    const created = await node('create', { orderId: `sdk-package-${Date.now()}` });
    expect(created.status).toBe('pending');
    const outcome = await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin);
    expect(outcome.status).toBe('approved');
    const captured = await node('capture', { id: created.id });
    expect(captured).toEqual({ id: created.id, status: 'captured', captured_minor: '1200' });
  }, 60_000);
});
