/**
 * Where a report goes: stdout, a local file, or an S3 object (`s3://bucket/key`, like S3 Batch
 * Operations' completion reports). An S3 report is spooled to a temporary file (mode 0600) and
 * uploaded with one PutObject when complete, so a failed run never leaves half a report in S3.
 *
 * Neither kind overwrites what exists unless `force` (`--force`): a report names item keys and
 * failure details, and `--out` may be typed wrong. A local report is written to a fresh temporary
 * file beside the target (O_EXCL: never through a symlink), then linked into place (fails if the
 * name was taken meanwhile) or, with force, renamed over it (which replaces a symlink, never
 * writes through it). An S3 report is put with If-None-Match: *.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { link, lstat, mkdtemp, open, rename, rm, stat, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../core/errors.ts';
import { parseS3Url as parseS3ObjectUrl, S3_URL_PREFIX, s3Url } from '../core/store-id.ts';

export interface ReportSink {
  write(line: string): Promise<void>;
  /** Finishes the report; returns where it is. */
  close(): Promise<string>;
  /** Drops a partial report (temporary files); safe after close. */
  abort(): Promise<void>;
}

export function parseS3Url(url: string): { bucket: string; key: string } {
  const at = parseS3ObjectUrl(url);
  if (!at) throw new ConfigError(`--out ${url}: expected s3://<bucket>/<key>`);
  return at;
}

async function writeLine(stream: NodeJS.WritableStream, line: string): Promise<void> {
  if (!stream.write(line + '\n')) await once(stream, 'drain');
}

const exists = (out: string) =>
  new ConfigError(`--out ${out}: already exists; choose another name, or pass --force to replace it`);

export async function openReportSink(out: string | undefined, s3: () => S3Client, contentType: string, o: { force?: boolean } = {}): Promise<ReportSink> {
  const force = o.force === true;
  if (out === undefined || out === '-') {
    return { write: (l) => writeLine(process.stdout, l), close: async () => 'stdout', abort: async () => {} };
  }
  if (!out.startsWith(S3_URL_PREFIX)) return openFileSink(out, force);
  const { bucket, key } = parseS3Url(out);
  // Checked before the report is computed (fail fast); If-None-Match below closes the race.
  if (!force && (await s3ObjectExists(s3(), bucket, key))) throw exists(out);
  const dir = await mkdtemp(join(tmpdir(), 'rewrap-report-'));
  const path = join(dir, 'report');
  const file: WriteStream = createWriteStream(path, { mode: 0o600 });
  await once(file, 'open');
  return {
    write: (l) => writeLine(file, l),
    async close() {
      try {
        file.end();
        await once(file, 'finish');
        const { size } = await stat(path);
        try {
          await s3().send(
            new PutObjectCommand({ Bucket: bucket, Key: key, Body: createReadStream(path), ContentLength: size, ContentType: contentType, ...(force ? {} : { IfNoneMatch: '*' }) }),
          );
        } catch (err) {
          if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412) throw exists(out);
          throw new Error(`report upload to ${out} failed`, { cause: err });
        }
        return out;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    async abort() {
      file.on('error', () => {}); // a write still pending fails on destroy: the report is dropped anyway
      file.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function s3ObjectExists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw new Error(`--out ${s3Url(bucket, key)}: cannot check whether it exists`, { cause: err });
  }
}

/** A local report: a fresh temporary file beside `out`, put in place when complete. */
async function openFileSink(out: string, force: boolean): Promise<ReportSink> {
  const present = await lstat(out).then(
    (st) => st,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    },
  );
  if (present && !force) throw exists(out);
  if (present?.isDirectory()) throw new ConfigError(`--out ${out}: is a directory; give a file name`);
  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  // 'wx': O_CREAT|O_EXCL, so the temporary name is never a symlink or a file someone planted.
  const file: WriteStream = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
  await once(file, 'open');
  return {
    write: (l) => writeLine(file, l),
    async close() {
      try {
        file.end();
        await once(file, 'close');
        const fh = await open(tmp, 'r');
        await fh.sync().finally(() => fh.close());
        if (force) await rename(tmp, out);
        else {
          try {
            await link(tmp, out); // fails with EEXIST: never replaces a file that appeared meanwhile
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw exists(out);
            throw err;
          }
          await unlink(tmp);
        }
        return out;
      } finally {
        await rm(tmp, { force: true });
      }
    },
    async abort() {
      file.on('error', () => {}); // a write still pending fails on destroy: the report is dropped anyway
      file.destroy();
      await rm(tmp, { force: true });
    },
  };
}
