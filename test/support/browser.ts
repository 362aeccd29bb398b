/**
 * Chromium for the end-to-end tests of the web pages: Debian's /usr/bin/chromium driven by
 * playwright-core (never a downloaded browser). `launchBrowser()` starts one browser with its own
 * empty profile (a separate browser: nothing shared with another launch, as two machines would
 * be); `screenshot(page, name)` writes test-results/screenshots/<name>.png, the folder CI keeps.
 * `ensureWebBuilt()` builds the pages (web/) when their sources changed since the last build.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildWeb } from '../../web/build.ts';

export const chromiumPath = '/usr/bin/chromium';
/** False when Debian's chromium is not installed: the browser tests skip (CI installs it). */
export const hasChromium = existsSync(chromiumPath);
export const skipWithoutChromium = hasChromium ? '' : `browser tests skipped: ${chromiumPath} is missing (apt-get install -y chromium)`;
if (!hasChromium) console.warn(skipWithoutChromium);

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const screenshotDir = path.join(repoRoot, 'test-results', 'screenshots');

const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface TestBrowser {
  context: BrowserContext;
  /** A new tab. */
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * A fresh Chromium with an empty profile. The servers' certificates come from the development CA,
 * which this profile does not know: certificate errors are ignored for this test browser only.
 */
export async function launchBrowser(options: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(tmpdir(), 'kessai-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    args: chromiumArgs,
    ignoreHTTPSErrors: true,
    viewport: options.viewport ?? { width: 1100, height: 900 },
    acceptDownloads: true,
  });
  return {
    context,
    newPage: () => context.newPage(),
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a full-page PNG as test-results/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Builds web/ into dist/web if its sources changed (serialised across test workers). */
export async function ensureWebBuilt(): Promise<void> {
  await buildWeb({ quiet: true });
}
