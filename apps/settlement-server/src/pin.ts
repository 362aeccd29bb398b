/**
 * PIN verifiers: argon2id (memory-hard), never the PIN itself. The settlement server is the only
 * role that ever sees a PIN, inside one function's scope after opening the terminal's JWE.
 */
import { hash, verify } from '@node-rs/argon2';
import type { Secret } from '@kessai/protocol';

export interface PinHashCost {
  memoryCost: number;
  timeCost: number;
}

/** OWASP's argon2id minimum: 19 MiB, 2 iterations, 1 lane. */
export const pinHashCostDefault: PinHashCost = { memoryCost: 19_456, timeCost: 2 };

export function pinVerifier(pin: Secret<string>, cost: PinHashCost): Promise<string> {
  return hash(pin.expose(), { algorithm: 2 /* Argon2id */, memoryCost: cost.memoryCost, timeCost: cost.timeCost, parallelism: 1 });
}

export function pinMatches(verifier: string, pin: Secret<string>): Promise<boolean> {
  return verify(verifier, pin.expose());
}
