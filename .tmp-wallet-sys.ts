// Throwaway: a running system for a manual wallet transcript (deleted after use).
import { writeFileSync } from 'node:fs';
import { startSystem } from '@kessai/cli/system';
const system = await startSystem({ dataDir: '/tmp/wt/sys', ports: { auth: 0, shop: 0, issuers: {} } });
writeFileSync('/tmp/wt/sys.json', JSON.stringify({ auth: system.auth.url, shop: system.shop.url }));
writeFileSync('/tmp/wt/sys-ca.pem', system.pki.caCertPem);
console.error('ready', system.auth.url, system.shop.url);
process.on('SIGTERM', async () => { await system.close(); process.exit(0); });
