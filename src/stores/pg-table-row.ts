/**
 * Rows to envelopes and envelopes to UPDATE parameters. For a row, the KEK columns ARE the
 * stamp: they are written in the same statement as the wrapped key, so they always describe it.
 */
import type { ReadResult } from './envelope-store.ts';
import type { Envelope, KekReference } from '../core/envelope.ts';
import type { PermanentReason } from '../core/reasons.ts';
import type { PgTableShape } from './pg-table-config.ts';
import type { PgTableColumns } from './pg-table-columns.ts';
import { decodeBase64Strict } from '../core/base64.ts';
import { makeStamp } from '../envelope/stamp.ts';
import { assert } from '../core/errors.ts';

export interface SelectedRow {
  key: string;
  wrapped: Buffer | string | null;
  kek_id: string | null;
  kek_version: string | null;
  material_id: string | null;
  [context: `c${number}`]: string | null;
}

/** AES-256 DEK under AES-GCM: 12-byte IV || 32-byte ciphertext || 16-byte tag. */
const AES_GCM_WRAPPED_BYTES = 12 + 32 + 16;
/** A KMS ciphertext blob: under 32 bytes cannot hold a 32-byte DEK; at most 6144. */
const KMS_BLOB_MIN = 32;
const KMS_BLOB_MAX = 6144;

type Invalid = Extract<ReadResult, { kind: 'invalid' }>;
const invalid = (reason: PermanentReason, detail: string, kekReference?: KekReference): Invalid =>
  kekReference ? { kind: 'invalid', reason, detail, kekReference } : { kind: 'invalid', reason, detail };

/** `pg:public.secrets id=42`: how messages name an item. */
export function itemName(shape: PgTableShape, key: string): string {
  return `${shape.storeId} ${shape.id.name}=${JSON.stringify(key)}`;
}

/**
 * The token is the wrapped-key column exactly as read (bytea bytes, or the UTF-8 bytes of the
 * base64 text as stored, so a non-canonical base64 still compares equal on write).
 */
export function rowToReadResult(shape: PgTableShape, cols: PgTableColumns, row: SelectedRow): ReadResult {
  const where = itemName(shape, row.key);
  const col = shape.wrapped.name;
  const raw = row.wrapped;
  const kek = {
    id: row.kek_id ?? '',
    ...(row.kek_version === null ? {} : { version: row.kek_version }),
    ...(row.material_id === null ? {} : { materialId: row.material_id }),
  };
  /* Invariant 7: a row rewrap cannot read still names its KEK in its KEK columns. */
  const ref = kek.id === '' ? undefined : { kek };
  if (raw === null || raw.length === 0) {
    const kind = cols.wrappedKind === 'bytea' ? 'bytea' : 'base64 text';
    return invalid('malformed-envelope', `${where}: column "${col}" is ${raw === null ? 'NULL' : 'empty'}; expected the wrapped data key (${kind})`, ref);
  }
  let wrapped: Buffer;
  let token: Buffer;
  if (typeof raw === 'string') {
    const decoded = decodeBase64Strict(raw);
    if (!decoded) return invalid('malformed-wrapped-key', `${where}: column "${col}" is not valid base64; expected the base64 of the wrapped data key`, ref);
    wrapped = decoded;
    token = Buffer.from(raw, 'utf8');
  } else {
    wrapped = raw;
    token = raw;
  }
  const lengthProblem = wrappedLengthProblem(shape, wrapped.length);
  if (lengthProblem) return invalid('malformed-wrapped-key', `${where}: column "${col}" ${lengthProblem}`, ref);
  if (kek.id === '') {
    return invalid('malformed-envelope', `${where}: column "${shape.kekId.name}" is ${row.kek_id === null ? 'NULL' : 'empty'}; expected the id of the KEK that wraps the DEK`);
  }

  const matdesc: Record<string, string> = {};
  shape.context.forEach((c, i) => {
    const v = row[`c${i}`];
    /* A NULL context column contributes no key: nothing can have bound a NULL into a context. */
    if (v !== null && v !== undefined) matdesc[c.name] = v;
  });
  const envelope: Envelope = {
    dek: { wrapAlg: shape.wrapAlg, cekAlg: shape.cekAlg, wrapped, matdesc, kek },
    stamp: makeStamp(kek, wrapped),
    fields: {},
  };
  return { kind: 'envelope', envelope, token };
}

function wrappedLengthProblem(shape: PgTableShape, n: number): string | undefined {
  if (shape.wrapAlg === 'AES/GCM' && n !== AES_GCM_WRAPPED_BYTES) {
    return `holds ${n} bytes; AES/GCM-wrapped AES-256 keys are ${AES_GCM_WRAPPED_BYTES}`;
  }
  if (shape.wrapAlg === 'kms+context' && (n < KMS_BLOB_MIN || n > KMS_BLOB_MAX)) {
    return `holds ${n} bytes; a KMS ciphertext blob is ${KMS_BLOB_MIN}-${KMS_BLOB_MAX}`;
  }
  return undefined;
}

/** Column-wise parameter arrays for updateSql, in its parameter order. */
export function writeParams(
  shape: PgTableShape,
  cols: PgTableColumns,
  writes: { item: { key: string }; token: unknown; next: Envelope }[],
): unknown[][] {
  const text = cols.wrappedKind === 'text';
  const keys: string[] = [];
  const olds: (Buffer | string)[] = [];
  const news: (Buffer | string)[] = [];
  const kekIds: string[] = [];
  const versions: (string | null)[] = [];
  const materials: (string | null)[] = [];
  const contexts: (string | null)[][] = shape.context.map(() => []);
  const seen = new Set<string>();
  for (const { item, token, next } of writes) {
    const where = itemName(shape, item.key);
    assert(!seen.has(item.key), `${where}: appears twice in one write batch`);
    seen.add(item.key);
    assert(Buffer.isBuffer(token), `${where}: the token is not one this store's read returned`);
    /* The table holds one wrapAlg/cekAlg for all rows: a DEK wrapped otherwise could not be read back. */
    assert(next.dek.wrapAlg === shape.wrapAlg, `${where}: new envelope is ${next.dek.wrapAlg}; this table holds ${shape.wrapAlg} only`);
    assert(next.dek.cekAlg === shape.cekAlg, `${where}: new envelope has cekAlg ${next.dek.cekAlg}; this table holds ${shape.cekAlg} only`);
    assert(next.dek.wrapped.length > 0, `${where}: new wrapped key is empty`);
    const kek = next.dek.kek ?? next.stamp;
    assert(kek !== undefined && kek.id !== '', `${where}: new envelope names no KEK; the KEK columns would be left wrong`);
    keys.push(item.key);
    olds.push(text ? token.toString('utf8') : token);
    news.push(text ? next.dek.wrapped.toString('base64') : next.dek.wrapped);
    kekIds.push(kek.id);
    /* A KMS key has no versions: its key material id is what the version column can tell, if it fits. */
    versions.push(kek.version ?? (cols.kekVersionHoldsMaterialId ? kek.materialId : undefined) ?? null);
    materials.push(kek.materialId ?? null);
    shape.context.forEach((c, i) => contexts[i]!.push(next.dek.matdesc[c.name] ?? null));
  }
  return [keys, olds, news, kekIds, versions, ...(shape.materialId ? [materials] : []), ...contexts];
}
