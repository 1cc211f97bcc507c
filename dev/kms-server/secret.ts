/**
 * Key material held so that it cannot leak by accident: JSON.stringify, util.inspect, template
 * strings and console.log all see "[redacted]". Only the state file writer calls `reveal()`
 * to persist it, and the cipher code calls it to use it.
 */
import { inspect } from 'node:util';

export class SecretBytes {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }
  reveal(): Buffer {
    return this.#bytes;
  }
  get length(): number {
    return this.#bytes.length;
  }
  toJSON(): string {
    return '[redacted]';
  }
  toString(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return `SecretBytes(${this.#bytes.length} bytes, redacted)`;
  }
}
