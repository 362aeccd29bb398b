/**
 * limits.ts asserts the relations between its limits when it loads: the shipped limits keep every
 * relation, and a limit changed against one is named by brokenLimitRelations (the same check the
 * module runs at load, which then throws AssertionError).
 */
import { describe, expect, it } from 'vitest';
import { AssertionError, assert, brokenLimitRelations, limitRelations, limits, type Limits } from '../src/index.ts';

describe('limits: relations asserted at load', () => {
  it('the shipped limits break no relation', () => {
    expect(limitRelations.length).toBeGreaterThanOrEqual(20);
    expect(brokenLimitRelations(limits)).toEqual([]);
  });

  it('names the relation a changed limit breaks', () => {
    const slowDb = { ...limits, dbQueryTimeoutMs: limits.upstreamTimeoutMs + 1 } as unknown as Limits;
    expect(brokenLimitRelations(slowDb)).toEqual(['dbStatementTimeoutMs < dbQueryTimeoutMs < upstreamTimeoutMs']);
    const lease = { ...limits, webhookLeaseMs: limits.webhookTimeoutMs } as unknown as Limits;
    expect(brokenLimitRelations(lease)).toEqual(['webhookTimeoutMs < webhookLeaseMs']);
    const attempts = { ...limits, webhookAttemptsMax: 12 } as unknown as Limits;
    expect(brokenLimitRelations(attempts)).toEqual(['webhookAttemptsMax = webhookRetryDelaysMs.length + 1']);
  });

  it('assert throws AssertionError with the rule broken, and narrows when it holds', () => {
    expect(() => assert(false, 'x is positive')).toThrow(AssertionError);
    expect(() => assert(0, 'x is positive')).toThrow('assertion failed: x is positive');
    const value: string | undefined = 'a';
    assert(value !== undefined, 'value set');
    expect(value.length).toBe(1);
  });
});
