/**
 * The browser wallet's own origin (DESIGN.md §1: "the browser wallet is served from an origin the
 * broker does not control"). A small static server for the wallet's pages (web/wallet/, built into
 * dist/web/wallet/) and its configuration, `GET /wallet/config.json`: the authentication server's
 * URL and the directory key built in to this wallet. The pages' Content-Security-Policy lets them
 * fetch from this origin and the authentication server only, so a compromised authentication
 * server can neither change the code that reads the PIN nor the key that checks the directory.
 */
import { z } from 'zod';
import { publicJwk, type JWK } from '@kessai/protocol';
import { byAddress, createRateLimiters, createServer, rateLimitHook, registerOpenApi, registerWebPages, type Logger, type RateLimitConfig, type ServerTimeouts } from '@kessai/service';

export interface WalletHostConfig {
  logger: Logger;
  tls: { keyPem: string; certPem: string; caCertPem: string };
  /** The authentication server the wallet talks to (https://…). */
  authBaseUrl: string;
  /** The directory's public key, built in to the wallet served here. */
  directoryKey: JWK;
  rateLimits?: RateLimitConfig;
  /** Shorter connection timeouts than limits.ts (tests). */
  serverTimeouts?: Partial<ServerTimeouts>;
}

/** `GET /wallet/config.json`: what the wallet's pages read first. */
export const walletConfigAnswer = z.strictObject({
  auth_base_url: z.url().meta({ description: 'The authentication server the wallet talks to.' }),
  directory_key: publicJwk
    .partial({ kid: true, use: true, alg: true })
    .meta({ description: 'The directory key built in to this wallet: it checks the signed issuer directory.' }),
});

export async function buildWalletHost(config: WalletHostConfig) {
  const authOrigin = new URL(config.authBaseUrl).origin;
  if (!authOrigin.startsWith('https://')) throw new TypeError('the wallet host needs an https authentication server URL');
  const app = createServer({ logger: config.logger, tls: config.tls, ...(config.serverTimeouts ? { timeouts: config.serverTimeouts } : {}) });
  await registerOpenApi(app, {
    title: 'Kessai wallet host',
    description: "The browser wallet's own origin: its pages (not documented here), its configuration, health routes.",
    routeSecurity: [],
    routeTags: [['/wallet/', 'wallet']],
  });
  app.addHook('onRequest', rateLimitHook(createRateLimiters(config.rateLimits), byAddress));
  // Checked at start: a directory key with a private member (or not a JWK) never reaches a browser.
  const walletConfig = Object.freeze(walletConfigAnswer.parse({ auth_base_url: config.authBaseUrl.replace(/\/+$/, ''), directory_key: config.directoryKey }));
  const configSchema = {
    summary: "The wallet's configuration",
    operationId: 'getWalletConfig', 
    response: { 200: walletConfigAnswer },
  };
  app.get('/wallet/config.json', { schema: configSchema }, async (_request, reply) => reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(walletConfig));
  registerWebPages(app, 'wallet', { home: 'wallet', connectSrc: [authOrigin] });
  return app;
}
