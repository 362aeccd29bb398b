/**
 * Deadlines passed downstream (as gRPC passes `grpc-timeout`): the caller sends how many
 * milliseconds it will still wait (`Kessai-Deadline-Ms`, relative, so the two clocks need not
 * agree); the callee works out its own deadline on arrival and does not start work — a ledger
 * job, a hold — once it has passed, since nobody would be there to take the answer.
 */
import { KessaiError } from '@kessai/protocol';

export const deadlineHeader = 'kessai-deadline-ms';

/** The header a caller sends with a call it will wait `budgetMs` for. */
export function deadlineHeaders(budgetMs: number): Record<string, string> {
  return { [deadlineHeader]: String(Math.max(0, Math.floor(budgetMs))) };
}

/** The absolute deadline (epoch ms) of a request that arrived at `arrivedAtMs`, or undefined when its caller sent none. */
export function deadlineOf(headers: Record<string, unknown>, arrivedAtMs: number): number | undefined {
  const value = headers[deadlineHeader];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^[0-9]{1,9}$/.test(value)) throw new KessaiError('validation_failed', `${deadlineHeader} must be a whole number of milliseconds`);
  return arrivedAtMs + Number(value);
}

/** Throws deadline_exceeded when `deadline` has passed: call it before starting work that holds or moves money. */
export function checkDeadline(deadline: number | undefined, nowMs: number = Date.now()): void {
  if (deadline !== undefined && nowMs >= deadline) throw new KessaiError('deadline_exceeded');
}
