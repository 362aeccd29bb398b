/**
 * Development PKI for Kessai: one private CA and one leaf certificate per server, created on
 * first start and reused afterwards, so nobody ever runs openssl by hand.
 *
 * Layout of `dir` (created with mode 0700):
 *   ca.key.pem / ca.cert.pem            the CA (P-256 ECDSA, SHA-256, valid 10 years)
 *   <name>.key.pem / <name>.cert.pem    one pair per LeafSpec (valid 1 year)
 * Private keys are unencrypted PKCS#8 PEM, mode 0600; certificates are mode 0644.
 *
 * Whatever is missing or unusable is (re)created:
 *   - the CA when its key or certificate is missing, unreadable, not a CA, the pair does not
 *     match, or it expires within 30 days. A new CA re-issues every leaf (they no longer chain),
 *     and whoever trusted the old CA (a browser, curl --cacert) has to trust the new one;
 *   - a leaf when its key or certificate is missing or unreadable, the pair does not match, it
 *     was not issued by the current CA, it expires within 30 days or is not yet valid, or its
 *     SANs or extended key usages differ from the spec. A re-issued leaf gets a new key.
 *
 * Concurrency: calls for the same directory within one process are serialised (a promise chain
 * per resolved path), so the second caller sees the files the first one wrote. Two *processes*
 * starting at the same time on an empty directory are NOT coordinated: every file is written
 * atomically (temp file + rename) so nobody ever reads half a file, but both may generate a CA
 * and the last rename wins, leaving one process with a CA the other does not know. Start one
 * process first (e.g. the CLI `start` command creates the PKI before forking the servers), or
 * simply restart: the next call notices a key/certificate mismatch and repairs the directory.
 *
 * This is for development only: the CA key sits unencrypted on disk next to the leaves.
 */
import 'reflect-metadata'; // @peculiar/x509 (via tsyringe) needs a Reflect polyfill loaded first.
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { limits } from '@kessai/protocol';

export interface LeafSpec {
  /** File stem, e.g. 'auth-server': lower-case letters, digits, '-' and '_'; not 'ca'. */
  name: string;
  /** DNS subjectAltNames, e.g. ['localhost']. */
  dnsNames: string[];
  /** IP subjectAltNames, e.g. ['127.0.0.1', '::1']. */
  ipAddresses: string[];
  /** extendedKeyUsage: 'server' = serverAuth, 'client' = clientAuth. */
  usages: Array<'server' | 'client'>;
}

export interface KeyPair {
  keyPem: string;
  certPem: string;
}

export interface DevPki {
  caCertPem: string;
  leaves: Record<string, KeyPair>;
  /** Absolute path of the CA certificate (to trust in a browser or pass to curl --cacert). */
  caCertPath: string;
  /** What this call had to (re)create: 'ca' and/or leaf names. Empty when everything was reused. */
  issued: string[];
}

/** Prefix of the CA's subject common name; a random suffix tells one developer's CA from another's. */
export const DEV_CA_COMMON_NAME = 'Kessai development CA';

const CA_VALIDITY_MS = limits.devCaValidityMs;
const LEAF_VALIDITY_MS = limits.devLeafValidityMs;
const RENEW_BEFORE_MS = limits.devCertRenewBeforeMs;
const BACKDATE_MS = limits.devCertBackdateMs;

const KEY_ALGORITHM: EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const USAGE_OIDS: Record<LeafSpec['usages'][number], string> = {
  server: x509.ExtendedKeyUsage.serverAuth,
  client: x509.ExtendedKeyUsage.clientAuth,
};

const CA_STEM = 'ca';
const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const DNS_NAME_PATTERN = /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

interface Ca {
  certPem: string;
  cert: x509.X509Certificate;
  nodeCert: NodeX509Certificate;
  signingKey: CryptoKey;
}

/** One promise chain per resolved directory: calls for the same dir run one after the other. */
const queues = new Map<string, Promise<unknown>>();

/**
 * Loads the CA and leaf certificates from `dir`, creating whatever is missing (P-256 ECDSA,
 * SHA-256; CA valid 10 years, leaves 1 year; leaves re-issued when expiring within 30 days or when
 * their SANs differ from the spec). Private keys are PKCS#8 PEM files written with mode 0600, the
 * folder 0700. See the top of this file for what happens when two processes race.
 */
export async function loadOrCreateDevPki(dir: string, leaves: LeafSpec[]): Promise<DevPki> {
  const specs = leaves.map(normalizeSpec);
  const names = new Set<string>();
  for (const spec of specs) {
    if (names.has(spec.name)) throw new Error(`loadOrCreateDevPki: leaf name '${spec.name}' given twice`);
    names.add(spec.name);
  }

  const root = path.resolve(dir);
  const previous = queues.get(root) ?? Promise.resolve();
  const run = previous.then(() => loadOrCreate(root, specs));
  const settled = run.then(
    () => undefined,
    () => undefined,
  );
  queues.set(root, settled);
  void settled.then(() => {
    if (queues.get(root) === settled) queues.delete(root);
  });
  return run;
}

