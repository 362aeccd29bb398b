/**
 * A terminal asks for its own credential's state (`GET /v1/terminal/credential`, `kessai wallet
 * status`): the authentication server answers its own revocation and asks the issuer's registry
 * (`GET /internal/v1/credentials/{id}`, mutual TLS) for the rest — active with the wrong PINs still
 * allowed, locked by the card's count or the credential's own, blocked, or revoked by the issuer's
 * operator. The answer names no card.
 */
import { describe, expect, it } from 'vitest';
import { KessaiError, limits } from '@kessai/protocol';
import type { WalletClient } from '@kessai/sdk';
import { accountIdOfCard } from '@kessai/settlement-server';
import { callJson, demoCard } from './support/system.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';

const kessai = merchantForFile();
const wrongPin = '0001';

/** One payment of JPY 100 answered with `pin`: the decline code, or 'approved'. */
async function pay(wallet: WalletClient, pin: string): Promise<string> {
  const created = await kessai.merchant.createPaymentRequest(
    { order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '100', line_items: [{ description: 'Mochi', quantity: 1, unit_price_minor: '100' }] },
    idempotencyKey(),
  );
  const outcome = await wallet.approve(await wallet.fetchRequest(created.id), pin);
  return outcome.status === 'approved' ? 'approved' : String(outcome.decline_code);
}

function bankOf(cardNumber: string) {
  const issuerId = demoCard(cardNumber).issuer.id;
  const settlement = kessai.system.settlements.find((s) => s.issuer.id === issuerId)!;
  return { settlement, operator: { authorization: `Bearer ${kessai.system.operatorTokens.issuers[issuerId]!}` } };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (err) {
    return err instanceof KessaiError ? err.code : String(err);
  }
}

