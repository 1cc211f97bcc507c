/**
 * An S3 Inventory report as a source (issue 14 point 5): plans exactly the keys the report lists
 * in its source bucket, page by page. At a billion objects nobody LISTs a bucket; S3 Batch
 * Operations reads the same reports.
 * - CSV only (gzip, no header row, quoted fields), keys URL-encoded as a form: a space is `+`,
 *   a `+` is `%2B` (decoded as such; ORC and Parquet reports are refused).
 * - All-versions reports (IsLatest, IsDeleteMarker columns): only the current version of each
 *   key is planned, never a delete marker. Noncurrent versions stay as they are (their rewrap is
 *   a separate feature; kek retire counts them through the versioned-bucket check).
 * - A report is a snapshot: the delta pass finds nothing new (objects written after the report
 *   was taken are in the next report).
 * The cursor names the data file and how many of its records were planned, e.g.
 * { "fileIndex": 3, "fileKey": ".../data/ab12.csv.gz", "rowsRead": 20000 }.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { CampaignSpec } from '../core/campaign-spec.ts';
import { ConfigError } from '../core/errors.ts';
import { splitCsv } from './csv-manifest-source.ts';
import { itemKeysOf } from './instruction-files.ts';
import { readInventoryManifest, type InventoryManifest } from './s3-inventory-manifest.ts';
import { InventoryFileReader } from './s3-inventory-file.ts';
import type { Source, SourcePage } from './source.ts';
import { s3StoreId } from '../core/store-id.ts';

export interface InventoryCursor {
  fileIndex: number;
  fileKey: string;
  rowsRead: number;
}

export class S3InventorySource implements Source {
  constructor(
    private readonly client: S3Client,
    private readonly spec: { manifest: string; bucket: string },
    private readonly cache: InventoryCache,
  ) {}

  async page(cursor: unknown, limit: number, signal?: AbortSignal): Promise<SourcePage> {
    const memo = this.cache.takePage(this.spec.manifest, cursor, limit);
    if (memo) return memo;
    const m = await this.cache.manifest(this.client, this.spec.manifest, signal);
    checkBucket(m, this.spec.bucket, 's3-inventory source');
    let at = startOf(cursor, m);
    const listed: string[] = [];
    for (let rows = 0; rows < limit && at.fileIndex < m.files.length; ) {
      const reader = await this.cache.reader(this.client, m, at.fileIndex, at.rowsRead, signal);
      let ended = false;
      while (rows < limit) {
        const record = await reader.next();
        if (record === null) {
          ended = true;
          break;
        }
        rows++;
        const key = keyOf(record, m, reader);
        if (key !== undefined) listed.push(key);
      }
      if (ended) {
        reader.close(); // at its end already; the one kept for the next page is another caller's
        at = { fileIndex: at.fileIndex + 1, rowsRead: 0 };
      } else {
        this.cache.keepReader(m.url, reader);
        at = { fileIndex: at.fileIndex, rowsRead: reader.rowsRead };
      }
    }
    const keys = await itemKeysOf(this.client, m.sourceBucket, listed, signal);
    const done = at.fileIndex >= m.files.length;
    const next: InventoryCursor | null = done ? null : { fileIndex: at.fileIndex, fileKey: m.files[at.fileIndex]!.key, rowsRead: at.rowsRead };
    const page = { groups: [{ storeId: s3StoreId(m.sourceBucket), keys }], cursor: next, done };
    this.cache.rememberPage(this.spec.manifest, cursor, limit, page);
    return page;
  }

  /** A report is a fixed list: the delta pass has nothing new to find. */
  async deltaPage(): Promise<SourcePage> {
    return { groups: [], cursor: null, done: true };
  }
}

function checkBucket(m: InventoryManifest, bucket: string, at: string): void {
  if (m.sourceBucket !== bucket) {
    throw new ConfigError(`${at}: bucket is "${bucket}" but the inventory ${m.url} lists bucket "${m.sourceBucket}" (its sourceBucket); set bucket to the bucket the inventory is for`);
  }
}

/**
 * At campaign creation (CLI): each inventory's manifest is read and its source bucket compared
 * with the spec's, so a wrong report is refused before the campaign exists. (Planning checks again.)
 */
export async function checkInventorySources(client: S3Client, spec: CampaignSpec, signal?: AbortSignal): Promise<void> {
  for (const [i, s] of spec.sources.entries()) {
    if (s.type === 's3-inventory') checkBucket(await readInventoryManifest(client, s.manifest, signal), s.bucket, `campaign spec.sources[${i}]`);
  }
}