async function loadOrCreate(dir: string, specs: NormalizedSpec[]): Promise<DevPki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // mkdir's mode is filtered by the umask and ignored for an existing dir.

  const issued: string[] = [];
  const now = Date.now();
  let ca = await loadCa(dir, now);
  if (!ca) {
    ca = await createCa(dir, now);
    issued.push(CA_STEM);
  }

  const result: Record<string, KeyPair> = {};
  for (const spec of specs) {
    const existing = await loadLeaf(dir, spec, ca, now);
    if (existing) {
      result[spec.name] = existing;
    } else {
      result[spec.name] = await createLeaf(dir, spec, ca, now);
      issued.push(spec.name);
    }
  }
  return { caCertPem: ca.certPem, leaves: result, caCertPath: certPath(dir, CA_STEM), issued };
}

// ---------------------------------------------------------------------------------------------
// Specs

interface NormalizedSpec {
  name: string;
  dnsNames: string[];
  ipAddresses: string[];
  usageOids: string[];
}

function normalizeSpec(spec: LeafSpec): NormalizedSpec {
  const { name } = spec;
  if (!NAME_PATTERN.test(name) || name === CA_STEM) {
    throw new Error(`loadOrCreateDevPki: invalid leaf name '${name}' (lower-case letters, digits, '-', '_'; not 'ca')`);
  }
  const dnsNames = spec.dnsNames.map((dns) => {
    const lower = dns.toLowerCase();
    if (!DNS_NAME_PATTERN.test(lower)) throw new Error(`loadOrCreateDevPki: invalid DNS name '${dns}' for '${name}'`);
    return lower;
  });
  const ipAddresses = spec.ipAddresses.map((ip) => {
    if (isIP(ip) === 0) throw new Error(`loadOrCreateDevPki: invalid IP address '${ip}' for '${name}'`);
    return canonicalIp(ip);
  });
  if (spec.usages.length === 0) throw new Error(`loadOrCreateDevPki: leaf '${name}' has no usages`);
  const usageOids = spec.usages.map((usage) => {
    const oid = USAGE_OIDS[usage];
    if (!oid) throw new Error(`loadOrCreateDevPki: unknown usage '${String(usage)}' for '${name}'`);
    return oid;
  });
  if (spec.usages.includes('server') && dnsNames.length + ipAddresses.length === 0) {
    throw new Error(`loadOrCreateDevPki: server leaf '${name}' needs at least one DNS name or IP address`);
  }
  return { name, dnsNames: sortedUnique(dnsNames), ipAddresses: sortedUnique(ipAddresses), usageOids: sortedUnique(usageOids) };
}

/** One spelling per address ('::1', '0:0::1' and '::0001' are the same), as the WHATWG URL parser writes it. */
function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : new URL(`http://${ip}/`).hostname;
}

