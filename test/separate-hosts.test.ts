/**
 * Separate hosts: the four roles — authentication server, one settlement server (bank), the shop,
 * and the wallet side (the browser wallet's host and the SDK's WalletClient) — each `kessai serve
 * <role>` inside its own network namespace of this machine (test/support/netns.ts), with its own
 * address, host name and /etc/hosts, and its own folder holding only its configuration, its keys,
 * a TLS certificate naming its own host name, and the public material it needs (the CA
 * certificate, the directory or the directory key, a peer's certificate fingerprint). The scheme
 * operator signs the directory on a fifth host. A purchase end to end proves that nothing depends
 * on 127.0.0.1 or on another host's files. PGlite in each role's own folder: no shared service.
 *
 * Needs root and iproute2 (`.ci/run` has both): where namespaces cannot be made the suite is
 * skipped, with the reason in its name; where it runs it says so on stdout.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { copyFile, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@kessai/protocol';
import { demoIssuers } from '@kessai/cli/demo-data';
import { defaultServePorts } from '@kessai/cli/serve';
import { roleFolder, seedBankCards, startServe, writeConfigFile, type RoleFolder, type Served, type ServeRoleName } from './support/serve.ts';
import { createNetwork, netnsAvailability, sweepStaleNetworks, type NetnsNetwork, type RunResult } from './support/netns.ts';

const availability = await netnsAvailability();
/** `.ci/run` sets KESSAI_TEST_NETNS=required: there the suite must run, and fails rather than skip. */
const required = process.env.KESSAI_TEST_NETNS === 'required';
const suiteName = availability.available || required ? 'separate hosts: the four roles on four network namespaces' : `separate hosts: the four roles on four network namespaces (skipped: ${availability.reason})`;

const repositoryRoot = path.resolve(import.meta.dirname, '..');
const hostTasks = path.join(repositoryRoot, 'test', 'support', 'host-tasks.ts');

const issuer = demoIssuers[0]!;
const card = issuer.cards.find((c) => c.status === 'active' && c.currency === 'JPY' && c.balanceMinor >= 100_000n)!;

/** The roles' hosts, and the scheme operator's, who signs the directory. */
const hostSpecs = [
  { name: 'broker', hostName: 'broker.kessai.test' },
  { name: 'bank', hostName: 'bank.kessai.test' },
  { name: 'shop', hostName: 'shop.kessai.test' },
  { name: 'wallet', hostName: 'wallet.kessai.test' },
  { name: 'directory', hostName: 'directory.kessai.test' },
] as const;
type HostName = (typeof hostSpecs)[number]['name'];
const roleOf: Record<Exclude<HostName, 'directory'>, ServeRoleName> = { broker: 'auth', bank: 'settlement', shop: 'shop', wallet: 'wallet-host' };
const hostNameOf = (host: HostName) => hostSpecs.find((h) => h.name === host)!.hostName;
/**
 * Each role on the port it takes by default: every host has its own port space, so nothing else
 * on this machine can hold these ports (freePort is for tests that share the machine's network).
 */
const urlOf = (host: Exclude<HostName, 'directory'>) => `https://${hostNameOf(host)}:${defaultServePorts[roleOf[host]]}`;

/** An HTTPS GET trusting only the given CA (node without tsx: fast to start), printing its status or its error's code. */
const httpsGet = `
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
const request = get(process.env.URL, { ca: readFileSync(process.env.CA_FILE), timeout: 5000 }, (res) => { res.resume(); console.log(JSON.stringify({ status: res.statusCode })); });
request.on('error', (e) => console.log(JSON.stringify({ error: e.code ?? e.message })));
request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
`;