describe('the state of a credential, as its terminal asks for it', () => {
  it('answers a fresh credential active, with pinAttemptsMax wrong PINs allowed, and nothing that names the card', async () => {
    const wallet = await kessai.payer('4242424242424242');
    const state = await wallet.credentialStatus();
    expect(state).toEqual({ credential_id: wallet.wallet.credential_id, status: 'active', code: null, pin_tries_left: limits.pinAttemptsMax });
    const text = JSON.stringify(state);
    for (const needle of ['4242', 'TARO', '12/34', demoCard('4242424242424242').pin]) expect(text).not.toContain(needle);
  });

  it('counts a wrong PIN down, answers locked (pin_locked) once the card locks, and active again after the issuer unlocks it', async () => {
    const cardNumber = '4000056655665556';
    const wallet = await kessai.payer(cardNumber);
    expect(await pay(wallet, wrongPin)).toBe('pin_incorrect');
    expect(await wallet.credentialStatus()).toMatchObject({ status: 'active', pin_tries_left: limits.pinAttemptsMax - 1 });
    for (let attempt = 1; attempt < limits.pinAttemptsMax; attempt++) await pay(wallet, wrongPin);
    expect(await wallet.credentialStatus()).toEqual({ credential_id: wallet.wallet.credential_id, status: 'locked', code: 'pin_locked', pin_tries_left: null });

    const { settlement, operator } = bankOf(cardNumber);
    const accountId = await accountIdOfCard(settlement.config.db, settlement.config.cardKeys, cardNumber);
    const unlocked = await callJson(kessai.system, 'POST', `${settlement.url}/admin/v1/cards/unlock`, { account_id: accountId }, operator);
    expect(unlocked.status).toBe(200);
    expect(await wallet.credentialStatus()).toMatchObject({ status: 'active', code: null, pin_tries_left: limits.pinAttemptsMax });
    expect(await pay(wallet, demoCard(cardNumber).pin)).toBe('approved');
  });

  it("answers locked (credential_locked) for the credential whose own count locked it, and active for the card's other credential", async () => {
    const cardNumber = '5555555555554444';
    const thief = await kessai.payer(cardNumber);
    const owner = await kessai.payer(cardNumber);
    for (let attempt = 0; attempt < limits.pinAttemptsPerCredentialMax - 1; attempt++) expect(await pay(thief, wrongPin)).toBe('pin_incorrect');
    expect(await pay(owner, demoCard(cardNumber).pin)).toBe('approved');
    expect(await thief.credentialStatus()).toMatchObject({ status: 'active', pin_tries_left: 1 });
    expect(await pay(thief, wrongPin)).toBe('credential_locked');
    expect(await thief.credentialStatus()).toMatchObject({ status: 'locked', code: 'credential_locked', pin_tries_left: null });
    expect(await owner.credentialStatus()).toMatchObject({ status: 'active', code: null });
  });

  it('answers revoked (credential_revoked) after a revocation at the authentication server, while every other terminal call is refused', async () => {
    const wallet = await kessai.payer('4000000000009995');
    const url = `${kessai.system.auth.url}/admin/v1/credentials/${wallet.wallet.credential_id}/revoke`;
    expect((await callJson(kessai.system, 'POST', url, undefined, kessai.system.operatorHeaders(kessai.system.auth.url))).status).toBe(200);
    expect(await wallet.credentialStatus()).toEqual({ credential_id: wallet.wallet.credential_id, status: 'revoked', code: 'credential_revoked', pin_tries_left: null });
    expect(await codeOf(wallet.fetchRequest('pr_00000000000000000000000000'))).toBe('credential_revoked');
  });

  it("answers revoked for a credential only the issuer's operator revoked: the registry decides", async () => {
    const cardNumber = '5425233430109903';
    const wallet = await kessai.payer(cardNumber);
    const { settlement, operator } = bankOf(cardNumber);
    const revoked = await callJson(kessai.system, 'POST', `${settlement.url}/admin/v1/credentials/${wallet.wallet.credential_id}/revoke`, undefined, operator);
    expect(revoked.status).toBe(200);
    const [record] = await kessai.system.auth.db.query<{ status: string }>('select status from credentials where id = $1', [wallet.wallet.credential_id]);
    expect(record?.status).toBe('active');
    expect(await wallet.credentialStatus()).toMatchObject({ status: 'revoked', code: 'credential_revoked' });
  });

  it('answers blocked (card_blocked) when the issuer blocked the card after enrollment', async () => {
    const cardNumber = '4000004140000005';
    const wallet = await kessai.payer(cardNumber);
    const { settlement } = bankOf(cardNumber);
    const db = settlement.config.db;
    const [row] = await db.query<{ pan_lookup: string }>('select pan_lookup from credentials where id = $1', [wallet.wallet.credential_id]);
    await db.query("update cards set status = 'blocked' where pan_lookup = $1", [row!.pan_lookup]);
    try {
      expect(await wallet.credentialStatus()).toMatchObject({ status: 'blocked', code: 'card_blocked', pin_tries_left: null });
    } finally {
      await db.query("update cards set status = 'active' where pan_lookup = $1", [row!.pan_lookup]);
    }
    expect(await wallet.credentialStatus()).toMatchObject({ status: 'active' });
  });

  it('answers credential_unknown when the issuer registered the credential for another device key, or not at all', async () => {
    const cardNumber = '4242424242424242';
    const wallet = await kessai.payer(cardNumber);
    const db = bankOf(cardNumber).settlement.config.db;
    const id = wallet.wallet.credential_id;
    const [row] = await db.query<{ device_jkt: string }>('select device_jkt from credentials where id = $1', [id]);
    await db.query('update credentials set device_jkt = $2 where id = $1', [id, 'A'.repeat(43)]);
    expect(await codeOf(wallet.credentialStatus())).toBe('credential_unknown');
    const elsewhere = `cred_${'0'.repeat(26)}`;
    await db.query('update credentials set id = $2, device_jkt = $3 where id = $1', [id, elsewhere, row!.device_jkt]);
    try {
      const answer = await codeOf(wallet.credentialStatus());
      expect(answer).toBe('credential_unknown');
    } finally {
      await db.query('update credentials set id = $1 where id = $2', [id, elsewhere]);
    }
    expect(await wallet.credentialStatus()).toMatchObject({ status: 'active' });
  });
});
