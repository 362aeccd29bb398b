/**
 * PIN attempt limits at the issuer: per account (pinAttemptsMax locks the card) and per credential
 * (pinAttemptsPerCredentialMax locks the credential, keyed by its device key), and the documented
 * unlock path (`POST /admin/v1/cards/unlock`, `kessai cards unlock`) by account id or credential id.
 */
import { createHmac } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { limits, Secret } from '@kessai/protocol';
import type { WalletClient } from '@kessai/sdk';
import { accountIdOfCard, panLookup } from '@kessai/settlement-server';
import { registerCardsCommands } from '../apps/cli/src/cards-commands.ts';
import { callJson, demoCard } from './support/system.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';

const kessai = merchantForFile();

/** One payment of JPY 100 answered with `pin`: the decline code, or 'approved'. */
async function pay(wallet: WalletClient, pin: string): Promise<string> {
  const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '100', line_items: [{ description: 'Mochi', quantity: 1, unit_price_minor: '100' }] }, idempotencyKey());
  const outcome = await wallet.approve(await wallet.fetchRequest(created.id), pin);
  return outcome.status === 'approved' ? 'approved' : String(outcome.decline_code);
}

function settlementOf(cardNumber: string) {
  return kessai.system.settlements.find((s) => s.issuer.id === demoCard(cardNumber).issuer.id)!;
}

async function accountOf(cardNumber: string): Promise<string> {
  const settlement = settlementOf(cardNumber);
  return (await accountIdOfCard(settlement.config.db, settlement.config.cardKeys, cardNumber))!;
}

function unlock(cardNumber: string, body: unknown, token = kessai.system.operatorTokens.issuers[demoCard(cardNumber).issuer.id]!) {
  return callJson(kessai.system, 'POST', `${settlementOf(cardNumber).url}/admin/v1/cards/unlock`, body, { authorization: `Bearer ${token}` });
}

const wrongPin = '0001';

describe('PIN attempts per account', () => {
  it(`locks the card after pinAttemptsMax (${limits.pinAttemptsMax}) wrong PINs, refuses the right PIN with pin_locked, and pays again after the operator unlocks the account`, async () => {
    const cardNumber = '4242424242424242';
    const wallet = await kessai.payer(cardNumber);
    const codes = [];
    for (let attempt = 0; attempt < limits.pinAttemptsMax; attempt++) codes.push(await pay(wallet, wrongPin));
    expect(codes).toEqual([...Array(limits.pinAttemptsMax - 1).fill('pin_incorrect'), 'pin_locked']);
    expect(await pay(wallet, demoCard(cardNumber).pin)).toBe('pin_locked');

    const unlocked = await unlock(cardNumber, { account_id: await accountOf(cardNumber) });
    expect(unlocked.status).toBe(200);
    // The account and the credential that made the attempts are both unlocked.
    expect(unlocked.body).toEqual({ accounts_unlocked: 1, credentials_unlocked: 1 });
    expect(await pay(wallet, demoCard(cardNumber).pin)).toBe('approved');
  });
});

describe('PIN attempts per credential', () => {
  it(`locks one credential after pinAttemptsPerCredentialMax (${limits.pinAttemptsPerCredentialMax}) wrong PINs even when another credential's right PIN reset the account, with credential_locked`, async () => {
    const cardNumber = '5555555555554444';
    const pin = demoCard(cardNumber).pin;
    const thief = await kessai.payer(cardNumber);
    const owner = await kessai.payer(cardNumber);
    const codes = [];
    for (let attempt = 0; attempt < limits.pinAttemptsPerCredentialMax - 1; attempt++) codes.push(await pay(thief, wrongPin));
    // The owner pays from another storage: the account's count goes back to zero…
    codes.push(await pay(owner, pin));
    // …but the thief's credential keeps its own count, and the next wrong PIN locks it.
    codes.push(await pay(thief, wrongPin));
    expect(codes).toEqual([...Array(limits.pinAttemptsPerCredentialMax - 1).fill('pin_incorrect'), 'approved', 'credential_locked']);
    expect(await pay(thief, pin)).toBe('credential_locked');
    expect(await pay(owner, pin)).toBe('approved');

    const unlocked = await unlock(cardNumber, { credential_id: thief.wallet.credential_id });
    expect(unlocked.body).toEqual({ accounts_unlocked: 0, credentials_unlocked: 1 });
    expect(await pay(thief, pin)).toBe('approved');
  });

  it('resets a credential’s count with a right PIN through it', async () => {
    const cardNumber = '4000056655665556';
    const wallet = await kessai.payer(cardNumber);
    const codes = [];
    for (let round = 0; round < 2; round++) {
      for (let attempt = 0; attempt < limits.pinAttemptsPerCredentialMax - 1; attempt++) codes.push(await pay(wallet, wrongPin));
      codes.push(await pay(wallet, demoCard(cardNumber).pin));
    }
    expect(codes.filter((code) => code === 'approved')).toHaveLength(2);
    expect(codes).not.toContain('credential_locked');
  });
});

