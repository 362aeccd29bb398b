/**
 * Attack: a merchant hides characters in the text the payer confirms — zero-width spaces and
 * joiners, bidi overrides and isolates, line separators, tag characters, blank fillers — to make an
 * item, an order or a merchant name read as something else. The command-line wallet shows each of
 * them as a visible U+FFFD, on a real payment request through the real servers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { merchantNameProblem, safeDisplay } from '@kessai/protocol';
import { MerchantClient } from '@kessai/sdk';
import { registerWalletCommands } from '@kessai/wallet';
import { demoCard, startTestSystem, type TestSystem } from '../support/system.ts';
import { idempotencyKey } from '../support/payer.ts';

/** One of each kind of character that hides or reorders text on a terminal. */
const hidden = {
  'zero-width space': '\u200b',
  'zero-width non-joiner': '\u200c',
  'zero-width joiner': '\u200d',
  'word joiner': '\u2060',
  'invisible separator': '\u2063',
  'byte order mark': '\ufeff',
  'right-to-left override': '\u202e',
  'left-to-right isolate': '\u2066',
  'pop directional isolate': '\u2069',
  'arabic letter mark': '\u061c',
  'line separator': '\u2028',
  'paragraph separator': '\u2029',
  'mongolian vowel separator': '\u180e',
  'tag latin small a': '\u{e0061}',
  'hangul filler': '\u3164',
  'combining grapheme joiner': '\u034f',
  'soft hyphen': '\u00ad',
  escape: '\u001b',
  'next line (C1)': '\u0085',
};
const anyHidden = new RegExp(Object.values(hidden).join('|'), 'u');

describe('safeDisplay', () => {
  it('replaces every hiding, reordering or redrawing character with a visible U+FFFD', () => {
    for (const [name, char] of Object.entries(hidden)) expect(safeDisplay(`Kessai${char}Tea`), name).toBe('Kessai\ufffdTea');
  });

  it('makes a look-alike merchant name visibly different, and leaves honest text in any script alone', () => {
    expect(safeDisplay('Kessai Tea\u200b House')).not.toBe('Kessai Tea House');
    expect(safeDisplay('Kessai Tea House\u202e ESUOH')).toContain('\ufffd');
    for (const honest of ['Kessai Tea House', '抹茶 100 g — Uji', 'Café Crème', 'Ünïcödé', 'شاي', 'чай', '👍 tea']) expect(safeDisplay(honest)).toBe(honest);
  });
});

describe('the command-line wallet on a real payment request', () => {
  let system: TestSystem;
  let storage: string;
  beforeAll(async () => {
    system = await startTestSystem();
    storage = await mkdtemp(path.join(tmpdir(), 'kessai-lookalike-'));
  });
  afterAll(async () => {
    await system?.stop();
    if (storage) await rm(storage, { recursive: true, force: true });
  });

  /** Runs `kessai wallet …` in this process and returns what it printed. */
  async function wallet(args: string[], env: Record<string, string> = {}): Promise<string> {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let printed = '';
    stdout.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
    stderr.on('data', (chunk: Buffer) => (printed += chunk.toString('utf8')));
    const program = new Command('kessai').exitOverride();
    registerWalletCommands(program, { stdin: new PassThrough(), stdout, stderr, env });
    await program.parseAsync(['wallet', ...args], { from: 'user' });
    return printed;
  }

  it('shows hidden characters in item descriptions and the order id as U+FFFD, never raw', async () => {
    const card = demoCard('4242424242424242');
    const enrolled = await wallet(['enroll', '--storage', storage, '--auth', system.auth.url, '--ca', system.pki.caCertPath, '--directory-key', system.directoryKey.file, '--pin-from-env', 'KESSAI_TEST_PIN', '--name', card.holderName, '--card', card.cardNumber, '--expiry', card.expiry], { KESSAI_TEST_PIN: card.pin });
    expect(enrolled).toMatch(/^enrolled: credential cred_/m);
    const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
    const disguised = Object.values(hidden).join('');
    const created = await merchant.createPaymentRequest(
      {
        order_id: `o-${idempotencyKey().slice(0, 8)}\u2028total JPY 1`,
        currency: 'JPY',
        amount_minor: '1500',
        line_items: [
          { description: `Gyokuro\u202e 1 × JPY 1 \u202c${disguised}`, quantity: 1, unit_price_minor: '1000' },
          { description: 'Sencha\u200b\u200b\u200b (gift)', quantity: 1, unit_price_minor: '500' },
        ],
      },
      idempotencyKey(),
    );
    await merchant.close();
    const printed = await wallet(['pay', created.id, '--storage', storage, '--pin-from-env', 'KESSAI_TEST_PIN', '--yes'], { KESSAI_TEST_PIN: card.pin });
    expect(printed).toContain('Gyokuro\ufffd 1 × JPY 1 \ufffd');
    expect(printed).toContain('Sencha\ufffd\ufffd\ufffd (gift)');
    expect(printed).toContain('\ufffdtotal JPY 1');
    expect(printed).toMatch(/approved/);
    expect(anyHidden.test(printed)).toBe(false);
  });
});

