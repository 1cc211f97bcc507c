/**
 * Writes an S3 Inventory report into a bucket the way S3 does (AWS docs "Inventory manifest",
 * "Locating your inventory list"):
 *   <prefix>/<source-bucket>/<config-id>/data/<uuid>.csv.gz                 the data files
 *   <prefix>/<source-bucket>/<config-id>/YYYY-MM-DDTHH-MMZ/manifest.json   the manifest
 *   <prefix>/<source-bucket>/<config-id>/YYYY-MM-DDTHH-MMZ/manifest.checksum  MD5 of manifest.json
 * Data files: gzip CSV, no header row, every field double-quoted, columns in fileSchema order,
 * keys URL-encoded as a form (application/x-www-form-urlencoded, like Java's URLEncoder: a space
 * is `+`, a `+` is `%2B`, `/` is `%2F`, UTF-8 bytes as %XX); tools read them with unquote_plus.
 * manifest.json: sourceBucket, destinationBucket (an ARN), version "2016-11-30",
 * creationTimestamp (epoch ms, a string), fileFormat "CSV", fileSchema, files [{ key, size, MD5checksum }].
 */
import { createHash, randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

export interface InventoryRow {
  key: string;
  /** All-versions reports only. */
  versionId?: string;
  isLatest?: boolean;
  isDeleteMarker?: boolean;
  size?: number;
}

export interface InventoryReport {
  /** s3://<destination bucket>/<key of manifest.json> */
  manifestUrl: string;
  manifestKey: string;
  fileKeys: string[];
}

export const CURRENT_SCHEMA = 'Bucket, Key, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus';
export const ALL_VERSIONS_SCHEMA = 'Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus';

/** Java URLEncoder.encode(key, "UTF-8"): unreserved are A-Z a-z 0-9 . - * _ ; space becomes +. */
export function inventoryEncodeKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

const quoted = (v: string) => `"${v.replace(/"/g, '""')}"`;

function record(sourceBucket: string, r: InventoryRow, allVersions: boolean): string {
  const size = String(r.size ?? (r.isDeleteMarker ? '' : 1024));
  const common = [size, '2026-12-01T00:00:00.000Z', r.isDeleteMarker ? '' : 'd41d8cd98f00b204e9800998ecf8427e', r.isDeleteMarker ? '' : 'STANDARD', 'false', '', 'NOT-SSE'];
  const head = [sourceBucket, inventoryEncodeKey(r.key)];
  const fields = allVersions ? [...head, r.versionId ?? '', String(r.isLatest ?? true), String(r.isDeleteMarker ?? false), ...common] : [...head, ...common];
  return fields.map(quoted).join(',');
}

export async function writeInventory(
  client: S3Client,
  o: { destinationBucket: string; sourceBucket: string; rows: InventoryRow[]; files: number; allVersions?: boolean; prefix?: string; configId?: string; createdAt?: Date },
): Promise<InventoryReport> {
  const created = o.createdAt ?? new Date();
  const base = `${o.prefix ?? 'inventory'}/${o.sourceBucket}/${o.configId ?? 'rewrap-test'}`;
  const per = Math.ceil(o.rows.length / o.files);
  const files: { key: string; size: number; MD5checksum: string }[] = [];
  for (let f = 0; f < o.files; f++) {
    const rows = o.rows.slice(f * per, (f + 1) * per);
    const body = gzipSync(Buffer.from(rows.map((r) => `${record(o.sourceBucket, r, Boolean(o.allVersions))}\n`).join(''), 'utf8'));
    const key = `${base}/data/${randomUUID()}.csv.gz`;
    await client.send(new PutObjectCommand({ Bucket: o.destinationBucket, Key: key, Body: body, ContentType: 'application/x-gzip' }));
    files.push({ key, size: body.length, MD5checksum: createHash('md5').update(body).digest('hex') });
  }
  const stamp = created.toISOString().slice(0, 16).replace(':', '-') + 'Z'; // 2026-12-01T21-32Z
  const manifest = Buffer.from(
    JSON.stringify(
      {
        sourceBucket: o.sourceBucket,
        destinationBucket: `arn:aws:s3:::${o.destinationBucket}`,
        version: '2016-11-30',
        creationTimestamp: String(created.getTime()),
        fileFormat: 'CSV',
        fileSchema: o.allVersions ? ALL_VERSIONS_SCHEMA : CURRENT_SCHEMA,
        files,
      },
      null,
      2,
    ),
  );
  const manifestKey = `${base}/${stamp}/manifest.json`;
  await client.send(new PutObjectCommand({ Bucket: o.destinationBucket, Key: manifestKey, Body: manifest, ContentType: 'application/json' }));
  const checksum = createHash('md5').update(manifest).digest('hex');
  await client.send(new PutObjectCommand({ Bucket: o.destinationBucket, Key: `${base}/${stamp}/manifest.checksum`, Body: checksum }));
  return { manifestUrl: `s3://${o.destinationBucket}/${manifestKey}`, manifestKey, fileKeys: files.map((f) => f.key) };
}
