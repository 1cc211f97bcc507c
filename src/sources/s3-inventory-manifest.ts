/**
 * An S3 Inventory report's manifest.json, as S3 writes it (AWS docs, "Inventory manifest"):
 *   { "sourceBucket": "...", "destinationBucket": "arn:aws:s3:::...", "version": "2016-11-30",
 *     "creationTimestamp": "<epoch ms>", "fileFormat": "CSV",
 *     "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, ...",
 *     "files": [ { "key": "...csv.gz", "size": 123, "MD5checksum": "<hex>" } ] }
 * The files live in the manifest's own bucket (its destination bucket). `manifest.checksum`,
 * next to it, holds the MD5 of manifest.json: checked when present.
 * Errors name the field and what was expected; they never quote the file's content.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../core/errors.ts';
import { isNotFound } from '../stores/s3-errors.ts';
import { parseS3Url } from '../core/store-id.ts';

export interface InventoryFile {
  key: string;
  size: number;
  md5: string;
}

export interface InventoryManifest {
  url: string;
  /** Where the files are: the bucket holding manifest.json. */
  filesBucket: string;
  sourceBucket: string;
  files: InventoryFile[];
  /** Column positions from fileSchema; isLatest/isDeleteMarker only in all-versions inventories. */
  columns: { count: number; bucket: number; key: number; isLatest?: number; isDeleteMarker?: number };
}

/** Larger than any real manifest (a few hundred bytes per data file), small enough to hold. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

export async function readInventoryManifest(client: S3Client, url: string, signal?: AbortSignal): Promise<InventoryManifest> {
  const at = parseS3Url(url);
  if (!at) throw new ConfigError(`inventory manifest ${url}: expected s3://<bucket>/<key of manifest.json>`);
  const bytes = await getBytes(client, at.bucket, at.key, `inventory manifest ${url}`, signal);
  if (bytes === undefined) throw new ConfigError(`inventory manifest ${url}: no such object; give the address of the manifest.json S3 Inventory wrote`);
  const checksumKey = at.key.replace(/[^/]*$/, 'manifest.checksum');
  const checksum = checksumKey === at.key ? undefined : await getBytes(client, at.bucket, checksumKey, `inventory manifest ${url}`, signal);
  if (checksum !== undefined) {
    const md5 = createHash('md5').update(bytes).digest('hex');
    if (checksum.toString('utf8').trim().toLowerCase() !== md5) {
      throw new ConfigError(`inventory manifest ${url}: its MD5 differs from manifest.checksum next to it; the manifest was changed or cut short, use the one S3 wrote`);
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ConfigError(`inventory manifest ${url}: not JSON (${bytes.length} bytes); expected the manifest.json of an S3 Inventory report`);
  }
  return parseManifest(json, url, at.bucket);
}

function parseManifest(json: unknown, url: string, filesBucket: string): InventoryManifest {
  const where = `inventory manifest ${url}`;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(`${where}: expected a JSON object`);
  const m = json as Record<string, unknown>;
  const str = (f: string, what: string): string => {
    if (typeof m[f] !== 'string' || m[f] === '') throw new ConfigError(`${where}: field ${f} missing or not a string; expected ${what}`);
    return m[f] as string;
  };
  const sourceBucket = str('sourceBucket', 'the name of the bucket the inventory lists');
  const fileFormat = str('fileFormat', '"CSV"');
  if (fileFormat !== 'CSV') {
    throw new ConfigError(`${where}: fileFormat ${JSON.stringify(fileFormat.slice(0, 20))} is not supported; expected "CSV" (configure the inventory with output format CSV; ORC and Parquet cannot be read)`);
  }
  const schema = str('fileSchema', 'the comma-separated column names, e.g. "Bucket, Key, Size"').split(',').map((c) => c.trim());
  const col = (name: string) => (schema.indexOf(name) >= 0 ? schema.indexOf(name) : undefined);
  const bucket = col('Bucket');
  const key = col('Key');
  if (bucket === undefined || key === undefined) throw new ConfigError(`${where}: fileSchema has no Bucket or no Key column; expected the columns S3 Inventory writes, e.g. "Bucket, Key, Size"`);
  if (!Array.isArray(m.files)) throw new ConfigError(`${where}: field files missing or not an array; expected [{ "key", "size", "MD5checksum" }, ...]`);
  const files = m.files.map((f, i): InventoryFile => {
    const r = f as Record<string, unknown> | null;
    if (!r || typeof r.key !== 'string' || r.key === '') throw new ConfigError(`${where}: files[${i}].key: expected the key of a .csv.gz file in ${filesBucket}`);
    if (typeof r.size !== 'number' || !Number.isInteger(r.size) || r.size < 0) throw new ConfigError(`${where}: files[${i}].size: expected the file's size in bytes`);
    if (typeof r.MD5checksum !== 'string' || !/^[0-9a-fA-F]{32}$/.test(r.MD5checksum)) throw new ConfigError(`${where}: files[${i}].MD5checksum: expected 32 hex digits (the file's MD5)`);
    return { key: r.key, size: r.size, md5: r.MD5checksum.toLowerCase() };
  });
  return { url, filesBucket, sourceBucket, files, columns: { count: schema.length, bucket, key, isLatest: col('IsLatest'), isDeleteMarker: col('IsDeleteMarker') } };
}

async function getBytes(client: S3Client, bucket: string, key: string, what: string, signal?: AbortSignal): Promise<Buffer | undefined> {
  try {
    const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
    if ((out.ContentLength ?? 0) > MAX_MANIFEST_BYTES) throw new ConfigError(`${what}: ${key} is ${out.ContentLength} bytes, more than a manifest can be (${MAX_MANIFEST_BYTES})`);
    return Buffer.from(await out.Body!.transformToByteArray());
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