describe('merchant names at registration', () => {
  it('accepts names in one script, and Latin beside Japanese, Chinese or Korean scripts', () => {
    for (const name of ['Kessai Tea House', 'Kessai 茶房', '決済ティーハウス', 'カフェ Kessai 2号店', 'Κέσσαι', 'Кессай', 'Tea & Co. (Kyoto)', 'Café Zoë', '케사이 Tea']) {
      expect(merchantNameProblem(name), name).toBeUndefined();
    }
  });

  it('refuses look-alikes: a Cyrillic or Greek letter among Latin ones, hidden characters, decomposed accents, an empty name', () => {
    expect(merchantNameProblem('Kessаi Tea House')).toMatch(/mixes scripts \(Cyrillic, Latin\)/); // U+0430
    expect(merchantNameProblem('Kessai Τea House')).toMatch(/mixes scripts \(Greek, Latin\)/); // U+03A4
    expect(merchantNameProblem('Kessai\u200b Tea House')).toMatch(/hides, reorders or redraws/);
    expect(merchantNameProblem('Kessai Tea House\u202e')).toMatch(/hides, reorders or redraws/);
    expect(merchantNameProblem('Cafe\u0301')).toMatch(/NFC/);
    expect(merchantNameProblem('   ')).toMatch(/empty/);
  });

  it('the authentication server refuses to start with a merchant whose name mixes scripts, and registers none of it', async () => {
    const { buildAuthServer } = await import('@kessai/auth-server');
    const { openDb, loadOrCreateKeyRing } = await import('@kessai/service');
    const { pgliteTemplate } = await import('../support/database.ts');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { pino } = await import('pino');
    const dir = await mkdtemp(path.join(tmpdir(), 'kessai-merchant-name-'));
    const db = await openDb({ pgliteTemplate: await pgliteTemplate() });
    try {
      const keys = await loadOrCreateKeyRing(path.join(dir, 'keys'), [{ name: 'cipher1', use: 'enc' }, { name: 'request-signing', use: 'sig' }]);
      const build = buildAuthServer({
        db,
        logger: pino({ level: 'silent' }),
        keys,
        publicBaseUrl: 'https://127.0.0.1:1',
        issuers: [],
        directory: () => Promise.reject(new Error('no directory in this test')),
        merchants: [{ id: 'mer_0000000000000000000000000a', name: 'Kessаi Tea House', apiKey: 'sk_test_lookalike', webhookSecret: 'whsec_lookalike' }],
        tls: { keyPem: '', certPem: '', caCertPem: '' },
        clientTls: { certPem: '', keyPem: '' },
      });
      await expect(build).rejects.toThrow(/cannot be registered: the name mixes scripts/);
      expect(await db.query('select id from merchants')).toEqual([]);
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
