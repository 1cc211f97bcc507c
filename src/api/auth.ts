/**
 * Who may call the API. Mutations need the write token (REWRAP_API_TOKEN); reads need the read
 * token (REWRAP_API_READ_TOKEN) or the write token, unless the operator started the API with
 * --public-reads (a dashboard on a trusted network): reads expose item keys, failure details,
 * scopes and specs. Comparisons are constant-time over SHA-256 digests, so neither a token's
 * bytes nor its length leak through timing. Tokens are never logged: the server logs method,
 * route and status only, never headers.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-io.ts';

export type TokenCheck = (req: IncomingMessage) => void;

export function bearerTokenCheck(token: string | undefined): TokenCheck {
  const expected = token === undefined ? undefined : digest(token);
  return (req) => {
    if (expected === undefined) {
      throw new HttpError(403, 'mutating calls are disabled: start the API with REWRAP_API_TOKEN set to allow them');
    }
    const given = bearer(req, 'REWRAP_API_TOKEN');
    if (!timingSafeEqual(given, expected)) throw new HttpError(401, 'the bearer token is not the API token (REWRAP_API_TOKEN)');
  };
}

/** Reads: the read token or the write token; nothing when `publicReads`. */
export function readTokenCheck(o: { readToken?: string; writeToken?: string; publicReads: boolean }): TokenCheck {
  if (o.publicReads) return () => {};
  const expected = [o.readToken, o.writeToken].filter((t): t is string => t !== undefined).map(digest);
  return (req) => {
    if (expected.length === 0) {
      throw new HttpError(403, 'reads are disabled: start the API with REWRAP_API_READ_TOKEN (or REWRAP_API_TOKEN) set, or with --public-reads on a trusted network');
    }
    const given = bearer(req, 'REWRAP_API_READ_TOKEN');
    // Compare with every token (no early exit), so timing does not say which one matched.
    let ok = false;
    for (const e of expected) ok = timingSafeEqual(given, e) || ok;
    if (!ok) throw new HttpError(401, 'the bearer token is neither the read token (REWRAP_API_READ_TOKEN) nor the API token (REWRAP_API_TOKEN)');
  };
}

function bearer(req: IncomingMessage, name: string): Buffer {
  const header = req.headers.authorization;
  const m = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
  if (!m) throw new HttpError(401, `this call needs an Authorization: Bearer <${name}> header`);
  return digest(m[1]!);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
