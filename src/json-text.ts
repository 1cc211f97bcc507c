/**
 * JSON.parse for files a user hands us (keyring, campaign and schedule specs). Node's own
 * SyntaxError quotes the text around the error (`Unexpected token 'q', ..."material":q6ur...`),
 * and a keyring holds key material: invariant 5. The ConfigError here says where (line and
 * column) and what kind of error, never the content, and carries no cause that would.
 */
import { ConfigError } from './core/errors.ts';

export function parseJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const at = syntaxErrorOffset(text);
    const { line, column } = lineAndColumn(text, at);
    const kind = at >= text.trimEnd().length ? 'the document ends too early (a missing } ] or ")' : 'unexpected character';
    throw new ConfigError(`${what} is not valid JSON: ${kind} at line ${line}, column ${column} (its content is not shown: it may hold secrets)`);
  }
}

/**
 * The offset of the first character JSON.parse rejects. V8 names it ("at position N") for most
 * errors, but not for an unexpected token, whose message quotes the text instead: then it is the
 * shortest prefix that fails before its own end. Every longer prefix holds that character too, so
 * a binary search finds it.
 */
function syntaxErrorOffset(text: string): number {
  /** Where parsing `text.slice(0, n)` fails; n when it only ends too early (or parses). */
  const failsAt = (n: number): number => {
    try {
      JSON.parse(text.slice(0, n));
      return n;
    } catch (err) {
      const m = (err as Error).message;
      const pos = /at position (\d+)/.exec(m);
      if (pos) return Math.min(Number(pos[1]), n);
      return /Unexpected end of JSON input/.test(m) ? n : -1; // -1: somewhere before n, not said where
    }
  };
  const whole = failsAt(text.length);
  if (whole >= 0) return whole;
  let lo = 0;
  let hi = text.length; // the prefix of length hi fails before its end
  while (lo + 1 < hi) {
    const mid = (lo + hi) >>> 1;
    const at = failsAt(mid);
    if (at >= 0 && at < mid) return at;
    if (at < 0) hi = mid;
    else lo = mid;
  }
  return hi - 1;
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}
