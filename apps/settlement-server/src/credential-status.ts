/**
 * The registry's state of one credential, for its payer (`kessai wallet status`, asked through the
 * authentication server over mutual TLS): revoked, the card blocked, locked by wrong PINs (the
 * card's count, the velocity record, or this credential's own count), or active with the wrong
 * PINs still allowed. The same checks, in the same order, as an authorization makes (authorize.ts);
 * a read that changes nothing. The answer names no card and no account.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  credentialId,
  issuerCredentialStatus,
  KessaiError,
  limits,
  type IssuerCredentialStatus,
} from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import type { SettlementConfig } from './config.ts';

interface RegistryRow {
  id: string;
  device_jkt: string;
  status: 'active' | 'revoked';
  card_status: string;
  card_pin_failures: number;
  window_failures: number;
  credential_failures: number | null;
  credential_lock: string | null;
}

/** The state of credential `id` in this issuer's registry; credential_not_found when it registered none. */
export async function credentialStatus(db: Queryable, id: string, now: Date): Promise<IssuerCredentialStatus> {
  const [row] = await db.query<RegistryRow>(
    `select c.id, c.device_jkt, c.status, k.status as card_status, k.pin_failures as card_pin_failures,
            (select count(*)::int from pin_failures f
              where f.pan_lookup = c.pan_lookup and f.at > $2) as window_failures,
            l.failures as credential_failures, l.status as credential_lock
       from credentials c join cards k on k.pan_lookup = c.pan_lookup
       left join credential_pin_limits l on l.device_jkt = c.device_jkt
      where c.id = $1`,
    [id, new Date(now.getTime() - limits.pinFailuresWindowMs)],
  );
  if (!row) throw new KessaiError('credential_not_found');
  const of = (
    status: IssuerCredentialStatus['status'],
    code: IssuerCredentialStatus['code'],
    pinTriesLeft: number | null,
  ) =>
    ({
      credential_id: row.id,
      device_jkt: row.device_jkt,
      status,
      code,
      pin_tries_left: pinTriesLeft,
    }) satisfies IssuerCredentialStatus;
  if (row.status === 'revoked') return of('revoked', 'credential_revoked', null);
  if (row.card_status === 'blocked') return of('blocked', 'card_blocked', null);
  if (row.card_status === 'locked' || row.window_failures >= limits.pinFailuresWindowMax)
    return of('locked', 'pin_locked', null);
  if (row.credential_lock === 'locked') return of('locked', 'credential_locked', null);
  const triesLeft = Math.min(
    limits.pinAttemptsMax - row.card_pin_failures,
    limits.pinFailuresWindowMax - row.window_failures,
    limits.pinAttemptsPerCredentialMax - (row.credential_failures ?? 0),
  );
  return of('active', null, Math.max(triesLeft, 0));
}

/** `GET /internal/v1/credentials/:id`: the authentication server asks for its payer (mutual TLS, app.ts checks it). */
export async function credentialStatusRoutes(plugin: FastifyInstance, config: SettlementConfig): Promise<void> {
  const app = plugin.withTypeProvider<ZodTypeProvider>();
  const params = z.strictObject({ id: credentialId });
  app.get(
    '/internal/v1/credentials/:id',
    {
      schema: {
        summary: "A credential's state at the issuer: active, locked, blocked or revoked",
        operationId: 'getCredentialStatus',
        params,
        response: { 200: issuerCredentialStatus },
      },
    },
    async (request) => credentialStatus(config.db, request.params.id, new Date()),
  );
}
