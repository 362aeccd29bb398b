/**
 * A TCP proxy for fault tests: a server reaches its database (or a peer) through it, and the test
 * stalls or cuts the path without touching either end.
 *
 *   const proxy = await startTcpProxy({ targetHost: '127.0.0.1', targetPort: 5432 });
 *   // connect to 127.0.0.1:proxy.port instead of the target
 *   proxy.stall();   // connections stay open, bytes are accepted and held, nothing is forwarded
 *   proxy.drop();    // every connection is reset, and new ones are reset as soon as they arrive
 *   proxy.resume();  // forwarding again: held bytes are delivered, new connections reach the target
 *   await proxy.close();
 *
 * While stalled, new connections are accepted (the client's connect succeeds) but the target is
 * not dialled until resume(): exactly what a database that stops answering looks like. While
 * dropped, the port stays the proxy's (so resume() needs no new port): a connection is accepted
 * and reset at once, which a client sees as ECONNRESET — a refusal.
 */
import net from 'node:net';

export interface TcpProxy {
  /** The local port (on 127.0.0.1) that leads to the target. */
  readonly port: number;
  /** Accept and hold bytes in both directions, forward nothing, until resume(). */
  stall(): void;
  /** Destroy all current connections (reset) and refuse new ones until resume(). */
  drop(): void;
  /** Forward again (held bytes first); new connections reach the target. */
  resume(): void;
  /** Connections currently open through the proxy (client sides). */
  connections(): number;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream?: net.Socket;
  /** Bytes read while stalled, per direction, delivered on resume(). */
  heldUp: Buffer[];
  heldDown: Buffer[];
}

export async function startTcpProxy(options: { targetHost: string; targetPort: number; port?: number }): Promise<TcpProxy> {
  let mode: 'forwarding' | 'stalled' | 'dropped' = 'forwarding';
  const pairs = new Set<Pair>();

  /** Closes both sides: with a reset (drop, close) or as an ordinary close (one side went away). */
  const destroy = (pair: Pair, reset: boolean) => {
    pairs.delete(pair);
    for (const socket of [pair.client, pair.upstream]) {
      if (!socket || socket.destroyed) continue;
      if (reset && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    }
  };

  /** Writes `chunk` on, or holds it while stalled; backpressure pauses the reading side. */
  const forward = (pair: Pair, from: net.Socket, to: () => net.Socket | undefined, held: Buffer[]) => {
    from.on('data', (chunk: Buffer) => {
      const target = to();
      if (mode !== 'forwarding' || !target || held.length > 0) {
        held.push(chunk);
        if (mode === 'stalled') from.pause();
        return;
      }
      if (!target.write(chunk)) {
        from.pause();
        target.once('drain', () => mode === 'forwarding' && from.resume());
      }
    });
    from.on('end', () => mode === 'forwarding' && to()?.end());
    from.on('error', () => destroy(pair, false));
    from.on('close', () => destroy(pair, false));
  };

  const dial = (pair: Pair) => {
    const upstream = net.connect({ host: options.targetHost, port: options.targetPort });
    pair.upstream = upstream;
    forward(pair, upstream, () => pair.client, pair.heldDown);
    upstream.on('connect', () => flush(pair));
  };

  const flush = (pair: Pair) => {
    if (mode !== 'forwarding' || !pair.upstream || pair.upstream.connecting) return;
    for (const chunk of pair.heldUp.splice(0)) pair.upstream.write(chunk);
    for (const chunk of pair.heldDown.splice(0)) pair.client.write(chunk);
    pair.client.resume();
    pair.upstream.resume();
  };

  const server = net.createServer((client) => {
    if (mode === 'dropped') {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client, heldUp: [], heldDown: [] };
    pairs.add(pair);
    forward(pair, client, () => pair.upstream, pair.heldUp);
    if (mode === 'forwarding') dial(pair);
    else client.pause();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    stall() {
      if (mode === 'dropped') return;
      mode = 'stalled';
      for (const pair of pairs) {
        pair.client.pause();
        pair.upstream?.pause();
      }
    },
    drop() {
      mode = 'dropped';
      for (const pair of [...pairs]) destroy(pair, true);
    },
    resume() {
      mode = 'forwarding';
      for (const pair of pairs) {
        if (pair.upstream) flush(pair);
        else dial(pair);
      }
    },
    connections: () => pairs.size,
    async close() {
      mode = 'dropped';
      for (const pair of [...pairs]) destroy(pair, true);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
