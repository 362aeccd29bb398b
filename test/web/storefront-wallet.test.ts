/**
 * The storefront and the browser wallet in Chromium, end to end against a real system: enroll in
 * the browser wallet (with the inline Luhn and expiry checks), shop, check out to the wallet,
 * confirm with the PIN, and watch the order page turn approved then captured without reloading,
 * then find the payment in the settlement console; a wrong PIN corrected through a payment link with
 * its QR code; and the wallet exported to a file, imported into a second browser, paying from
 * there. Every page is screenshotted into test-results/screenshots/, and no page requests anything
 * from outside the system's own servers.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { MerchantClient } from '@kessai/sdk';
import { ensureWebBuilt, launchBrowser, screenshot, screenshotDir, skipWithoutChromium, type TestBrowser } from '../support/browser.ts';
import { callJson, demoCard, startTestSystem, type TestSystem } from '../support/system.ts';

const card = demoCard('4242424242424242');
const passphrase = 'tea ceremony 2026';
let system: TestSystem;
let browser: TestBrowser;
let second: TestBrowser | undefined;
let walletPage: Page;
let credentialId = '';
const requested: string[] = [];

/** A tab that records every URL it asks for. */
async function tab(target: TestBrowser, url: string): Promise<Page> {
  const page = await target.newPage();
  page.on('request', (request) => requested.push(request.url()));
  await page.goto(url);
  return page;
}

/** Fills the cart in the storefront and checks out, to the wallet handle or for a payment link. */
async function shopAndCheckOut(page: Page, items: Array<[string, number]>, handle: string | undefined, shot: string): Promise<string> {
  await page.goto(`${system.shop.url}/store/`);
  for (const [name, times] of items) {
    for (let i = 0; i < times; i++) {
      await page.getByRole('button', { name: `Add to cart: ${name}` }).click();
      await page.getByRole('button', { name: `Add to cart: ${name}` }).and(page.locator(':enabled')).waitFor();
    }
  }
  if (handle) {
    await page.getByLabel('Send it to my wallet').check();
    await page.getByLabel('Wallet handle').fill(handle);
  }
  await screenshot(page, shot);
  await page.getByRole('button', { name: /^Check out/ }).click();
  await page.waitForURL(/\/order\/\?id=ord_/);
  return new URL(page.url()).searchParams.get('id') ?? '';
}

async function orderStatus(page: Page): Promise<string | null> {
  return page.getByTestId('order-status').getAttribute('data-status');
}

