/**
 * `GET /v1/events/stream` (merchant API key): the merchant's events as server-sent events, each
 * `id: evt_…`, `event: <type>`, `data: <the exact webhook body>`, as they are written to
 * webhook_outbox (polled every limits.eventStreamPollMs), with a keep-alive comment every
 * sseHeartbeatMs. `Last-Event-ID` resumes after that event (an unknown id: 404
 * webhook_event_not_found); at most limits.eventStreamsPerMerchantMax streams per merchant and
 * process and limits.sseStreamsMax in all (`stream_limit_reached`). This is what `kessai listen` reads and forwards.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { KessaiError, limits } from '@kessai/protocol';
import { authenticateMerchant } from '../callers.ts';
import type { AuthContext } from '../context.ts';
import type { Queryable } from '@kessai/service';
import { cursorOf, eventsAfter, latestCursor, type StreamCursor, type StreamOwner } from '../event-stream.ts';

const lastEventIdPattern = /^evt_[A-Za-z0-9_-]{1,64}$/;

export async function eventStreamRoutes(app: FastifyInstance, { config }: AuthContext): Promise<void> {
  const open = new Map<string, number>();
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  app.get('/v1/events/stream', async (request, reply) => {
    const merchant = await authenticateMerchant(config.db, request);
    const owner = { merchantId: merchant.id, livemode: merchant.livemode };
    const cursor = await startingCursor(config.db, owner, request.headers['last-event-id']);
    const count = open.get(merchant.id) ?? 0;
    if (count >= limits.eventStreamsPerMerchantMax || streams.size >= limits.sseStreamsMax)
      throw new KessaiError('stream_limit_reached');
    open.set(merchant.id, count + 1);
    const raw = startStream(reply);
    let position = cursor;
    // Sent ids still inside the look-back window (eventsAfter): a late-committed event is sent once.
    const sent = new Map<string, number>();
    let newestMs = 0;
    let busy = false;
    const poll = async () => {
      if (busy || raw.writableEnded) return;
      busy = true;
      try {
        for (const event of await eventsAfter(config.db, owner, {
          floor: cursor,
          newest: position,
          sent: [...sent.keys()],
        })) {
          raw.write(`id: ${event.id}\nevent: ${event.event_type}\ndata: ${event.body}\n\n`);
          const atMs = Number(event.at_ms);
          sent.set(event.id, atMs);
          // Rows come oldest first: a late-committed one found by the look-back does not move the cursor back.
          if (atMs >= newestMs) [position, newestMs] = [{ createdAt: event.at, id: event.id }, atMs];
        }
        for (const [id, atMs] of sent) if (atMs < newestMs - limits.eventStreamLookBackMs) sent.delete(id);
      } catch (err) {
        request.log.warn({ err, merchant: merchant.id }, 'event stream poll failed');
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void poll(), limits.eventStreamPollMs);
    const heartbeat = setInterval(
      () => raw.writableEnded || raw.write(': keep-alive\n\n'),
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

/** Where a stream starts: after the event Last-Event-ID names (which must exist), else after the newest. */
async function startingCursor(db: Queryable, owner: StreamOwner, lastEventId: unknown): Promise<StreamCursor> {
  if (typeof lastEventId !== 'string' || lastEventId === '') return latestCursor(db, owner);
  if (!lastEventIdPattern.test(lastEventId))
    throw new KessaiError('validation_failed', 'Last-Event-ID must be an evt_ id');
  const cursor = await cursorOf(db, owner, lastEventId);
  if (!cursor) throw new KessaiError('webhook_event_not_found');
  return cursor;
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