describe('the unlock path', () => {
  it('refuses the unlock endpoint without the operator token with unauthenticated', async () => {
    const response = await unlock('4242424242424242', { account_id: await accountOf('4242424242424242') }, 'not-the-operator-token');
    expect(response.status).toBe(401);
    expect(response.body.code).toBe('unauthenticated');
  });

  it('takes exactly one of account_id and credential_id, never a card number, with validation_failed', async () => {
    const account = await accountOf('4242424242424242');
    for (const body of [{}, { account_id: account, credential_id: 'cred_0000000000000000000000000a' }, { card_number: '4242424242424242' }]) {
      const response = await unlock('4242424242424242', body);
      expect(response.status).toBe(400);
      expect(response.body.code).toBe('validation_failed');
      expect(JSON.stringify(response.body)).not.toContain('4242424242424242');
    }
  });

  it('refuses an account the issuer does not hold with account_not_found', async () => {
    const response = await unlock('4242424242424242', { account_id: 'acct_0000000000000000000000000a' });
    expect(response.body.code).toBe('account_not_found');
  });

  it('kessai cards unlock lifts a lock through the operator endpoint', async () => {
    // A card no other test of this file gives wrong PINs: the velocity record (pinFailuresWindowMax
    // wrong PINs per card in pinFailuresWindowMs, across unlocks) would keep another one locked.
    const cardNumber = '5425233430109903';
    const wallet = await kessai.payer(cardNumber);
    for (let attempt = 0; attempt < limits.pinAttemptsMax; attempt++) await pay(wallet, wrongPin);
    expect(await pay(wallet, demoCard(cardNumber).pin)).toBe('pin_locked');
    const settlement = settlementOf(cardNumber);
    const accountId = await accountOf(cardNumber);
    const cardsUnlock = async (dataDir: string) => {
      const program = new Command('kessai').exitOverride();
      registerCardsCommands(program, dataDir);
      const written: string[] = [];
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write;
      try {
        await program.parseAsync(['cards', 'unlock', '--issuer', settlement.issuer.id, '--account', accountId, '--url', settlement.url], { from: 'user' });
      } finally {
        process.stdout.write = write;
      }
      return written.join('');
    };
    // The command sends the settlement role's own token, read from <data>/settlement-<issuer>/operator-token:
    // a data folder whose token file there holds the broker's token is refused.
    const tokenFile = path.join(kessai.system.dataDir, `settlement-${settlement.issuer.id}`, 'operator-token');
    expect((await readFile(tokenFile, 'utf8')).trim()).toBe(kessai.system.operatorTokens.issuers[settlement.issuer.id]);
    const borrowed = await mkdtemp(path.join(tmpdir(), 'kessai-cards-unlock-'));
    try {
      await cp(path.join(kessai.system.dataDir, 'pki', 'ca.cert.pem'), path.join(borrowed, 'pki', 'ca.cert.pem'));
      await mkdir(path.join(borrowed, `settlement-${settlement.issuer.id}`));
      await writeFile(path.join(borrowed, `settlement-${settlement.issuer.id}`, 'operator-token'), `${kessai.system.operatorTokens.auth}\n`);
      await expect(cardsUnlock(borrowed)).rejects.toThrow(/\(unauthenticated\)/);
    } finally {
      await rm(borrowed, { recursive: true, force: true });
    }
    expect(await pay(wallet, demoCard(cardNumber).pin)).toBe('pin_locked');

    expect(await cardsUnlock(kessai.system.dataDir)).toContain('unlocked: 1 card account(s), 1 credential(s)');
    expect(await pay(wallet, demoCard(cardNumber).pin)).toBe('approved');
  });
});

describe('the PIN verifier', () => {
  it('is a keyed verification value (HMAC-SHA-256 under the key file’s PIN verification key) in the account store, and no table holds a PIN', async () => {
    const settlement = settlementOf('4242424242424242');
    const rows = await settlement.config.db.query<{ pan_lookup: string; pin_verifier: string }>('select pan_lookup, pin_verifier from cards');
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row.pin_verifier).toMatch(/^pvv1\.pin-verification-[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$/);
    const keyFile = JSON.parse(await readFile(path.join(kessai.system.dataDir, `settlement-${settlement.issuer.id}`, 'keys', 'pin-verification.private.jwk'), 'utf8')) as { k: string };
    const taro = rows.find((row) => row.pan_lookup === panLookup(settlement.config.cardKeys, '4242424242424242'))!;
    // Recomputed from the key file alone: the database holds nothing that opens without it.
    const expected = createHmac('sha256', Buffer.from(keyFile.k, 'base64url')).update(`${taro.pan_lookup}\u0000${demoCard('4242424242424242').pin}`).digest('base64url');
    expect(taro.pin_verifier.split('.')[2]).toBe(expected);
    expect(settlement.config.cardKeys.pin.matches(taro.pin_verifier, taro.pan_lookup, new Secret('0000'))).toBe(false);
  });
});
