/**
 * Separate hosts: the roles on four network namespaces of this machine (test/support/netns.ts),
 * each with its own address, host name and /etc/hosts, its own folder and a TLS certificate for
 * its own host name. Nothing reaches another host through 127.0.0.1 or a shared file. Needs root
 * and iproute2: skipped, with the reason in the suite's name, where namespaces cannot be made.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueHostCertificates, type HostTlsFiles } from './support/host-certificates.ts';
import { createNetwork, netnsAvailability, sweepStaleNetworks, type NetnsNetwork } from './support/netns.ts';

const availability = await netnsAvailability();
const suiteName = availability.available ? 'separate hosts on network namespaces' : `separate hosts on network namespaces (skipped: ${availability.reason})`;

const hostSpecs = [
  { name: 'broker', hostName: 'broker.kessai.test' },
  { name: 'bank', hostName: 'bank.kessai.test' },
  { name: 'shop', hostName: 'shop.kessai.test' },
  { name: 'wallet', hostName: 'wallet.kessai.test' },
];

/** A one-route HTTPS server, started inside a host, that names the host it runs on. */
const httpsHelloServer = `
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { hostname } from 'node:os';
const server = createServer({ cert: readFileSync(process.env.CERT_FILE), key: readFileSync(process.env.KEY_FILE) }, (req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ host: hostname(), peer: req.socket.remoteAddress }));
});
server.listen(0, '0.0.0.0', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

/** An HTTPS GET that trusts only the given CA, printing the answer or the error's code. */
const httpsGet = `
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
get(process.env.URL, { ca: readFileSync(process.env.CA_FILE), timeout: 3000 }, (res) => {
  let body = '';
  res.on('data', (c) => (body += c)).on('end', () => console.log(JSON.stringify({ status: res.statusCode, body: JSON.parse(body) })));
}).on('error', (e) => console.log(JSON.stringify({ error: e.code ?? e.message }))).on('timeout', function () { this.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })); });
`;

describe.skipIf(!availability.available)(suiteName, () => {
  let network: NetnsNetwork;
  let root: string;
  let tls: Record<string, HostTlsFiles>;
  const folderOf = (name: string) => path.join(root, 'hosts', name);

  beforeAll(async () => {
    const swept = await sweepStaleNetworks();
    console.log(`separate hosts: running on network namespaces${swept.length ? ` (swept ${swept.length} left by an earlier run: ${swept.join(', ')})` : ''}`);
    root = await mkdtemp(path.join(tmpdir(), 'kessai-hosts-'));
    network = await createNetwork(hostSpecs);
    tls = (await issueHostCertificates(path.join(root, 'ca'), hostSpecs, folderOf)).files;
  });

  afterAll(async () => {
    await network?.destroy();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('gives each host its own address, host name and hosts file', async () => {
    for (const host of network.hosts) {
      const name = await network.run(host.name, 'hostname', []);
      expect(name.stdout.trim()).toBe(host.hostName);
      // /etc/netns/<ns>/hosts is bind-mounted over /etc/hosts: every host resolves every other by name.
      for (const peer of network.hosts) {
        const resolved = await network.run(host.name, 'getent', ['hosts', peer.hostName]);
        expect(resolved.stdout.split(/\s+/)[0], `${host.hostName} resolves ${peer.hostName}`).toBe(peer.address);
      }
      const addresses = await network.run(host.name, 'ip', ['-4', '-o', 'addr', 'show']);
      expect(addresses.stdout).toContain(`inet ${host.address}/24`);
      // Only lo and eth0: the machine's own interfaces are not there.
      const links = await network.run(host.name, 'ip', ['-o', 'link', 'show']);
      expect(links.stdout.trim().split('\n').map((line) => line.split(':')[1]?.trim().split('@')[0])).toEqual(['lo', 'eth0']);
    }
  });

  it('carries HTTPS from one host to another by host name, with a certificate for that name only', async () => {
    const server = network.spawn('bank', process.execPath, ['--input-type=module', '-e', httpsHelloServer], {
      env: { ...process.env, CERT_FILE: tls.bank!.certFile, KEY_FILE: tls.bank!.keyFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        server.stdout!.once('data', (chunk: Buffer) => resolve((JSON.parse(chunk.toString()) as { port: number }).port));
        server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
      });
      const get = (from: string, url: string) => network.run(from, process.execPath, ['--input-type=module', '-e', httpsGet], { env: { ...process.env, URL: url, CA_FILE: tls[from]!.caFile } });

      const answer = JSON.parse((await get('shop', `https://bank.kessai.test:${port}/`)).stdout) as { status: number; body: { host: string; peer: string } };
      expect(answer).toEqual({ status: 200, body: { host: 'bank.kessai.test', peer: network.host('shop').address } });
      // The certificate names the host, not its address: by IP the name check fails.
      expect(JSON.parse((await get('shop', `https://${network.host('bank').address}:${port}/`)).stdout)).toEqual({ error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      // Another host's 127.0.0.1 is its own: nothing listens there.
      expect(JSON.parse((await get('shop', `https://127.0.0.1:${port}/`)).stdout)).toEqual({ error: 'ECONNREFUSED' });
    } finally {
      server.kill('SIGTERM');
    }
  });
});
