/**
 * Step 403's push channel inside one process: terminals listening over server-sent events are
 * told about payment requests addressed to their credential. (Several processes on one
 * PostgreSQL will go through LISTEN/NOTIFY: the scale issue.)
 */
import { limits } from '@kessai/protocol';

type Listener = (event: { type: 'payment_request'; request: string }) => void;

export class PushHub {
  readonly #listeners = new Map<string, Set<Listener>>();
  #count = 0;

  /** Returns an unsubscribe function, or undefined when a stream limit is reached. */
  subscribe(credentialId: string, listener: Listener): (() => void) | undefined {
    const set = this.#listeners.get(credentialId) ?? new Set<Listener>();
    if (set.size >= limits.sseStreamsPerCredentialMax || this.#count >= limits.sseStreamsMax) return undefined;
    set.add(listener);
    this.#listeners.set(credentialId, set);
    this.#count++;
    return () => {
      if (set.delete(listener)) this.#count--;
      if (set.size === 0) this.#listeners.delete(credentialId);
    };
  }

  publish(credentialId: string, request: string): void {
    for (const listener of this.#listeners.get(credentialId) ?? []) listener({ type: 'payment_request', request });
  }

  get size(): number {
    return this.#count;
  }
}
