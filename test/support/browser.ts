/**
 * Chromium for the end-to-end tests of the web pages: Debian's /usr/bin/chromium driven by
 * playwright-core (never a downloaded browser). `launchBrowser()` starts one browser with its own
 * empty profile (a separate browser: nothing shared with another launch, as two machines would
 * be); `screenshot(page, name)` writes test-results/screenshots/<name>.png, the folder CI keeps,
 * after checking the page with axe-core (`expectAccessible`): every page a browser test shows has
 * no serious or critical accessibility violation.
 * `ensureWebBuilt()` builds the pages (web/) when their sources changed since the last build.
 */
import { existsSync, readFileSync } from 'node:fs';
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
export interface LaunchOptions {
  viewport?: { width: number; height: number };
  /** The browser's language (navigator.languages, Accept-Language); en-GB unless given. */
  locale?: string;
}

export async function launchBrowser(options: LaunchOptions = {}): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(tmpdir(), 'kessai-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    args: chromiumArgs,
    ignoreHTTPSErrors: true,
    viewport: options.viewport ?? { width: 1100, height: 900 },
    acceptDownloads: true,
    locale: options.locale ?? 'en-GB',
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

const axeSource = readFileSync(path.join(repoRoot, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: unknown[] }>;
}

/**
 * Runs axe-core 4 in the page and fails on any serious or critical violation (WCAG 2 A/AA rules and
 * best practices, as axe ships them). The script is evaluated through the DevTools protocol, which
 * the pages' `Content-Security-Policy: default-src 'self'` does not block (a script tag would be).
 */
export async function expectAccessible(page: Page, where: string): Promise<void> {
  const loaded = await page.evaluate('typeof window.axe === "object"');
  if (!loaded) await page.evaluate(axeSource);
  const violations = (await page.evaluate(
    `window.axe.run(document).then((result) => result.violations.map((v) =>
      ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) })))`,
  )) as AxeViolation[];
  const serious = violations
    .filter((violation) => violation.impact === 'serious' || violation.impact === 'critical')
    .map((violation) => {
      const targets = violation.nodes.map((node) => JSON.stringify(node.target)).join(', ');
      return `${violation.impact} ${violation.id}: ${violation.help} at ${targets}`;
    });
  if (serious.length > 0) {
    throw new Error(`axe-core finds serious accessibility violations on ${where}:\n${serious.join('\n')}`);
  }
}

/**
 * Saves a full-page PNG as test-results/screenshots/<name>.png, then checks the page with axe-core
 * (`expectAccessible`), and returns the PNG's path.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`);
  await page.screenshot({ path: file, fullPage: true });
  await expectAccessible(page, name);
  return file;
}

/** Builds web/ into dist/web if its sources changed (serialised across test workers). */
export async function ensureWebBuilt(): Promise<void> {
  await buildWeb({ quiet: true });
}
