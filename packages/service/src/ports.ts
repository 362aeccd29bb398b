/**
 * Free TCP ports for servers whose URL must be known before they listen (it is built into their
 * metadata and their peers' configuration).
 */
import { createServer } from 'node:net';

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

/** A port free now, for another process to listen on (it cannot be held across processes). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const reservation = await reservePort(host);
  await reservation.release();
  return reservation.port;
}
