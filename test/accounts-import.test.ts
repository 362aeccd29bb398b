/**
 * A bank's accounts are data its operator imports (`kessai accounts import`, `POST
 * /admin/v1/accounts/import`): CSV and JSON files, each row answered by its row number — bad rows
 * rejected with the fields named, never a value echoed (in the answer, the log or an error) —,
 * re-importing the same file is harmless, other data for an existing card is a conflict, and an
 * imported card enrolls and pays.
 */
import { describe, expect, it } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { limits, parseDecimalAmount, Secret } from '@kessai/protocol';
import { WalletClient } from '@kessai/sdk';
import { accountIdOfCard, checkAccountRow, readAccount } from '@kessai/settlement-server';
import { parseAccountFile, parseCsv } from '../apps/cli/src/accounts-file.ts';
import { registerAccountsCommands } from '../apps/cli/src/accounts-commands.ts';
import { callJson, waitFor } from './support/system.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { wholeToken } from './support/retention.ts';

const kessai = merchantForFile();
const sakura = () => kessai.system.settlements.find((s) => s.issuer.id === 'sakura-bank')!;
const importCall = (body: unknown, headers = kessai.system.operatorHeaders(sakura().url)) => callJson(kessai.system, 'POST', `${sakura().url}/admin/v1/accounts/import`, body, headers);

/** `kessai …` with the accounts commands; what it printed, and the error it ended with (if any). */
async function kessaiCli(args: string[]): Promise<{ out: string; error?: Error }> {
  const program = new Command('kessai').exitOverride();
  program.configureOutput({ writeErr: () => undefined });
  registerAccountsCommands(program, kessai.system.dataDir);
  const written: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
    return { out: written.join('') };
  } catch (err) {
    return { out: written.join(''), error: err as Error };
  } finally {
    process.stdout.write = write;
  }
}

// Personal data of the file: none of it may come back from the bank or reach its log.
const secrets = ['4111111111111111', '4012888888881881', '4917610000000000', '4000123456789017', 'KAZUO MORI', 'ONO, EMI', 'RIN FUJITA', '8642', '1357', '9753'];

/** Whether `text` holds `secret` as a value of its own (a four-digit PIN inside a request id, trace id or timestamp is no leak). */
const holds = (text: string, secret: string) => wholeToken(secret).test(text);

const csv = [
  'card_number,holder_name,expiry,pin,balance,currency,kind,credit_line,note',
  '4111 1111 1111 1111,KAZUO MORI,11/33,8642,25000,JPY,debit,,a debit card',
  '4012888888881881,"ONO, EMI",10/32,1357,12.345,KWD,debit,,three decimals',
  '4917610000000000,RIN FUJITA,09/31,9753,0,JPY,credit,30000,a credit card',
  '4000123456789018,BAD LUHN,09/31,1111,100,JPY,debit,,',
  '4000123456789017,ANYONE,13/31,12,1.5,JPY,savings,,',
  '4000999900001111,NO LINE,09/31,2222,100,XXX,credit,,',
].join('\n');

