/**
 * TLS certificates for separate hosts: one development CA (packages/service/src/tls.ts,
 * `loadOrCreateDevPki`) issues each host a certificate naming its own host name only — no
 * localhost, no IP address — and each host's folder receives its own key and certificate and the
 * CA certificate, never the CA's key or another host's key.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { loadOrCreateDevPki, type DevPki } from '@kessai/service';

export interface HostTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/**
 * Issues, in `caDir` (the CA operator's folder), one certificate per host for its `hostName`
 * (serverAuth and clientAuth), and copies each host's pair and the CA certificate into
 * `<folderOf(name)>/tls/`.
 */
export async function issueHostCertificates(caDir: string, hosts: ReadonlyArray<{ name: string; hostName: string }>, folderOf: (name: string) => string): Promise<{ pki: DevPki; files: Record<string, HostTlsFiles> }> {
  const pki = await loadOrCreateDevPki(
    caDir,
    hosts.map((h) => ({ name: h.name, dnsNames: [h.hostName], ipAddresses: [], usages: ['server', 'client'] })),
  );
  const files: Record<string, HostTlsFiles> = {};
  for (const host of hosts) {
    const dir = path.join(folderOf(host.name), 'tls');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const target = { certFile: path.join(dir, 'server.cert.pem'), keyFile: path.join(dir, 'server.key.pem'), caFile: path.join(dir, 'ca.cert.pem') };
    await copyFile(path.join(caDir, `${host.name}.cert.pem`), target.certFile);
    await copyFile(path.join(caDir, `${host.name}.key.pem`), target.keyFile);
    await copyFile(pki.caCertPath, target.caFile);
    files[host.name] = target;
  }
  return { pki, files };
}
