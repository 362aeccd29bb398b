/**
 * The client certificate of a TLS connection, read once per connection: `getPeerCertificate()`
 * builds a fresh object from the X.509 structure at each call (3 % of the settlement server's CPU
 * when called per request). The answer cannot change during a connection: the servers refuse TLS
 * renegotiation (SSL_OP_NO_RENEGOTIATION in server.ts) and TLS 1.3 has none, so the certificate
 * checked at the handshake is the one for every request on that socket.
 */
import type { PeerCertificate, TLSSocket } from 'node:tls';

const certificates = new WeakMap<object, PeerCertificate | undefined>();

/** The peer's certificate (undefined when it sent none, or this is not a TLS socket); cached per socket. */
export function peerCertificateOf(socket: Partial<TLSSocket>): PeerCertificate | undefined {
  if (typeof socket.getPeerCertificate !== 'function') return undefined;
  if (certificates.has(socket)) return certificates.get(socket);
  const certificate = socket.getPeerCertificate();
  const present = certificate && Object.keys(certificate).length > 0 ? certificate : undefined;
  certificates.set(socket, present);
  return present;
}
