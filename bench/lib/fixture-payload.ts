/**
 * The payload of fixture object number `index`: deterministic, so the processes that write the
 * fixture and the bench that verifies a sample after the rewrap agree without passing bytes around.
 * (Stored encrypted under a fresh random DEK per object, like any S3EC object.)
 */
import { createHash } from 'node:crypto';

export function fixturePayload(key: string, index: number): Buffer {
  const length = 256 + (index % 5) * 200;
  const seed = createHash('sha256').update(key).digest();
  const out = Buffer.alloc(length);
  for (let off = 0; off < length; off += seed.length) seed.copy(out, off);
  return out;
}
