/**
 * Host header allowlist. A web page can reach an API bound to loopback through DNS rebinding (its
 * own name re-resolved to 127.0.0.1): the browser then sends that name as Host. Only the names the
 * operator expects are served: the bound address, localhost, and REWRAP_API_ALLOWED_HOSTS.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './http-io.ts';

const WILDCARD = new Set(['0.0.0.0', '::', '']);

/** The host part of a Host header value or an allowlist entry, lower case, without port or brackets. */
export function hostName(value: string): string {
  const v = value.trim().toLowerCase();
  if (v.startsWith('[')) return v.slice(1, v.indexOf(']') > 0 ? v.indexOf(']') : undefined);
  const colons = v.split(':').length - 1;
  return colons === 1 ? v.slice(0, v.indexOf(':')) : v; // several colons: a bare IPv6 address
}

export function hostCheck(boundHost: string, extra: string[]): (req: IncomingMessage) => void {
  const allowed = new Set(['localhost', ...extra.map(hostName)]);
  const bound = hostName(boundHost);
  if (!WILDCARD.has(bound)) allowed.add(bound);
  // A wildcard bind is reachable on loopback, the address the server prints as its url.
  else allowed.add('127.0.0.1').add('::1');
  return (req) => {
    const h = req.headers.host;
    if (!h) throw new HttpError(400, 'this API needs a Host header');
    if (!allowed.has(hostName(h))) {
      throw new HttpError(403, `Host ${JSON.stringify(h)} is not one this API answers to (allowed: ${[...allowed].join(', ')}); the operator adds names with REWRAP_API_ALLOWED_HOSTS`);
    }
  };
}
