/**
 * Builds the web pages with Vite: every `web/<role>/<page>/index.html` becomes
 * `dist/web/<role>/<page>/index.html`, with its scripts and styles bundled under
 * `dist/web/<role>/assets/` (relative URLs, so a page works under any mount path). The role's own
 * server serves its folder (packages/service web.ts). A build is skipped when nothing under web/
 * changed since the last one; a lock folder keeps two processes from building at once.
 *
 *   npm run build:web            builds what changed
 *   npm run build:web -- --force builds everything again
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const webSourceDir = path.dirname(fileURLToPath(import.meta.url));
export const webDistDir = path.join(webSourceDir, '..', 'dist', 'web');
const stampFile = path.join(webDistDir, '.built');
const lockDir = path.join(webSourceDir, '..', 'dist', '.web-build.lock');

/** The roles with pages: every folder of web/ except shared/ (code used by several pages). */
export function webRoles(): string[] {
  return readdirSync(webSourceDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== 'shared' && entry.name !== 'node_modules')
    .map((entry) => entry.name)
    .sort();
}

/** The pages of a role: its folders holding an index.html. */
export function webPages(role: string): string[] {
  const roleDir = path.join(webSourceDir, role);
  return readdirSync(roleDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(roleDir, entry.name, 'index.html')))
    .map((entry) => entry.name)
    .sort();
}

function newestSourceMtime(dir: string = webSourceDir): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSourceMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * True when some file under web/ changed after the sources of the last build were read (or there
 * was none). The stamp records the newest source time seen when that build started, so an edit made
 * while a build runs is built again next time.
 */
export function webBuildIsStale(): boolean {
  if (!existsSync(stampFile)) return true;
  const built = Number(readFileSync(stampFile, 'utf8').trim());
  return !Number.isFinite(built) || newestSourceMtime() > built;
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  mkdirSync(path.dirname(lockDir), { recursive: true });
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a process that died long ago is taken over.
      if (Date.now() - statSync(lockDir).mtimeMs > 120_000) rmSync(lockDir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`the web build lock ${lockDir} is held too long`, { cause: err });
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    return await work();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** Builds every role's pages when the sources changed (or always with force). */
export async function buildWeb(options: { force?: boolean; quiet?: boolean } = {}): Promise<boolean> {
  if (!options.force && !webBuildIsStale()) return false;
  return withLock(async () => {
    if (!options.force && !webBuildIsStale()) return false; // another process built it meanwhile
    const sourcesAt = newestSourceMtime();
    const { build } = await import('vite');
    const { default: react } = await import('@vitejs/plugin-react');
    for (const role of webRoles()) {
      const root = path.join(webSourceDir, role);
      const input = Object.fromEntries(webPages(role).map((page) => [page, path.join(root, page, 'index.html')]));
      if (Object.keys(input).length === 0) continue;
      await build({
        configFile: false,
        root,
        base: './',
        logLevel: options.quiet ? 'warn' : 'info',
        plugins: [react()],
        build: {
          outDir: path.join(webDistDir, role),
          emptyOutDir: true,
          assetsInlineLimit: 0,
          rollupOptions: { input },
        },
      });
    }
    writeFileSync(stampFile, `${sourcesAt}\n`);
    return true;
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes('--force');
  buildWeb({ force }).then(
    (built) => console.log(built ? `web pages built into ${webDistDir}` : `web pages are up to date in ${webDistDir}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
