/**
 * `kessai demo`: a fresh system in a temporary folder, and one whole purchase in each conversion
 * mode, printed step by step with the patent's numbers. Exits non-zero unless the shop ends with
 * a captured, verified authorization and the ledger moved by exactly the amount.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { authorizationPayload, formatAmount, verifyJson, typ, KeyRing, keyEntryFromJwk, type JWK, limits } from '@kessai/protocol';
import { WalletClient } from '@kessai/sdk';
import { accountIdOfCard, readAccount } from '@kessai/settlement-server';
import type { Db } from '@kessai/service';
import { demoIssuers } from './demo-data.ts';
import { startSystem, type KessaiSystem } from './system.ts';

const say = (step: string, text: string) => console.log(`  [${step}] ${text}`);

async function json(system: KessaiSystem, method: 'GET' | 'POST', url: string, body?: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any -- demo reads a few fields of the shop's JSON
  const agent = new Agent({ connect: { ca: system.pki.caCertPem } });
  try {
    const response = await request(url, { method, dispatcher: agent, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
    const text = await response.body.text();
    if (response.statusCode >= 400) throw new Error(`${method} ${url} answered ${response.statusCode}: ${text}`);
    return JSON.parse(text);
  } finally {
    await agent.close();
  }
}

async function purchase(system: KessaiSystem, cardNumber: string): Promise<void> {
  const issuer = demoIssuers.find((i) => i.cards.some((c) => c.cardNumber === cardNumber))!;
  const card = issuer.cards.find((c) => c.cardNumber === cardNumber)!;
  const settlement = system.settlements.find((s) => s.issuer.id === issuer.id)!;
  console.log(`\n${issuer.name} — ${issuer.conversionMode === 'reseal' ? 're-seal mode (embodiment 1)' : 'pass-through mode (embodiment 2)'}`);

  say('301-302', 'the terminal creates an ES256 device key on its removable storage');
  say('303', `it finds ${issuer.name} in the signed directory and sends ${issuer.conversionMode === 'reseal' ? `the holder name, card …${card.cardNumber.slice(-4)} and expiry over TLS` : 'the card data sealed for the issuer'}, the device public key and the PIN encrypted to the issuer`);
  const stored = await WalletClient.enroll({ authBaseUrl: system.auth.url, caCertPem: system.pki.caCertPem, directoryKey: system.directoryKey.publicJwk, holderName: card.holderName, cardNumber: card.cardNumber, expiry: card.expiry, pin: card.pin });
  say('304', `${issuer.name} verified the card and PIN and registered the credential; it is sealed with ${stored.issuer.conversion_mode === 'reseal' ? 'cipher 1, the authentication server\'s key' : "cipher 2, the issuer's key, by the terminal"}`);
  say('305', `the terminal stores the sealed credential ${stored.credential_id}; the server keeps only that record`);
  const wallet = new WalletClient(stored, { caCertPem: system.pki.caCertPem });

  const accountId = (await accountIdOfCard(settlement.config.db, settlement.config.cardKeys, card.cardNumber)) ?? '';
  const before = await readAccount(settlement.config.db, accountId);
  const merchantBefore = await merchantPosted(settlement.config.db, system.merchant.merchantId);

  const abort = new AbortController();
  const pushed = wallet.listen(abort.signal).next();
  const products = await json(system, 'GET', `${system.shop.url}/api/products`);
  const cart = await json(system, 'POST', `${system.shop.url}/api/carts`, {});
  await json(system, 'POST', `${system.shop.url}/api/carts/${cart.id}/items`, { product_id: products.products[0].id, quantity: 2 });
  await json(system, 'POST', `${system.shop.url}/api/carts/${cart.id}/items`, { product_id: products.products[4].id, quantity: 1 });
  say('401', `the payer checks out at ${'Kessai Tea House'} giving the wallet handle`);
  const order = await json(system, 'POST', `${system.shop.url}/api/carts/${cart.id}/checkout`, { wallet_handle: stored.credential_id });
  say('402', `the shop created payment request ${order.payment_request_id}`);
  const { value: incoming } = await pushed;
  abort.abort();
  if (!incoming) throw new Error('no payment request was pushed to the wallet');
  const view = incoming.view;
  const currency = view.currency;
  say('403', `pushed to the terminal, signed by the authentication server: ${view.merchant.name}`);
  for (const line of view.line_items) console.log(`          ${line.quantity} × ${line.description} @ ${formatAmount(BigInt(line.unit_price_minor), currency)}`);
  console.log(`          total ${formatAmount(BigInt(view.amount_minor), currency)}`);
  say('404', 'the payer confirms; the terminal signs the approval and encrypts the PIN to the issuer');
  const outcome = await wallet.approve(incoming, card.pin);
  say('405', issuer.conversionMode === 'reseal' ? 'the authentication server re-sealed the credential in memory with cipher 2' : 'the authentication server forwarded the sealed credential byte for byte');
  say('406', `${issuer.name} opened it, checked the PIN and the approval, and placed a hold`);
  if (outcome.status !== 'approved' || !outcome.authorization) throw new Error(`authorization ${outcome.status} ${outcome.decline_code ?? ''}`);
  const jwks = await json(system, 'GET', `${settlement.url}/.well-known/jwks.json`);
  const keys = new KeyRing(await Promise.all((jwks.keys as JWK[]).map((k) => keyEntryFromJwk(k))));
  const { value } = await verifyJson(outcome.authorization, (kid) => keys.byKid(kid)?.publicKey, typ.authorization, 'issuer_refused');
  const authorization = authorizationPayload.parse(value);
  say('407', `signed authorization ${authorization.aid} (${authorization.decision}) recorded; the shop is notified by a signed webhook`);

  const deadline = Date.now() + limits.demoCaptureWaitMs;
  let shopOrder = await json(system, 'GET', `${system.shop.url}/api/orders/${order.order_id}`);
  while (shopOrder.status !== 'captured' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    shopOrder = await json(system, 'GET', `${system.shop.url}/api/orders/${order.order_id}`);
  }
  if (shopOrder.status !== 'captured') throw new Error(`the shop's order is ${shopOrder.status}, not captured`);
  say('408', `the shop verified ${issuer.name}'s signature itself and fulfilled order ${order.order_id}`);
  const after = await readAccount(settlement.config.db, accountId);
  const moved = after.debitsPosted - before.debitsPosted;
  say('409', `captured ${formatAmount(BigInt(shopOrder.captured_minor), currency)}; the payer's posted debits moved by ${formatAmount(moved, currency)}, pending back to ${formatAmount(after.debitsPending, currency)}`);
  const merchantMoved = (await merchantPosted(settlement.config.db, system.merchant.merchantId)) - merchantBefore;
  say('409', `the shop's account at ${issuer.name} was credited ${formatAmount(merchantMoved, currency)}`);
  if (moved !== BigInt(view.amount_minor) || merchantMoved !== moved || after.debitsPending !== before.debitsPending) throw new Error('the ledger did not move by the amount');
  const final = await wallet.outcome(view.rid);
  say('408', `the terminal sees the final state: ${final.status}`);
  await wallet.close();
}

async function merchantPosted(db: Db, merchantId: string): Promise<bigint> {
  const [row] = await db.query<{ account_id: string }>("select account_id from merchant_accounts where merchant_id = $1 and currency = 'JPY'", [merchantId]);
  return row ? (await readAccount(db, row.account_id)).creditsPosted : 0n;
}

export async function demo(): Promise<number> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'kessai-demo-'));
  console.log(`Kessai demo: a fresh system in ${dataDir}`);
  let system: KessaiSystem | undefined;
  try {
    system = await startSystem({ dataDir, ports: { auth: 0, shop: 0, issuers: {} } });
    await purchase(system, '4242424242424242');
    await purchase(system, '5555555555554444');
    console.log('\nDemo passed: both purchases captured with verified authorizations, ledgers balanced.');
    return 0;
  } catch (err) {
    console.error(`\nDemo failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await system?.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