describe('the bank operator’s account import', () => {
  it('imports a CSV file by command, reporting each row by its number: good rows created, bad rows rejected with the fields named and no value echoed', async () => {
    const file = path.join(kessai.system.dataDir, 'accounts.csv');
    await writeFile(file, `${csv}\n`);
    const { out, error } = await kessaiCli(['accounts', 'import', file, '--issuer', 'sakura-bank', '--url', sakura().url]);
    expect(error?.message).toMatch(/3 row\(s\) not imported/);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^row 1: created card ••••1111 acct_[0-9a-z]{26}$/);
    expect(lines[1]).toMatch(/^row 2: created card ••••1881 acct_/);
    expect(lines[2]).toMatch(/^row 3: created card ••••0000 acct_/);
    expect(lines[3]).toBe('row 4: rejected card ••••9018 (account_row_invalid: card_number)');
    expect(lines[4]).toBe('row 5: rejected card ••••9017 (account_row_invalid: expiry, pin, kind, balance)');
    expect(lines[5]).toBe('row 6: rejected card ••••1111 (account_row_invalid: currency, credit_line)');
    expect(lines[6]).toBe('imported into sakura-bank: 6 rows, 3 created, 0 unchanged, 0 conflicts, 3 rejected');
    for (const secret of secrets) expect(holds(out, secret), secret).toBe(false);

    // Balances converted exactly with each currency's exponent; the credit card draws on its line.
    const db = sakura().config.db;
    const keys = sakura().config.cardKeys;
    const yen = await readAccount(db, (await accountIdOfCard(db, keys, '4111111111111111'))!);
    expect([yen.currency, yen.creditsPosted]).toEqual(['JPY', 25_000n]);
    const dinar = await readAccount(db, (await accountIdOfCard(db, keys, '4012888888881881'))!);
    expect([dinar.currency, dinar.creditsPosted]).toEqual(['KWD', 12_345n]);
    const credit = await readAccount(db, (await accountIdOfCard(db, keys, '4917610000000000'))!);
    expect(credit.creditsPosted).toBe(30_000n);
    expect(await accountIdOfCard(db, keys, '4000123456789017')).toBeUndefined();
  });

  it('answers a re-import of the same file unchanged, funds nothing twice, and reports other data for an existing card as a conflict per row', async () => {
    const good = csv.split('\n').slice(0, 4).join('\n');
    const file = path.join(kessai.system.dataDir, 'again.csv');
    await writeFile(file, good);
    const again = await kessaiCli(['accounts', 'import', file, '--issuer', 'sakura-bank', '--url', sakura().url]);
    expect(again.error).toBeUndefined();
    expect(again.out).toContain('imported into sakura-bank: 3 rows, 0 created, 3 unchanged, 0 conflicts, 0 rejected');
    const db = sakura().config.db;
    const yen = await readAccount(db, (await accountIdOfCard(db, sakura().config.cardKeys, '4111111111111111'))!);
    expect(yen.creditsPosted).toBe(25_000n);

    const row = { card_number: '4111111111111111', holder_name: 'KAZUO MORI', expiry: '11/33', pin: '8642', balance: '25000', currency: 'JPY', kind: 'debit' };
    const answer = await importCall({ first_row: 7, rows: [{ ...row, pin: '0000' }, { ...row, holder_name: 'SOMEONE ELSE' }, { ...row, balance: '26000' }, row] });
    expect(answer.status).toBe(200);
    expect(answer.body.results.map((r: { row: number; result: string; code?: string; fields?: string[] }) => [r.row, r.result, r.code, r.fields])).toEqual([
      [7, 'conflict', 'account_conflict', ['pin']],
      [8, 'conflict', 'account_conflict', ['holder_name']],
      [9, 'conflict', 'account_conflict', ['balance']],
      [10, 'unchanged', undefined, undefined],
    ]);
    expect(answer.body).toMatchObject({ created: 0, unchanged: 1, conflicts: 3, rejected: 0 });
    // The PIN that differed counts in the card's velocity record, like a wrong PIN online: the import is no PIN oracle.
    const [velocity] = await db.query<{ n: number }>('select count(*)::int as n from pin_failures f join cards c on c.pan_lookup = f.pan_lookup where c.account_id = $1', [yen.id]);
    expect(velocity!.n).toBe(1);
    // The PIN of record is still the first one: nothing was overwritten.
    const [card] = await db.query<{ pin_verifier: string; pan_lookup: string }>('select pin_verifier, pan_lookup from cards where account_id = $1', [yen.id]);
    expect(sakura().config.cardKeys.pin.derive(card!.pan_lookup, new Secret('8642'))).toBe(card!.pin_verifier);
  });

  it('imports a JSON array the same way, and the imported card enrolls and pays', async () => {
    const file = path.join(kessai.system.dataDir, 'accounts.json');
    // A test card (`"test": true`): the demo merchant's key is a test key, and a live card would be declined livemode_mismatch.
    await writeFile(file, JSON.stringify([{ card_number: '4000000000000010', holder_name: 'NAO KATO', expiry: '08/35', pin: '4826', balance: 50_000, currency: 'JPY', kind: 'debit', test: true }]));
    const { out, error } = await kessaiCli(['accounts', 'import', file, '--issuer', 'sakura-bank', '--url', sakura().url]);
    expect(error).toBeUndefined();
    expect(out).toMatch(/^row 1: created card ••••0010 acct_/);

    const { system, merchant } = kessai;
    const enrolled = await WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: 'NAO KATO', cardNumber: '4000000000000010', expiry: '08/35', pin: '4826' });
    const wallet = new WalletClient(enrolled, { caCertPem: system.pki.caCertPem });
    try {
      const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '1200', line_items: [{ description: 'Sencha', quantity: 1, unit_price_minor: '1200' }] }, idempotencyKey());
      const outcome = await wallet.approve(await wallet.fetchRequest(created.id), '4826');
      expect(outcome.status).toBe('approved');
      const db = sakura().config.db;
      const account = await readAccount(db, (await accountIdOfCard(db, sakura().config.cardKeys, '4000000000000010'))!);
      expect(account.debitsPending).toBe(1_200n);
    } finally {
      await wallet.close();
    }
  });

  it('reads the test column: true makes a test card, false or blank a live one (the default), anything else is rejected; a re-import naming the other mode is a conflict', async () => {
    const row = { holder_name: 'EMI ABE', expiry: '07/35', pin: '3141', balance: '1000', currency: 'JPY', kind: 'debit' };
    const cards = ['4000000000000036', '4000000000000044', '4000000000000051', '4000000000000069'];
    const answer = await importCall({ rows: [{ ...row, card_number: cards[0], test: 'TRUE' }, { ...row, card_number: cards[1], test: 'false' }, { ...row, card_number: cards[2] }, { ...row, card_number: cards[3], test: 'yes' }] });
    expect(answer.body.results.map((r: { result: string; fields?: string[] }) => [r.result, r.fields])).toEqual([['created', undefined], ['created', undefined], ['created', undefined], ['rejected', ['test']]]);
    const db = sakura().config.db;
    const flagOf = async (card: string) => (await db.query<{ test: boolean | null }>('select test from cards where account_id = $1', [await accountIdOfCard(db, sakura().config.cardKeys, card)]))[0]?.test;
    expect([await flagOf(cards[0]!), await flagOf(cards[1]!), await flagOf(cards[2]!)]).toEqual([true, false, false]);
    const again = await importCall({ rows: [{ ...row, card_number: cards[0], test: 'false' }, { ...row, card_number: cards[2], test: 'true' }, { ...row, card_number: cards[1] }] });
    expect(again.body.results.map((r: { result: string; fields?: string[] }) => [r.result, r.fields])).toEqual([['conflict', ['test']], ['conflict', ['test']], ['unchanged', undefined]]);
    expect(await flagOf(cards[0]!)).toBe(true);
  });

  it('gives a card imported before modes (test null, migration 0012) the mode the same data names on its next import: how the demo cards become test cards on an upgrade', async () => {
    const row = { card_number: '4000000000000077', holder_name: 'GO SAITO', expiry: '07/35', pin: '2718', balance: '1000', currency: 'JPY', kind: 'debit' };
    expect((await importCall({ rows: [row] })).body.created).toBe(1);
    const db = sakura().config.db;
    const accountId = await accountIdOfCard(db, sakura().config.cardKeys, row.card_number);
    await db.query('update cards set test = null where account_id = $1', [accountId]);
    expect((await importCall({ rows: [{ ...row, test: 'true' }] })).body.unchanged).toBe(1);
    expect((await db.query<{ test: boolean | null }>('select test from cards where account_id = $1', [accountId]))[0]?.test).toBe(true);
  });

  it('refuses more than accountsImportRowsMax rows in one call with import_batch_too_large, and the call without the bank’s operator token with unauthenticated', async () => {
    const row = { card_number: '4111111111111111', holder_name: 'KAZUO MORI', expiry: '11/33', pin: '8642', balance: '25000', currency: 'JPY', kind: 'debit' };
    const tooMany = await importCall({ rows: Array.from({ length: limits.accountsImportRowsMax + 1 }, () => row) });
    expect([tooMany.status, tooMany.body.code]).toEqual([413, 'import_batch_too_large']);
    const anonymous = await importCall({ rows: [row] }, {});
    expect([anonymous.status, anonymous.body.code]).toEqual([401, 'unauthenticated']);
    const brokerToken = await importCall({ rows: [row] }, kessai.system.operatorHeaders(kessai.system.auth.url));
    expect(brokerToken.body.code).toBe('unauthenticated');
    // An invalid row is answered in a 200 by its row number, the other rows of the call imported.
    const invalid = await importCall({ first_row: 41, rows: [{ ...row, expiry: '13/40' }, row] });
    expect(invalid.body.results).toMatchObject([{ row: 41, result: 'rejected', code: 'account_row_invalid', fields: ['expiry'], card_last4: '1111' }, { row: 42, result: 'unchanged' }]);
    // A row with a field the import does not know is refused whole, naming the path, never a value.
    const unknown = await importCall({ rows: [{ ...row, cvv: '123' }] });
    expect(unknown.body.code).toBe('validation_failed');
    for (const answer of [tooMany, anonymous, brokerToken, invalid, unknown]) for (const secret of secrets) expect(holds(JSON.stringify(answer.body), secret), secret).toBe(false);
  });

  it('writes counts to the bank’s log, never a card number, PIN or name of the file', async () => {
    const log = path.join(kessai.system.dataDir, 'logs', 'settlement-sakura-bank.log');
    const text = await waitFor('the import log lines', async () => {
      const content = await readFile(log, 'utf8');
      return (content.match(/accounts imported/g) ?? []).length >= 4 ? content : undefined;
    });
    for (const secret of [...secrets, '4000000000000010', 'NAO KATO', '4826']) expect(holds(text, secret), secret).toBe(false);
  });
});

