/**
 * What the separate-hosts test runs inside a host (`node --import tsx test/support/host-tasks.ts
 * <task>`, under `ip netns exec`), each configured by its environment and reading only its own
 * host's folder. Each prints JSON lines on stdout, never personal data:
 *   get-json           URL, CA_FILE, TOKEN_FILE?      an operator's GET: {"status","body"}
 *   publish-directory  DATA_DIR, CA_FILE, ISSUER, ISSUER_URL
 *                      the scheme operator signs the directory from the issuer's published keys
 *   pay                AUTH_URL, SHOP_URL, CA_FILE, DIRECTORY_KEY_FILE, CARD_FILE
 *                      the payer: enroll (301–305), check out at the shop (401–402), approve with
 *                      the PIN (403–404), then watch the order until the shop captured it (408–409)
 */
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { z } from 'zod';
import type { JWK } from '@kessai/protocol';
import { publishDirectoryFile } from '@kessai/cli/directory';
import type { DemoIssuer } from '@kessai/cli/demo-data';
import { WalletClient } from '@kessai/sdk';

const orderWaitMs = 30_000;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new TypeError(`host-tasks: ${name} is not set`);
  return value;
}

const print = (line: Record<string, unknown>) => console.log(JSON.stringify(line));

/** A JSON call trusting only the host's CA bundle. */
async function callJson(agent: Agent, method: 'GET' | 'POST', url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const response = await request(url, {
    method,
    dispatcher: agent,
    headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.body.text();
  return { status: response.statusCode, body: text ? (JSON.parse(text) as unknown) : undefined };
}

async function getJson(): Promise<void> {
  const agent = new Agent({ connect: { ca: await readFile(env('CA_FILE'), 'utf8') } });
  try {
    const token = process.env.TOKEN_FILE ? (await readFile(process.env.TOKEN_FILE, 'utf8')).trim() : undefined;
    print(await callJson(agent, 'GET', env('URL'), undefined, token ? { authorization: `Bearer ${token}` } : {}));
  } finally {
    await agent.close();
  }
}

async function publishDirectory(): Promise<void> {
  const issuer = JSON.parse(env('ISSUER')) as Omit<DemoIssuer, 'cards'>;
  const key = await publishDirectoryFile(env('DATA_DIR'), await readFile(env('CA_FILE'), 'utf8'), [{ issuer: { ...issuer, cards: [] }, url: env('ISSUER_URL') }]);
  print({ directoryKeyFile: key.file });
}

const card = z.strictObject({ holderName: z.string(), cardNumber: z.string(), expiry: z.string(), pin: z.string() });
const products = z.object({ products: z.array(z.object({ id: z.string() }).loose()).min(1) }).loose();
const created = z.object({ id: z.string() }).loose();
const checkedOut = z.object({ order_id: z.string(), payment_request_id: z.string() }).loose();
const order = z.object({ status: z.string(), amount_minor: z.string(), captured_minor: z.string() }).loose();

/** Asserts a 2xx answer and parses it; the failure names the step and status, never a body with personal data. */
function expectOk<T>(step: string, answer: { status: number; body: unknown }, schema: z.ZodType<T>): T {
  if (answer.status < 200 || answer.status > 299) throw new Error(`${step}: HTTP ${answer.status} ${JSON.stringify((answer.body as { code?: string } | undefined)?.code ?? null)}`);
  return schema.parse(answer.body);
}

async function pay(): Promise<void> {
  const caCertPem = await readFile(env('CA_FILE'), 'utf8');
  const directoryKey = JSON.parse(await readFile(env('DIRECTORY_KEY_FILE'), 'utf8')) as JWK;
  const { holderName, cardNumber, expiry, pin } = card.parse(JSON.parse(await readFile(env('CARD_FILE'), 'utf8')));
  const shopUrl = env('SHOP_URL');
  const agent = new Agent({ connect: { ca: caCertPem } });
  const wallet = new WalletClient(await WalletClient.enroll({ authBaseUrl: env('AUTH_URL'), caCertPem, directoryKey, holderName, cardNumber, expiry, pin }), { caCertPem });
  const abort = new AbortController();
  try {
    print({ step: 'enrolled', credential_id: wallet.wallet.credential_id, issuer: wallet.wallet.issuer.id });

    const stream = wallet.listen(abort.signal);
    const pushed = stream.next();
    const [product] = expectOk('products', await callJson(agent, 'GET', `${shopUrl}/api/products`), products).products;
    const cart = expectOk('cart', await callJson(agent, 'POST', `${shopUrl}/api/carts`, {}), created);
    expectOk('add to cart', await callJson(agent, 'POST', `${shopUrl}/api/carts/${cart.id}/items`, { product_id: product!.id, quantity: 1 }), z.unknown());
    const checkout = expectOk('checkout', await callJson(agent, 'POST', `${shopUrl}/api/carts/${cart.id}/checkout`, { wallet_handle: wallet.wallet.credential_id }), checkedOut);
    print({ step: 'checked out', order_id: checkout.order_id, payment_request_id: checkout.payment_request_id });

    const request = (await pushed).value;
    if (!request) throw new Error('the event stream ended before the payment request was pushed');
    print({ step: 'pushed', payment_request_id: request.view.rid, merchant: request.view.merchant.name, amount_minor: request.view.amount_minor });
    const outcome = await wallet.approve(request, pin);
    print({ step: 'approved', status: outcome.status });

    const deadline = Date.now() + orderWaitMs;
    for (;;) {
      const current = expectOk('order', await callJson(agent, 'GET', `${shopUrl}/api/orders/${checkout.order_id}`), order);
      if (current.status === 'captured' || Date.now() > deadline) {
        print({ step: 'order', ...current });
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    abort.abort();
    await wallet.close();
    await agent.close();
  }
}

const tasks: Record<string, () => Promise<void>> = { 'get-json': getJson, 'publish-directory': publishDirectory, pay };
const task = tasks[process.argv[2] ?? ''];
if (!task) {
  console.error(`host-tasks: unknown task '${process.argv[2] ?? ''}' (${Object.keys(tasks).join(', ')})`);
  process.exit(2);
}
try {
  await task();
} catch (error) {
  print({ error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
  process.exitCode = 1;
}
