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

  /** Returns the leaks found (empty when clean). Checks 12-byte windows so truncation cannot hide one. */
  findLeaks(): string[] {
    const haystack = this.texts.join('\n');
    const lower = haystack.toLowerCase();
    const leaks: string[] = [];
    for (const s of this.secrets) {
      const probes = [s.subarray(0, 12), s.subarray(s.length - 12)];
      for (const p of probes) {
        if (lower.includes(p.toString('hex'))) leaks.push(`hex of a secret (${s.length} bytes)`);
        // base64 of the first 12 bytes is alignment-free at offset 0; check all three alignments of the whole.
        for (let shift = 0; shift < 3; shift++) {
          const b64 = s.subarray(shift).toString('base64').slice(0, 16);
          if (b64.length === 16 && haystack.includes(b64)) leaks.push(`base64 of a secret (${s.length} bytes)`);
        }
      }
    }
    return [...new Set(leaks)];
  }
}