/** A JSON line printed by a host task, by its `step` (or the error line). */
function linesOf(result: RunResult): Array<Record<string, unknown>> {
  return result.stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Every private key under a folder (PEM, JWK, key-ring files), by a fingerprint of its public half (or of the secret, for a symmetric key). */
async function privateKeysIn(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const spkiHash = (key: KeyObject) => createHash('sha256').update(createPublicKey(key).export({ type: 'spki', format: 'der' })).digest('hex');
  const visitJson = (value: unknown, file: string) => {
    if (Array.isArray(value)) return value.forEach((v) => visitJson(v, file));
    if (!value || typeof value !== 'object') return;
    const jwk = value as Record<string, unknown>;
    if (typeof jwk.kty === 'string' && typeof jwk.d === 'string') found.set(spkiHash(createPrivateKey({ key: jwk as never, format: 'jwk' })), file);
    else if (jwk.kty === 'oct' && typeof jwk.k === 'string') found.set(createHash('sha256').update(jwk.k).digest('hex'), file);
    else Object.values(jwk).forEach((v) => visitJson(v, file));
  };
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const file = path.join(current, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'db') await walk(file); // the PGlite folder: database files, no key
        continue;
      }
      const text = await readFile(file, 'utf8');
      if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) found.set(spkiHash(createPrivateKey(text)), file);
      else if (text.trimStart().startsWith('{')) {
        try {
          visitJson(JSON.parse(text), file);
        } catch {
          // Not JSON after all.
        }
      }
    }
  };
  await walk(dir);
  return found;
}

