/**
 * PCI DSS 3.5 at the issuer (docs/threat-model.md): after seeding and a purchase, no card number,
 * holder name or expiry of any test card is in any table of either settlement server's database;
 * the search does find a card number put there on purpose; a card still pays; the card is found by
 * its keyed hash only, and not with another lookup key; a legacy store that holds plaintext cards
 * is refused by the migration rather than kept.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { migrate, openDb } from '@kessai/service';
import { accountIdOfCard, panLookup } from '@kessai/settlement-server';
import { pgliteTemplate, scratchPostgres } from './support/database.ts';
import type { TestSystem } from './support/system.ts';
import { approvedRequest, cardAccount, startWithPayer } from './support/payer.ts';
import { dumpTables, findPersonalData } from './support/retention.ts';

const cardNumber = '4242424242424242';
let system: TestSystem;
let merchant: MerchantClient;
let wallet: WalletClient;
let stop: () => Promise<void>;

beforeAll(async () => {
  ({ system, merchant, wallet, stop } = await startWithPayer(cardNumber));
});
afterAll(() => stop());

const sakura = () => system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;

describe('card data at rest in the account store', () => {
  it('a card still pays: the purchase is approved and held on its account', async () => {
    const before = await cardAccount(system, cardNumber);
    const id = await approvedRequest(merchant, wallet, cardNumber, 6500n);
    expect(id).toMatch(/^pr_/);
    const after = await cardAccount(system, cardNumber);
    expect(after.debitsPending - before.debitsPending).toBe(6500n);
  });

  it('no card number, holder name or expiry is in any table of either settlement database', async () => {
    for (const settlement of system.settlements) {
      const { text, rows } = await dumpTables(settlement.config.db);
      expect(rows).toBeGreaterThan(0);
      expect(text).toContain('cards: ');
      expect(findPersonalData(text).filter((label) => !label.includes(' PIN '))).toEqual([]);
    }
  });

  it('the same search finds a card number written into a scratch row (positive control)', async () => {
    const db = sakura().config.db;
    await db.query('create table pan_scratch (note text not null)');
    try {
      await db.query('insert into pan_scratch (note) values ($1)', [`scratch ${cardNumber}`]);
      const { text } = await dumpTables(db);
      expect(findPersonalData(text)).toContain('card …4242 number (plain)');
    } finally {
      await db.query('drop table pan_scratch');
    }
  });

  it('the cards table has no plaintext columns, rows carry a keyed hash and a sealed record with its key id, and the keys are owner-only files', async () => {
    const columns = await sakura().config.db.query<{ column_name: string }>("select column_name from information_schema.columns where table_schema = 'public' and table_name = 'cards' order by column_name");
    const names = columns.map((c) => c.column_name);
    expect(names).toEqual(expect.arrayContaining(['pan_lookup', 'card_record', 'card_key_id']));
    expect(names).not.toContain('card_number');
    expect(names).not.toContain('holder_name');
    expect(names).not.toContain('expiry');
    const [row] = await sakura().config.db.query<{ pan_lookup: string; card_key_id: string }>('select pan_lookup, card_key_id from cards where pan_lookup = $1', [panLookup(sakura().config.cardKeys, cardNumber)]);
    expect(row?.card_key_id).toBe(sakura().config.cardKeys.data[0]!.kid);
    for (const file of ['card-lookup.private.jwk', 'card-data.private.jwk']) {
      const mode = (await stat(path.join(system.dataDir, 'settlement-sakura-bank', 'keys', file))).mode;
      expect(mode & 0o077).toBe(0);
    }
  });

  it('finds the card with the lookup key (spaces normalized) and not with another key', async () => {
    const { db, cardKeys } = sakura().config;
    const accountId = await accountIdOfCard(db, cardKeys, cardNumber);
    expect(accountId).toMatch(/^acct_/);
    expect(await accountIdOfCard(db, cardKeys, cardNumber.replace(/(\d{4})(?=\d)/g, '$1 '))).toBe(accountId);
    expect(await accountIdOfCard(db, { ...cardKeys, lookup: randomBytes(32) }, cardNumber)).toBeUndefined();
  });
});

describe('a legacy account store with plaintext cards', () => {
  it('is refused by 0007_pan_at_rest, so the server does not start on it', async () => {
    const migrationsDir = path.join(import.meta.dirname, '..', 'apps', 'settlement-server', 'migrations');
    const legacyDir = await mkdtemp(path.join(tmpdir(), 'kessai-legacy-migrations-'));
    for (const file of (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql') && f < '0007')) await copyFile(path.join(migrationsDir, file), path.join(legacyDir, file));
    const scratch = await scratchPostgres('kessai_legacy_cards');
    const db = scratch ? await openDb({ url: scratch.url, poolSizeMax: 2 }) : await openDb({ pgliteTemplate: await pgliteTemplate() });
    try {
      await migrate(db, legacyDir);
      await db.query("insert into ledger_accounts (id, kind, currency) values ('acct_legacy', 'cardholder', 'JPY')");
      await db.query("insert into cards (card_number, holder_name, expiry, account_id, status, pin_verifier) values ('4000000000000010', 'OLD CARD', '01/30', 'acct_legacy', 'active', 'x')");
      await expect(migrate(db, migrationsDir)).rejects.toThrow(/0007_pan_at_rest needs an empty cards table/);
      const [row] = await db.query<{ count: bigint }>('select count(*)::int8 as count from cards');
      expect(BigInt(row!.count)).toBe(1n);
    } finally {
      await db.close();
      await scratch?.drop();
      await rm(legacyDir, { recursive: true, force: true });
    }
  });
});