function startOf(cursor: unknown, m: InventoryManifest): { fileIndex: number; rowsRead: number } {
  if (cursor === null || cursor === undefined) return { fileIndex: 0, rowsRead: 0 };
  const c = cursor as Partial<InventoryCursor>;
  if (typeof c !== 'object' || !Number.isInteger(c.fileIndex) || !Number.isInteger(c.rowsRead) || c.fileIndex! < 0 || c.rowsRead! < 0) {
    throw new ConfigError(`inventory ${m.url}: the saved plan cursor is not an inventory cursor ({ fileIndex, fileKey, rowsRead }); the campaign's source was changed`);
  }
  if (c.fileIndex! > m.files.length || (c.fileIndex! < m.files.length && m.files[c.fileIndex!]!.key !== c.fileKey)) {
    throw new ConfigError(
      `inventory ${m.url}: planning stopped in ${c.fileKey} (files[${c.fileIndex}]) but the manifest now lists other files; it was replaced since planning began: create a new campaign for the new report`,
    );
  }
  return { fileIndex: c.fileIndex!, rowsRead: c.rowsRead! };
}

const isTrue = (v: string | undefined) => v !== undefined && v.toLowerCase() === 'true';

/** The object key of one record, or undefined for a noncurrent version or a delete marker. */
function keyOf(record: string, m: InventoryManifest, reader: InventoryFileReader): string | undefined {
  if (record === '') return undefined;
  const fields = splitCsv(record);
  const c = m.columns;
  const where = () => `${reader.where()} row ${reader.rowsRead}`;
  if (fields.length !== c.count) throw new ConfigError(`${where()}: ${fields.length} fields, but fileSchema names ${c.count} columns`);
  if (fields[c.bucket] !== m.sourceBucket) throw new ConfigError(`${where()}: Bucket is not the manifest's sourceBucket "${m.sourceBucket}"`);
  if (c.isDeleteMarker !== undefined && isTrue(fields[c.isDeleteMarker])) return undefined;
  if (c.isLatest !== undefined && !isTrue(fields[c.isLatest])) return undefined;
  const raw = fields[c.key]!;
  let key: string;
  try {
    key = decodeURIComponent(raw.replace(/\+/g, '%20'));
  } catch {
    throw new ConfigError(`${where()}: Key is not URL-encoded as S3 Inventory writes it`);
  }
  if (key === '') throw new ConfigError(`${where()}: empty Key`);
  return key;
}

/**
 * Per process (Resources): manifests already read, one open reader per report (where the last
 * page stopped), and the last page per report. The planner reads one page ahead and drops it
 * when its time budget ends; asked for that page again, the cache answers it instead of reading
 * the file again from its start up to there.
 */
export class InventoryCache {
  private readonly manifests = new Map<string, InventoryManifest>();
  private readonly readers = new Map<string, InventoryFileReader>();
  private readonly pages = new Map<string, { cursor: string; limit: number; page: SourcePage }>();

  async manifest(client: S3Client, url: string, signal?: AbortSignal): Promise<InventoryManifest> {
    let m = this.manifests.get(url);
    if (!m) {
      m = await readInventoryManifest(client, url, signal); // a failure is not kept: a fixed manifest is read again
      this.manifests.set(url, m);
    }
    return m;
  }

  /** A reader of files[fileIndex] positioned after `rowsRead` records: the one left open there, or a new one. */
  async reader(client: S3Client, m: InventoryManifest, fileIndex: number, rowsRead: number, signal?: AbortSignal): Promise<InventoryFileReader> {
    const open = this.readers.get(m.url);
    this.readers.delete(m.url);
    if (open && open.fileIndex === fileIndex && open.rowsRead === rowsRead) return open;
    open?.close();
    const r = await InventoryFileReader.open(client, m, fileIndex, signal);
    try {
      while (r.rowsRead < rowsRead) {
        if ((await r.next()) === null) throw new ConfigError(`${r.where()}: has ${r.rowsRead} rows, fewer than the ${rowsRead} already planned; the file was replaced`);
      }
    } catch (err) {
      r.close();
      throw err;
    }
    return r;
  }

  keepReader(url: string, r: InventoryFileReader): void {
    this.readers.get(url)?.close();
    this.readers.set(url, r);
  }

  rememberPage(url: string, cursor: unknown, limit: number, page: SourcePage): void {
    this.pages.set(url, { cursor: JSON.stringify(cursor ?? null), limit, page });
  }

  takePage(url: string, cursor: unknown, limit: number): SourcePage | undefined {
    const p = this.pages.get(url);
    if (!p || p.cursor !== JSON.stringify(cursor ?? null) || p.limit !== limit) return undefined;
    this.pages.delete(url);
    return p.page;
  }

  close(): void {
    for (const r of this.readers.values()) r.close();
    this.readers.clear();
  }
}
