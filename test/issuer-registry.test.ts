/**
 * The issuer's own records (DESIGN.md §1): revocation ends in its credential registry whoever
 * revokes — the payer with the recovery code and the broker's operator (both relayed by the
 * authentication server, again by its worker until the issuer acknowledges), or the issuer's own
 * operator; PIN verification values of an earlier version re-derived at start; and operator unlocks
 * audited under the operator's identity.
 */
import { describe, expect, it } from 'vitest';
import { Secret } from '@kessai/protocol';
import { WalletClient } from '@kessai/sdk';
import { importDemoCards, panLookup } from '@kessai/settlement-server';
import { operatorIdentity } from '@kessai/service';
import { callJson, demoCard, waitFor } from './support/system.ts';
import { idempotencyKey, merchantForFile } from './support/payer.ts';
import { codeOf } from './support/errors.ts';

/** While true, the issuers answer a relayed revocation 503 (an outage of that one route). */
let revocationsRefused = false;

const kessai = merchantForFile({
  beforeListen(role, app) {
    if (!role.startsWith('settlement-')) return;
    app.addHook('onRequest', async (request, reply) => {
      if (revocationsRefused && request.url.endsWith('/revoke') && request.url.startsWith('/internal/')) return reply.code(503).type('application/problem+json').send({ type: 'urn:kessai:error:ledger_busy', title: 'unavailable', status: 503, code: 'ledger_busy' });
      return undefined;
    });
  },
});

const bankOf = (cardNumber: string) => kessai.system.settlements.find((s) => s.issuer.id === demoCard(cardNumber).issuer.id)!;

async function registryStatus(cardNumber: string, credentialId: string): Promise<{ status: string; revoked_by: string | null } | undefined> {
  const [row] = await bankOf(cardNumber).config.db.query<{ status: string; revoked_by: string | null }>('select status, revoked_by from credentials where id = $1', [credentialId]);
  return row;
}

async function payOnce(cardNumber: string, wallet: Awaited<ReturnType<typeof kessai.payer>>) {
  const created = await kessai.merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: '300', line_items: [{ description: 'Mochi', quantity: 1, unit_price_minor: '300' }] }, idempotencyKey());
  return wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin);
}

describe('revocation ends in the issuer’s registry', () => {
  it('relays the broker operator’s revocation to the issuer, which records it', async () => {
    const card = '5555555555554444';
    const wallet = await kessai.payer(card);
    expect(await registryStatus(card, wallet.wallet.credential_id)).toMatchObject({ status: 'active', revoked_by: null });
    const revoked = await callJson(kessai.system, 'POST', `${kessai.system.auth.url}/admin/v1/credentials/${wallet.wallet.credential_id}/revoke`, undefined, kessai.system.operatorHeaders(kessai.system.auth.url));
    expect(revoked.status).toBe(200);
    expect(await registryStatus(card, wallet.wallet.credential_id)).toMatchObject({ status: 'revoked', revoked_by: 'operator' });
  });

  it('lets the issuer’s own operator revoke in its registry, and then refuses the credential with credential_revoked though the broker still holds it active', async () => {
    const card = '4242424242424242';
    const wallet = await kessai.payer(card);
    expect((await payOnce(card, wallet)).status).toBe('approved');
    const bank = bankOf(card);
    const revoked = await callJson(kessai.system, 'POST', `${bank.url}/admin/v1/credentials/${wallet.wallet.credential_id}/revoke`, undefined, kessai.system.operatorHeaders(bank.url));
    expect(revoked.body).toMatchObject({ credential_id: wallet.wallet.credential_id, status: 'revoked', revoked_by: 'issuer_operator' });
    const [atBroker] = await kessai.system.auth.db.query<{ status: string }>('select status from credentials where id = $1', [wallet.wallet.credential_id]);
    expect(atBroker!.status).toBe('active');
    expect(await codeOf(payOnce(card, wallet))).toBe('credential_revoked');
  });

  it('relays a revocation again, from the worker, when the issuer could not take it at once', async () => {
    const card = '5425233430109903';
    const entry = demoCard(card);
    const { wallet, recoveryCode } = await WalletClient.enrollment({ authBaseUrl: kessai.system.auth.url, caCertPem: kessai.system.pki.caCertPem, directoryKey: kessai.system.directoryKey.publicJwk, holderName: entry.holderName, cardNumber: entry.cardNumber, expiry: entry.expiry, pin: entry.pin });
    revocationsRefused = true;
    try {
      const revoked = await callJson(kessai.system, 'POST', `${kessai.system.auth.url}/v1/credentials/${wallet.credential_id}/revoke`, { recovery_code: recoveryCode.expose() });
      expect(revoked.status).toBe(200); // the payer is told at once: the broker refuses the credential from now on
      expect(await registryStatus(card, wallet.credential_id)).toMatchObject({ status: 'active' });
    } finally {
      revocationsRefused = false;
    }
    await waitFor('the relayed revocation', async () => ((await registryStatus(card, wallet.credential_id))?.status === 'revoked' ? true : undefined), 20_000);
    expect(await registryStatus(card, wallet.credential_id)).toMatchObject({ status: 'revoked', revoked_by: 'payer' });
  });
});

