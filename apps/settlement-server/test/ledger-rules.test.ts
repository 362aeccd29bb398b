/**
 * The pure ledger rules, one row per result code in the order of precedence (ledger-cases.ts),
 * plus the two-phase balances: a post moves only what it posts and releases the rest; a void and
 * an expiry release everything; debits equal credits after every step.
 */
import { describe, expect, it } from 'vitest';
import { applyTransfer, available, checkTransfer, expirePending, imbalance, transferResults, type Account, type LedgerState } from '../src/ledger/rules.ts';
import { fixtureAccounts, fund, hold, resultCases, t0 } from './ledger-cases.ts';

function fixture(): LedgerState {
  const accounts = new Map<string, Account>(fixtureAccounts.map((a) => [a.id, {
    id: a.id, currency: a.currency, debitsPending: 0n, debitsPosted: 0n, creditsPending: 0n, creditsPosted: 0n,
    debitsMustNotExceedCredits: a.debitsMustNotExceedCredits ?? false, creditsMustNotExceedDebits: a.creditsMustNotExceedDebits ?? false,
  }]));
  const state: LedgerState = { accounts, transfers: new Map() };
  for (const t of [fund, hold]) expect(applyTransfer(state, t, t0)).toBe('ok');
  return state;
}

function balanced(state: LedgerState): void {
  for (const sums of imbalance(state.accounts.values()).values()) expect(sums).toEqual({ pending: 0n, posted: 0n });
}

describe('ledger rules: one row per result code', () => {
  it('has a row for every result code, in the documented order of precedence', () => {
    expect(resultCases.map((c) => c.result)).toEqual([...transferResults]);
  });

  it.each(resultCases)('$result: $name', ({ result, setup = [], transfer, atSeconds = 0 }) => {
    const state = fixture();
    for (const t of setup) expect(applyTransfer(state, t, t0)).toBe('ok');
    const before = structuredClone([...state.accounts.values()]);
    expect(checkTransfer(state, transfer, t0 + atSeconds * 1000)).toBe(result);
    expect(applyTransfer(state, transfer, t0 + atSeconds * 1000)).toBe(result);
    if (result !== 'ok') expect([...state.accounts.values()]).toEqual(before);
    balanced(state);
  });
});

describe('ledger rules: two-phase transfers', () => {
  it('holds reduce what the payer can spend; a partial post moves the posted part and releases the rest', () => {
    const state = fixture();
    expect(available(state.accounts.get('acct_A')!)).toBe(500n);
    expect(applyTransfer(state, { id: 'xfer_post', kind: 'post_pending', pendingId: 'xfer_hold', amount: 300n, currency: 'JPY' }, t0)).toBe('ok');
    expect(state.accounts.get('acct_A')).toMatchObject({ debitsPending: 0n, debitsPosted: 300n });
    expect(state.accounts.get('acct_B')).toMatchObject({ creditsPending: 0n, creditsPosted: 300n });
    expect(available(state.accounts.get('acct_A')!)).toBe(700n);
    expect(state.transfers.get('xfer_hold')!.state).toBe('posted');
    balanced(state);
  });

  it('a void releases the whole hold', () => {
    const state = fixture();
    expect(applyTransfer(state, { id: 'xfer_void', kind: 'void_pending', pendingId: 'xfer_hold', amount: 0n, currency: 'JPY' }, t0)).toBe('ok');
    expect(available(state.accounts.get('acct_A')!)).toBe(1000n);
    expect(state.transfers.get('xfer_hold')!.state).toBe('voided');
    balanced(state);
  });

  it('the expiry pass releases a hold only once its timeout has passed, and a post after it answers pending_transfer_expired', () => {
    const state = fixture();
    expect(expirePending(state, 'xfer_hold', t0 + 59_999)).toBe(false);
    expect(expirePending(state, 'xfer_hold', t0 + 60_000)).toBe(true);
    expect(expirePending(state, 'xfer_hold', t0 + 60_000)).toBe(false);
    expect(available(state.accounts.get('acct_A')!)).toBe(1000n);
    expect(applyTransfer(state, { id: 'xfer_post', kind: 'post_pending', pendingId: 'xfer_hold', amount: 1n, currency: 'JPY' }, t0)).toBe('pending_transfer_expired');
    balanced(state);
  });

  it('a pending transfer without a timeout never expires', () => {
    const state = fixture();
    expect(applyTransfer(state, { ...hold, id: 'xfer_hold2', amount: 1n, timeoutSeconds: 0 }, t0)).toBe('ok');
    expect(expirePending(state, 'xfer_hold2', Number.MAX_SAFE_INTEGER)).toBe(false);
  });
});
