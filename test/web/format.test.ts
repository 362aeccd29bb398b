/**
 * The pages' amount formatter (web/shared/format.ts) in Node: integer minor units to
 * Intl-formatted text without floats, in Japanese and English, for currencies with 0, 2 and 3
 * minor digits, and for amounts past 2^53 that a float would round.
 */
import { describe, expect, it } from 'vitest';
import { minorToDecimal, money } from '../../web/shared/format.ts';

const nbsp = '\u00a0';

describe('money', () => {
  it('formats yen with the Japanese symbol in Japanese and the ISO code in English', () => {
    expect(money('5700', 'JPY', 'ja-JP')).toBe('￥5,700');
    expect(money(5700n, 'JPY', 'ja')).toBe('￥5,700');
    expect(money('8900', 'JPY', 'en')).toBe(`JPY${nbsp}8,900`);
    expect(money('0', 'JPY', 'ja')).toBe('￥0');
  });

  it('splits cents and fils by the currency minor digits', () => {
    expect(money('570050', 'USD', 'en')).toBe(`USD${nbsp}5,700.50`);
    expect(money('5', 'USD', 'en')).toBe(`USD${nbsp}0.05`);
    expect(money('570050', 'USD', 'ja')).toBe('$5,700.50');
    expect(money('12345', 'KWD', 'en')).toBe(`KWD${nbsp}12.345`);
    expect(money('12345', 'KWD', 'ja')).toBe(`KWD${nbsp}12.345`);
    expect(money('7', 'KWD', 'en')).toBe(`KWD${nbsp}0.007`);
  });

  it('keeps every digit of amounts past 2^53', () => {
    const large = 2n ** 53n + 1n; // 9007199254740993: a float would print ...992
    expect(money(large, 'JPY', 'ja')).toBe('￥9,007,199,254,740,993');
    expect(money('9223372036854775807', 'JPY', 'en')).toBe(`JPY${nbsp}9,223,372,036,854,775,807`);
    expect(money('9223372036854775807', 'USD', 'en')).toBe(`USD${nbsp}92,233,720,368,547,758.07`);
    expect(money('9223372036854775807', 'KWD', 'ja')).toBe(`KWD${nbsp}9,223,372,036,854,775.807`);
  });

  it('shows an unknown currency as its code and the integer of minor units', () => {
    expect(money('123', 'XTS', 'en')).toBe('XTS 123');
  });
});

describe('minorToDecimal', () => {
  it('places the decimal point by exponent, padding with zeros', () => {
    expect(minorToDecimal(5n, 2)).toBe('0.05');
    expect(minorToDecimal(12345n, 3)).toBe('12.345');
    expect(minorToDecimal(5700n, 0)).toBe('5700');
    expect(minorToDecimal(-150n, 2)).toBe('-1.50');
  });
});
