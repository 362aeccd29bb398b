/**
 * The whole purchase in Japanese: Chromium with the ja-JP locale (navigator.languages, as a
 * Japanese payer's browser), so the browser wallet, the storefront and the order page speak
 * Japanese, set `<html lang="ja">` and show amounts as ￥. The language switch turns a page to
 * English and is remembered across a reload. Every screenshot is checked with axe-core.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import {
  ensureWebBuilt,
  launchBrowser,
  screenshot,
  skipWithoutChromium,
  type TestBrowser,
} from '../support/browser.ts';
import { demoCard, startTestSystem, type TestSystem } from '../support/system.ts';

const card = demoCard('4242424242424242');
const passphrase = 'tea ceremony 2026';
let system: TestSystem;
let browser: TestBrowser;

async function lang(page: Page): Promise<string> {
  return page.evaluate(() => document.documentElement.lang);
}

describe.skipIf(skipWithoutChromium)('the purchase in Japanese in Chromium', () => {
  beforeAll(async () => {
    await ensureWebBuilt();
    system = await startTestSystem();
    browser = await launchBrowser({ locale: 'ja-JP' });
  });
  afterAll(async () => {
    await browser?.close();
    await system?.stop();
  });

  it('enrolls, buys and pays in Japanese with ￥ amounts; the switch turns English and is remembered', async () => {
    const walletPage = await browser.newPage();
    await walletPage.goto(`${system.wallet.url}/wallet/`);
    await walletPage.getByRole('heading', { name: 'カードを登録する' }).waitFor();
    expect(await lang(walletPage)).toBe('ja');
    expect(await walletPage.title()).toBe('Kessai ウォレット');
    // An inline check in Japanese.
    await walletPage.getByLabel('カード番号').fill('4242 4242 4242 4241');
    await walletPage.getByRole('button', { name: '登録する' }).click();
    expect(await walletPage.locator('#enroll-card-error').textContent()).toBe('カード番号に入力ミスがあります (チェックディジットが一致しません)。');
    await screenshot(walletPage, 'ja-wallet-1-enroll-validation');
    await walletPage.getByLabel('カードの名義').fill(card.holderName);
    await walletPage.getByLabel('カード番号').fill('4242 4242 4242 4242');
    await walletPage.getByLabel('有効期限 (MM/YY)').fill(card.expiry);
    await walletPage.getByLabel('PIN', { exact: true }).fill(card.pin);
    await walletPage.getByLabel('ウォレットファイルのパスフレーズ').fill(passphrase);
    await walletPage.getByLabel('パスフレーズ (確認)').fill(passphrase);
    await walletPage.getByRole('button', { name: '登録する' }).click();
    await walletPage.getByTestId('recovery-code').waitFor({ timeout: 30_000 });
    await walletPage.getByRole('button', { name: '書き留めました' }).click();
    const credentialId = (await walletPage.getByTestId('credential-id').textContent()) ?? '';
    expect(credentialId).toMatch(/^cred_/);
    await expect
      .poll(() => walletPage.getByTestId('stream-state').textContent(), { timeout: 15_000 })
      .toBe('接続済み: 支払い要求は届きしだいここに表示されます。');

    // The storefront in Japanese: two Sencha, sent to the wallet.
    const shopPage = await browser.newPage();
    await shopPage.goto(`${system.shop.url}/store/`);
    await shopPage.getByRole('heading', { name: '商品' }).waitFor();
    expect(await lang(shopPage)).toBe('ja');
    // Chromium formats the decimal string exactly: yen without decimals, dinar with three.
    expect(await shopPage.locator('[data-product="sencha-100g"] .price').textContent()).toBe('￥1,200');
    expect(await shopPage.locator('[data-product="uji-gyokuro-kwd"] .price').textContent()).toBe('KWD\u00a012.345');
    for (let i = 0; i < 2; i++) {
      const add = shopPage.getByRole('button', { name: 'カートに入れる: Sencha, 100 g' });
      await add.click();
      await add.and(shopPage.locator(':enabled')).waitFor();
    }
    await expect.poll(() => shopPage.getByTestId('cart-total').textContent()).toBe('￥2,400');
    await shopPage.getByLabel('自分のウォレットに送る').check();
    await shopPage.getByLabel('ウォレットハンドル').fill(credentialId);
    await screenshot(shopPage, 'ja-shop-1-cart');
    await shopPage.getByRole('button', { name: '￥2,400 を注文する' }).click();
    await shopPage.waitForURL(/\/order\/\?id=ord_/);
    await expect.poll(() => shopPage.getByTestId('order-status').textContent()).toBe('お支払い待ち');
    expect(await shopPage.getByTestId('order-total').textContent()).toBe('￥2,400');
    await screenshot(shopPage, 'ja-shop-2-order-awaiting-payment');

    // The wallet's confirmation in Japanese, paid with the PIN.
    await walletPage.bringToFront();
    await walletPage.getByRole('button', { name: '確認して支払う' }).click({ timeout: 15_000 });
    await walletPage.getByRole('heading', { name: 'お支払いの確認' }).waitFor();
    const header = await walletPage.getByRole('table', { name: 'お支払いの商品' }).locator('thead th').allTextContents();
    expect(header).toEqual(['商品', '数量', '単価', '金額']);
    const rows = await walletPage.getByRole('table', { name: 'お支払いの商品' }).locator('tbody tr td').allTextContents();
    expect(rows).toEqual(['Sencha, 100 g', '2', '￥1,200', '￥2,400']);
    expect(await walletPage.getByTestId('confirm-total').textContent()).toBe('￥2,400');
    expect(await walletPage.getByTestId('test-mode').textContent()).toBe('テスト');
    await walletPage.getByLabel('PIN', { exact: true }).fill(card.pin);
    await screenshot(walletPage, 'ja-wallet-2-confirm');
    await walletPage.getByRole('button', { name: '￥2,400 を支払う' }).click();
    const result = walletPage.getByTestId('payment-result');
    await expect.poll(() => result.getAttribute('data-status'), { timeout: 30_000 }).toBe('approved');
    expect(await result.textContent()).toBe('Kessai Tea Houseに ￥2,400 を支払いました。');
    await screenshot(walletPage, 'ja-wallet-3-paid');

    // The order page follows, in Japanese.
    await shopPage.bringToFront();
    await expect.poll(() => shopPage.getByTestId('order-status').textContent(), { timeout: 20_000 }).toBe('承認・売上確定済み');
    expect(await shopPage.getByTestId('order-history').textContent()).toMatch(/お支払い待ち[\s\S]*承認/);
    await screenshot(shopPage, 'ja-shop-3-order-captured');

    // The switch: English at once (lang="en", JPY code), remembered after a reload.
    await shopPage.getByRole('button', { name: 'English' }).click();
    expect(await lang(shopPage)).toBe('en');
    expect(await shopPage.getByTestId('order-status').textContent()).toBe('Approved and captured');
    expect(await shopPage.getByTestId('order-total').textContent()).toBe('JPY\u00a02,400');
    expect(await shopPage.getByRole('button', { name: 'English' }).getAttribute('aria-pressed')).toBe('true');
    await shopPage.reload();
    await expect.poll(() => shopPage.getByTestId('order-status').textContent()).toBe('Approved and captured');
    expect(await lang(shopPage)).toBe('en');
    await screenshot(shopPage, 'ja-shop-4-order-switched-to-english');
    await shopPage.getByRole('button', { name: '日本語' }).click();
    expect(await lang(shopPage)).toBe('ja');
  }, 180_000);
});
