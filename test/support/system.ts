/**
 * Starts a whole Kessai system for a test file: real servers on free ports with real TLS, each
 * role on its own database — PGlite cloned from the run's template, or, when KESSAI_TEST_PG_URL
 * is set, a fresh PostgreSQL database per role.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { startSystem, type DbSource, type KessaiSystem, type SystemOptions } from '@kessai/cli/system';
import { demoIssuers } from '@kessai/cli/demo-data';
import { WalletClient } from '@kessai/sdk';
import { loadTestLoadShedding, loadTestRateLimits } from '@kessai/service';
import { pgliteTemplate, scratchPostgres } from './database.ts';

export interface TestSystem extends KessaiSystem {
  stop(): Promise<void>;
  /** The operator token of the server at `url` (each role has its own). */
  operatorTokenOf(url: string): string;
  /** `Authorization: Bearer <that server's operator token>`. */
  operatorHeaders(url: string): Record<string, string>;
  backend: 'pglite' | 'postgres';
}

/** Active credentials per card in test systems: the suites enroll the demo cards many times (enrollment.test.ts tests the real limit). */
const testCredentialsPerCardMax = 10_000;

export async function startTestSystem(options: Pick<SystemOptions, 'beforeListen' | 'authorizationDeadlineMs' | 'holdTimeoutSeconds' | 'expiryIntervalMs' | 'rateLimits' | 'serverTimeouts' | 'settlement' | 'sseHeartbeatMs' | 'credentialsPerCardMax' | 'loadShedding'> = {}): Promise<TestSystem> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-test-'));
  const drops: Array<() => Promise<void>> = [];
  const source = async (role: string): Promise<DbSource> => {
    const scratch = await scratchPostgres(`kessai_${role.replace(/-/g, '_')}`);
    if (scratch) {
      drops.push(scratch.drop);
      return { url: scratch.url };
    }
    return { pgliteTemplate: await pgliteTemplate() };
  };
  const issuers: Record<string, DbSource> = {};
  for (const issuer of demoIssuers) issuers[issuer.id] = await source(issuer.id);
  const system = await startSystem({
    dataDir,
    ports: { auth: 0, shop: 0, issuers: {} },
    databases: { auth: await source('auth'), shop: await source('shop'), issuers },
    workerIntervalMs: 50,
    // The suites send thousands of requests from one address; test/rate-limits.test.ts passes its own.
    rateLimits: loadTestRateLimits,
    // Likewise the in-flight limits: test/load-shedding.test.ts passes its own.
    loadShedding: { auth: loadTestLoadShedding, shop: loadTestLoadShedding, settlement: loadTestLoadShedding },
    credentialsPerCardMax: testCredentialsPerCardMax,
    ...options,
  });
  return {
    ...system,
    backend: process.env.KESSAI_TEST_PG_URL ? 'postgres' : 'pglite',
    operatorTokenOf: (url) => operatorTokenOf(system, url),
    operatorHeaders: (url) => ({ authorization: `Bearer ${operatorTokenOf(system, url)}` }),
    async stop() {
      await system.close();
      for (const drop of drops) await drop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The operator token of the server (auth, shop or a settlement server) whose origin `url` has. */
export function operatorTokenOf(system: KessaiSystem, url: string): string {
  const origin = new URL(url).origin;
  if (origin === new URL(system.auth.url).origin) return system.operatorTokens.auth;
  if (origin === new URL(system.shop.url).origin) return system.operatorTokens.shop;
  const settlement = system.settlements.find((s) => new URL(s.url).origin === origin);
  if (!settlement) throw new Error(`no server of this system at ${origin}`);
  return system.operatorTokens.issuers[settlement.issuer.id]!;
}

export function demoCard(cardNumber: string) {
  for (const issuer of demoIssuers) {
    const card = issuer.cards.find((c) => c.cardNumber === cardNumber);
    if (card) return { ...card, issuer };
  }
  throw new Error(`no demo card ${cardNumber}`);
}

export async function enroll(system: KessaiSystem, cardNumber: string): Promise<WalletClient> {
  const card = demoCard(cardNumber);
  const wallet = await WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin });
  return new WalletClient(wallet, { caCertPem: system.pki.caCertPem });
}

/** A JSON call over HTTPS to one of the system's servers, trusting only its development CA. */
export async function callJson(system: KessaiSystem, method: 'GET' | 'POST', url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; contentType: string }> { // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read fields of any server's JSON
  const agent = new Agent({ connect: { ca: system.pki.caCertPem } });
  try {
    const response = await request(url, {
      method,
      dispatcher: agent,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: text ? JSON.parse(text) : undefined, contentType: String(response.headers['content-type'] ?? '') };
  } finally {
    await agent.close();
  }
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
