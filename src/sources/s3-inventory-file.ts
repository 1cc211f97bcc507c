/**
 * One data file of an S3 Inventory report (gzip CSV), read as a stream of records: memory stays
 * flat however large the file, and a reader left open between pages continues where it stopped.
 * At the end its size and MD5 are checked against the manifest: a file cut short or replaced
 * stops the plan before it is called complete.
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform, type Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip } from 'node:zlib';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../core/errors.ts';
import { isNotFound } from '../stores/s3-errors.ts';
import type { InventoryManifest } from './s3-inventory-manifest.ts';

export class InventoryFileReader {
  /** Records returned so far (the cursor's rowsRead). */
  rowsRead = 0;

  private constructor(
    readonly manifest: InventoryManifest,
    readonly fileIndex: number,
    private readonly stream: Readable,
    private readonly records: AsyncGenerator<string>,
    private readonly counted: { bytes: number; md5: ReturnType<typeof createHash> },
  ) {}

  static async open(client: S3Client, m: InventoryManifest, fileIndex: number, signal?: AbortSignal): Promise<InventoryFileReader> {
    const file = m.files[fileIndex]!;
    let body: Readable;
    try {
      const out = await client.send(new GetObjectCommand({ Bucket: m.filesBucket, Key: file.key }), { abortSignal: signal });
      body = out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new ConfigError(`inventory manifest ${m.url}: files[${fileIndex}] (${file.key}) is not in bucket ${m.filesBucket}; the report is incomplete or was deleted`, { cause: err });
      throw err;
    }
    const counted = { bytes: 0, md5: createHash('md5') };
    const tap = new Transform({
      transform(chunk: Buffer, _enc, done) {
        counted.bytes += chunk.length;
        counted.md5.update(chunk);
        done(null, chunk);
      },
    });
    // pipeline destroys every stage with the first error, so reading the last one rejects.
    const stream = pipeline(body, tap, createGunzip(), () => undefined);
    return new InventoryFileReader(m, fileIndex, stream, recordsOf(stream), counted);
  }

  /** The next CSV record, or null at the end of the file (after checking its size and MD5). */
  async next(): Promise<string | null> {
    let r: IteratorResult<string>;
    try {
      r = await this.records.next();
    } catch (err) {
      /* Only zlib's own errors say the file is not what S3 Inventory writes (a ConfigError pauses
         the campaign). A connection reset or timeout mid-file is transient: the planner tries
         the page again on its next step, from a new reader positioned at the saved cursor. */
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (code.startsWith('Z_')) {
        throw new ConfigError(`${this.where()}: cannot be read as gzip CSV after ${this.rowsRead} rows; expected the .csv.gz S3 Inventory wrote`, { cause: err });
      }
      throw new Error(`${this.where()}: reading stopped after ${this.rowsRead} rows (${code || (err as Error).name}); the next planning step reads it again`, { cause: err });
    }
    if (!r.done) {
      this.rowsRead++;
      return r.value;
    }
    const file = this.manifest.files[this.fileIndex]!;
    const md5 = this.counted.md5.digest('hex');
    if (this.counted.bytes !== file.size || md5 !== file.md5) {
      throw new ConfigError(`${this.where()}: ${this.counted.bytes} bytes with MD5 ${md5}, the manifest says ${file.size} bytes with MD5 ${file.md5}; the file was changed or cut short`);
    }
    return null;
  }

  where(): string {
    return `inventory ${this.manifest.url} files[${this.fileIndex}] (${this.manifest.files[this.fileIndex]!.key})`;
  }

  close(): void {
    this.stream.destroy();
    void this.records.return(undefined).catch(() => undefined);
  }
}

/** Lines of the decompressed file. Keys are URL-encoded, so no record spans two lines. */
async function* recordsOf(stream: Readable): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream) {
    rest += decoder.write(chunk as Buffer);
    let start = 0;
    for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n', start)) {
      yield rest.slice(start, nl > start && rest[nl - 1] === '\r' ? nl - 1 : nl);
      start = nl + 1;
    }
    rest = rest.slice(start);
  }
  rest += decoder.end();
  if (rest !== '') yield rest;
}
