/**
 * The operator consoles in Chromium: the settlement console (accounts with balances, the
 * authorization of a purchase, the volume chart, live updates) and the authentication-server
 * console (payment requests, credentials with the revoke button, webhook deliveries with resend), each behind
 * the operator token, with a wrong token refused, reachable by keyboard, loading nothing from
 * another origin, and showing no card number, holder name, expiry or PIN.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { MerchantClient, WalletClient } from '@kessai/sdk';
import { ensureWebBuilt, launchBrowser, screenshot, skipWithoutChromium, type TestBrowser } from '../support/browser.ts';
import { callJson, type TestSystem } from '../support/system.ts';
import { approvedRequest, cardAccount, idempotencyKey, startWithPayer } from '../support/payer.ts';
import { personalDataNeedles } from '../support/retention.ts';

const cardNumber = '4242424242424242';
let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
let browser: TestBrowser;
let stop = async () => {};
let capturedId = '';
/** The settlement servers' clock runs this far ahead, so a test can close today's business day. */
let settlementClockAheadMs = 0;

describe.skipIf(skipWithoutChromium)('operator consoles in Chromium', () => {
  beforeAll(async () => {
    await ensureWebBuilt();
    ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber, { settlement: { workerIntervalMs: 0, clock: () => new Date(Date.now() + settlementClockAheadMs) } }));
    capturedId = await approvedRequest(merchant, wallet, cardNumber, 4200n);
    await merchant.capture(capturedId, { amountMinor: 4000n }, idempotencyKey());
    await merchant.refund(capturedId, 1000n, idempotencyKey());
    // Today's business day (UTC) is closed a day early: one settlement batch with both lines.
    settlementClockAheadMs = 24 * 60 * 60 * 1000;
    const today = new Date().toISOString().slice(0, 10);
    const closed = await callJson(system, 'POST', `${sakura().url}/admin/v1/settlement-batches/close`, { date: today }, system.operatorHeaders(sakura().url));
    expect(closed.status, JSON.stringify(closed.body)).toBe(200);
    expect(closed.body.batches).toHaveLength(1);
    browser = await launchBrowser({ viewport: { width: 1280, height: 900 } });
  });
  afterAll(async () => {
    await browser?.close();
    await stop();
  });

  const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

  /** A new tab that records every URL it requests, to check that none leaves the page's origin. */
  async function openTab(url: string): Promise<{ page: Page; requested: string[] }> {
    const page = await browser.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(url);
    return { page, requested };
  }

  function expectNoPersonalData(html: string) {
    expect(personalDataNeedles().filter((needle) => needle.pattern.test(html)).map((needle) => needle.label)).toEqual([]);
  }

  /**
   * WCAG AA basics on what the page shows: every text (and chart label) against the background
   * behind it reaches 4.5:1 (3:1 when large), and every form control has a label.
   */
  async function accessibilityProblems(page: Page): Promise<string[]> {
    const { checked, problems } = await page.evaluate(() => {
      const rgba = (text: string) => (text.match(/[\d.]+/g) ?? []).map(Number);
      const luminance = (rgb: number[]) => {
        const channel = (v: number) => (v / 255 <= 0.03928 ? v / 255 / 12.92 : ((v / 255 + 0.055) / 1.055) ** 2.4);
        return 0.2126 * channel(rgb[0]!) + 0.7152 * channel(rgb[1]!) + 0.0722 * channel(rgb[2]!);
      };
      const backgroundOf = (element: Element | null): number[] => {
        for (let e = element; e; e = e.parentElement) {
          const color = rgba(getComputedStyle(e).backgroundColor);
          if (color.length === 3 || (color.length === 4 && color[3]! > 0)) return color;
        }
        return [255, 255, 255];
      };
      const problems: string[] = [];
      let checked = 0;
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const text = node.textContent?.trim();
        const element = node.parentElement;
        if (!text || !element || element.closest('title, desc, .skip-link') || element.getClientRects().length === 0) continue;
        const style = getComputedStyle(element);
        const inSvg = element.closest('svg') !== null;
        const foreground = rgba(inSvg ? style.fill : style.color);
        const [light, dark] = [luminance(foreground), luminance(backgroundOf(element))].sort((x, y) => y - x);
        const ratio = (light! + 0.05) / (dark! + 0.05);
        checked += 1;
        const size = parseFloat(style.fontSize);
        const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
        if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: "${text.slice(0, 40)}"`);
      }
      for (const control of Array.from(document.querySelectorAll('input, select, textarea'))) {
        const labelled = (control as HTMLInputElement).labels?.length || control.getAttribute('aria-label') || control.getAttribute('aria-labelledby');
        if (!labelled) problems.push(`unlabelled ${control.tagName.toLowerCase()} ${control.getAttribute('name') ?? ''}`);
      }
      return { checked, problems };
    });
    expect(checked).toBeGreaterThan(5);
    return problems;
  }

  async function signIn(page: Page, token: string) {
    await page.getByLabel('Operator token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  it('the settlement console refuses a wrong token, then shows accounts with balances, the purchase’s authorization and the volume chart, and updates itself', async () => {
    const origin = sakura().url;
    const { page, requested } = await openTab(`${origin}/console/`);
    await expect.poll(() => page.getByRole('heading', { name: 'Operator sign-in' }).isVisible()).toBe(true);
    // The token field has the focus, so the operator can type at once.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('operator-token');
    await screenshot(page, 'console-settlement-sign-in');

    expect(await accessibilityProblems(page)).toEqual([]);
    await signIn(page, `op_${'w'.repeat(43)}`);
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('refused this operator token');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    expect(await accessibilityProblems(page)).toEqual([]);
    await screenshot(page, 'console-settlement-wrong-token');

    await signIn(page, system.operatorTokenOf(origin));
    const accounts = page.getByRole('table', { name: 'Ledger accounts and balances' });
    await accounts.waitFor();
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
    const account = await cardAccount(system, cardNumber);
    const row = accounts.getByRole('row').filter({ hasText: account.id });
    // Columns: account, kind, currency, debits pending/posted, credits pending/posted, available.
    expect(await row.getByRole('cell').allTextContents()).toEqual([account.id, 'cardholder', 'JPY', '0', '4,000', '0', '1,001,000', '997,000']);
    await expect.poll(() => page.title()).toBe('Settlement console — Sakura Demo Bank · Kessai');

    const authorizations = page.getByRole('table', { name: /Recent authorizations/ });
    const authorization = authorizations.getByRole('row').filter({ hasText: capturedId });
    expect(await authorization.textContent()).toContain('JPY 4,200');
    expect(await authorization.textContent()).toContain('captured');

    const chart = page.getByRole('img', { name: /Captured volume in JPY per hour/ });
    await chart.waitFor();
    expect(await chart.locator('rect.bar').evaluateAll((bars) => bars.map((bar) => bar.getAttribute('data-captured')))).toEqual(['4000']);
    await page.getByRole('radio', { name: 'day' }).check();
    expect(await page.getByRole('img', { name: /per day/ }).locator('rect.bar').count()).toBe(1);

    expect(await page.getByRole('table', { name: /Recent refunds/ }).textContent()).toContain('JPY 1,000');
    const batch = page.getByRole('table', { name: /Settlement batches/ }).getByRole('row').filter({ hasText: new Date().toISOString().slice(0, 10) });
    // Captured 4,000, refunded 1,000, fee 2.5 % of 4,000 = 100, net and payout 2,900, two lines.
    expect((await batch.getByRole('cell').allTextContents()).slice(0, 10)).toEqual([expect.any(String), expect.stringMatching(/^stb_/), system.merchant.merchantId, 'JPY', '4,000', '1,000', '100', '2,900', '2,900', '2']);
    // The operator opens the batch's report from its row: its heading takes focus and it lists both lines.
    await batch.getByRole('button', { name: /View the report of batch/ }).click();
    const reportHeading = page.getByRole('heading', { name: /^Report of stb_/ });
    await reportHeading.waitFor();
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('settlement-report-heading');
    const lines = page.getByRole('table', { name: /^Lines of batch stb_/ });
    expect(await lines.getByRole('row').count()).toBe(3); // the header and the two lines
    expect(await page.getByRole('region', { name: /^Report of stb_/ }).getByText(/^Totals:/).textContent()).toMatch(/payout .*2,900/);
    await page.getByRole('radio', { name: 'hour' }).check();
    expect(await accessibilityProblems(page)).toEqual([]);
    await screenshot(page, 'console-settlement');

    // Live: a new payment appears without reloading the page.
    const heldId = await approvedRequest(merchant, wallet, cardNumber, 1300n);
    await expect.poll(() => authorizations.getByRole('row').filter({ hasText: heldId }).count(), { timeout: 15_000 }).toBe(1);
    expect(await authorizations.getByRole('row').filter({ hasText: heldId }).textContent()).toContain('held');

    expectNoPersonalData(await page.content());
    expect(requested.filter((url) => new URL(url).origin !== origin)).toEqual([]);

    // Keyboard: the first Tab reaches the skip link, and focus is visible.
    await page.reload();
    await accounts.waitFor();
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to the data');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline).toBe('solid');

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Operator sign-in' }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.close();
  });

  it('the authentication-server console shows payment requests, credentials and webhook deliveries, and revokes a credential', async () => {
    const origin = system.auth.url;
    const { page, requested } = await openTab(`${origin}/console/`);
    await signIn(page, `op_${'w'.repeat(43)}`);
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('refused this operator token');
    await signIn(page, system.operatorTokenOf(origin));

    const requests = page.getByRole('table', { name: /^Payment requests/ });
    await requests.waitFor();
    const captured = requests.getByRole('row').filter({ hasText: capturedId });
    expect(await captured.textContent()).toContain('captured');
    expect(await captured.textContent()).toContain('JPY 4,200');
    await page.getByLabel('Status').selectOption('approved');
    await expect.poll(() => requests.getByRole('row').filter({ hasText: capturedId }).count()).toBe(0);
    await page.getByLabel('Status').selectOption('');
    await expect.poll(() => requests.getByRole('row').filter({ hasText: capturedId }).count()).toBe(1);

    const deliveries = page.getByRole('table', { name: /Webhook deliveries/ });
    await expect.poll(() => deliveries.getByRole('row').filter({ hasText: 'payment_request.captured' }).count()).toBeGreaterThan(0);

    const credentialId = wallet.wallet.credential_id;
    const credentials = page.getByRole('table', { name: /Credential records/ });
    const credential = credentials.getByRole('row').filter({ hasText: credentialId });
    expect(await credential.textContent()).toContain('active');
    expect(await accessibilityProblems(page)).toEqual([]);
    await screenshot(page, 'console-auth');
    expectNoPersonalData(await page.content());

    // By keyboard: the revoke button, then the confirmation, which takes the focus.
    await credential.getByRole('button', { name: `Revoke credential ${credentialId}` }).focus();
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toBe(`Confirm: revoke credential ${credentialId}`);
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'revoked' }).count()).toBe(1);
    await expect.poll(() => credential.textContent()).toContain('revoked');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toContain('revoked');
    const [stored] = await system.auth.db.query<{ status: string }>('select status from credentials where id = $1', [credentialId]);
    expect(stored!.status).toBe('revoked');
    await screenshot(page, 'console-auth-revoked');

    expectNoPersonalData(await page.content());
    expect(requested.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    await page.close();
  });

  it('the authentication-server console resends a dead webhook event with its Resend button', async () => {
    // The captured event as if every attempt of its schedule had failed.
    const [event] = await system.auth.db.query<{ id: string }>(
      "update webhook_outbox set status = 'dead', dead_at = now(), delivered_at = null, attempts = $2 where payment_request_id = $1 and event_type = 'payment_request.captured' returning id",
      [capturedId, 13],
    );
    const origin = system.auth.url;
    const { page } = await openTab(`${origin}/console/`);
    await signIn(page, system.operatorTokenOf(origin));
    const deliveries = page.getByRole('table', { name: /Webhook deliveries/ });
    const row = deliveries.getByRole('row').filter({ hasText: event!.id });
    await expect.poll(() => row.textContent()).toContain('dead');
    await row.getByRole('button', { name: `Resend event ${event!.id}` }).click();
    await expect.poll(() => page.getByRole('status').filter({ hasText: 'queued again' }).count()).toBe(1);
    await expect.poll(async () => (await system.auth.db.query<{ status: string }>('select status from webhook_outbox where id = $1', [event!.id]))[0]!.status, { timeout: 10_000 }).toBe('delivered');
    await expect.poll(() => row.textContent(), { timeout: 10_000 }).toContain('delivered');
    expect(await row.getByRole('button').count()).toBe(0);
    expect(await accessibilityProblems(page)).toEqual([]);
    await page.close();
  });
});
