/**
 * The payer's side of a test: the ledger account behind a demo card, and a payment request the
 * merchant created and the payer's terminal approved.
 */
import { expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import { MerchantClient, type WalletClient } from '@kessai/sdk';
import { accountIdOfCard, readAccount } from '@kessai/settlement-server';
import type { KessaiSystem } from '@kessai/cli/system';
import { demoCard, enroll, startTestSystem } from './system.ts';

/** A fresh Idempotency-Key. */
export const idempotencyKey = () => randomBytes(12).toString('hex');

/** The balances of a demo card's account at its issuer. */
export async function cardAccount(system: KessaiSystem, cardNumber: string) {
  const settlement = system.settlements.find((s) => s.issuer.id === demoCard(cardNumber).issuer.id)!;
  const accountId = await accountIdOfCard(settlement.config.db, settlement.config.cardKeys, cardNumber);
  return readAccount(settlement.config.db, accountId!);
}

/** A one-line payment request for `amount` yen, approved by `wallet` with its card's PIN; returns its id. */
export async function approvedRequest(merchant: MerchantClient, wallet: WalletClient, cardNumber: string, amount: bigint): Promise<string> {
  const created = await merchant.createPaymentRequest({ order_id: `o-${idempotencyKey()}`, currency: 'JPY', amount_minor: amount.toString(), line_items: [{ description: 'Chawan', quantity: 1, unit_price_minor: amount.toString() }] }, idempotencyKey());
  const outcome = await wallet.approve(await wallet.fetchRequest(created.id), demoCard(cardNumber).pin);
  expect(outcome.status).toBe('approved');
  return created.id;
}

/** A whole system, the demo merchant's client and one enrolled payer for a test file; stop() closes all three. */
export async function startWithPayer(cardNumber: string, options?: Parameters<typeof startTestSystem>[0]) {
  const system = await startTestSystem(options);
  const merchant = new MerchantClient({ baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  const wallet = await enroll(system, cardNumber);
  return {
    system,
    merchant,
    wallet,
    async stop() {
      await wallet.close();
      await merchant.close();
      await system.stop();
    },
  };
}
