/**
 * From a validated configuration (schemas.ts) to what a role's entry function (roles.ts) takes:
 * reads the certificate, key, CA, token, secret and list files it names. A file that cannot be
 * read or does not hold what it should is a ConfigError naming its variable — never its content.
 */
import { rootCertificates } from 'node:tls';
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { KessaiError, limits, type JWK } from '@kessai/protocol';
import { certificateFingerprint, createLogger, type Logger } from '@kessai/service';
import { ConfigError, readConfigText } from './loader.ts';
import type { DbSource, Listen, ServeAuthConfig, ServeSettlementConfig, ServeShopConfig, ServeWalletHostConfig } from './roles.ts';
import { settlementOptionsOfBank } from '@kessai/settlement-server/bank';
import { defaultServePorts, httpsUrl, type AuthEnvConfig, type ServeRole, type SettlementEnvConfig, type ShopEnvConfig, type WalletHostEnvConfig } from './schemas.ts';

type Common = AuthEnvConfig | SettlementEnvConfig | ShopEnvConfig | WalletHostEnvConfig;

/** Collects problems across every file read, so one run names them all. */
class Files {
  readonly problems: string[] = [];

  async text(file: string, variable: string): Promise<string> {
    return (await readConfigText(file, variable, this.problems)) ?? '';
  }

  async pem(file: string, variable: string, label: RegExp): Promise<string> {
    const text = await this.text(file, variable);
    if (text !== '' && !label.test(text)) this.problems.push(`${variable}: ${file} is not ${label.source.includes('CERTIFICATE') ? 'a PEM certificate' : 'a PEM private key'}`);
    return text;
  }

  /** A JSON file checked by `schema`; a problem names the variable and the path inside the file. */
  async json<T>(file: string, variable: string, schema: z.ZodType<T>): Promise<T | undefined> {
    const text = await this.text(file, variable);
    if (text === '') return undefined;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.problems.push(`${variable}: ${file} is not valid JSON`);
      return undefined;
    }
    const parsed = schema.safeParse(json);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) this.problems.push(`${variable}${issue.path.length > 0 ? ` at ${issue.path.map(String).join('.')}` : ''}: ${issue.message}`);
    return undefined;
  }

  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

const certificatePem = /-----BEGIN CERTIFICATE-----/;
const keyPem = /-----BEGIN (EC |RSA )?PRIVATE KEY-----/;

interface CommonParts {
  listen: Listen;
  tls: { certPem: string; keyPem: string; caCertPem: string };
  /** The extra CAs of KESSAI_TLS_CA_FILE alone ('' without it). */
  extraCaPem: string;
  /** Node's root certificates and the extra CAs: what outbound HTTPS trusts. */
  outboundCaPem: string;
  operatorToken: string | undefined;
  logger: Logger;
  dataDir: string | undefined;
  keysDir: string;
  database: DbSource;
}

async function commonParts(role: ServeRole, config: Common, files: Files): Promise<CommonParts> {
  const certPem = await files.pem(config.tlsCertFile, 'KESSAI_TLS_CERT_FILE', certificatePem);
  const privateKeyPem = await files.pem(config.tlsKeyFile, 'KESSAI_TLS_KEY_FILE', keyPem);
  const extraCaPem = config.tlsCaFile ? await files.pem(config.tlsCaFile, 'KESSAI_TLS_CA_FILE', certificatePem) : '';
  let operatorToken: string | undefined;
  if (config.operatorTokenFile) {
    operatorToken = (await files.text(config.operatorTokenFile, 'KESSAI_OPERATOR_TOKEN_FILE')).trim();
    if (operatorToken.length < 16) files.problems.push(`KESSAI_OPERATOR_TOKEN_FILE: ${config.operatorTokenFile} must hold a token of at least 16 characters`);
  }
  const dataDir = config.dataDir ? path.resolve(config.dataDir) : undefined;
  const outboundCaPem = [...rootCertificates, extraCaPem].join('\n');
  const logger = createLogger({ name: role === 'auth' ? 'auth-server' : role, ...(config.logFile ? { file: path.resolve(config.logFile) } : { stdout: true }), level: config.logLevel });
  const database: DbSource = config.databaseUrl
    ? { url: config.databaseUrl, ...(config.poolSizeMax ? { poolSizeMax: config.poolSizeMax } : {}), ...(config.dbTimeouts ? { timeouts: config.dbTimeouts } : {}) }
    : { dataDir: path.join(dataDir ?? '.', 'db') };
  return {
    listen: { host: config.host, port: config.port ?? defaultServePorts[role], ...(config.publicBaseUrl ? { publicBaseUrl: config.publicBaseUrl } : {}) },
    tls: { certPem, keyPem: privateKeyPem, caCertPem: extraCaPem || outboundCaPem },
    extraCaPem,
    outboundCaPem,
    operatorToken,
    logger,
    dataDir,
    keysDir: config.keysDir ? path.resolve(config.keysDir) : path.join(dataDir ?? '.', 'keys'),
    database,
  };
}

