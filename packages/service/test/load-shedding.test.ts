/**
 * The load shedder's counting (packages/service/src/load-shedding.ts) and its classification rule;
 * test/load-shedding.test.ts crosses the limits on running servers.
 */
import { describe, expect, it } from 'vitest';
import type { FastifyRequest } from 'fastify';
import { limits } from '@kessai/protocol';
import { classifyWork, LoadShedder } from '@kessai/service';

describe('LoadShedder', () => {
  it('admits up to inFlightMax per class, refuses one more, and admits again once a slot is released', () => {
    const shedder = new LoadShedder({ inFlightMax: { payment: 2, read: 1 } });
    const [a, b] = [shedder.take('payment'), shedder.take('payment')];
    expect(a && b).toBeTruthy();
    expect(shedder.take('payment')).toBeUndefined();
    // Another class has its own count.
    expect(shedder.take('read')).toBeDefined();
    shedder.release(a!);
    expect(shedder.take('payment')).toBeDefined();
    expect(shedder.shed()).toMatchObject({ payment: 1, read: 0 });
  });

  it('releases a slot once however many of its release events fire', () => {
    const shedder = new LoadShedder();
    const slot = shedder.take('admin')!;
    shedder.release(slot);
    shedder.release(slot);
    expect(shedder.inFlight().admin).toBe(0);
  });

  it('refuses new payments (intake) before work on payments already started', () => {
    const shedder = new LoadShedder({ inFlightMax: { intake: 2, payment: 4 } });
    shedder.take('payment');
    shedder.take('intake');
    // Intake and payment together have reached the intake limit: a new payment waits, an approval does not.
    expect(shedder.take('intake')).toBeUndefined();
    // Payment work counts only itself: three more fit under its limit of 4, the fourth does not.
    expect([shedder.take('payment'), shedder.take('payment'), shedder.take('payment')].every(Boolean)).toBe(true);
    expect(shedder.take('payment')).toBeUndefined();
  });

  it('takes its limits from limits.ts, and refuses a limit that cannot work', () => {
    expect(new LoadShedder().inFlightMax).toEqual(limits.inFlightMax);
    expect(() => new LoadShedder({ inFlightMax: { payment: 0 } })).toThrow(TypeError);
  });
});

describe('classifyWork', () => {
  const request = (method: string, url: string | undefined) => ({ method, routeOptions: { url } }) as unknown as FastifyRequest;
  const classify = classifyWork({ 'POST /v1/payment-requests': 'intake', 'GET /v1/terminal/events': 'exempt' });

  it('names the exceptions first, then key documents, /admin, reads and payment work', () => {
    expect(classify(request('POST', '/v1/payment-requests'))).toBe('intake');
    expect(classify(request('GET', '/v1/terminal/events'))).toBe('exempt');
    expect(classify(request('GET', '/.well-known/jwks.json'))).toBe('control');
    expect(classify(request('POST', '/admin/v1/keys/rotate'))).toBe('admin');
    expect(classify(request('GET', '/v1/payment-requests/:id'))).toBe('read');
    expect(classify(request('OPTIONS', '/v1/terminal/payment-requests/:id/approve'))).toBe('read');
    expect(classify(request('POST', '/v1/terminal/payment-requests/:id/approve'))).toBe('payment');
  });
});
