/**
 * Demo issuer data: test cards with known PINs and balances, funded from the issuer's funding
 * account by ordinary ledger transfers, credit cards granted their limit by a credit line, and the
 * demo merchants onboarded. Cards are seeded only into an empty account store and stored sealed
 * (card-vault.ts) with keyed PIN verification values (pin.ts); a store seeded by an earlier
 * version (argon2id verifiers) has its demo cards' verifiers re-derived.
 */
import { newId, Secret } from '@kessai/protocol';
import { insertCard, panLookup } from './card-vault.ts';
import type { SettlementConfig } from './config.ts';
import { openCreditLine } from './credit-line.ts';
import { createAccount, createTransfers } from './ledger/store.ts';
import { onboardMerchant } from './merchants.ts';
import { isLegacyVerifier } from './pin.ts';

export async function seedCards(config: SettlementConfig): Promise<number> {
  for (const merchant of config.merchants ?? []) await onboardMerchant(config.db, merchant);
  const [{ count } = { count: 0n }] = await config.db.query<{ count: bigint }>('select count(*)::int8 as count from cards');
  if (BigInt(count) > 0n) {
    await rederiveLegacyVerifiers(config);
    return 0;
  }
  if (config.seedCards.length === 0) return 0;
  await config.db.transaction(async (tx) => {
    const funding = new Map<string, string>();
    for (const card of config.seedCards) {
      let fundingAccountId = funding.get(card.currency);
      if (!fundingAccountId) {
        fundingAccountId = await createAccount(tx, 'issuer_funding', card.currency);
        funding.set(card.currency, fundingAccountId);
      }
      const accountId = await createAccount(tx, 'cardholder', card.currency, { debitsMustNotExceedCredits: true });
      if (card.balanceMinor > 0n) {
        const [funded] = await createTransfers(tx, [{ id: newId('xfer'), kind: 'single', debitAccountId: fundingAccountId, creditAccountId: accountId, amount: card.balanceMinor, currency: card.currency }], new Date());
        if (funded !== 'ok') throw new Error(`funding a seed card failed: ${funded}`);
      }
      const lineAccountId = card.creditLimitMinor === undefined ? null : await openCreditLine(tx, accountId, card.currency, card.creditLimitMinor, new Date());
      await insertCard(tx, config.cardKeys, { cardNumber: card.cardNumber, holderName: card.holderName, expiry: card.expiry, accountId, status: card.status, pin: new Secret(card.pin), creditLineAccountId: lineAccountId });
    }
  });
  return config.seedCards.length;
}

/** Migration 0008's other half: the keyed verification value of each demo card still holding an argon2id verifier. */
async function rederiveLegacyVerifiers(config: SettlementConfig): Promise<void> {
  const rows = await config.db.query<{ pan_lookup: string; pin_verifier: string }>('select pan_lookup, pin_verifier from cards');
  const legacy = rows.filter((row) => isLegacyVerifier(row.pin_verifier));
  for (const row of legacy) {
    const seed = config.seedCards.find((card) => panLookup(config.cardKeys, card.cardNumber) === row.pan_lookup);
    if (!seed) throw new Error('a card holds a PIN verifier of an earlier version and is no demo card: re-issue it (docs/threat-model.md, keyed PIN verification)');
    await config.db.query('update cards set pin_verifier = $2 where pan_lookup = $1', [row.pan_lookup, config.cardKeys.pin.derive(row.pan_lookup, new Secret(seed.pin))]);
  }
  if (legacy.length > 0) config.logger.info({ cards: legacy.length }, 'argon2id PIN verifiers re-derived as keyed verification values');
}
