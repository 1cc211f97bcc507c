/**
 * Invariant 5 in tests: collect every log line and error text a test's rewrap runs produce, and
 * prove that no registered secret (DEK or KEK bytes) appears in them, in hex or base64.
 */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.ts';

export class LeakGuard {
  private readonly secrets: Buffer[] = [];
  private readonly texts: string[] = [];
  readonly logger: Logger;

  constructor() {
    const sink = new Writable({
      write: (chunk, _enc, cb) => {
        this.texts.push(String(chunk));
        cb();
      },
    });
    this.logger = createLogger({ level: 'trace', destination: sink });
  }

  secret(...bufs: Buffer[]): void {
    for (const b of bufs) if (b.length >= 16) this.secrets.push(Buffer.from(b));
  }

  /** Error messages, outcome details, CLI output: anything a user might see. */
  text(...t: unknown[]): void {
    for (const x of t) this.texts.push(typeof x === 'string' ? x : x instanceof Error ? `${x.name}: ${x.message} ${x.stack}` : JSON.stringify(x));
  }

  get linesSeen(): number {
    return this.texts.length;
  }

  /**
   * Returns the leaks found (empty when clean). Every run of hex or base64 characters in the text
   * is decoded (at every alignment) and searched for any 8-byte window of any secret, so a key
   * that was truncated, shifted or embedded in a longer string is still found. Linear in the text.
   */
  findLeaks(): string[] {
    const W = 8;
    const windows = new Map<string, number>();
    for (const s of this.secrets) for (let i = 0; i + W <= s.length; i++) windows.set(s.subarray(i, i + W).toString('hex'), s.length);
    const leaks = new Set<string>();
    const scan = (bytes: Buffer, how: string) => {
      for (let i = 0; i + W <= bytes.length; i++) {
        const len = windows.get(bytes.subarray(i, i + W).toString('hex'));
        if (len !== undefined) leaks.add(`${how} of a ${len}-byte secret`);
      }
    };
    for (const text of this.texts) {
      for (const [token] of text.matchAll(/[A-Za-z0-9+/_-]{11,}/g)) {
        if (/^[0-9a-fA-F]+$/.test(token)) {
          scan(Buffer.from(token.slice(0, token.length & ~1), 'hex'), 'hex');
          scan(Buffer.from(token.slice(1, 1 + ((token.length - 1) & ~1)), 'hex'), 'hex');
        }
        const b64 = token.replace(/-/g, '+').replace(/_/g, '/');
        for (let shift = 0; shift < 4; shift++) scan(Buffer.from(b64.slice(shift), 'base64'), 'base64');
      }
    }
    return [...leaks];
  }
}
