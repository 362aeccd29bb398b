/**
 * `kessai listen --forward-to URL` (as `stripe listen`): reads the merchant's event stream
 * (`GET /v1/events/stream` with the merchant API key), signs each event again with a secret made
 * for this run (printed at start; the `Kessai-Signature: t=…,v1=…` scheme `verifyWebhookEvent`
 * checks) and POSTs it to URL, printing the event's type and id and the forward's HTTP status.
 * A dropped stream is opened again after the last event seen (`Last-Event-ID`); a forward gets limits.webhookTimeoutMs,
 * as a real delivery. Ends when `signal` aborts, or with an error when the broker refuses the key (401).
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { limits, signWebhook } from '@kessai/protocol';
import { trustedCas } from '@kessai/sdk';

export interface ListenOptions {
  brokerUrl: string;
  apiKey: string;
  forwardTo: string;
  /** Only these event types are forwarded (all when absent). */
  events?: readonly string[];
  /** The CA of the broker's certificate (public roots when absent). */
  caCertPem?: string;
  signal: AbortSignal;
  print: (line: string) => void;
  /** Wait before opening a dropped stream again. */
  reconnectMs?: number;
}

/** The broker refused the API key (401): listen ends with this error. */
class KeyRefused extends Error {}

/** A fresh `whsec_…` secret for one run of `kessai listen`. */
export function newListenSecret(): string {
  return `whsec_${randomBytes(24).toString('base64url')}`;
}

/**
 * The connections of one run: to the broker, and to the forward target — which may be a tunnel with
 * a publicly trusted certificate, so `--ca` is added to the public roots (undici's `ca` replaces them).
 */
export function listenAgent(caCertPem: string | undefined): Agent {
  return new Agent(caCertPem ? { connect: { ca: trustedCas(caCertPem, 'public') } } : {});
}

export async function listen(options: ListenOptions, secret: string): Promise<void> {
  const agent = listenAgent(options.caCertPem);
  // The last event seen, kept across connections — also one that dropped mid-stream — for Last-Event-ID.
  const position: { lastEventId?: string } = {};
  options.print(`Ready! Your webhook signing secret is ${secret} (^C to quit)`);
  try {
    while (!options.signal.aborted) {
      try {
        await readStream(options, agent, secret, position);
      } catch (err) {
        if (options.signal.aborted) break;
        if (err instanceof KeyRefused) throw err;
        options.print(`stream error: ${(err as Error).message}; reconnecting`);
      }
      if (!options.signal.aborted) await new Promise((resolve) => setTimeout(resolve, options.reconnectMs ?? 1000));
    }
  } finally {
    await agent.close();
  }
}

/** One connection to the stream, resumed after `position.lastEventId`, which it moves on at each event. */
async function readStream(
  options: ListenOptions,
  agent: Agent,
  secret: string,
  position: { lastEventId?: string },
): Promise<void> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.apiKey}`, accept: 'text/event-stream' };
  if (position.lastEventId) headers['last-event-id'] = position.lastEventId;
  const answer = await request(new URL('/v1/events/stream', options.brokerUrl), {
    dispatcher: agent,
    headers,
    signal: options.signal,
    bodyTimeout: 0,
  });
  if (answer.statusCode !== 200) {
    const text = await answer.body.text();
    const failed = new Error(`the broker answered ${answer.statusCode}: ${text.slice(0, 300)}`);
    // A refused key will not work on the next try either: stop rather than reconnect for ever.
    if (answer.statusCode === 401) throw new KeyRefused(failed.message);
    throw failed;
  }
  let queue: Promise<void> = Promise.resolve();
  const parser = createParser({
    onEvent: (message: EventSourceMessage) => {
      queue = queue
        .then(() => forward(options, agent, secret, message))
        .catch((err: unknown) => options.print(`forward failed: ${(err as Error).message}`));
      if (message.id) position.lastEventId = message.id;
    },
  });
  try {
    for await (const chunk of answer.body) parser.feed((chunk as Buffer).toString('utf8'));
  } catch (err) {
    if (!options.signal.aborted) throw err;
  } finally {
    // The events read are forwarded, in order, before the next connection forwards any.
    await queue;
  }
}

async function forward(
  options: ListenOptions,
  agent: Agent,
  secret: string,
  message: EventSourceMessage,
): Promise<void> {
  const type = message.event ?? 'message';
  if (options.events && !options.events.includes(type)) return;
  const signature = await signWebhook(secret, message.data, Math.floor(Date.now() / 1000));
  options.print(`--> ${type} [${message.id ?? '-'}]`);
  try {
    const answer = await request(options.forwardTo, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', 'kessai-signature': signature },
      body: message.data,
      // As a real delivery: no answer within webhookTimeoutMs is a failure (and Ctrl-C ends the wait).
      signal: AbortSignal.any([options.signal, AbortSignal.timeout(limits.webhookTimeoutMs)]),
    });
    await answer.body.dump();
    options.print(`<-- [${answer.statusCode}] POST ${options.forwardTo} [${message.id ?? '-'}]`);
  } catch (err) {
    options.print(`<-- [failed: ${(err as Error).message}] POST ${options.forwardTo} [${message.id ?? '-'}]`);
  }
}
