/**
 * Free TCP ports for servers whose URL must be known before they listen (it is built into their
 * metadata and their peers' configuration).
 */
import { createServer } from 'node:net';
import { limits } from '@kessai/protocol';

export interface PortReservation {
  port: number;
  /** Closes the probe; call it right before the real server listens on `port`. */
  release(): Promise<void>;
}

/**
 * A free port, held by a listening probe until `release()`: a port closed at once could meanwhile
 * be handed to another listener or to an outgoing connection's local end (EADDRINUSE at listen).
 * A given port (not 0) is not probed.
 */
export async function reservePort(host = '127.0.0.1', given?: number): Promise<PortReservation> {
  if (given !== undefined && given !== 0) return { port: given, release: async () => undefined };
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, host, resolve));
  const address = probe.address();
  if (typeof address !== 'object' || !address) throw new Error('the probe has no port');
  let released: Promise<void> | undefined;
  return { port: address.port, release: () => (released ??= new Promise<void>((done) => probe.close(() => done()))) };
}

/**
 * Ports handed to another process are taken below Linux's default ephemeral range (32768–60999),
 * from which the kernel picks the local port of every outgoing connection: a port from that range,
 * free when probed, can be the local end of some connection (a database client's) by the time the
 * other process listens on it (EADDRINUSE, seen in CI on the PostgreSQL pass).
 */
const { handedPortMin, handedPortMax, handedPortAttemptsMax } = limits;

/** A port free now, for another process to listen on (it cannot be held across processes). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < handedPortAttemptsMax; attempt++) {
    const port = handedPortMin + Math.floor(Math.random() * (handedPortMax - handedPortMin + 1));
    const probe = createServer();
    const free = await new Promise<boolean>((resolve) => probe.once('error', () => resolve(false)).listen(port, host, () => resolve(true)));
    if (free) {
      await new Promise<void>((done) => probe.close(() => done()));
      return port;
    }
  }
  throw new Error(`no free port between ${handedPortMin} and ${handedPortMax} after ${handedPortAttemptsMax} attempts`);
}
