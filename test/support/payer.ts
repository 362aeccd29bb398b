/**
 * The payer's side of a test: the ledger account behind a demo card, a payment request the
 * merchant created and the payer's terminal approved, and a system with the demo merchant's client
 * and enrolled payers, started once for a test file.
 */
import { afterAll, beforeAll, expect } from 'vitest';
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

/** A whole system and the demo merchant's client; payer() enrolls a wallet; stop() closes them all. */
export async function startWithMerchant(options?: Parameters<typeof startTestSystem>[0]) {
  const system = await startTestSystem(options);
  // No automatic retries: these tests check what one call answers (the SDK's retries: sdk-client.test.ts).
  const merchant = new MerchantClient({ maxNetworkRetries: 0, baseUrl: system.auth.url, apiKey: system.merchant.apiKey, caCertPem: system.pki.caCertPem });
  const wallets: WalletClient[] = [];
  return {
    system,
    merchant,
    /** A wallet enrolled with `cardNumber`, closed by stop(). */
    async payer(cardNumber: string): Promise<WalletClient> {
      const wallet = await enroll(system, cardNumber);
      wallets.push(wallet);
      return wallet;
    },
    async stop() {
      for (const wallet of wallets) await wallet.close();
      await merchant.close();
      await system.stop();
    },
  };
}

/** A whole system, the demo merchant's client and one enrolled payer for a test file; stop() closes all three. */
export async function startWithPayer(cardNumber: string, options?: Parameters<typeof startTestSystem>[0]) {
  const { system, merchant, payer, stop } = await startWithMerchant(options);
  return { system, merchant, wallet: await payer(cardNumber), stop };
}

/** startWithMerchant for the whole test file: started in beforeAll, stopped in afterAll; read it inside the tests. */
export function merchantForFile(options?: Parameters<typeof startTestSystem>[0]) {
  return forFile(() => startWithMerchant(options));
}

/**
 * startWithPayer for the whole test file: started in beforeAll, stopped in afterAll; read it inside
 * the tests. approved(amount) is approvedRequest and account() is cardAccount, for this payer's card.
 */
export function payerForFile(cardNumber: string, options?: Parameters<typeof startTestSystem>[0]) {
  return forFile(async () => {
    const started = await startWithPayer(cardNumber, options);
    return {
      ...started,
      approved: (amount: bigint) => approvedRequest(started.merchant, started.wallet, cardNumber, amount),
      account: () => cardAccount(started.system, cardNumber),
    };
  });
}

function forFile<T extends { stop(): Promise<void> }>(start: () => Promise<T>): T {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  });
  afterAll(() => started?.stop());
  return new Proxy({} as T, {
    get(_, key) {
      if (!started) throw new Error('the test system starts in beforeAll: read it inside a test or a hook');
      return started[key as keyof T];
    },
  });
}
