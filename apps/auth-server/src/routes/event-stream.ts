/**
 * `GET /v1/events/stream` (merchant API key): the merchant's events as server-sent events, each
 * `id: evt_…`, `event: <type>`, `data: <the exact webhook body>`, as they are written to
 * webhook_outbox (polled every limits.eventStreamPollMs), with a keep-alive comment every
 * sseHeartbeatMs. `Last-Event-ID` resumes after that event (an unknown id: 404
 * webhook_event_not_found); at most limits.eventStreamsPerMerchantMax streams per merchant and
 * process and limits.sseStreamsMax in all (`stream_limit_reached`). This is what `kessai listen` reads and forwards.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { KessaiError, limits } from '@kessai/protocol';
import { textAnswer } from '@kessai/service';
import { authenticateMerchant } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import type { Db } from '@kessai/service';
import {
  cursorOf,
  eventsAfter,
  latestCursor,
  StreamTracker,
  type StreamCursor,
  type StreamOwner,
} from '../event-stream.ts';

const lastEventIdPattern = /^evt_[A-Za-z0-9_-]{1,64}$/;

export async function eventStreamRoutes(app: FastifyInstance, { config }: AuthContext): Promise<void> {
  const open = new Map<string, number>();
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  const streamSchema = {
    summary: 'Your events as server-sent events',
    description:
      'Each event: `id: evt_…`, `event: <type>`, `data: <the webhook body>`. `Last-Event-ID` resumes after that event.',
    operationId: 'streamEvents',
    response: { 200: textAnswer('text/event-stream', 'Server-sent events until the client disconnects.') },
  };
  app.get('/v1/events/stream', { schema: streamSchema }, async (request, reply) => {
    const merchant = await authenticateMerchant(config.db, request);
    const owner = { merchantId: merchant.id, livemode: merchant.livemode };
    const cursor = await openingCursor(config.db, owner, request.headers['last-event-id']);
    const count = open.get(merchant.id) ?? 0;
    if (count >= limits.eventStreamsPerMerchantMax || streams.size >= limits.sseStreamsMax)
      throw new KessaiError('stream_limit_reached');
    open.set(merchant.id, count + 1);
    const raw = startStream(reply);
    // The look-back's sent ids, at most limits.eventStreamSentIdsMax (StreamTracker): a late event is sent once.
    const tracker = new StreamTracker(cursor);
    let busy = false;
    const poll = async () => {
      // A reader that has not taken the last batch yet gets no more: the cursor waits, so nothing is lost, and the
      // broker holds at most one batch for it (a stream that is never read cannot fill the broker's memory).
      if (busy || raw.writableEnded || raw.writableNeedDrain) return;
      busy = true;
      try {
        if (!(await keyStillWorks(config.db, request, owner))) return end();
        for (const event of await eventsAfter(config.db, owner, tracker.position())) {
          raw.write(`id: ${event.id}\nevent: ${event.event_type}\ndata: ${event.body}\n\n`);
          tracker.sent(event);
        }
        tracker.endPoll();
      } catch (err) {
        request.log.warn({ err, merchant: merchant.id }, 'event stream poll failed');
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void poll(), limits.eventStreamPollMs);
    const heartbeat = setInterval(
      () => raw.writableEnded || raw.writableNeedDrain || raw.write(': keep-alive\n\n'),
      config.sseHeartbeatMs ?? limits.sseHeartbeatMs,
    );
    const close = () => {
      if (!streams.delete(end)) return;
      clearInterval(timer);
      clearInterval(heartbeat);
      open.set(merchant.id, (open.get(merchant.id) ?? 1) - 1);
      if ((open.get(merchant.id) ?? 0) <= 0) open.delete(merchant.id);
    };
    const end = () => {
      close();
      if (!raw.writableEnded) raw.end();
    };
    streams.add(end);
    request.raw.on('close', close);
    raw.write(': ready\n\n');
    await poll();
  });
}

/** Where a stream starts: after `Last-Event-ID` (the merchant's own event in its mode), else after the newest event. */
async function openingCursor(db: Db, owner: StreamOwner, header: string | string[] | undefined): Promise<StreamCursor> {
  if (typeof header !== 'string' || header === '') return latestCursor(db, owner);
  if (!lastEventIdPattern.test(header)) throw new KessaiError('validation_failed', 'Last-Event-ID must be an evt_ id');
  const cursor = await cursorOf(db, owner, header);
  if (!cursor) throw new KessaiError('webhook_event_not_found');
  return cursor;
}

/**
 * Whether the stream's API key still names its merchant and mode: a key rolled without overlap, or whose overlap
 * ended, closes the streams it opened at their next poll.
 */
async function keyStillWorks(db: Db, request: FastifyRequest, owner: StreamOwner): Promise<boolean> {
  try {
    const merchant = await authenticateMerchant(db, request);
    return merchant.id === owner.merchantId && merchant.livemode === owner.livemode;
  } catch (err) {
    if (err instanceof KessaiError && err.code === 'unauthenticated') return false;
    throw err;
  }
}

/** Takes the reply out of Fastify and opens the event stream (the headers hooks set go along by hand). */
function startStream(reply: FastifyReply): FastifyReply['raw'] {
  reply.hijack();
  const raw = reply.raw;
  const carried = Object.fromEntries(
    Object.entries(reply.getHeaders()).filter(
      (entry): entry is [string, string | number | string[]] => entry[1] !== undefined,
    ),
  );
  raw.writeHead(200, {
    ...carried,
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  });
  return raw;
}