describe.skipIf(!availability.available && !required)(suiteName, () => {
  let network: NetnsNetwork;
  let root: string;
  const folders = {} as Record<HostName, RoleFolder>;
  const served = {} as Record<Exclude<HostName, 'directory'>, Served>;
  const merchant = { id: newId('mer'), name: 'Kessai Tea House', apiKey: `sk_test_${randomBytes(24).toString('base64url')}`, webhookSecret: `whsec_${randomBytes(24).toString('base64url')}` };

  /** Runs a host task (test/support/host-tasks.ts) inside `host`, with only `env` and the basics. */
  const task = (host: HostName, name: string, env: Record<string, string>, timeoutMs = 60_000) =>
    network.run(host, process.execPath, ['--import', 'tsx', hostTasks, name], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: folders[host].dir, TMPDIR: tmpdir(), ...env }, timeoutMs });

  /** `kessai serve <role>` inside the host, from its own folder's variables and `env`. */
  const serve = (host: Exclude<HostName, 'directory'>, env: Record<string, string>) =>
    startServe(roleOf[host], { ...folders[host].env, KESSAI_PUBLIC_BASE_URL: urlOf(host), KESSAI_LOG_LEVEL: 'warn', ...env }, { cwd: repositoryRoot, launch: (command, args, options) => network.spawn(host, command, args, options) });

  beforeAll(async () => {
    if (!availability.available) throw new Error(`KESSAI_TEST_NETNS=required, but network namespaces are not available: ${availability.reason}`);
    const swept = await sweepStaleNetworks();
    console.log(`separate hosts: running on network namespaces${swept.length ? ` (swept ${swept.length} left by an earlier run: ${swept.join(', ')})` : ''}`);
    root = await mkdtemp(path.join(tmpdir(), 'kessai-hosts-'));
    network = await createNetwork([...hostSpecs]);
    const started = Date.now();
    const progress = (what: string) => console.log(`separate hosts: ${what} after ${Date.now() - started} ms`);

    // The CA's key stays in the CA operator's folder; each host gets its own certificate, for its own name only,
    // and each role with a database its own PGlite folder (cloned from the run's initdb template).
    const caDir = path.join(root, 'ca');
    for (const { name, hostName } of hostSpecs) {
      folders[name] = await roleFolder({ dir: path.join(root, 'hosts', name), caDir, dnsNames: [hostName], ipAddresses: [], client: name === 'broker', pgliteFromTemplate: name !== 'wallet' && name !== 'directory' });
    }
    progress('host folders made');

    // Role 40: the bank pins the broker's client certificate by its fingerprint; its cards are imported before it starts.
    const bankEnv = {
      ...folders.bank.env,
      KESSAI_PUBLIC_BASE_URL: urlOf('bank'),
      KESSAI_BANK_FILE: await writeConfigFile(folders.bank.dir, 'bank.json', JSON.stringify({ id: issuer.id, name: issuer.name, conversionMode: issuer.conversionMode, cipher2: issuer.cipher2, holdTimeoutSeconds: 3_600, businessDayTimeZone: 'Asia/Tokyo' })),
      KESSAI_BROKER_CERT_FINGERPRINTS: folders.broker.fingerprint,
      KESSAI_MERCHANTS_FILE: await writeConfigFile(folders.bank.dir, 'merchants.json', JSON.stringify([{ id: merchant.id, name: merchant.name }])),
    };
    const shopEnv = {
      KESSAI_AUTH_URL: urlOf('broker'),
      KESSAI_MERCHANT_API_KEY_FILE: await writeConfigFile(folders.shop.dir, 'api-key', `${merchant.apiKey}\n`),
      KESSAI_WEBHOOK_SECRETS_FILE: await writeConfigFile(folders.shop.dir, 'webhook-secrets', `${merchant.webhookSecret}\n`),
      KESSAI_ISSUER_JWKS: JSON.stringify({ [issuer.id]: `${urlOf('bank')}/.well-known/jwks.json` }),
    };
    // The shop needs nothing from the others to start: it starts while the bank's database is made.
    const shop = serve('shop', shopEnv);
    shop.catch(() => undefined); // awaited below; a failure meanwhile is not unhandled (destroy() ends the process)
    await seedBankCards(bankEnv, [card]);
    progress('bank cards imported');
    served.bank = await serve('bank', bankEnv);
    progress('bank listening');

    // The scheme operator, on its own host, signs the directory from the keys the bank publishes.
    const published = await task('directory', 'publish-directory', {
      DATA_DIR: folders.directory.dir,
      CA_FILE: folders.directory.caFile,
      ISSUER: JSON.stringify({ id: issuer.id, name: issuer.name, conversionMode: issuer.conversionMode, cipher2: issuer.cipher2, cardPrefixes: issuer.cardPrefixes }),
      ISSUER_URL: urlOf('bank'),
    });
    expect(published.code, `publish-directory: ${published.stdout}${published.stderr}`).toBe(0);
    progress('directory signed');
    // What it hands out is public: the signed directory to the broker, its public key to the wallet side.
    const directoryFile = path.join(folders.broker.dir, 'directory.jws');
    await copyFile(path.join(folders.directory.dir, 'directory', 'directory.jws'), directoryFile);
    const directoryKeyFile = path.join(folders.wallet.dir, 'directory-key.jwk');
    await copyFile(path.join(folders.directory.dir, 'directory-key.jwk'), directoryKeyFile);

    // Role 30: the broker, and the browser wallet's host.
    const [broker, wallet] = await Promise.all([
      serve('broker', {
        KESSAI_ISSUERS: JSON.stringify([{ id: issuer.id, baseUrl: urlOf('bank'), cardPrefixes: issuer.cardPrefixes }]),
        KESSAI_DIRECTORY_FILE: directoryFile,
        KESSAI_MERCHANTS_FILE: await writeConfigFile(folders.broker.dir, 'merchants.json', JSON.stringify([{ ...merchant, webhookUrl: `${urlOf('shop')}/webhooks/kessai` }])),
        KESSAI_WALLET_ORIGINS: urlOf('wallet'),
        KESSAI_WALLET_URL: `${urlOf('wallet')}/wallet/`,
        KESSAI_CONFIG_FILE: await writeConfigFile(folders.broker.dir, 'tuning.json', JSON.stringify({ workerIntervalMs: 200 })),
      }),
      serve('wallet', { KESSAI_AUTH_URL: urlOf('broker'), KESSAI_DIRECTORY_KEY_FILE: directoryKeyFile }),
    ]);
    served.broker = broker;
    served.wallet = wallet;
    served.shop = await shop;
    progress('four roles listening');
  }, 300_000);

  afterAll(async () => {
    await Promise.all(Object.values(served).map((s) => s.stop()));
    await network?.destroy();
    if (root) await rm(root, { recursive: true, force: true });
  }, 60_000);

  it('gives each host its own address, host name and hosts file, and none of the machine’s interfaces', async () => {
    const names = network.hosts.map((h) => h.hostName);
    for (const host of network.hosts) {
      const script = `hostname; echo --; getent hosts ${names.join(' ')}; echo --; ip -4 -o addr show dev eth0; echo --; ip -o link show`;
      const [hostname, resolved, address, links] = (await network.run(host.name, 'sh', ['-c', script])).stdout.split('--\n').map((part) => part.trim());
      expect(hostname).toBe(host.hostName);
      // /etc/netns/<ns>/hosts is bind-mounted over /etc/hosts: every host resolves every other by name.
      expect(resolved!.split('\n').map((line) => line.split(/\s+/)), `${host.hostName} resolves every host`).toEqual(network.hosts.map((peer) => [peer.address, peer.hostName]));
      expect(address).toContain(`inet ${host.address}/24`);
      expect(links!.split('\n').map((line) => line.split(':')[1]?.trim().split('@')[0]), 'only lo and eth0').toEqual(['lo', 'eth0']);
    }
  });

  it('runs each role on its own host from its own folder, listening on the host’s network (not on 127.0.0.1 only) under its host name', async () => {
    for (const host of ['broker', 'bank', 'shop', 'wallet'] as const) {
      expect(served[host].url).toBe(urlOf(host));
      // The process sees its own host name; its listening sockets are the only ones in the namespace.
      const sockets = (await network.run(host, 'ss', ['-Hltn'])).stdout.trim().split('\n').map((line) => line.trim().split(/\s+/)[3]!);
      expect(sockets, `${host} listens on its port only`).toEqual([`0.0.0.0:${defaultServePorts[roleOf[host]]}`]);
      expect(sockets.some((s) => s.startsWith('127.')), `${host} does not listen on loopback`).toBe(false);
      // Its configuration, as the process has it: every file it names is in its own folder.
      const environment = (await readFile(`/proc/${served[host].pid}/environ`, 'utf8')).split('\0').filter((entry) => entry.startsWith('KESSAI_'));
      const paths = environment.map((entry) => entry.slice(entry.indexOf('=') + 1)).filter((value) => value.startsWith('/'));
      expect(paths.length, `${host} is configured by files`).toBeGreaterThan(3);
      for (const file of paths) expect(file.startsWith(`${folders[host].dir}/`) || file === folders[host].dir, `${host}'s ${file} is in its own folder`).toBe(true);
      expect(environment.join('\n'), `${host} names no loopback address`).not.toMatch(/127\.0\.0\.1|localhost|\[::1\]/);
    }
    // A peer is reached by its name, whose certificate it holds; by address the name check fails; a
    // host's 127.0.0.1 is its own, where no other role is.
    const fromShop = async (url: string) => JSON.parse((await network.run('shop', process.execPath, ['--input-type=module', '-e', httpsGet], { env: { PATH: process.env.PATH ?? '', URL: url, CA_FILE: folders.shop.caFile } })).stdout) as unknown;
    const jwks = `:${defaultServePorts.settlement}/.well-known/jwks.json`;
    expect(await fromShop(`https://bank.kessai.test${jwks}`)).toEqual({ status: 200 });
    expect(await fromShop(`https://${network.host('bank').address}${jwks}`)).toEqual({ error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(await fromShop(`https://127.0.0.1${jwks}`)).toEqual({ error: 'ECONNREFUSED' });
  });

  it('pays end to end across the hosts: enroll, checkout at the shop, approve with the PIN, capture after the webhook', async () => {
    const cardFile = await writeConfigFile(folders.wallet.dir, 'card.json', JSON.stringify({ holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin }));
    const result = await task('wallet', 'pay', { AUTH_URL: urlOf('broker'), SHOP_URL: urlOf('shop'), CA_FILE: folders.wallet.caFile, DIRECTORY_KEY_FILE: path.join(folders.wallet.dir, 'directory-key.jwk'), CARD_FILE: cardFile }, 120_000);
    const lines = linesOf(result);
    const step = (name: string) => lines.find((line) => line.step === name);
    expect(result.code, `pay: ${result.stdout}${result.stderr}`).toBe(0);
    expect(step('enrolled')).toMatchObject({ issuer: issuer.id });
    const checkout = step('checked out') as { order_id: string; payment_request_id: string };
    expect(step('pushed')).toMatchObject({ payment_request_id: checkout.payment_request_id, merchant: merchant.name });
    expect(step('approved')).toMatchObject({ status: 'approved' });
    const order = step('order') as { status: string; amount_minor: string; captured_minor: string };
    expect(order.status).toBe('captured');
    expect(order.captured_minor).toBe(order.amount_minor);

    // The broker's operator, on the broker's host: the shop's webhooks for this payment were delivered.
    const deliveries = linesOf(await task('broker', 'get-json', { URL: `${urlOf('broker')}/admin/v1/webhook-deliveries?limit=50`, CA_FILE: folders.broker.caFile, TOKEN_FILE: folders.broker.operatorTokenFile }))[0] as { status: number; body: { items: Array<{ payment_request_id: string; event_type: string; state: string; last_status: number }> } };
    expect(deliveries.status).toBe(200);
    const ours = deliveries.body.items.filter((d) => d.payment_request_id === checkout.payment_request_id);
    expect(ours.map((d) => d.event_type)).toEqual(expect.arrayContaining(['payment_request.approved', 'payment_request.captured']));
    for (const delivery of ours) expect(delivery, `${delivery.event_type} reached the shop`).toMatchObject({ state: 'delivered', last_status: 200 });

    // The bank's operator, on the bank's host: the hold was captured in its ledger.
    const authorizations = linesOf(await task('bank', 'get-json', { URL: `${urlOf('bank')}/admin/v1/authorizations`, CA_FILE: folders.bank.caFile, TOKEN_FILE: folders.bank.operatorTokenFile }))[0] as { status: number; body: { items: Array<{ request_id: string; status: string; hold_state: string | null; captured_amount: string }> } };
    expect(authorizations.status).toBe(200);
    expect(authorizations.body.items.find((a) => a.request_id === checkout.payment_request_id)).toMatchObject({ status: 'captured', hold_state: 'posted', captured_amount: order.amount_minor });
  }, 150_000);

  it('keeps each host’s secrets in its own folder: no private key in two folders, none of the CA’s, certificates naming their own host only', async () => {
    const caKeys = await privateKeysIn(path.join(root, 'ca'));
    const seen = new Map<string, HostName>();
    for (const { name, hostName } of hostSpecs) {
      const keys = await privateKeysIn(folders[name].dir);
      expect(keys.size, `${name} holds its own keys`).toBeGreaterThan(0);
      for (const [fingerprint, file] of keys) {
        expect(seen.get(fingerprint), `${path.relative(root, file)} is also in ${seen.get(fingerprint)}'s folder`).toBeUndefined();
        seen.set(fingerprint, name);
        const caFile = [...caKeys].find(([fp, f]) => fp === fingerprint && f.endsWith('ca.key.pem'));
        expect(caFile, `${name} holds the CA's key`).toBeUndefined();
      }
      const certificate = new X509Certificate(await readFile(folders[name].certFile));
      expect(certificate.subjectAltName).toBe(`DNS:${hostName}`);
    }
    // The directory's signing key stays with the scheme operator; the wallet side holds its public half only.
    const directoryKey = JSON.parse(await readFile(path.join(folders.wallet.dir, 'directory-key.jwk'), 'utf8')) as Record<string, unknown>;
    expect(directoryKey.d).toBeUndefined();
  });

  it('stops every role with SIGTERM: each exits 0', async () => {
    const codes = await Promise.all((['wallet', 'shop', 'broker', 'bank'] as const).map(async (host) => [host, await served[host].stop()] as const));
    expect(Object.fromEntries(codes)).toEqual({ wallet: 0, shop: 0, broker: 0, bank: 0 });
  });
});
