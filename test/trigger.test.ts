/** Issue 14 item 5: `kessai trigger <event>` drives a real purchase and the broker emits the mapped event types. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trigger, triggerEvents, type TriggerName } from '../apps/cli/src/trigger.ts';
import { startWithPayer } from './support/payer.ts';
import { demoCard, waitFor } from './support/system.ts';

const cardNumber = '4000056655665556';
let env: Awaited<ReturnType<typeof startWithPayer>>;

beforeAll(async () => {
  env = await startWithPayer(cardNumber, { expiryIntervalMs: 500 });
}, 120_000);
afterAll(async () => {
  await env?.stop();
});

async function eventTypes(id: string): Promise<string[]> {
  const rows = await env.system.auth.db.query<{ event_type: string }>('select event_type from webhook_outbox where payment_request_id = $1 order by created_at, id', [id]);
  return rows.map((r) => r.event_type);
}

describe('kessai trigger', () => {
  it.each(Object.keys(triggerEvents) as TriggerName[])('%s emits its documented event types', async (name) => {
    const lines: string[] = [];
    const view = await trigger(name, {
      brokerUrl: env.system.auth.url,
      apiKey: env.system.merchant.apiKey,
      caCertPem: env.system.pki.caCertPem,
      wallet: env.wallet.wallet,
      pin: demoCard(cardNumber).pin,
      print: (l) => lines.push(l),
    });
    expect(lines[0]).toBe(`created ${view.id}`);
    const expected: readonly string[] = triggerEvents[name];
    const types = await waitFor(`${name} events`, async () => {
      const found = await eventTypes(view.id);
      return expected.every((t) => found.includes(t)) ? found : undefined;
    });
    expect(types).toEqual(expected);
  }, 90_000);
});
