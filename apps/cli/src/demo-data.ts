/**
 * The demo world `kessai start` seeds: two issuers — one re-seals (embodiment 1), one takes
 * credentials straight through (embodiment 2, patent claim 3) — with test cards whose numbers,
 * PINs and outcomes are documented in README.md, as card networks document theirs. Accounts are
 * in JPY but one in KWD, a currency with three decimals.
 */
import type { SeedCard } from '@kessai/settlement-server';
import type { ConversionMode, KeyManagementAlgorithm } from '@kessai/protocol';

export interface DemoIssuer {
  id: string;
  name: string;
  conversionMode: ConversionMode;
  cipher2: KeyManagementAlgorithm;
  cardPrefixes: string[];
  cards: SeedCard[];
}

const expiry = '12/34';

export const demoIssuers: DemoIssuer[] = [
  {
    id: 'sakura-bank',
    name: 'Sakura Demo Bank',
    conversionMode: 'reseal',
    cipher2: 'ECDH-ES+A256KW',
    cardPrefixes: ['4'],
    cards: [
      { cardNumber: '4242424242424242', holderName: 'TARO YAMADA', expiry, pin: '7392', status: 'active', balanceMinor: 1_000_000n, currency: 'JPY', purpose: 'pays (balance JPY 1,000,000)' },
      { cardNumber: '4000056655665556', holderName: 'HANAKO SUZUKI', expiry, pin: '2846', status: 'active', balanceMinor: 300_000n, currency: 'JPY', purpose: 'pays (balance JPY 300,000)' },
      { cardNumber: '4000000000009995', holderName: 'JIRO TANAKA', expiry, pin: '6051', status: 'active', balanceMinor: 500n, currency: 'JPY', purpose: 'declined: insufficient_funds (balance JPY 500)' },
      { cardNumber: '4000000000000002', holderName: 'YUKI SATO', expiry, pin: '3917', status: 'blocked', balanceMinor: 1_000_000n, currency: 'JPY', purpose: 'refused at enrollment: enrollment_refused (blocked)' },
      // A Kuwaiti dinar account: three decimals, so KWD 1,000.000 is 1,000,000 minor units (fils).
      { cardNumber: '4000004140000005', holderName: 'LAYLA HASSAN', expiry, pin: '5821', status: 'active', balanceMinor: 1_000_000n, currency: 'KWD', purpose: 'pays in KWD (balance KWD 1,000.000)' },
    ],
  },
  {
    id: 'fuji-bank',
    name: 'Fuji Direct Bank',
    conversionMode: 'pass_through',
    cipher2: 'RSA-OAEP-256',
    cardPrefixes: ['5'],
    cards: [
      { cardNumber: '5555555555554444', holderName: 'KENJI ITO', expiry, pin: '8264', status: 'active', balanceMinor: 1_000_000n, currency: 'JPY', purpose: 'pays (balance JPY 1,000,000)' },
      { cardNumber: '5200828282828210', holderName: 'AYA KOBAYASHI', expiry, pin: '5173', status: 'active', balanceMinor: 800n, currency: 'JPY', purpose: 'declined: insufficient_funds (balance JPY 800)' },
      // A credit card: nothing paid in, a credit line of JPY 50,000 (docs/ledger.md, "Credit lines").
      { cardNumber: '5425233430109903', holderName: 'MIKI NAKAMURA', expiry, pin: '6318', status: 'active', balanceMinor: 0n, creditLimitMinor: 50_000n, currency: 'JPY', purpose: 'credit card: pays up to its credit line of JPY 50,000' },
      { cardNumber: '5105105105105100', holderName: 'SHO WATANABE', expiry, pin: '4629', status: 'blocked', balanceMinor: 1_000_000n, currency: 'JPY', purpose: 'refused at enrollment: enrollment_refused (blocked)' },
    ],
  },
];

export const demoMerchantName = 'Kessai Tea House';