function sortedUnique(values: string[]): string[] {
  return [...new Set(values)].sort();
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

// ---------------------------------------------------------------------------------------------
// CA

async function loadCa(dir: string, now: number): Promise<Ca | null> {
  const keyPem = await readIfExists(keyPath(dir, CA_STEM));
  const certPem = await readIfExists(certPath(dir, CA_STEM));
  if (keyPem === null || certPem === null) return null;
  try {
    const nodeCert = new NodeX509Certificate(certPem);
    if (!nodeCert.ca) return null;
    if (!nodeCert.checkPrivateKey(createPrivateKey(keyPem))) return null;
    const cert = new x509.X509Certificate(certPem);
    if (cert.notAfter.getTime() - now < RENEW_BEFORE_MS) return null;
    const signingKey = await crypto.subtle.importKey('pkcs8', pemBody(keyPem), KEY_ALGORITHM, false, ['sign']);
    await ensureMode(keyPath(dir, CA_STEM), 0o600);
    return { certPem, cert, nodeCert, signingKey };
  } catch {
    return null; // Unreadable or a different algorithm: make a new CA.
  }
}

async function createCa(dir: string, now: number): Promise<Ca> {
  const keys = await generateKeys();
  const suffix = Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString('hex');
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: [{ O: ['Kessai development'] }, { CN: [`${DEV_CA_COMMON_NAME} ${suffix}`] }],
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_VALIDITY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const keyPem = await exportPrivateKeyPem(keys.privateKey);
  const certPem = cert.toString('pem') + '\n';
  // Key first, certificate second: a crash in between leaves a mismatched pair, which loadCa rejects.
  await writeAtomic(keyPath(dir, CA_STEM), keyPem, 0o600);
  await writeAtomic(certPath(dir, CA_STEM), certPem, 0o644);
  return { certPem, cert, nodeCert: new NodeX509Certificate(certPem), signingKey: keys.privateKey };
}

// ---------------------------------------------------------------------------------------------
// Leaves

async function loadLeaf(dir: string, spec: NormalizedSpec, ca: Ca, now: number): Promise<KeyPair | null> {
  const keyPem = await readIfExists(keyPath(dir, spec.name));
  const certPem = await readIfExists(certPath(dir, spec.name));
  if (keyPem === null || certPem === null) return null;
  try {
    const nodeCert = new NodeX509Certificate(certPem);
    if (!nodeCert.checkPrivateKey(createPrivateKey(keyPem))) return null;
    if (!nodeCert.checkIssued(ca.nodeCert) || !nodeCert.verify(ca.nodeCert.publicKey)) return null;

    const cert = new x509.X509Certificate(certPem);
    if (cert.notBefore.getTime() > now || cert.notAfter.getTime() - now < RENEW_BEFORE_MS) return null;

    const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
    const dnsNames = sortedUnique(names.filter((n) => n.type === 'dns').map((n) => n.value.toLowerCase()));
    const ipAddresses = sortedUnique(names.filter((n) => n.type === 'ip').map((n) => canonicalIp(n.value)));
    if (names.some((n) => n.type !== 'dns' && n.type !== 'ip')) return null;
    if (!sameList(dnsNames, spec.dnsNames) || !sameList(ipAddresses, spec.ipAddresses)) return null;

    const usages = cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [];
    if (!sameList(sortedUnique(usages.map(String)), spec.usageOids)) return null;

    await ensureMode(keyPath(dir, spec.name), 0o600);
    return { keyPem, certPem };
  } catch {
    return null; // Unreadable: issue a new one.
  }
}

async function createLeaf(dir: string, spec: NormalizedSpec, ca: Ca, now: number): Promise<KeyPair> {
  const keys = await generateKeys();
  const sans: x509.JsonGeneralNames = [
    ...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })),
    ...spec.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension(spec.usageOids, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey, false, crypto),
  ];
  // An empty SAN extension is invalid DER (SEQUENCE SIZE (1..MAX)); client-only leaves may have none.
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));

  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: [{ O: ['Kessai development'] }, { CN: [spec.name] }],
      // The issuer is copied from the CA certificate as parsed, so it matches byte for byte.
      issuer: ca.cert.subjectName,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + LEAF_VALIDITY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: ca.signingKey,
      extensions,
    },
    crypto,
  );
  const keyPem = await exportPrivateKeyPem(keys.privateKey);
  const certPem = cert.toString('pem') + '\n';
  // Key first, certificate second: a crash in between leaves a mismatched pair, which loadLeaf rejects.
  await writeAtomic(keyPath(dir, spec.name), keyPem, 0o600);
  await writeAtomic(certPath(dir, spec.name), certPem, 0o644);
  return { keyPem, certPem };
}

// ---------------------------------------------------------------------------------------------
// Crypto helpers

async function generateKeys(): Promise<CryptoKeyPair> {
  // Extractable so that the private key can be exported as PKCS#8 once, right after generation.
  return crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

function pemBody(pem: string): ArrayBuffer {
  return x509.PemConverter.decodeFirst(pem);
}

/** 16 random bytes, high bit cleared: a positive INTEGER of at most 16 octets (RFC 5280 allows 20). */
function randomSerialNumber(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive, and the first octet is never 0 (no re-encoding).
  return Buffer.from(bytes).toString('hex');
}

// ---------------------------------------------------------------------------------------------
// Files

function keyPath(dir: string, stem: string): string {
  return path.join(dir, `${stem}.key.pem`);
}

function certPath(dir: string, stem: string): string {
  return path.join(dir, `${stem}.cert.pem`);
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Tightens a key file someone loosened (e.g. copied with cp). No-op where modes mean nothing (Windows). */
async function ensureMode(file: string, mode: number): Promise<void> {
  if (process.platform === 'win32') return;
  const { mode: current } = await stat(file);
  if ((current & 0o777) !== mode) await chmod(file, mode);
}

/** Writes to a temp file in the same directory (created with `mode`, flushed), then renames it over `file`. */
async function writeAtomic(file: string, content: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.${Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(content, 'utf8');
      await handle.chmod(mode); // open's mode is filtered by the umask.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** SHA-256 fingerprint of a PEM certificate (hex, no colons), as pinned by requirePinnedClientCertificate. */
export function certificateFingerprint(certPem: string): string {
  return new NodeX509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
}
