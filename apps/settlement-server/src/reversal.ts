/**
 * Reversals, as card networks send reversal advices: the authentication server lost the answer to
 * an authorization (in doubt) and cannot complete it, or expires an approved request nobody
 * captured. Keyed by the request id and the attempt's approval nonce, idempotent, exactly once in
 * effect, answered for any request id:
 *   - an authorization held here: its hold is voided (a repeat finds it voided);
 *   - none: the nonce is spent, so the authorization — should it still arrive — is refused
 *     `approval_replayed` and holds nothing; answered `reversed`;
 *   - a captured, expired or declined one is left as it is and answered as it is.
 * (An authorization placed before approval nonces were kept with it is voided whatever the nonce.)
 * Runs as one job of the ledger's group commit, so it is ordered with the authorizations of this
 * server; across instances, the nonce's unique key decides (the loser sees the winner's row).
 */
import type { SettlementReversal } from '@kessai/protocol';
import type { Queryable } from '@kessai/service';
import { authorizationStatus } from './authorization-status.ts';
import { recordResolved, resolveHold, type AuthorizationRow } from './capture.ts';
import type { SettlementConfig } from './config.ts';
import { recordExpired } from './expiry.ts';
import type { GroupCommit } from './ledger/group-commit.ts';

async function lockedAuthorization(tx: Queryable, rid: string): Promise<(AuthorizationRow & { approval_nonce: string | null }) | undefined> {
  const [row] = await tx.query<AuthorizationRow & { approval_nonce: string | null }>('select id, status, amount, currency, captured_amount, refunded_amount, hold_transfer_id, approval_nonce from authorizations where request_id = $1 for update', [rid]);
  return row;
}

export async function reverse(config: SettlementConfig, ledger: GroupCommit, rid: string, nonce: string, now: Date): Promise<SettlementReversal> {
  const outcome = await ledger.run(async (tx) => {
    let row = await lockedAuthorization(tx, rid);
    if (!row) {
      const spent = await tx.query('insert into approval_nonces (nonce, request_id) values ($1, $2) on conflict do nothing returning nonce', [nonce, rid]);
      if (spent.length === 1) return { reversed: true as const };
      // Spent already: by an earlier reversal of this attempt (the same answer), or by the
      // authorization itself, committed meanwhile by another instance (look again).
      row = await lockedAuthorization(tx, rid);
      if (!row) return { reversed: true as const };
    }
    // Held under another attempt's nonce: this reversal is of an earlier attempt, late; the hold is not its to release.
    if (row.status !== 'held' || (row.approval_nonce !== null && row.approval_nonce !== nonce)) return { reversed: false as const };
    return { reversed: false as const, hold: await resolveHold(config, tx, row, rid, 'void', undefined, now) };
  });
  if (outcome.reversed) {
    config.logger.info({ request: rid }, 'reversal: no authorization here; its nonce is spent');
    return { status: 'reversed', authorization: null };
  }
  if (outcome.hold) {
    if ('expired' in outcome.hold) recordExpired(config.db, outcome.hold.expired);
    else recordResolved(config, rid, outcome.hold);
    config.logger.info({ request: rid }, 'reversal: hold released');
  }
  const status = await authorizationStatus(config.db, rid, now);
  return { status: status.status, authorization: status };
}
