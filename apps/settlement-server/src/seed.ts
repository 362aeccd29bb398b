/**
 * Demo issuer data: test cards with known PINs and balances, funded from the issuer's funding
 * account by ordinary ledger transfers, and credit cards granted their limit by a credit line.
 * Runs only on an empty account store; cards are stored sealed (card-vault.ts).
 */
import { newId, Secret } from '@kessai/protocol';
import { insertCard } from './card-vault.ts';
import type { SettlementConfig } from './config.ts';
import { openCreditLine } from './credit-line.ts';
import { createAccount, createTransfers } from './ledger/store.ts';
import { pinHashCostDefault, pinVerifier } from './pin.ts';

export async function seedCards(config: SettlementConfig): Promise<number> {
  const [{ count } = { count: 0n }] = await config.db.query<{ count: bigint }>('select count(*)::int8 as count from cards');
  if (BigInt(count) > 0n || config.seedCards.length === 0) return 0;
  const verifiers = await Promise.all(config.seedCards.map((card) => pinVerifier(new Secret(card.pin), config.pinHash ?? pinHashCostDefault)));
  await config.db.transaction(async (tx) => {
    const funding = new Map<string, string>();
    for (const [index, card] of config.seedCards.entries()) {
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
      await insertCard(tx, config.cardKeys, { cardNumber: card.cardNumber, holderName: card.holderName, expiry: card.expiry, accountId, status: card.status, pinVerifier: verifiers[index]!, creditLineAccountId: lineAccountId });
    }
  });
  return config.seedCards.length;
}
