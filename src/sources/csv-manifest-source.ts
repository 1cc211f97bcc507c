/**
 * A CSV manifest of `bucket,key` lines, as S3 Inventory and S3 Batch Operations use (extra
 * columns are ignored; fields may be double-quoted; keys URL-encoded when the manifest says so).
 * The cursor is the line number, so a restarted scheduler resumes exactly there.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../core/errors.ts';
import type { Source, SourcePage } from './source.ts';
import { s3StoreId } from '../core/store-id.ts';

export class CsvManifestSource implements Source {
  private lines?: string[];

  constructor(
    private readonly path: string,
    private readonly keysUrlEncoded = false,
  ) {}

  async page(cursor: unknown, limit: number): Promise<SourcePage> {
    const lines = await this.load();
    const start = typeof cursor === 'number' ? cursor : 0;
    const end = Math.min(lines.length, start + limit);
    const byStore = new Map<string, string[]>();
    for (let i = start; i < end; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      const [bucket, rawKey] = splitCsv(line);
      if (!bucket || rawKey === undefined || rawKey === '') {
        throw new ConfigError(`manifest ${this.path} line ${i + 1}: expected "bucket,key"`);
      }
      const key = this.keysUrlEncoded ? decodeURIComponent(rawKey.replace(/\+/g, ' ')) : rawKey;
      const storeId = s3StoreId(bucket);
      let keys = byStore.get(storeId);
      if (!keys) byStore.set(storeId, (keys = []));
      keys.push(key);
    }
    return { groups: [...byStore].map(([storeId, keys]) => ({ storeId, keys })), cursor: end, done: end >= lines.length };
  }

  /** A manifest is a fixed list: the delta pass has nothing new to find. */
  async deltaPage(): Promise<SourcePage> {
    return { groups: [], cursor: null, done: true };
  }

  private async load(): Promise<string[]> {
    if (!this.lines) {
      let text: string;
      try {
        text = await readFile(this.path, 'utf8');
      } catch (err) {
        throw new ConfigError(`manifest ${this.path} cannot be read`, { cause: err });
      }
      this.lines = text.split(/\r?\n/);
    }
    return this.lines;
  }
}

/** One CSV record (no embedded newlines): fields split on commas, double quotes removed, "" kept as ". */
export function splitCsv(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(cur), (cur = '');
    else cur += c;
  }
  out.push(cur);
  return out;
}
