/**
 * Japanese and English for the payer's pages (storefront, order page, browser wallet). The language
 * is the one the payer chose with the switch (kept in localStorage), else the first of the browser's
 * `navigator.languages` that the pages speak, else English. `<html lang>` follows it. Messages come
 * from typed catalogues (web/shared/messages/): the Japanese one must have every key of the English
 * one, with the same parameters, or the type check fails.
 */
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { money } from './format.ts';
import { en, type Messages } from './messages/en.ts';
import { ja } from './messages/ja.ts';
import { locales, pickLocale, type Locale } from './locale.ts';

export { pickLocale, textOf, type Locale } from './locale.ts';

const catalogues: Record<Locale, Messages> = { en, ja };
/** The Intl locale of each language (amounts, dates). */
const intlLocale: Record<Locale, string> = { en: 'en-GB', ja: 'ja-JP' };
/** Where the switch remembers the choice. */
export const localeStorageKey = 'kessai.lang';

function initialLocale(): Locale {
  try {
    const saved = localStorage.getItem(localeStorageKey);
    if (saved === 'en' || saved === 'ja') return saved;
  } catch {
    // Storage refused (private mode): the browser's languages decide.
  }
  return pickLocale(navigator.languages ?? [navigator.language]);
}

export interface I18n {
  locale: Locale;
  /** The messages of the current language. */
  t: Messages;
  /** An amount in the current language: "JPY 8,900" / "￥8,900". */
  money(amountMinor: string | bigint, currency: string): string;
  /** A date and time in the current language. */
  dateTime(iso: string | Date): string;
  time(date: Date): string;
  setLocale(locale: Locale): void;
}

function makeI18n(locale: Locale, setLocale: (locale: Locale) => void): I18n {
  const tag = intlLocale[locale];
  return {
    locale,
    t: catalogues[locale],
    money: (amountMinor, currency) => money(amountMinor, currency, tag),
    dateTime: (value) => new Date(value).toLocaleString(tag),
    time: (date) => date.toLocaleTimeString(tag),
    setLocale,
  };
}

const I18nContext = createContext<I18n>(makeI18n('en', () => undefined));

export function I18nProvider({ children }: { children: ReactNode }) {
  const [locale, setLocale] = useState<Locale>(initialLocale);
  useEffect(() => {
    document.documentElement.lang = locale;
  }, [locale]);
  const choose = (next: Locale) => {
    try {
      localStorage.setItem(localeStorageKey, next);
    } catch {
      // Not remembered; it still applies to this page.
    }
    setLocale(next);
  };
  return <I18nContext.Provider value={makeI18n(locale, choose)}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  return useContext(I18nContext);
}

/** Sets the document's title in the current language. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title;
  }, [title]);
}

/** The visible language switch: one button per language, the current one pressed. */
export function LanguageSwitch() {
  const { locale, t, setLocale } = useI18n();
  const names: Record<Locale, string> = { en: 'English', ja: '日本語' };
  return (
    <div className="lang-switch" role="group" aria-label={t.languageSwitch}>
      {locales.map((option) => (
        <button
          key={option}
          type="button"
          lang={option}
          aria-pressed={option === locale}
          onClick={() => setLocale(option)}
        >
          {names[option]}
        </button>
      ))}
    </div>
  );
}