describe.skipIf(skipWithoutChromium)('storefront and browser wallet in Chromium', () => {
  beforeAll(async () => {
    await ensureWebBuilt();
    system = await startTestSystem();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await second?.close();
    await browser?.close();
    await system?.stop();
    // Every page loaded only from the system's servers (and data:/blob: URLs it made itself).
    const origins = new Set([system.auth.url, system.shop.url, system.wallet.url, ...system.settlements.map((s) => s.url)].map((url) => new URL(url).origin));
    expect(requested.filter((url) => !/^(data|blob):/.test(url) && !origins.has(new URL(url).origin))).toEqual([]);
  });

  it('serves the built pages with a policy that allows no other origin, and nothing outside the build folder', async () => {
    const request = browser.context.request;
    const home = await request.get(`${system.shop.url}/`, { maxRedirects: 0 });
    expect(home.status()).toBe(302);
    expect(home.headers().location).toBe('/store/');
    const store = await request.get(`${system.shop.url}/store/`);
    expect(store.status()).toBe(200);
    expect(store.headers()['content-type']).toBe('text/html; charset=utf-8');
    expect(store.headers()['content-security-policy']).toContain("default-src 'self'");
    expect(store.headers()['content-security-policy']).toContain("connect-src 'self';");
    expect(store.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    // The browser wallet comes from its own origin, not the authentication server's, and may fetch from
    // its own origin (its configuration: the built-in directory key) and the authentication server only.
    const wallet = await request.get(`${system.wallet.url}/wallet/`);
    expect(wallet.headers()['content-security-policy']).toContain(`connect-src 'self' ${new URL(system.auth.url).origin};`);
    expect((await request.get(`${system.auth.url}/wallet/`)).status()).toBe(404);
    const config = (await (await request.get(`${system.wallet.url}/wallet/config.json`)).json()) as { auth_base_url: string; directory_key: { x: string } };
    expect(config).toMatchObject({ auth_base_url: system.auth.url, directory_key: { x: system.directoryKey.publicJwk.x } });
    const script = /src="\.\.\/assets\/([^"]+\.js)"/.exec(await wallet.text())?.[1] ?? '';
    expect((await request.get(`${system.wallet.url}/assets/${script}`)).headers()['content-type']).toBe('text/javascript; charset=utf-8');
    for (const path of ['/assets/..%2F..%2Fpackage.json', '/assets/.built', '/store%2F..%2F..%2F/', '/nosuchpage/']) {
      const answer = await request.get(`${system.shop.url}${path}`);
      expect(answer.status(), path).toBe(404);
      expect((await answer.json()) as { code: string }, path).toMatchObject({ code: 'not_found' });
    }
    // The authentication server answers the wallet's origin (CORS), and no other.
    const preflight = (origin: string) => request.fetch(`${system.auth.url}/v1/terminal/events`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
    const allowed = await preflight(new URL(system.wallet.url).origin);
    expect(allowed.status()).toBe(204);
    expect(allowed.headers()['access-control-allow-origin']).toBe(new URL(system.wallet.url).origin);
    expect(allowed.headers()['access-control-allow-headers']).toContain('authorization');
    const stranger = await preflight(new URL(system.shop.url).origin);
    expect(stranger.status()).toBe(404);
    expect(stranger.headers()['access-control-allow-origin']).toBeUndefined();
  });

  it('enrolls in the browser wallet, buys, approves with the PIN, and the order page turns approved then captured; the settlement console shows it', async () => {
    walletPage = await tab(browser, `${system.wallet.url}/wallet/`);
    await walletPage.getByRole('heading', { name: 'Enroll a card' }).waitFor();
    await screenshot(walletPage, 'wallet-1-enroll');

    // Inline validation: no name, a mistyped card number (Luhn), an expired card, a short passphrase.
    // (The screenshot below shows no holder name and only the mistyped number.)
    await walletPage.getByLabel('Card number').fill('4242 4242 4242 4241');
    await walletPage.getByLabel('Expiry (MM/YY)').fill('01/20');
    await walletPage.getByLabel('PIN', { exact: true }).fill('12');
    await walletPage.getByLabel('Passphrase for wallet files').fill('short');
    await walletPage.getByRole('button', { name: 'Enroll' }).click();
    expect(await walletPage.locator('#enroll-holder-error').textContent()).toContain('name as printed');
    expect(await walletPage.locator('#enroll-card-error').textContent()).toContain('check digit');
    expect(await walletPage.locator('#enroll-expiry-error').textContent()).toContain('expired');
    expect(await walletPage.locator('#enroll-pin-error').textContent()).toContain('4 to 12 digits');
    expect(await walletPage.locator('#enroll-passphrase-error').textContent()).toContain('at least');
    expect(await walletPage.getByLabel('Card number').getAttribute('aria-invalid')).toBe('true');
    // The first invalid field has the focus.
    await expect.poll(() => walletPage.evaluate(() => document.activeElement?.id)).toBe('enroll-holder');
    await screenshot(walletPage, 'wallet-2-enroll-validation');

    await walletPage.getByLabel('Name on the card').fill(card.holderName);

    await walletPage.getByLabel('Card number').fill('4242 4242 4242 4242');
    await walletPage.getByLabel('Expiry (MM/YY)').fill(card.expiry);
    // The issuer checks the cardholder: the PIN is encrypted on this page to the bank's key from the signed directory.
    await walletPage.getByLabel('PIN', { exact: true }).fill(card.pin);
    await walletPage.getByLabel('Passphrase for wallet files').fill(passphrase);
    await walletPage.getByLabel('Passphrase again').fill(passphrase);
    expect(await walletPage.locator('.field .error').count()).toBe(0);
    await walletPage.getByRole('button', { name: 'Enroll' }).click();
    const recovery = walletPage.getByTestId('recovery-code');
    await recovery.waitFor({ timeout: 30_000 });
    expect((await recovery.textContent())?.length).toBeGreaterThan(8);
    await screenshot(walletPage, 'wallet-3-recovery-code');
    await walletPage.getByRole('button', { name: 'I have written it down' }).click();
    credentialId = (await walletPage.getByTestId('credential-id').textContent()) ?? '';
    expect(credentialId).toMatch(/^cred_[0-9a-z]{26}$/);
    await expect.poll(() => walletPage.getByTestId('stream-state').getAttribute('data-state'), { timeout: 15_000 }).toBe('open');

    // The device key in IndexedDB cannot be read out; the page keeps no card data.
    const stored = await walletPage.evaluate(async () => {
      const db = await new Promise<IDBDatabase>((resolve, reject) => {
        const request = indexedDB.open('kessai-wallet');
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
      const record = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const request = db.transaction('wallet').objectStore('wallet').get('current');
        request.onsuccess = () => resolve(request.result as Record<string, unknown>);
        request.onerror = () => reject(request.error);
      });
      const key = record.device_key as CryptoKey;
      const exported = await crypto.subtle.exportKey('jwk', key).then(
        () => 'exported',
        (err: Error) => err.name,
      );
      return { extractable: key.extractable, usages: key.usages, exported, json: JSON.stringify({ ...record, device_key: null }) };
    });
    expect(stored).toMatchObject({ extractable: false, usages: ['sign'], exported: 'InvalidAccessError' });
    expect(stored.json).not.toContain('4242424242424242');
    expect(stored.json).not.toContain(card.holderName);
    expect(stored.json).not.toContain(card.pin);

    // Shop: two Sencha and a Chawan, sent to the wallet.
    const shopPage = await tab(browser, `${system.shop.url}/`);
    await shopPage.getByRole('heading', { name: 'Products' }).waitFor();
    await shopPage.locator('.product img').first().waitFor();
    await screenshot(shopPage, 'shop-1-storefront');
    const orderId = await shopAndCheckOut(
      shopPage,
      [
        ['Sencha, 100 g', 2],
        ['Chawan', 1],
      ],
      credentialId,
      'shop-2-cart-checkout-to-wallet',
    );
    expect(orderId).toMatch(/^ord_/);
    await expect.poll(() => orderStatus(shopPage)).toBe('awaiting_payment');
    expect(await shopPage.getByTestId('order-total').textContent()).toBe('JPY\u00a08,900');
    await screenshot(shopPage, 'shop-3-order-awaiting-payment');

    // The wallet: the request arrives live; the confirmation shows the verified merchant, items, total.
    await walletPage.bringToFront();
    await walletPage.getByRole('button', { name: 'Review and pay' }).click({ timeout: 15_000 });
    await walletPage.getByRole('heading', { name: 'Confirm the payment' }).waitFor();
    expect(await walletPage.getByTestId('merchant-name').textContent()).toBe('Kessai Tea House');
    // The demo shop has a test key: the signed view says so, and the wallet marks it.
    expect(await walletPage.getByTestId('test-mode').textContent()).toBe('TEST');
    const rows = await walletPage.getByRole('table', { name: 'Items to pay for' }).locator('tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent)));
    expect(rows).toEqual([
      ['Sencha, 100 g', '2', 'JPY\u00a01,200', 'JPY\u00a02,400'],
      ['Chawan', '1', 'JPY\u00a06,500', 'JPY\u00a06,500'],
    ]);
    expect(await walletPage.getByTestId('confirm-total').textContent()).toBe('JPY\u00a08,900');
    await screenshot(walletPage, 'wallet-4-confirm');
    // Keyboard: type the PIN and press Enter.
    await walletPage.getByLabel('PIN', { exact: true }).focus();
    await walletPage.keyboard.type(card.pin);
    await screenshot(walletPage, 'wallet-5-pin');
    await walletPage.keyboard.press('Enter');
    await expect.poll(() => walletPage.getByTestId('payment-result').getAttribute('data-status'), { timeout: 30_000 }).toBe('approved');
    expect(await walletPage.getByTestId('payment-result').textContent()).toBe('Paid JPY\u00a08,900 to Kessai Tea House.');
    expect(await walletPage.getByTestId('history').textContent()).toContain('JPY\u00a08,900');
    await screenshot(walletPage, 'wallet-6-paid-history');

    // The order page follows by itself: approved, then captured (the shop captures at once).
    await shopPage.bringToFront();
    await expect.poll(() => orderStatus(shopPage), { timeout: 20_000 }).toBe('captured');
    expect(await shopPage.getByTestId('order-history').textContent()).toMatch(/Waiting for payment.*Approved/);
    expect(new URL(shopPage.url()).searchParams.get('id')).toBe(orderId);
    await screenshot(shopPage, 'shop-4-order-captured');
    const paymentRequestId = (await shopPage.getByTestId('payment-request-id').textContent()) ?? '';

    // The settlement console of the card's bank shows the captured authorization.
    const issuer = system.settlements.find((s) => s.issuer.id === card.issuer.id);
    if (!issuer) throw new Error('no settlement server for the card');
    const consolePage = await tab(browser, `${issuer.url}/console/`);
    await consolePage.getByLabel('Operator token').fill(system.operatorTokenOf(issuer.url));
    await consolePage.getByRole('button', { name: 'Sign in' }).click();
    const authorization = consolePage.getByRole('table', { name: /Recent authorizations/ }).getByRole('row').filter({ hasText: paymentRequestId });
    await expect.poll(() => authorization.textContent(), { timeout: 15_000 }).toContain('JPY 8,900');
    expect(await authorization.textContent()).toContain('captured');
    await screenshot(consolePage, 'console-settlement-after-web-purchase');
    await consolePage.close();

    // A refund by the merchant reaches the order page too, without reloading.
    const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
    try {
      await merchant.refund(paymentRequestId, 8_900n, `web-refund-${paymentRequestId}`);
    } finally {
      await merchant.close();
    }
    await expect.poll(() => orderStatus(shopPage), { timeout: 20_000 }).toBe('refunded');
    expect(await shopPage.textContent('main')).toMatch(/Refunded\s*JPY\u00a08,900/);
    await screenshot(shopPage, 'shop-5-order-refunded');
  }, 180_000);

  it('forgives a wrong PIN at a payment link (shown with a QR code): the wallet asks again and the same order is paid', async () => {
    const shopPage = await tab(browser, `${system.shop.url}/store/`);
    // Keyboard: the first Tab reaches the skip link, with a visible focus ring; a product is added by keyboard.
    await shopPage.getByRole('heading', { name: 'Products' }).waitFor();
    await shopPage.keyboard.press('Tab');
    expect(await shopPage.evaluate(() => document.activeElement?.textContent)).toBe('Skip to the cart');
    expect(await shopPage.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    await shopPage.getByRole('button', { name: 'Add to cart: Matcha, 30 g' }).focus();
    await shopPage.keyboard.press('Enter');
    await expect.poll(() => shopPage.getByTestId('cart-total').textContent()).toBe('JPY\u00a02,800');
    await shopAndCheckOut(shopPage, [], undefined, 'shop-6-cart-checkout-by-link');
    await expect.poll(() => orderStatus(shopPage)).toBe('awaiting_payment');
    const link = (await shopPage.getByTestId('payment-link').textContent()) ?? '';
    expect(link).toMatch(/\/pay\/pr_[0-9a-z]{26}$/);
    const qr = shopPage.getByTestId('payment-qr');
    expect(await qr.getAttribute('src')).toMatch(/^data:image\/svg\+xml/);
    expect(await qr.evaluate((img) => (img as HTMLImageElement).naturalWidth)).toBeGreaterThan(100);
    await screenshot(shopPage, 'shop-7-order-payment-link-qr');

    // The link opened in a browser (a phone-sized window here) leads to the wallet's confirmation screen.
    const linkPage = await tab(browser, link);
    await linkPage.setViewportSize({ width: 390, height: 844 });
    await linkPage.getByRole('heading', { name: 'Confirm the payment' }).waitFor({ timeout: 15_000 });
    await screenshot(linkPage, 'wallet-7-confirm-from-link-phone');
    expect(await linkPage.getByTestId('confirm-total').textContent()).toBe('JPY\u00a02,800');
    await linkPage.getByLabel('PIN', { exact: true }).fill('12');
    await linkPage.getByRole('button', { name: /^Pay / }).click();
    expect(await linkPage.locator('#pin-error').textContent()).toBe('The PIN is 4 to 12 digits.');
    const wrongPin = card.pin === '0000' ? '1111' : '0000';
    await linkPage.getByLabel('PIN', { exact: true }).fill(wrongPin);
    await linkPage.getByRole('button', { name: /^Pay / }).click();
    // A wrong PIN is forgiven: the request stays payable, the wallet says how many tries are left and asks again.
    await expect.poll(() => linkPage.locator('#pin-error').textContent(), { timeout: 30_000 }).toBe('The PIN is not correct. 2 tries left before the card locks.');
    expect(await linkPage.getByLabel('PIN', { exact: true }).inputValue()).toBe('');
    await screenshot(linkPage, 'wallet-8-wrong-pin-try-again');
    expect(await orderStatus(shopPage)).toBe('awaiting_payment');
    await linkPage.getByLabel('PIN', { exact: true }).fill(card.pin);
    await linkPage.getByRole('button', { name: /^Pay / }).click();
    await expect.poll(() => linkPage.getByTestId('payment-result').getAttribute('data-status'), { timeout: 30_000 }).toBe('approved');
    await screenshot(linkPage, 'wallet-9-paid-after-wrong-pin');
    await linkPage.close();

    // The same order, not rebuilt: paid.
    await expect.poll(() => orderStatus(shopPage), { timeout: 20_000 }).toBe('captured');
    await screenshot(shopPage, 'shop-8-order-paid-after-wrong-pin');
    await shopPage.close();
  }, 120_000);

  it('exports the wallet to a file, imports it into a second browser, and pays from there', async () => {
    await walletPage.bringToFront();
    await walletPage.reload();
    const download = walletPage.waitForEvent('download');
    await walletPage.getByRole('button', { name: 'Export to a file' }).click();
    const file = path.join(screenshotDir, '..', `wallet-export-${Date.now()}.json`);
    await (await download).saveAs(file);
    const text = await readFile(file, 'utf8');
    const exported = JSON.parse(text) as Record<string, unknown>;
    expect(exported).toMatchObject({ format: 'kessai-wallet', credential_id: credentialId });
    expect((exported.wrapped_device_key as { iterations: number }).iterations).toBeGreaterThanOrEqual(600_000);
    expect(text).not.toContain('"d"');
    expect(text).not.toContain('4242424242424242');
    expect(text).not.toContain(card.holderName);

    second = await launchBrowser();
    const importPage = await tab(second, `${system.wallet.url}/wallet/`);
    await importPage.getByRole('heading', { name: 'Import a wallet file' }).waitFor();
    await importPage.getByLabel('Wallet file', { exact: true }).setInputFiles(file);
    await importPage.getByLabel('Passphrase', { exact: true }).fill('not the passphrase');
    await importPage.getByRole('button', { name: 'Import', exact: true }).click();
    await expect.poll(() => importPage.getByRole('alert').textContent(), { timeout: 20_000 }).toContain('does not open this wallet file');
    await screenshot(importPage, 'wallet-9-import-wrong-passphrase');
    await importPage.getByLabel('Passphrase', { exact: true }).fill(passphrase);
    await importPage.getByRole('button', { name: 'Import', exact: true }).click();
    await expect.poll(() => importPage.getByTestId('credential-id').textContent(), { timeout: 20_000 }).toBe(credentialId);
    await expect.poll(() => importPage.getByTestId('stream-state').getAttribute('data-state'), { timeout: 15_000 }).toBe('open');
    await screenshot(importPage, 'wallet-10-imported');

    // The payer declines one request on the confirmation screen; the shop's order follows.
    const shopPage = await tab(second, `${system.shop.url}/store/`);
    await shopAndCheckOut(shopPage, [['Furoshiki', 1]], credentialId, 'shop-9-second-browser-checkout-declined');
    await importPage.bringToFront();
    await importPage.getByRole('button', { name: 'Review and pay' }).click({ timeout: 15_000 });
    expect(await importPage.getByTestId('confirm-total').textContent()).toBe('JPY\u00a01,800');
    await importPage.getByRole('button', { name: 'Decline' }).click();
    await expect.poll(() => importPage.getByTestId('payment-result').textContent(), { timeout: 15_000 }).toContain('you declined it');
    await screenshot(importPage, 'wallet-11-declined-by-payer');
    await expect.poll(() => orderStatus(shopPage), { timeout: 20_000 }).toBe('cancelled');

    // The authentication server rotates cipher 1: the next approval hands the credential back re-sealed under the new key, and the page stores it.
    const rotated = await callJson(system, 'POST', `${system.auth.url}/admin/v1/keys/rotate`, { key: 'cipher1' }, system.operatorHeaders(system.auth.url));
    expect(rotated.status).toBe(200);
    const storedKid = () =>
      importPage.evaluate(async () => {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const request = indexedDB.open('kessai-wallet');
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
        const record = await new Promise<{ sealed_credential: string }>((resolve, reject) => {
          const request = db.transaction('wallet').objectStore('wallet').get('current');
          request.onsuccess = () => resolve(request.result as { sealed_credential: string });
          request.onerror = () => reject(request.error);
        });
        return (JSON.parse(atob(record.sealed_credential.split('.')[0]!.replace(/-/g, '+').replace(/_/g, '/'))) as { kid: string }).kid;
      });
    expect(await storedKid()).not.toBe(rotated.body.kid);
    await shopAndCheckOut(shopPage, [['Tenugui', 3]], credentialId, 'shop-10-second-browser-checkout');
    await importPage.bringToFront();
    await importPage.getByRole('button', { name: 'Review and pay' }).click({ timeout: 15_000 });
    expect(await importPage.getByTestId('confirm-total').textContent()).toBe('JPY\u00a02,970');
    await importPage.getByLabel('PIN', { exact: true }).fill(card.pin);
    await importPage.getByRole('button', { name: /^Pay / }).click();
    await expect.poll(() => importPage.getByTestId('payment-result').getAttribute('data-status'), { timeout: 30_000 }).toBe('approved');
    await screenshot(importPage, 'wallet-12-imported-paid');
    await expect.poll(storedKid, { timeout: 10_000 }).toBe(rotated.body.kid);
    await shopPage.bringToFront();
    await expect.poll(() => orderStatus(shopPage), { timeout: 20_000 }).toBe('captured');
    await screenshot(shopPage, 'shop-11-second-browser-order-captured');
  }, 180_000);
});
