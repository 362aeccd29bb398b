/**
 * The pure ledger rules, one row per result code in the order of precedence (ledger-cases.ts),
 * plus the two-phase balances: a post moves only what it posts and releases the rest; a void and
 * an expiry release everything; debits equal credits after every step.
 */
import { AssertionError, limits } from '@kessai/protocol';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  applyTransfer, available, checkTransfer, expirePending, imbalance, transferResults, type Account, type LedgerState, type TransferInput,
} from '../src/ledger/rules.ts';
import { fixtureAccounts, fund, hold, resultCases, t0 } from './ledger-cases.ts';

function fixture(): LedgerState {
  const accounts = new Map<string, Account>(fixtureAccounts.map((a) => [a.id, {
    id: a.id, currency: a.currency, debitsPending: a.pending ?? 0n, debitsPosted: a.posted ?? 0n, creditsPending: a.pending ?? 0n, creditsPosted: a.posted ?? 0n,
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

  it('docs/ledger.md lists the result codes in transferResults order', () => {
    const doc = readFileSync(new URL('../../../docs/ledger.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Result codes'), doc.indexOf('\n## ', doc.indexOf('## Result codes') + 1));
    const listed = [...section.matchAll(/^\d+\. `([a-z_]+)`/gm)].map((m) => m[1]);
    expect(listed).toEqual([...transferResults]);
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

describe('ledger rules: properties (fast-check)', () => {
  const ids = fixtureAccounts.map((a) => a.id);
  const currencyOf = new Map(fixtureAccounts.map((a) => [a.id, a.currency]));
  const amount = fc.oneof(fc.bigInt({ min: 0n, max: 2_000n }), fc.bigInt({ min: limits.ledgerAmountMax - 5n, max: limits.ledgerAmountMax + 5n }));
  const transfer = fc.record({
    kind: fc.constantFrom('single', 'pending', 'post_pending', 'void_pending' as const),
    debit: fc.constantFrom(...ids),
    credit: fc.constantFrom(...ids),
    amount,
    pending: fc.integer({ min: 0, max: 9 }),
  });

  it('any sequence of transfers keeps every column within [0, ledgerBalanceMax], debits equal to credits, and changes nothing when refused', () => {
    fc.assert(fc.property(fc.array(transfer, { maxLength: 40 }), (steps) => {
      const state = fixture();
      steps.forEach((s, i) => {
        const resolving = s.kind === 'post_pending' || s.kind === 'void_pending';
        const t: TransferInput = resolving
          ? { id: `xfer_${i}`, kind: s.kind, pendingId: `xfer_${s.pending}`, amount: s.kind === 'void_pending' ? 0n : s.amount, currency: 'JPY' }
          : { id: `xfer_${i}`, kind: s.kind, debitAccountId: s.debit, creditAccountId: s.credit, amount: s.amount, currency: currencyOf.get(s.debit)! };
        const before = structuredClone([...state.accounts.values()]);
        const result = applyTransfer(state, t, t0);
        expect(transferResults).toContain(result);
        if (result !== 'ok') expect([...state.accounts.values()]).toEqual(before);
        if (s.amount > limits.ledgerAmountMax && !resolving) expect(result).toBe('amount_exceeds_maximum');
      });
      for (const a of state.accounts.values()) {
        for (const v of [a.debitsPending, a.debitsPosted, a.creditsPending, a.creditsPosted]) {
          expect(v >= 0n && v <= limits.ledgerBalanceMax).toBe(true);
        }
      }
      balanced(state);
    }), { numRuns: 200 });
  });

  it('an overflow is answered for exactly the sums that would pass 64 bits', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 20n }), (n) => {
      const state = fixture();
      const result = checkTransfer(state, { id: 'xfer_o', kind: 'single', debitAccountId: 'acct_Q', creditAccountId: 'acct_G', amount: n, currency: 'GBP' }, t0);
      expect(result).toBe(n > 5n ? 'overflows_debits_posted' : 'ok');
    }));
  });
});

describe('ledger rules: assertions (TIGER_STYLE)', () => {
  it('every function of rules.ts asserts at least two conditions (assert, or assertColumns over an account)', () => {
    const file = new URL('../src/ledger/rules.ts', import.meta.url);
    const sf = ts.createSourceFile('rules.ts', readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const counts = sf.statements.filter(ts.isFunctionDeclaration).map((fn) => {
      const body = fn.body!.getText(sf);
      const asserts = (body.match(/\bassert\(/g) ?? []).length + (body.match(/\bassertColumns\(/g) ?? []).length;
      return [fn.name!.text, asserts] as const;
    });
    expect(counts.length).toBeGreaterThan(10);
    // assertColumns is the assertion itself: one assert over each of four columns.
    expect(counts.filter(([name, n]) => name !== 'assertColumns' && n < 2)).toEqual([]);
  });

  it('a broken invariant throws AssertionError naming ids only: a balance column driven negative', () => {
    const state = fixture();
    const account = state.accounts.get('acct_A')!;
    state.accounts.set('acct_A', { ...account, debitsPosted: -1n });
    expect(() => available(state.accounts.get('acct_A')!)).toThrow(AssertionError);
    expect(() => available(state.accounts.get('acct_A')!)).toThrow('acct_A.debitsPosted within [0, ledgerBalanceMax]');
  });
});
