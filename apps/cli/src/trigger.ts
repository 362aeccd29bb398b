/**
 * `kessai trigger <event>`: drives one real purchase against a running system so that the broker
 * emits the named event (seen by `kessai listen` and the merchant's webhook receiver). The names
 * map to Kessai's event types (triggerEvents). The payment request is created with the merchant
 * key and addressed to an enrolled test wallet (its storage folder), which approves it with the PIN.
 */
import { randomBytes } from 'node:crypto';
import { limits, type Currency, type PaymentRequestView } from '@kessai/protocol';
import { MerchantClient, WalletClient, type StoredWallet } from '@kessai/sdk';

/** `kessai trigger` names (Stripe-like) → the event types Kessai emits for them, in order. */
export const triggerEvents = {
  'payment.approved': ['payment_request.approved'],
  'payment.declined': ['payment_request.cancelled'],
  'payment.refunded': ['payment_request.approved', 'payment_request.captured', 'payment_request.refunded'],
  'payment.expired': ['payment_request.expired'],
} as const;
export type TriggerName = keyof typeof triggerEvents;

export interface TriggerOptions {
  brokerUrl: string;
  apiKey: string;
  caCertPem: string;
  wallet: StoredWallet;
  pin: string;
  currency?: Currency;
  amountMinor?: bigint;
  print: (line: string) => void;
}

const key = () => randomBytes(12).toString('hex');

export async function trigger(name: TriggerName, options: TriggerOptions): Promise<PaymentRequestView> {
  const merchant = new MerchantClient({
    baseUrl: options.brokerUrl,
    apiKey: options.apiKey,
    caCertPem: options.caCertPem,
  });
  const wallet = new WalletClient(options.wallet, { caCertPem: options.caCertPem });
  try {
    const amount = (options.amountMinor ?? 1200n).toString();
    const created = await merchant.createPaymentRequest(
      {
        order_id: `trigger-${key()}`,
        currency: options.currency ?? 'JPY',
        amount_minor: amount,
        line_items: [{ description: `kessai trigger ${name}`, quantity: 1, unit_price_minor: amount }],
        wallet_handle: options.wallet.credential_id,
        ...(name === 'payment.expired' ? { expires_in_seconds: limits.paymentRequestTtlMsMin / 1000 } : {}),
      },
      key(),
    );
    options.print(`created ${created.id}`);
    if (name === 'payment.expired') return await waitForStatus(merchant, created.id, 'expired', options.print);
    const request = await wallet.fetchRequest(created.id);
    if (name === 'payment.declined') {
      const outcome = await wallet.decline(request);
      options.print(`declined by the payer: ${created.id} (${outcome.status})`);
      return merchant.getPaymentRequest(created.id);
    }
    const outcome = await wallet.approve(request, options.pin);
    options.print(`approved: ${created.id} (${outcome.status})`);
    if (outcome.status !== 'approved')
      throw new Error(`kessai trigger: the payment was not approved (${outcome.status})`);
    if (name === 'payment.approved') return merchant.getPaymentRequest(created.id);
    await merchant.capture(created.id, {}, key());
    options.print(`captured: ${created.id}`);
    const refund = await merchant.refund(created.id, BigInt(amount), key());
    options.print(`refunded: ${created.id} (${refund.id})`);
    return merchant.getPaymentRequest(created.id);
  } finally {
    await wallet.close();
    await merchant.close();
  }
}

async function waitForStatus(
  merchant: MerchantClient,
  id: string,
  status: string,
  print: (line: string) => void,
): Promise<PaymentRequestView> {
  print(`waiting for ${id} to expire (${limits.paymentRequestTtlMsMin / 1000} s)…`);
  const until = Date.now() + limits.paymentRequestTtlMsMin + 120_000;
  while (Date.now() < until) {
    const view = await merchant.getPaymentRequest(id);
    if (view.status === status) return view;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`kessai trigger: ${id} did not become ${status}`);
}