const tuning = (config: Common) => ({
  migrations: config.dbMigrations,
  ...(config.rateLimits ? { rateLimits: config.rateLimits } : {}),
  ...(config.loadShedding ? { loadShedding: config.loadShedding } : {}),
  ...(config.serverTimeouts ? { serverTimeouts: config.serverTimeouts } : {}),
});

const merchantId = z.string().regex(/^mer_[0-9a-hjkmnp-tv-z]{26}$/, 'must be a merchant id (mer_…)');
const brokerMerchants = z.array(z.strictObject({ id: merchantId, name: z.string().min(1).max(limits.stringLengthMax), apiKey: z.string().min(16), webhookUrl: httpsUrl.optional(), webhookSecret: z.string().min(16) })).max(limits.configMerchantsMax);
const bankMerchants = z.array(z.strictObject({ id: merchantId, name: z.string().min(1).max(limits.stringLengthMax) })).max(limits.configMerchantsMax);

export async function resolveAuth(config: AuthEnvConfig): Promise<ServeAuthConfig> {
  const files = new Files();
  const common = await commonParts('auth', config, files);
  const clientTls = config.clientCertFile && config.clientKeyFile ? { certPem: await files.pem(config.clientCertFile, 'KESSAI_CLIENT_CERT_FILE', certificatePem), keyPem: await files.pem(config.clientKeyFile, 'KESSAI_CLIENT_KEY_FILE', keyPem) } : { certPem: common.tls.certPem, keyPem: common.tls.keyPem };
  const merchants = config.merchantsFile ? ((await files.json(config.merchantsFile, 'KESSAI_MERCHANTS_FILE', brokerMerchants)) ?? []) : [];
  await files.text(config.directoryFile, 'KESSAI_DIRECTORY_FILE'); // readable now; read again at each request (the directory's operator replaces it)
  files.done();
  const directoryFile = path.resolve(config.directoryFile);
  return {
    listen: common.listen,
    database: common.database,
    keysDir: common.keysDir,
    logger: common.logger,
    // The broker calls banks (mutual TLS) and merchants' webhook URLs: Node's roots and the extra CAs.
    tls: { ...common.tls, caCertPem: common.outboundCaPem },
    clientTls,
    issuers: config.issuers,
    merchants,
    directory: () => readFile(directoryFile, 'utf8').then((text) => text.trim()).catch(() => Promise.reject(new KessaiError('issuer_unavailable', 'no issuer directory to relay'))),
    ...(config.walletOrigins ? { walletOrigins: config.walletOrigins.map((u) => new URL(u).origin) } : {}),
    ...(config.walletUrl ? { walletUrl: config.walletUrl } : {}),
    ...(config.workerIntervalMs ? { workerIntervalMs: config.workerIntervalMs } : {}),
    ...(config.authorizationDeadlineMs ? { authorizationDeadlineMs: config.authorizationDeadlineMs } : {}),
    ...(config.sseHeartbeatMs ? { sseHeartbeatMs: config.sseHeartbeatMs } : {}),
    ...(config.serverTiming ? { serverTiming: true } : {}),
    ...(common.operatorToken ? { operatorToken: common.operatorToken } : {}),
    ...tuning(config),
  };
}

