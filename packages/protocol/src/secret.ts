/**
 * A wrapper for personal data and secrets: it prints as "[redacted]" through JSON, template
 * strings and Node's inspector, so a value can only leave through an explicit expose().
 */
const inspect = Symbol.for('nodejs.util.inspect.custom');

export class Secret<T> {
  readonly #value: T;
  constructor(value: T) {
    this.#value = value;
  }
  expose(): T {
    return this.#value;
  }
  toJSON(): string {
    return '[redacted]';
  }
  toString(): string {
    return '[redacted]';
  }
  [inspect](): string {
    return 'Secret([redacted])';
  }
}
