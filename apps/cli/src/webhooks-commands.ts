/**
 * `kessai webhooks list|resend`: the operator's view of the authentication server's webhook
 * outbox (`GET /admin/v1/webhook-deliveries`) — `--state dead` for the events whose every attempt
 * failed — and resend of one event (`POST /admin/v1/webhook-deliveries/:id/resend`): the same id
 * and body, queued again for a fresh retry schedule. Uses the authentication server's operator token.
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { idPattern, KessaiError, limits } from '@kessai/protocol';
import { defaultRoleUrl, operatorCall } from './operator.ts';

const states = ['pending', 'delivered', 'dead'] as const;
/** Read loosely (a newer server may add fields); only what is printed is required. */
const delivery = z.looseObject({
  id: z.string(),
  merchant_id: z.string(),
  event_type: z.string(),
  payment_request_id: z.string().nullable(),
  state: z.string(),
  attempts: z.number(),
  last_status: z.number().nullable(),
  next_attempt_at: z.string().nullable(),
  created_at: z.string(),
});
const deliveryPage = z.looseObject({ items: z.array(delivery).max(limits.listPageMax), has_more: z.boolean() });

interface WebhooksOptions {
  dataDir: string;
  url?: string;
}

const target = (options: WebhooksOptions) => ({ dataDir: options.dataDir, role: 'auth' as const, url: options.url ?? defaultRoleUrl('auth') });

function line(d: z.infer<typeof delivery>): string {
  const last = d.last_status === null ? '—' : d.last_status === 0 ? 'no answer' : String(d.last_status);
  const next = d.state === 'pending' && d.next_attempt_at ? `  next ${d.next_attempt_at}` : '';
  return `  ${d.id}  ${d.state.padEnd(9)}  ${d.event_type}  ${d.payment_request_id ?? '—'}  ${d.merchant_id}  attempts ${d.attempts}  last ${last}${next}\n`;
}

export function registerWebhooksCommands(program: Command, dataDirDefault: string): Command {
  const webhooks = program.command('webhooks').description('operator: webhook events at the authentication server (list, resend)');
  const withOptions = (command: Command) =>
    command
      .option('--data-dir <dir>', 'the data folder of the running system (CA and operator tokens)', dataDirDefault)
      .option('--url <url>', 'the authentication server (default: its port under kessai start)');
  const fail = (command: Command, err: unknown) => {
    if (err instanceof KessaiError) command.error(`kessai webhooks: ${err.message} (${err.code})`, { exitCode: 1, code: `kessai.${err.code}` });
    throw err;
  };
  withOptions(webhooks.command('list').description('list webhook events, newest first; --state dead lists the dead letters'))
    .option('--state <state>', `only events in this state (${states.join(', ')})`)
    .option('--merchant <mer_…>', 'only this merchant’s events')
    .option('--limit <n>', `at most this many (1–${limits.listPageMax})`, String(limits.listPageMax))
    .action(async (options: WebhooksOptions & { state?: string; merchant?: string; limit: string }, command: Command) => {
      try {
        if (options.state !== undefined && !(states as readonly string[]).includes(options.state)) throw new KessaiError('validation_failed', `--state is one of ${states.join(', ')}`);
        if (options.merchant !== undefined && !idPattern('mer').test(options.merchant)) throw new KessaiError('validation_failed', '--merchant is not a merchant id (mer_…)');
        const query = new URLSearchParams({ limit: options.limit, ...(options.state ? { state: options.state } : {}), ...(options.merchant ? { merchant_id: options.merchant } : {}) });
        const page = await operatorCall(target(options), 'GET', `/admin/v1/webhook-deliveries?${query}`, deliveryPage);
        for (const d of page.items) process.stdout.write(line(d));
        if (page.items.length === 0) process.stdout.write(`no webhook events${options.state ? ` are ${options.state}` : ''}\n`);
        else if (page.has_more) process.stdout.write('  … more (raise --limit or filter with --state)\n');
      } catch (err) {
        fail(command, err);
      }
    });
  withOptions(webhooks.command('resend').description('queue an event again (same id and body) for a fresh retry schedule'))
    .argument('<event-id>', 'the event id (evt_…)')
    .action(async (eventId: string, options: WebhooksOptions, command: Command) => {
      try {
        if (!idPattern('evt').test(eventId)) throw new KessaiError('validation_failed', `${eventId.slice(0, 80)} is not an event id (evt_…)`);
        const resent = await operatorCall(target(options), 'POST', `/admin/v1/webhook-deliveries/${eventId}/resend`, delivery);
        process.stdout.write(`resent: ${resent.id} (${resent.event_type}) is ${resent.state}, next attempt ${resent.next_attempt_at ?? 'now'}\n`);
      } catch (err) {
        fail(command, err);
      }
    });
  return webhooks;
}
