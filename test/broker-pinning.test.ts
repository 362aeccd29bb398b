/**
 * The broker's certificate is pinned per issuer (docs/threat-model.md, "Several brokers under one
 * CA"): a second client certificate issued by the same development CA passes the CA check but is
 * refused on every /internal route of the settlement server with client_certificate_required,
 * while the authentication server's own certificate is served.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { newId } from '@kessai/protocol';
import { certificateFingerprint, loadOrCreateDevPki } from '@kessai/service';
import { BankCaller } from './support/bank.ts';
import { registeredRoutes } from './fuzz/harness.ts';
import { demoCard, startTestSystem, type TestSystem } from './support/system.ts';

const payerOf: Record<string, string> = { 'sakura-bank': '4242424242424242', 'fuji-bank': '5555555555554444' };

let system: TestSystem;
let broker: Agent;
let rogue: Agent;
let rogueCertPem: string;

beforeAll(async () => {
  system = await startTestSystem();
  const own = system.pki.leaves['auth-server']!;
  broker = new Agent({ connect: { ca: system.pki.caCertPem, cert: own.certPem, key: own.keyPem } });
  // Another clientAuth leaf of the same CA, issued by the dev PKI's own code.
  const minted = await loadOrCreateDevPki(path.join(system.dataDir, 'pki'), [{ name: 'second-broker', dnsNames: [], ipAddresses: [], usages: ['client'] }]);
  const leaf = minted.leaves['second-broker']!;
  rogueCertPem = leaf.certPem;
  rogue = new Agent({ connect: { ca: system.pki.caCertPem, cert: leaf.certPem, key: leaf.keyPem } });
});
afterAll(async () => {
  await broker?.close();
  await rogue?.close();
  await system?.stop();
});

async function call(agent: Agent, issuerId: string, method: 'GET' | 'POST', route: string, body?: unknown): Promise<{ status: number; code: string | undefined }> {
  const settlement = system.settlements.find((s) => s.issuer.id === issuerId)!;
  const response = await request(`${settlement.url}${route}`, { method, dispatcher: agent, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await response.body.text();
  const json = (text ? JSON.parse(text) : {}) as { code?: string };
  return { status: response.statusCode, code: json.code };
}

describe('broker certificate pinning at the settlement servers', () => {
  it('the second certificate is a valid client certificate of the same CA, but not the pinned one', () => {
    const cert = new X509Certificate(rogueCertPem);
    expect(cert.verify(new X509Certificate(system.pki.caCertPem).publicKey)).toBe(true);
    expect(cert.keyUsage ?? []).toContain('1.3.6.1.5.5.7.3.2');
    expect(certificateFingerprint(rogueCertPem)).not.toBe(certificateFingerprint(system.pki.leaves['auth-server']!.certPem));
  });

  for (const issuerId of ['sakura-bank', 'fuji-bank']) {
    it(`${issuerId}: refuses the second certificate with client_certificate_required and serves the broker's own`, async () => {
      const rid = newId('pr');
      const refused = await call(rogue, issuerId, 'GET', `/internal/v1/authorizations/${rid}`);
      expect(refused).toEqual({ status: 401, code: 'client_certificate_required' });
      const refusedRevocation = await call(rogue, issuerId, 'POST', `/internal/v1/credentials/${newId('cred')}/revoke`, { revoked_by: 'payer' });
      expect(refusedRevocation).toEqual({ status: 401, code: 'client_certificate_required' });
      const refusedState = await call(rogue, issuerId, 'GET', `/internal/v1/credentials/${newId('cred')}`);
      expect(refusedState).toEqual({ status: 401, code: 'client_certificate_required' });
      const refusedAuthorization = await call(rogue, issuerId, 'POST', '/internal/v1/authorizations', {});
      expect(refusedAuthorization).toEqual({ status: 401, code: 'client_certificate_required' });
      const served = await call(broker, issuerId, 'GET', `/internal/v1/authorizations/${rid}`);
      expect(served.code).not.toBe('client_certificate_required');
      expect(served.status).not.toBe(401);
    });

    it(`${issuerId}: refuses the second certificate on every /internal route the server registers, whichever module registers it, and on a percent-encoded path`, async () => {
      const app = system.settlements.find((s) => s.issuer.id === issuerId)!.app;
      const internal = registeredRoutes(app).filter((route) => route.split(' ')[1]!.startsWith('/internal/'));
      expect(internal.length).toBeGreaterThanOrEqual(10); // enrollments, revocations, credential states, authorizations and their 409 steps, settlement batches and reports
      for (const route of internal) {
        const [method, pattern] = route.split(' ') as ['GET' | 'POST', string];
        const path = pattern.replace(/:merchant_id/g, newId('mer')).replace(/:batch_id/g, `stb_${'0'.repeat(26)}`).replace(/:rid/g, newId('pr')).replace(/:id/g, newId('cred'));
        expect(await call(rogue, issuerId, method, path, method === 'POST' ? {} : undefined), route).toEqual({ status: 401, code: 'client_certificate_required' });
      }
      expect(await call(rogue, issuerId, 'GET', `/%69nternal/v1/authorizations/${newId('pr')}`)).toMatchObject({ status: 401, code: 'client_certificate_required' });
    });

    it(`${issuerId}: refuses a valid enrollment from the second certificate with client_certificate_required and registers it from the broker's own`, async () => {
      const bank = new BankCaller(system.settlements.find((s) => s.issuer.id === issuerId)!.url, issuerId, { caCertPem: system.pki.caCertPem, certPem: system.pki.leaves['auth-server']!.certPem, keyPem: system.pki.leaves['auth-server']!.keyPem });
      try {
        const card = demoCard(payerOf[issuerId]!);
        const body = await bank.enrollmentBody(await bank.device(card), card.pin);
        expect(await call(rogue, issuerId, 'POST', '/internal/v1/enrollments', body)).toEqual({ status: 401, code: 'client_certificate_required' });
        const registered = await bank.call('POST', '/internal/v1/enrollments', body);
        expect(registered.status).toBe(200);
        expect(registered.body.registration).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      } finally {
        await bank.close();
      }
    });
  }
});
