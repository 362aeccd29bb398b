/**
 * `kessai wallet` as a person or a script meets it: a child process, its exit code, its stdout
 * and stderr. The first part needs no server; the last drives a whole running system through
 * enrollment (301–305) and payment (401–408), by payment link and by push.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeExitCodes, printable } from '../src/commands/index.ts';
import { loadWallet, saveWallet, storageFiles } from '../src/storage.ts';
import { fakeCaCertPem, fakeStoredWallet } from './fake-wallet.ts';

const repoRoot = path.resolve(import.meta.dirname, '../../..');
const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
const walletMain = path.join(repoRoot, 'apps/wallet/src/main.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `tsx apps/wallet/src/main.ts wallet …` with stdin a pipe (not a terminal), as a script would. */
function startWallet(args: string[], env: Record<string, string> = {}) {
  const child = spawn(tsx, [walletMain, 'wallet', ...args], { cwd: repoRoot, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const run: Run = { code: null, stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (run.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (run.stderr += chunk));
  const done = new Promise<Run>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ ...run, code }));
  });
  return { child, run, done };
}

function runWallet(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const started = startWallet(args, env);
  started.child.stdin.end();
  return started.done;
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 0);
}

let scratch: string;
let caFile: string;
/** A directory public key no server knows: enough for the checks made before any server is asked. */
let directoryKeyFile: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'kessai-wallet-cli-'));
  caFile = path.join(scratch, 'ca.cert.pem');
  await writeFile(caFile, fakeCaCertPem);
  directoryKeyFile = path.join(scratch, 'directory-key.jwk');
  await writeFile(directoryKeyFile, JSON.stringify(await exportJWK((await generateKeyPair('ES256', { extractable: true })).publicKey)));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function freshFolder(name: string): Promise<string> {
  const dir = path.join(scratch, name);
  await mkdir(dir);
  return dir;
}

describe('what the payer is shown', () => {
  it('replaces control and bidi characters in merchant text, so it cannot redraw the total on the terminal', () => {
    expect(printable('Tea\u001b[2K\rTotal JPY 1')).toBe('Tea\ufffd[2K\ufffdTotal JPY 1');
    expect(printable('abc\u202edcba\u0085x\u007f')).toBe('abc\ufffddcba\ufffdx\ufffd');
    expect(printable('抹茶 100 g — Uji')).toBe('抹茶 100 g — Uji');
  });
});

describe('without the storage', () => {
  it('prints one line naming the missing folder on stderr, nothing else, and exits 2', async () => {
    const result = await runWallet(['status', '--storage', '/nonexistent']);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toBe('kessai wallet: storage folder /nonexistent not found — insert the removable storage or pass --storage (storage_missing)\n');
  });

  it('does the same for every command, before asking for anything', async () => {
    for (const args of [
      ['enroll', '--storage', '/nonexistent', '--auth', 'https://127.0.0.1:9', '--ca', '/nonexistent/ca.pem'],
      ['listen', '--storage', '/nonexistent', '--once'],
      ['pay', 'pr_00000000000000000000000000', '--storage', '/nonexistent'],
    ]) {
      const result = await runWallet(args);
      expect({ args, code: result.code, stdout: result.stdout, lines: lines(result.stderr).length }).toEqual({ args, code: 2, stdout: '', lines: 1 });
      expect(result.stderr).toContain('/nonexistent not found');
    }
  });
});

