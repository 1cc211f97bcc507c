/**
 * Store ids: how the ledger, campaign scopes, sources and metrics name one store. The ledger keeps
 * them as text (batches, scopes, inventory), so the two forms never change:
 * `s3://<bucket>` and `pg:<table as the spec gives it>`.
 */
export type StoreId = `s3://${string}` | `pg:${string}`;
export type StoreRef = { kind: 's3'; bucket: string } | { kind: 'pg'; table: string };
export type StoreKind = StoreRef['kind'];

/** How S3 store ids and object addresses start. */
export const S3_URL_PREFIX = 's3://';
const S3 = S3_URL_PREFIX;
const PG = 'pg:';

export function formatStoreId(ref: StoreRef): StoreId {
  return ref.kind === 's3' ? `${S3}${ref.bucket}` : `${PG}${ref.table}`;
}

export const s3StoreId = (bucket: string): StoreId => formatStoreId({ kind: 's3', bucket });
export const pgStoreId = (table: string): StoreId => formatStoreId({ kind: 'pg', table });

/** The store an id names; undefined for anything else (e.g. a manifest scope, `manifest:<file>`). */
export function parseStoreId(id: string): StoreRef | undefined {
  if (id.startsWith(S3)) return { kind: 's3', bucket: id.slice(S3.length) };
  if (id.startsWith(PG)) return { kind: 'pg', table: id.slice(PG.length) };
  return undefined;
}

export function storeKind(id: string): StoreKind | undefined {
  return parseStoreId(id)?.kind;
}

/**
 * The bucket of an S3 store id (`s3://<bucket>`), for code that only ever sees S3 stores (the
 * noncurrent-version sweep and gate). Anything else is a bug upstream, so it throws, naming the id.
 */
export function bucketOf(id: string): string {
  const store = parseStoreId(id);
  if (store?.kind !== 's3' || store.bucket === '') {
    throw new Error(`store id ${JSON.stringify(id)}: expected an S3 store id, s3://<bucket>`);
  }
  return store.bucket;
}

/** `s3://bucket/key`: how an S3 object is addressed (inventory manifests, report targets) and named in messages. */
export function s3Url(bucket: string, key: string): string {
  return `${S3}${bucket}/${key}`;
}

/** `s3://bucket/key` → its parts; undefined when it is not one. */
export function parseS3Url(url: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  return m ? { bucket: m[1]!, key: m[2]! } : undefined;
}
