/**
 * Bearer-token check for mutating calls. The comparison is constant-time over SHA-256 digests, so
 * neither the token's bytes nor its length leak through timing. The token is never logged: the
 * server logs method, route and status only, never headers.
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
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer +(\S+) *$/i.exec(header) : null;
    if (!m) throw new HttpError(401, 'this call needs an Authorization: Bearer <REWRAP_API_TOKEN> header');
    if (!timingSafeEqual(digest(m[1]!), expected)) throw new HttpError(401, 'the bearer token is not the API token (REWRAP_API_TOKEN)');
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