describe('checks made before any server is asked', () => {
  // The PIN is read first (from the environment here, as a script gives it), then the card data.
  const pinEnv = { KESSAI_PIN: '1234' };
  const enrollArgs = (storage: string, card: string, expiry = '12/34') => ['enroll', '--storage', storage, '--auth', 'https://127.0.0.1:9', '--ca', caFile, '--directory-key', directoryKeyFile, '--pin-from-env', 'KESSAI_PIN', '--name', 'TARO YAMADA', '--card', card, '--expiry', expiry];

  it('refuses a card number that fails the Luhn check, without echoing it, and writes nothing', async () => {
    const storage = await freshFolder('bad-card');
    const result = await runWallet(enrollArgs(storage, '4242 4242 4242 4241'), pinEnv);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^kessai wallet: .*\(card_invalid\)\n$/);
    expect(result.stdout + result.stderr).not.toMatch(/4242.?4242.?4242.?4241/);
    expect(await readdir(storage)).toEqual([]);
  });

  it('refuses an expired card and a malformed expiry', async () => {
    const storage = await freshFolder('expired');
    expect((await runWallet(enrollArgs(storage, '4242424242424242', '01/20'), pinEnv)).stderr).toMatch(/\(card_expired\)\n$/);
    expect((await runWallet(enrollArgs(storage, '4242424242424242', '2034-12'), pinEnv)).stderr).toMatch(/MM\/YY \(validation_failed\)\n$/);
  });

  it('refuses to enroll onto storage that already holds a wallet unless --force, before asking for the card', async () => {
    const storage = await freshFolder('occupied');
    await saveWallet(storage, await fakeStoredWallet(), fakeCaCertPem);
    const result = await runWallet(['enroll', '--storage', storage, '--auth', 'https://127.0.0.1:9', '--ca', caFile]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/already holds a wallet — pass --force .*\(storage_occupied\)\n$/);
  });

  it('asks on the terminal for what was not given, and refuses when there is no terminal', async () => {
    const storage = await freshFolder('no-terminal');
    const result = await runWallet(['enroll', '--storage', storage, '--auth', 'https://127.0.0.1:9', '--ca', caFile, '--directory-key', directoryKeyFile, '--pin-from-env', 'KESSAI_PIN', '--name', 'TARO YAMADA'], pinEnv);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no terminal to ask for "Card number" — pass --card \(input_required\)\n$/);
    const noPin = await runWallet(['enroll', '--storage', storage, '--auth', 'https://127.0.0.1:9', '--ca', caFile, '--directory-key', directoryKeyFile, '--name', 'TARO YAMADA', '--card', '4242424242424242', '--expiry', '12/34']);
    expect(noPin.code).toBe(1);
    expect(noPin.stderr).toMatch(/no terminal to ask for the PIN — run in a terminal, or pass --pin-from-env VAR \(automation\) \(input_required\)\n$/);
    expect(await readdir(storage)).toEqual([]);
  });

  it('refuses a --directory-key that is missing, not JSON, or not a public P-256 key, before asking for the card', async () => {
    const storage = await freshFolder('bad-directory-key');
    const enrollWith = (file: string) => runWallet(['enroll', '--storage', storage, '--auth', 'https://127.0.0.1:9', '--ca', caFile, '--directory-key', file]);
    const missing = await enrollWith(path.join(scratch, 'no-such-key.jwk'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no-such-key\.jwk is not a readable file \(kessai start writes it to its data folder as directory-key\.jwk\) \(input_invalid\)\n$/);
    const notJson = path.join(scratch, 'not-json.jwk');
    await writeFile(notJson, 'hello');
    expect((await enrollWith(notJson)).stderr).toMatch(/not-json\.jwk is not JSON \(input_invalid\)\n$/);
    const privateKey = path.join(scratch, 'private.jwk');
    await writeFile(privateKey, JSON.stringify(await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey)));
    expect((await enrollWith(privateKey)).stderr).toMatch(/private\.jwk is not a public P-256 signing key \(JWK\) \(input_invalid\)\n$/);
    expect(await readdir(storage)).toEqual([]);
  });

  it('refuses an --auth that is not https and a --ca that is not a certificate', async () => {
    const storage = await freshFolder('bad-flags');
    const http = await runWallet(['enroll', '--storage', storage, '--auth', 'http://127.0.0.1:9', '--ca', caFile]);
    expect(http.stderr).toMatch(/--auth must be an https URL \(input_invalid\)\n$/);
    const notPem = path.join(scratch, 'not.pem');
    await writeFile(notPem, 'hello');
    const ca = await runWallet(['enroll', '--storage', storage, '--auth', 'https://127.0.0.1:9', '--ca', notPem]);
    expect(ca.stderr).toMatch(/is not a PEM certificate \(input_invalid\)\n$/);
  });

  it('refuses --pin-from-env naming an unset variable, and a payment that is not a request id or link', async () => {
    const storage = await freshFolder('pay-checks');
    await saveWallet(storage, await fakeStoredWallet(), fakeCaCertPem);
    const unset = await runWallet(['pay', 'pr_00000000000000000000000000', '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_TEST_UNSET_PIN']);
    expect(unset.code).toBe(1);
    expect(unset.stderr).toMatch(/KESSAI_TEST_UNSET_PIN \(--pin-from-env\) is not set \(input_required\)\n$/);
    const notId = await runWallet(['pay', 'https://shop.example/thanks', '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_PIN'], { KESSAI_PIN: '7392' });
    expect(notId.stderr).toMatch(/is not a payment request id \(pr_…\) or payment link \(input_invalid\)\n$/);
  });

  it('shows the wallet on the storage without contacting any server (--offline), its card unknown when enrolled before the wallet kept it', async () => {
    const storage = await freshFolder('status');
    const stored = await fakeStoredWallet();
    await saveWallet(storage, stored, fakeCaCertPem);
    const result = await runWallet(['status', '--storage', storage, '--offline']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(lines(result.stdout).map((line) => line.split(':')[0])).toEqual(['credential', 'card', 'issuer', 'conversion mode', 'authentication server', 'storage', 'status']);
    expect(result.stdout).toContain(`credential: ${stored.credential_id}`);
    expect(result.stdout).toContain('card: unknown (enrolled before the wallet kept the last four digits)\n');
    expect(result.stdout).toContain('issuer: Sakura Demo Bank (sakura-bank)');
    expect(result.stdout).toContain('conversion mode: reseal');
    expect(result.stdout).toContain(`storage: ${storage}`);
    expect(result.stdout).toContain('status: not asked (--offline)\n');
  });

  it.skipIf(process.platform === 'win32')('refuses storage whose files others can read', async () => {
    const storage = await freshFolder('exposed');
    await saveWallet(storage, await fakeStoredWallet(), fakeCaCertPem);
    await chmod(path.join(storage, storageFiles.deviceKey), 0o644);
    const result = await runWallet(['status', '--storage', storage]);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toHaveLength(1);
    expect(result.stderr).toMatch(/device-key\.jwk is readable by others \(mode 0644\) — run `chmod 600 .*\(storage_exposed\)\n$/);
  });
});

describe('against a running system', () => {
  // Loaded here rather than at the top, so the checks above run without the whole system.
  let system: Awaited<ReturnType<typeof import('../../../test/support/system.ts').startTestSystem>>;
  let shop: typeof import('../../../test/support/shop.ts');
  let systemCa: string;
  beforeAll(async () => {
    const support = await import('../../../test/support/system.ts');
    shop = await import('../../../test/support/shop.ts');
    system = await support.startTestSystem();
    systemCa = path.join(scratch, 'system-ca.cert.pem');
    await writeFile(systemCa, system.pki.caCertPem);
  });
  afterAll(async () => {
    await system?.stop();
  });

  /** Enrolls a demo card, trusting the system's directory key (from the file `kessai start` writes) and giving the card's test PIN. */
  /** With `defaultDirectoryKey`, no --directory-key: the wallet finds the key in $KESSAI_DATA_DIR, as after `kessai start`. */
  async function enrollCli(name: string, card: { number: string; holder: string }, options: { defaultDirectoryKey?: boolean } = {}) {
    const storage = await freshFolder(name);
    const { demoCard } = await import('../../../test/support/system.ts');
    const directoryKey = options.defaultDirectoryKey ? [] : ['--directory-key', system.directoryKey.file];
    const env = { KESSAI_PIN: demoCard(card.number).pin, ...(options.defaultDirectoryKey ? { KESSAI_DATA_DIR: path.dirname(system.directoryKey.file) } : {}) };
    const result = await runWallet(['enroll', '--storage', storage, '--auth', system.auth.url, '--ca', systemCa, ...directoryKey, '--pin-from-env', 'KESSAI_PIN', '--name', card.holder, '--card', card.number, '--expiry', '12/34'], env);
    return { storage, result, pin: env.KESSAI_PIN };
  }

  it('enrolls, then pays a payment link with the PIN from the environment', async () => {
    const { storage, result: enrolled, pin } = await enrollCli('e2e-pay', { number: '4242424242424242', holder: 'TARO YAMADA' });
    expect(enrolled).toMatchObject({ code: 0, stderr: '' });
    expect(enrolled.stdout).not.toContain(pin);
    const { wallet } = await loadWallet(storage);
    expect(enrolled.stdout).toContain(`enrolled: credential ${wallet.credential_id} (card ending 4242)`);
    expect(enrolled.stdout).toContain('issuer: Sakura Demo Bank (sakura-bank), conversion mode reseal');
    expect(enrolled.stdout).not.toContain('4242424242424242');

    const order = await shop.checkout(system, [{ index: 0, quantity: 2 }, { index: 1, quantity: 1 }], wallet.credential_id);
    const paid = await runWallet(['pay', order.payment_link, '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_PIN'], { KESSAI_PIN: '7392' });
    expect(paid.stderr).toBe('');
    expect(paid.code).toBe(0);
    expect(paid.stdout).toContain(`payment request ${order.payment_request_id} from Kessai Tea House`);
    // The demo shop's key is a test key: the confirm screen says so first, from the signed view.
    expect(paid.stdout).toMatch(/^TEST — a test-mode payment request: only a test card pays it\npayment request /m);
    expect(paid.stdout).toMatch(new RegExp(`^approved: ${order.payment_request_id} — JPY [0-9,]+ to Kessai Tea House \\(authorization auth_\\w+, signed by Sakura Demo Bank\\)$`, 'm'));
    expect(paid.stdout + paid.stderr).not.toContain('7392');

    await shop.waitForOrder(system, order.order_id, 'captured');
    const status = await runWallet(['status', order.payment_request_id, '--storage', storage]);
    expect(status).toMatchObject({ code: 0, stdout: `${order.payment_request_id}: captured\n`, stderr: '' });
  });

  it('status: the card ending, the issuer, and active, then locked after too many wrong PINs, then revoked', async () => {
    const card = { number: '5425233430109903', holder: 'MIKI NAKAMURA' };
    const { storage, result: enrolled } = await enrollCli('e2e-status', card);
    expect(enrolled.code).toBe(0);
    const loaded = await loadWallet(storage);
    expect(loaded.wallet.card_last4).toBe('9903');
    const statusLine = async () => {
      const shown = await runWallet(['status', '--storage', storage]);
      expect({ code: shown.code, stderr: shown.stderr }).toEqual({ code: 0, stderr: '' });
      expect(shown.stdout).toContain('card: ending 9903\n');
      expect(shown.stdout).toContain('issuer: Fuji Direct Bank (fuji-bank)\n');
      expect(shown.stdout).not.toContain('5425233430109903');
      return lines(shown.stdout).at(-1);
    };
    expect(await statusLine()).toBe('status: active — 3 wrong PINs allowed before a lock');

    const { WalletClient } = await import('@kessai/sdk');
    const client = new WalletClient(loaded.wallet, { caCertPem: loaded.caCertPem });
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const order = await shop.checkout(system, [{ index: 0, quantity: 1 }], loaded.wallet.credential_id);
        await client.approve(await client.fetchRequest(order.payment_request_id), '0001');
      }
    } finally {
      await client.close();
    }
    expect(await statusLine()).toBe('status: locked — Too many wrong PINs: the card is locked until the issuer unlocks it (pin_locked)');

    const recoveryCode = /^recovery code: (\S+) /m.exec(enrolled.stdout)?.[1];
    expect(recoveryCode).toBeDefined();
    const revoked = await runWallet(['revoke', '--credential', loaded.wallet.credential_id, '--auth', system.auth.url, '--ca', systemCa, '--recovery-code', recoveryCode!]);
    expect(revoked.code).toBe(0);
    expect(await statusLine()).toBe('status: revoked — The credential has been revoked; every use of it is refused (credential_revoked)');
  });

  it('status of a wallet enrolled before the wallet kept the last four digits: card unknown, the state asked all the same', async () => {
    const { storage, result: enrolled } = await enrollCli('e2e-status-old', { number: '4000000000009995', holder: 'JIRO TANAKA' });
    expect(enrolled.code).toBe(0);
    const walletJson = path.join(storage, storageFiles.wallet);
    const { card_last4: _kept, ...old } = JSON.parse(await readFile(walletJson, 'utf8')) as Record<string, unknown>;
    await writeFile(walletJson, JSON.stringify(old), { mode: 0o600 });
    const shown = await runWallet(['status', '--storage', storage]);
    expect({ code: shown.code, stderr: shown.stderr }).toEqual({ code: 0, stderr: '' });
    expect(shown.stdout).toContain('card: unknown (enrolled before the wallet kept the last four digits)\n');
    expect(lines(shown.stdout).at(-1)).toBe('status: active — 3 wrong PINs allowed before a lock');
  });

  it('listens, is pushed the request, approves it once, and exits', async () => {
    const { storage, result: enrolled } = await enrollCli('e2e-listen', { number: '5555555555554444', holder: 'KENJI ITO' });
    expect(enrolled.code).toBe(0);
    expect(enrolled.stdout).toContain('conversion mode pass_through');
    const { wallet } = await loadWallet(storage);

    const listener = startWallet(['listen', '--storage', storage, '--once', '--yes', '--pin-from-env', 'KESSAI_PIN'], { KESSAI_PIN: '8264' });
    listener.child.stdin.end();
    const order = await shop.checkout(system, [{ index: 2, quantity: 1 }], wallet.credential_id);
    const result = await listener.done;
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(`listening for payment requests to ${wallet.credential_id} (Ctrl-C to stop)\n`);
    expect(result.stdout).toMatch(new RegExp(`^approved: ${order.payment_request_id} — .* \\(authorization auth_\\w+, signed by Fuji Direct Bank\\)$`, 'm'));
  });

  it('prints the decline code when the issuer declines', async () => {
    const { storage, result: enrolled } = await enrollCli('e2e-declined', { number: '4000000000009995', holder: 'JIRO TANAKA' }, { defaultDirectoryKey: true });
    expect(enrolled.code).toBe(0);
    const { wallet } = await loadWallet(storage);
    const order = await shop.checkout(system, [{ index: 0, quantity: 3 }], wallet.credential_id);
    const paid = await runWallet(['pay', order.payment_request_id, '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_PIN'], { KESSAI_PIN: '6051' });
    expect(paid.code).toBe(outcomeExitCodes.declined);
    expect(paid.stdout).toContain(`declined: ${order.payment_request_id} — The available balance does not cover the amount (insufficient_funds)`);
  });

  it('reports a wrong PIN with the tries left, exits non-zero, and the same request is paid with the right PIN', async () => {
    const { storage, result: enrolled } = await enrollCli('e2e-wrong-pin', { number: '4000056655665556', holder: 'HANAKO SUZUKI' });
    expect(enrolled.code).toBe(0);
    const { wallet } = await loadWallet(storage);
    const order = await shop.checkout(system, [{ index: 0, quantity: 1 }], wallet.credential_id);
    const wrong = await runWallet(['pay', order.payment_request_id, '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_PIN'], { KESSAI_PIN: '0001' });
    expect(wrong).toMatchObject({ code: outcomeExitCodes.declined, stderr: '' });
    expect(wrong.stdout).toContain(`wrong PIN: ${order.payment_request_id} — 2 tries left before the card locks; the request is still payable (pin_incorrect)`);
    const right = await runWallet(['pay', order.payment_request_id, '--storage', storage, '--yes', '--pin-from-env', 'KESSAI_PIN'], { KESSAI_PIN: '2846' });
    expect(right.code).toBe(outcomeExitCodes.paid);
    expect(right.stdout).toMatch(new RegExp(`^approved: ${order.payment_request_id} — `, 'm'));
  });
});