describe('the account file and its rows', () => {
  it('reads CSV quoting (commas, doubled quotes, line breaks) and JSON arrays; refuses unknown columns by name', () => {
    expect(parseCsv('a,b\n"x, y","say ""hi""\nthere"\r\n')).toEqual([['a', 'b'], ['x, y', 'say "hi"\nthere']]);
    expect(parseAccountFile('[{"card_number":"4111111111111111","balance":12,"note":"n"}]')).toEqual([{ card_number: '4111111111111111', balance: '12' }]);
    expect(parseAccountFile('[{"balance":12.5}]')).toEqual([{ balance: '?' }]);
    expect(() => parseAccountFile('card_number,cvv\n4111111111111111,123\n')).toThrow('unknown column(s): cvv');
  });

  it('converts balances exactly with the currency’s exponent, and refuses more decimals than it has', () => {
    expect(parseDecimalAmount('12.5', 'USD')).toBe(1_250n);
    expect(parseDecimalAmount('1000.000', 'KWD')).toBe(1_000_000n);
    expect(parseDecimalAmount('0', 'JPY')).toBe(0n);
    expect(() => parseDecimalAmount('1.5', 'JPY')).toThrow(TypeError);
    expect(() => parseDecimalAmount('1e3', 'USD')).toThrow(TypeError);
    expect(() => parseDecimalAmount('-1', 'USD')).toThrow(TypeError);
    expect(checkAccountRow({ card_number: '4111111111111111', holder_name: 'A', expiry: '01/30', pin: '1234', balance: '1.5', currency: 'JPY', kind: 'debit' })).toEqual({ fields: ['balance'] });
    expect(checkAccountRow({ card_number: '4111111111111111', holder_name: 'A', expiry: '01/30', pin: '1234', balance: '1', currency: 'JPY', kind: 'debit', credit_line: '5' })).toEqual({ fields: ['credit_line'] });
  });
});
