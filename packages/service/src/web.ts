/**
 * Serves a role's built web pages (web/<role>/<page>/, built by `npm run build:web` into
 * dist/web/<role>/): `GET /<page>/` answers the page's index.html, `GET /assets/<file>` its bundled
 * scripts, styles and pictures. Only files inside the role's build folder with plain names are
 * served; every answer carries a Content-Security-Policy that lets a page load nothing from
 * another origin.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import { KessaiError } from '@kessai/protocol';
import type { KessaiApp } from './server.ts';

/** dist/web at the repository root. */
export const webDistDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'dist', 'web');

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
};

/** The policy of every page: nothing from another origin but, for fetch, the `connectSrc` origins. */
export function webContentSecurityPolicy(connectSrc: readonly string[] = []): string {
  return [
    "default-src 'self'",
    "img-src 'self' data: blob:",
    "style-src 'self' 'unsafe-inline'",
    "script-src 'self'",
    `connect-src ${["'self'", ...connectSrc].join(' ')}`,
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

const pageName = /^[a-z][a-z0-9-]{0,40}$/;
const assetName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$/;

export interface WebPagesOptions {
  /** The page `GET /` redirects to, if any (e.g. 'store'). */
  home?: string;
  /** Other origins the pages may fetch from (https://host:port), e.g. the issuers' public keys. */
  connectSrc?: readonly string[];
  /** The build folder; default dist/web/<role>. */
  dir?: string;
}

/** The pages built for a role (folders of dist/web/<role> holding an index.html). */
export function builtWebPages(role: string, dir: string = path.join(webDistDir, role)): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && pageName.test(entry.name) && existsSync(path.join(dir, entry.name, 'index.html')))
    .map((entry) => entry.name)
    .sort();
}

/** Registers the page routes of `role`. Pages built after the server started are served too. */
export function registerWebPages(app: KessaiApp, role: string, options: WebPagesOptions = {}): void {
  const dir = options.dir ?? path.join(webDistDir, role);
  const policy = webContentSecurityPolicy(options.connectSrc);

  const send = async (file: string, reply: FastifyReply, immutable: boolean) => {
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') throw new KessaiError('not_found');
      throw err;
    }
    return reply
      .header('content-type', contentTypes[path.extname(file)] ?? 'application/octet-stream')
      .header('content-security-policy', policy)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(body);
  };

  // Pages, assets and the home redirect are the browser's, not the API's: left out of /openapi.json.
  const page = { schema: { hide: true } };
  app.get<{ Params: { page: string } }>('/:page/', page, async (request, reply) => {
    const { page } = request.params;
    if (!pageName.test(page)) throw new KessaiError('not_found');
    return send(path.join(dir, page, 'index.html'), reply, false);
  });
  app.get<{ Params: { file: string } }>('/assets/:file', page, async (request, reply) => {
    const { file } = request.params;
    if (!assetName.test(file)) throw new KessaiError('not_found');
    return send(path.join(dir, 'assets', file), reply, true);
  });
  if (options.home) {
    const home = options.home;
    app.get('/', page, async (_request, reply) => reply.redirect(`/${home}/`));
  }
}
