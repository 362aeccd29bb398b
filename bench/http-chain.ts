/**
 * The HTTP ceiling: a bare Node HTTPS chain with the payment's hops — client → "broker" →
 * "issuer" over mutual TLS, small JSON bodies, keep-alive — and nothing else, closed loop.
 */
import { createServer } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { loadOrCreateDevPki } from '@kessai/service';

export interface HttpChain {
  requestsPerSecond: number;
  concurrency: number;
}

export async function measureHttpChain(total: number, concurrency: number, onProgress: (done: number, total: number) => void): Promise<HttpChain> {
  const dir = await mkdtemp(path.join(tmpdir(), 'kessai-bench-http-'));
  const pki = await loadOrCreateDevPki(dir, [
    { name: 'a', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server', 'client'] },
    { name: 'b', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] },
  ]);
  const a = pki.leaves.a!;
  const b = pki.leaves.b!;
  const issuer = createServer({ key: b.keyPem, cert: b.certPem, ca: pki.caCertPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    req.resume();
    req.on('end', () => res.setHeader('content-type', 'application/json').end('{"authorization":"ok"}'));
  });
  await new Promise<void>((resolve) => issuer.listen(0, '127.0.0.1', resolve));
  const toIssuer = new Agent({ connect: { ca: pki.caCertPem, cert: a.certPem, key: a.keyPem } });
  const issuerUrl = `https://127.0.0.1:${(issuer.address() as AddressInfo).port}/`;
  const broker = createServer({ key: a.keyPem, cert: a.certPem }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', async () => {
      const upstream = await request(issuerUrl, { method: 'POST', dispatcher: toIssuer, body, headers: { 'content-type': 'application/json' } });
      res.setHeader('content-type', 'application/json').end(await upstream.body.text());
    });
  });
  await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
  const client = new Agent({ connect: { ca: pki.caCertPem } });
  const brokerUrl = `https://127.0.0.1:${(broker.address() as AddressInfo).port}/`;
  let claimed = 0;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (claimed < total) {
        claimed++;
        const response = await request(brokerUrl, { method: 'POST', dispatcher: client, body: '{"approval":"x"}', headers: { 'content-type': 'application/json' } });
        await response.body.text();
        done++;
        if (done % 50 === 0 || done === total) onProgress(done, total);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await client.close();
  await toIssuer.close();
  broker.close();
  issuer.close();
  await rm(dir, { recursive: true, force: true });
  return { requestsPerSecond: total / seconds, concurrency };
}
