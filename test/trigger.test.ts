/** Issue 14 item 5: `kessai trigger <event>` drives a real purchase and the broker emits the mapped event types. */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveWallet } from '@kessai/wallet';
import { trigger, triggerEvents, type TriggerName } from '../apps/cli/src/trigger.ts';
import { runKessaiProcess } from './support/cli.ts';
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

  it('runs as `kessai trigger` with the key and PIN from the environment and a wallet folder; an unknown name fails', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'kessai-trigger-'));
    try {
      const storage = path.join(dir, 'wallet');
      await mkdir(storage, { mode: 0o700 });
      await saveWallet(storage, env.wallet.wallet, env.system.pki.caCertPem);
      const envVars = { KESSAI_API_KEY: env.system.merchant.apiKey, KESSAI_TRIGGER_PIN: demoCard(cardNumber).pin, KESSAI_BROKER_URL: env.system.auth.url };
      const ran = await runKessaiProcess(['trigger', 'payment.approved', '--storage', storage], envVars);
      expect(ran.stderr).toBe('');
      expect(ran.code).toBe(0);
      expect(ran.stdout).toMatch(/^pr_\S+: approved; events: payment_request.approved$/m);
      const unknown = await runKessaiProcess(['trigger', 'payment.nothing', '--storage', storage], envVars);
      expect(unknown.code).not.toBe(0);
      expect(unknown.stderr).toContain('unknown event payment.nothing');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