describe('keyed PIN verification and operator unlocks at the issuer', () => {
  it('re-derives a PIN verifier of an earlier version (argon2id) as a keyed value when the card is imported again (as kessai start does at every start), and the card pays with its PIN', async () => {
    const card = '4000056655665556';
    const bank = bankOf(card);
    const lookup = panLookup(bank.config.cardKeys, card);
    await bank.config.db.query('update cards set pin_verifier = $2 where pan_lookup = $1', [lookup, '$argon2id$v=19$m=19456,t=2,p=1$bGVnYWN5c2FsdA$bGVnYWN5aGFzaGxlZ2FjeWhhc2g']);
    const { issuer: _issuer, ...demo } = demoCard(card);
    expect(await importDemoCards(bank.config.db, bank.config.cardKeys, [demo])).toBe(0); // unchanged: the same card, its verifier re-derived
    const [row] = await bank.config.db.query<{ pin_verifier: string }>('select pin_verifier from cards where pan_lookup = $1', [lookup]);
    expect(row!.pin_verifier).toMatch(/^pvv1\./);
    expect(bank.config.cardKeys.pin.matches(row!.pin_verifier, lookup, new Secret(demoCard(card).pin))).toBe(true);
    const wallet = await kessai.payer(card);
    expect((await payOnce(card, wallet)).status).toBe('approved');
  });

  it('audits an unlock under the identity of the operator token that made it', async () => {
    const card = '4000056655665556';
    const bank = bankOf(card);
    const [{ account_id: accountId } = { account_id: '' }] = await bank.config.db.query<{ account_id: string }>('select account_id from cards where pan_lookup = $1', [panLookup(bank.config.cardKeys, card)]);
    const unlocked = await callJson(kessai.system, 'POST', `${bank.url}/admin/v1/cards/unlock`, { account_id: accountId }, kessai.system.operatorHeaders(bank.url));
    expect(unlocked.status).toBe(200);
    const identity = operatorIdentity(kessai.system.operatorTokenOf(bank.url));
    const rows = await waitFor('the unlock in the audit log', async () => {
      const found = await bank.config.db.query<{ actor: string; action: string; resource: string }>("select actor, action, resource from audit_log where action = 'card.unlocked'");
      return found.length > 0 ? found : undefined;
    });
    expect(rows[0]).toMatchObject({ actor: identity, action: 'card.unlocked', resource: accountId });
    expect(identity).toMatch(/^operator:[A-Za-z0-9_-]{12}$/);
    expect(identity).not.toContain(kessai.system.operatorTokenOf(bank.url).slice(0, 12));
  });
});
