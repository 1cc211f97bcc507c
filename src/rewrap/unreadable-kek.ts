/**
 * Which KEK wraps an item rewrap cannot rewrap (S3EC V1 or V3, an unknown algorithm, a malformed
 * field), as far as what it still names can tell: the KEK columns of a row, a keyring KEK's
 * matdesc, or the KMS key of a V1 matdesc (`kms_cmk_id`). Undefined means "cannot tell": the item
 * may be under any KEK, and invariant 7 counts it as still needing each one.
 */
import type { KekProvider } from '../kek/kek-provider.ts';
import type { KekSelector, KekVersionRef } from '../core/kek-ref.ts';
import type { KekReference } from '../core/envelope.ts';
import { kmsKeyPart, type KekMap } from '../kek/kek-map.ts';

/** The matdesc key in which S3EC V1 clients (and the V2 `kms` wrap) name the KMS key. */
export const KMS_CMK_ID = 'kms_cmk_id';

/**
 * `scope`: the KEK being drained or retired. A KMS key named in another form (key id vs ARN) is
 * recorded as `scope` when it is the same key, so the ledger's comparisons see it; an alias cannot
 * be resolved without KMS: cannot tell.
 */
export function kekOfUnreadable(ref: KekReference | undefined, provider: Pick<KekProvider, 'kind' | 'identify'>, scope: KekSelector): KekVersionRef | undefined {
  if (ref?.kek) return ref.kek;
  const matdesc = ref?.matdesc;
  if (!matdesc) return undefined;
  const kmsKey = matdesc[KMS_CMK_ID];
  if (kmsKey) {
    if (provider.kind !== 'kms') return { id: kmsKey }; // a KMS key, never a keyring or token KEK
    const same = sameKmsKey(kmsKey, scope.id);
    return same === undefined ? undefined : same ? { id: scope.id } : { id: kmsKey };
  }
  /* A keyring KEK is chosen by its matdesc, as an S3EC reader chooses it; {} names none (V1's default). */
  if (provider.kind === 'kms' || Object.keys(matdesc).length === 0) return undefined;
  return provider.identify({ wrapAlg: 'AES/GCM', cekAlg: '', wrapped: Buffer.alloc(0), matdesc });
}

/** Whether two KMS key ids (key id or key ARN) decidably name the same key; undefined for aliases. */
function sameKmsKey(a: string, b: string): boolean | undefined {
  if (a === b) return true;
  const alias = /(^|:)alias\//;
  if (alias.test(a) || alias.test(b)) return undefined;
  const keyPart = (x: string) => x.slice(x.lastIndexOf('/') + 1);
  return keyPart(a) === keyPart(b);
}

/**
 * kekOfUnreadable over a key map: a KMS key named in another form than in the map is recorded as
 * the map's source when it is that key; an alias (or a key the map's several sources cannot tell
 * apart) is "cannot tell".
 */
export function kekOfUnreadableInMap(ref: KekReference | undefined, provider: Pick<KekProvider, 'kind' | 'identify'>, map: KekMap): KekVersionRef | undefined {
  if (map.single) return kekOfUnreadable(ref, provider, map.single.from);
  const kmsKey = ref?.kek ? undefined : ref?.matdesc?.[KMS_CMK_ID];
  if (kmsKey && provider.kind === 'kms') {
    if (kmsKeyPart(kmsKey) === undefined) return undefined;
    const e = map.entryFor({ id: kmsKey }, true);
    return e ? { id: e.from.id } : { id: kmsKey };
  }
  return kekOfUnreadable(ref, provider, map.entries[0]!.from);
}