export async function resolveSettlement(config: SettlementEnvConfig): Promise<ServeSettlementConfig> {
  const files = new Files();
  const common = await commonParts('settlement', config, files);
  const merchants = config.merchantsFile ? ((await files.json(config.merchantsFile, 'KESSAI_MERCHANTS_FILE', bankMerchants)) ?? []) : [];
  files.done();
  const settlement = settlementOptionsOfBank({ id: config.bankId, name: config.bankName, cardRanges: config.bankCardRanges ?? [], conversionMode: config.bankConversionMode, cipher2: config.bankCipher2, ...(config.bankFees ? { fees: config.bankFees } : {}), ...(config.bankBusinessDayTimeZone ? { businessDayTimeZone: config.bankBusinessDayTimeZone } : {}) });
  return {
    listen: common.listen,
    database: common.database,
    keysDir: common.keysDir,
    logger: common.logger,
    issuerId: config.bankId,
    name: config.bankName,
    conversionMode: config.bankConversionMode,
    cipher2: config.bankCipher2,
    // Client certificates are checked against the extra CAs only (Node's roots would let any public certificate through to the pin check).
    tls: { ...common.tls, caCertPem: common.extraCaPem || common.outboundCaPem },
    brokerCertificates: config.brokerCertFingerprints,
    ...(merchants.length > 0 ? { merchants } : {}),
    ...(config.bankHoldTimeoutSeconds ? { holdTimeoutSeconds: config.bankHoldTimeoutSeconds } : {}),
    ...(config.credentialsPerCardMax ? { credentialsPerCardMax: config.credentialsPerCardMax } : {}),
    ...(config.expiryIntervalMs !== undefined ? { expiryIntervalMs: config.expiryIntervalMs } : {}),
    ...(Object.keys(settlement).length > 0 ? { settlement } : {}),
    ...(common.operatorToken ? { operatorToken: common.operatorToken } : {}),
    ...tuning(config),
  };
}

export async function resolveShop(config: ShopEnvConfig): Promise<ServeShopConfig> {
  const files = new Files();
  const common = await commonParts('shop', config, files);
  const merchantApiKey = (await files.text(config.merchantApiKeyFile, 'KESSAI_MERCHANT_API_KEY_FILE')).trim();
  if (merchantApiKey === '' && files.problems.length === 0) files.problems.push(`KESSAI_MERCHANT_API_KEY_FILE: ${config.merchantApiKeyFile} is empty`);
  const secretsText = await files.text(config.webhookSecretsFile, 'KESSAI_WEBHOOK_SECRETS_FILE');
  const webhookSecrets = secretsText.split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  if (secretsText !== '' && webhookSecrets.length === 0) files.problems.push(`KESSAI_WEBHOOK_SECRETS_FILE: ${config.webhookSecretsFile} holds no secret`);
  if (webhookSecrets.length > limits.configWebhookSecretsMax) files.problems.push(`KESSAI_WEBHOOK_SECRETS_FILE: more than ${limits.configWebhookSecretsMax} secrets`);
  files.done();
  return {
    listen: common.listen,
    database: common.database,
    logger: common.logger,
    tls: common.tls,
    merchantApiKey,
    authBaseUrl: config.authUrl.replace(/\/+$/, ''),
    caCertPem: common.outboundCaPem,
    webhookSecrets,
    issuers: config.issuerJwks,
    autoCapture: config.autoCapture,
    ...(config.workerIntervalMs !== undefined ? { workerIntervalMs: config.workerIntervalMs } : {}),
    ...(common.operatorToken ? { operatorToken: common.operatorToken } : {}),
    ...tuning(config),
  };
}

const publicEcKey = z.looseObject({ kty: z.literal('EC'), crv: z.string(), x: z.string(), y: z.string() }).refine((jwk) => !('d' in jwk), 'must be a public key (it holds a private part)');

export async function resolveWalletHost(config: WalletHostEnvConfig): Promise<ServeWalletHostConfig> {
  const files = new Files();
  const common = await commonParts('wallet-host', config, files);
  const directoryKey = await files.json(config.directoryKeyFile, 'KESSAI_DIRECTORY_KEY_FILE', publicEcKey);
  files.done();
  return {
    listen: common.listen,
    logger: common.logger,
    tls: common.tls,
    authBaseUrl: config.authUrl.replace(/\/+$/, ''),
    directoryKey: directoryKey as JWK,
    ...(config.rateLimits ? { rateLimits: config.rateLimits } : {}),
    ...(config.serverTimeouts ? { serverTimeouts: config.serverTimeouts } : {}),
  };
}

/** The SHA-256 fingerprint of a PEM certificate file, as KESSAI_BROKER_CERT_FINGERPRINTS takes it. */
export async function fingerprintOfFile(file: string): Promise<string> {
  return certificateFingerprint(await readFile(file, 'utf8'));
}
