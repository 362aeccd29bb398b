/**
 * `kessai serve <role>` refuses a bad configuration before it opens anything: for each role a
 * missing required variable, a wrong type, a bad URL, and a file key under a variable; the
 * process exits 2 with the variable named; a secret's value is never printed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { limits, newId } from '@kessai/protocol';
import { authSchema, ConfigError, envName, loadRoleConfig, resolveAuth, resolveSettlement, resolveShop, settlementSchema, shopSchema, walletHostSchema, type RoleSchema } from '@kessai/cli/serve';
import { roleFolder, runServe, writeConfigFile, type RoleFolder } from './support/serve.ts';

let dir: string;
let folder: RoleFolder;
const secret = `sk_live_${randomBytes(18).toString('base64url')}`;

/** A valid environment per role (files written, nothing started). */
let valid: Record<'auth' | 'settlement' | 'shop' | 'wallet-host', Record<string, string>>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kessai-serve-config-'));
  folder = await roleFolder({ dir: path.join(dir, 'role'), caDir: path.join(dir, 'ca'), pgliteFromTemplate: false });
  const base = { ...folder.env, KESSAI_HOST: '127.0.0.1', KESSAI_PORT: '0' };
  valid = {
    auth: { ...base, KESSAI_ISSUERS: JSON.stringify([{ id: 'sakura-bank', baseUrl: 'https://127.0.0.1:8444', cardPrefixes: ['4'] }]), KESSAI_DIRECTORY_FILE: await writeConfigFile(dir, 'directory.jws', 'a.b.c\n') },
    settlement: { ...base, KESSAI_BANK_ID: 'sakura-bank', KESSAI_BANK_NAME: 'Sakura Bank', KESSAI_BANK_CONVERSION_MODE: 'reseal', KESSAI_BROKER_CERT_FINGERPRINTS: folder.fingerprint },
    shop: { ...base, KESSAI_AUTH_URL: 'https://127.0.0.1:8443', KESSAI_MERCHANT_API_KEY_FILE: await writeConfigFile(dir, 'api-key', `${secret}\n`), KESSAI_WEBHOOK_SECRETS_FILE: await writeConfigFile(dir, 'webhook-secrets', `whsec_${secret}\n`), KESSAI_ISSUER_JWKS: JSON.stringify({ 'sakura-bank': 'https://127.0.0.1:8444/.well-known/jwks.json' }) },
    'wallet-host': { ...base, KESSAI_AUTH_URL: 'https://127.0.0.1:8443', KESSAI_DIRECTORY_KEY_FILE: await writeConfigFile(dir, 'directory-key.jwk', JSON.stringify({ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' })) },
  };
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const schemas: Record<keyof typeof valid, RoleSchema<unknown>> = { auth: authSchema, settlement: settlementSchema, shop: shopSchema, 'wallet-host': walletHostSchema };

async function problemsOf(role: keyof typeof valid, env: Record<string, string>): Promise<string[]> {
  try {
    await loadRoleConfig(schemas[role], env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

async function resolveSettlementProblems(env: Record<string, string>): Promise<string[]> {
  const refused = await resolveSettlement(await loadRoleConfig(settlementSchema, env)).catch((err: unknown) => err);
  return refused instanceof ConfigError ? [...refused.problems] : [];
}

const without = (env: Record<string, string>, name: string) => Object.fromEntries(Object.entries(env).filter(([key]) => key !== name));

describe.each([
  { role: 'auth' as const, required: 'KESSAI_DIRECTORY_FILE', wrongType: ['KESSAI_WORKER_INTERVAL_MS', 'often'], badUrl: 'KESSAI_WALLET_URL' },
  { role: 'settlement' as const, required: 'KESSAI_BANK_ID', wrongType: ['KESSAI_BANK_HOLD_TIMEOUT_SECONDS', 'a week'], badUrl: 'KESSAI_PUBLIC_BASE_URL' },
  { role: 'shop' as const, required: 'KESSAI_ISSUER_JWKS', wrongType: ['KESSAI_AUTO_CAPTURE', 'sometimes'], badUrl: 'KESSAI_AUTH_URL' },
  { role: 'wallet-host' as const, required: 'KESSAI_DIRECTORY_KEY_FILE', wrongType: ['KESSAI_PORT', 'eighty'], badUrl: 'KESSAI_AUTH_URL' },
])('the $role configuration', ({ role, required, wrongType, badUrl }) => {
  it('accepts the valid environment', async () => {
    expect(await problemsOf(role, valid[role])).toEqual([]);
  });

  it('names a missing required variable', async () => {
    expect(await problemsOf(role, without(valid[role], required))).toEqual([`${required}: required`]);
  });

  it('names a variable of the wrong type', async () => {
    const [name, value] = wrongType as [string, string];
    const problems = await problemsOf(role, { ...valid[role], [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: `));
    expect(problems[0]).not.toContain(value);
  });

  it('refuses a URL that is not https', async () => {
    const problems = await problemsOf(role, { ...valid[role], [badUrl]: 'http://127.0.0.1:8443/' });
    expect(problems).toEqual([`${badUrl}: must be an https:// URL`]);
    expect(await problemsOf(role, { ...valid[role], [badUrl]: 'not a url' })).toEqual([`${badUrl}: Invalid URL`]);
  });

  it('takes the file’s keys under the variables', async () => {
    const file = await writeConfigFile(dir, `${role}.json`, JSON.stringify({ port: 1111, host: '::1', logLevel: 'debug' }));
    const config = (await loadRoleConfig(schemas[role], { ...without(valid[role], 'KESSAI_HOST'), KESSAI_CONFIG_FILE: file, KESSAI_PORT: '2222' })) as { port: number; host: string; logLevel: string };
    expect(config).toMatchObject({ port: 2222, host: '::1', logLevel: 'debug' });
    // A file key is named as such.
    const bad = await writeConfigFile(dir, `${role}-bad.json`, JSON.stringify({ logLevel: 'loud' }));
    expect(await problemsOf(role, { ...valid[role], KESSAI_CONFIG_FILE: bad })).toEqual([expect.stringMatching(/^KESSAI_CONFIG_FILE key logLevel: Invalid option/)]);
  });
});

describe('what a refusal never prints', () => {
  it('a secret in an unknown file key, a malformed JSON variable or a wrong-typed variable', async () => {
    const file = await writeConfigFile(dir, 'with-secret.json', JSON.stringify({ operatorToken: secret }));
    const problems = [
      ...(await problemsOf('auth', { ...valid.auth, KESSAI_CONFIG_FILE: file })),
      ...(await problemsOf('auth', { ...valid.auth, KESSAI_ISSUERS: `[{"id":"${secret}"` })),
      ...(await problemsOf('settlement', { ...valid.settlement, KESSAI_PORT: secret })),
    ];
    expect(problems).toEqual(['KESSAI_CONFIG_FILE key operatorToken: not a known key', 'KESSAI_ISSUERS: not valid JSON', 'KESSAI_PORT: Invalid input: expected number, received string']);
    for (const problem of problems) expect(problem).not.toContain(secret);
  });

  it('the content of a secret file that is not what it should be', async () => {
    const merchants = await writeConfigFile(dir, 'merchants.json', JSON.stringify([{ id: newId('mer'), name: 'Tea', apiKey: secret, webhookSecret: secret, webhookUrl: 'http://shop.example' }]));
    const refused = await resolveAuth(await loadRoleConfig(authSchema, { ...valid.auth, KESSAI_MERCHANTS_FILE: merchants })).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as ConfigError).problems).toEqual(['KESSAI_MERCHANTS_FILE at 0.webhookUrl: must be an https:// URL']);
    expect((refused as ConfigError).message).not.toContain(secret);
    const notJson = await writeConfigFile(dir, 'merchants-broken.json', `[{"apiKey":"${secret}"`);
    const broken = await resolveAuth(await loadRoleConfig(authSchema, { ...valid.auth, KESSAI_MERCHANTS_FILE: notJson })).catch((err: unknown) => err as ConfigError);
    expect((broken as ConfigError).problems).toEqual([`KESSAI_MERCHANTS_FILE: ${notJson} is not valid JSON`]);
    // A key file where the certificate belongs: named, not printed.
    const swapped = await resolveShop(await loadRoleConfig(shopSchema, { ...valid.shop, KESSAI_TLS_CERT_FILE: folder.keyFile })).catch((err: unknown) => err as ConfigError);
    expect((swapped as ConfigError).problems).toEqual([`KESSAI_TLS_CERT_FILE: ${folder.keyFile} is not a PEM certificate`]);
    expect((swapped as ConfigError).message).not.toContain('PRIVATE KEY');
  });

  it('enforces the limits on what the files hold', async () => {
    const secrets = await writeConfigFile(dir, 'many-secrets', Array.from({ length: limits.configWebhookSecretsMax + 1 }, (_, i) => `whsec_${i}_${secret}`).join('\n'));
    const tooMany = await resolveShop(await loadRoleConfig(shopSchema, { ...valid.shop, KESSAI_WEBHOOK_SECRETS_FILE: secrets })).catch((err: unknown) => err as ConfigError);
    expect((tooMany as ConfigError).problems).toEqual([`KESSAI_WEBHOOK_SECRETS_FILE: more than ${limits.configWebhookSecretsMax} secrets`]);
    const merchants = await writeConfigFile(dir, 'many-merchants.json', JSON.stringify(Array.from({ length: limits.configMerchantsMax + 1 }, () => ({ id: newId('mer'), name: 'Tea' }))));
    expect(await resolveSettlementProblems({ ...valid.settlement, KESSAI_MERCHANTS_FILE: merchants })).toEqual([expect.stringMatching(/^KESSAI_MERCHANTS_FILE: Too big/)]);
    const huge = await writeConfigFile(dir, 'huge.json', `{"logLevel":"info","pad":"${'x'.repeat(limits.configFileBytesMax)}"}`);
    expect(await problemsOf('auth', { ...valid.auth, KESSAI_CONFIG_FILE: huge })).toEqual([`KESSAI_CONFIG_FILE: ${huge} is larger than ${limits.configFileBytesMax} bytes`]);
  });

  it('reads KESSAI_BANK_FILE with the one bank schema (bankDescription): the demo fixture, fees and time zone; a variable wins over the file', async () => {
    const bankFile = await writeConfigFile(dir, 'hokuto.json', JSON.stringify({ id: 'hokuto-bank', name: 'Hokuto Regional Bank', cardRanges: ['4571'], conversionMode: 'pass_through', cipher2: 'RSA-OAEP-256', holdTimeoutSeconds: 86_400, fees: { default: { basisPoints: 300, fixedMinor: '10' }, perCurrency: { JPY: { basisPoints: 250, fixedMinor: '0' } } }, businessDayTimeZone: 'Asia/Tokyo' }));
    const onlyFile = without(without(without(valid.settlement, 'KESSAI_BANK_ID'), 'KESSAI_BANK_NAME'), 'KESSAI_BANK_CONVERSION_MODE');
    const resolved = await resolveSettlement(await loadRoleConfig(settlementSchema, { ...onlyFile, KESSAI_BANK_FILE: bankFile, KESSAI_BANK_NAME: 'Hokuto Bank' }));
    expect(resolved).toMatchObject({ issuerId: 'hokuto-bank', name: 'Hokuto Bank', conversionMode: 'pass_through', cipher2: 'RSA-OAEP-256', holdTimeoutSeconds: 86_400 });
    expect(resolved.settlement).toEqual({ timeZone: 'Asia/Tokyo', defaultFee: { basisPoints: 300, fixedMinor: 10n }, defaultFees: { JPY: { basisPoints: 250, fixedMinor: 0n } } });
    // The demo banks' own files are bank descriptions too.
    const fuji = await resolveSettlement(await loadRoleConfig(settlementSchema, { ...onlyFile, KESSAI_BANK_FILE: path.resolve('apps/settlement-server/fixtures/banks/fuji-bank.json') }));
    expect(fuji).toMatchObject({ issuerId: 'fuji-bank', name: 'Fuji Direct Bank', conversionMode: 'pass_through', cipher2: 'RSA-OAEP-256' });
    // A field bankDescription does not have is refused, naming the file's key; so is an invalid time zone.
    const old = await writeConfigFile(dir, 'old-bank.json', JSON.stringify({ id: 'hokuto-bank', name: 'Hokuto', conversionMode: 'reseal', timeZone: 'Asia/Tokyo' }));
    expect(await problemsOf('settlement', { ...onlyFile, KESSAI_BANK_FILE: old })).toEqual([`KESSAI_BANK_FILE key timeZone: not a known key`]);
    expect((await problemsOf('settlement', { ...valid.settlement, KESSAI_BANK_BUSINESS_DAY_TIME_ZONE: 'Mars/Olympus' })).join('\n')).toContain('KESSAI_BANK_BUSINESS_DAY_TIME_ZONE');
  });

  it('variables are named from their keys', () => {
    expect(envName('tlsCertFile')).toBe('KESSAI_TLS_CERT_FILE');
    expect(envName('bankCipher2')).toBe('KESSAI_BANK_CIPHER2');
    expect(envName('brokerCertFingerprints')).toBe('KESSAI_BROKER_CERT_FINGERPRINTS');
  });
});

describe('the process', () => {
  it('exits 2 naming the variable, for every role, and prints no secret', async () => {
    const runs = await Promise.all([
      runServe('auth', without(valid.auth, 'KESSAI_ISSUERS')),
      runServe('settlement', { ...valid.settlement, KESSAI_BANK_CONVERSION_MODE: 'both' }),
      runServe('shop', { ...valid.shop, KESSAI_MERCHANT_API_KEY_FILE: path.join(dir, 'missing') }),
      runServe('wallet-host', { ...valid['wallet-host'], KESSAI_HOST: '0.0.0.0', KESSAI_PORT: secret }),
      runServe('bank', {}),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2]);
    expect(runs[0]!.stderr).toContain('KESSAI_ISSUERS: required');
    expect(runs[1]!.stderr).toContain('KESSAI_BANK_CONVERSION_MODE: Invalid option');
    expect(runs[2]!.stderr).toContain(`KESSAI_MERCHANT_API_KEY_FILE: cannot read ${path.join(dir, 'missing')} (ENOENT)`);
    expect(runs[3]!.stderr).toContain('KESSAI_PORT: Invalid input: expected number');
    expect(runs[4]!.stderr).toContain('unknown role "bank"');
    for (const run of runs) {
      expect(run.stdout).toBe('');
      expect(`${run.stderr}`).not.toContain(secret);
    }
  }, 120_000);
});
