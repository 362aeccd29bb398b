/** The pages' language choice (web/shared/i18n.tsx): the first browser language the pages speak. */
import { describe, expect, it } from 'vitest';
import { pickLocale, textOf } from '../../web/shared/locale.ts';
import { en } from '../../web/shared/messages/en.ts';
import { ja } from '../../web/shared/messages/ja.ts';

describe('pickLocale', () => {
  it('takes the first of navigator.languages that is Japanese or English', () => {
    expect(pickLocale(['ja-JP', 'en-US'])).toBe('ja');
    expect(pickLocale(['JA'])).toBe('ja');
    expect(pickLocale(['fr-FR', 'en-GB', 'ja'])).toBe('en');
    expect(pickLocale(['de-DE', 'ja-JP'])).toBe('ja');
  });

  it('falls back to English when the browser speaks neither', () => {
    expect(pickLocale(['de-DE', 'fr'])).toBe('en');
    expect(pickLocale([])).toBe('en');
  });
});

describe('catalogues', () => {
  it('name every order status in both languages, and leave unknown codes to the caller', () => {
    expect(Object.keys(ja.order.statuses).sort()).toEqual(Object.keys(en.order.statuses).sort());
    expect(textOf(ja.order.statuses, 'captured')).toBe('承認・売上確定済み');
    expect(textOf(en.order.statuses, 'toString')).toBeUndefined();
    expect(ja.wallet.confirm.pinWrong(2)).toBe('PIN が正しくありません。あと 2 回間違えるとカードがロックされます。');
    expect(en.wallet.confirm.pinWrong(1)).toBe('The PIN is not correct. 1 try left before the card locks.');
  });
});
