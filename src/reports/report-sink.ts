/**
 * Where a report goes: stdout, a local file, or an S3 object (`s3://bucket/key`, like S3 Batch
 * Operations' completion reports). An S3 report is spooled to a temporary file (mode 0600) and
 * uploaded with one PutObject when complete, so a failed run never leaves half a report in S3.
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '../errors.ts';

export interface ReportSink {
  write(line: string): Promise<void>;
  /** Finishes the report; returns where it is. */
  close(): Promise<string>;
  /** Drops a partial report (temporary files); safe after close. */
  abort(): Promise<void>;
}

export function parseS3Url(url: string): { bucket: string; key: string } {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
  if (!m) throw new ConfigError(`--out ${url}: expected s3://<bucket>/<key>`);
  return { bucket: m[1]!, key: m[2]! };
}

async function writeLine(stream: NodeJS.WritableStream, line: string): Promise<void> {
  if (!stream.write(line + '\n')) await once(stream, 'drain');
}

export async function openReportSink(out: string | undefined, s3: () => S3Client, contentType: string): Promise<ReportSink> {
  if (out === undefined || out === '-') {
    return { write: (l) => writeLine(process.stdout, l), close: async () => 'stdout', abort: async () => {} };
  }
  if (!out.startsWith('s3://')) {
    const file = createWriteStream(out, { mode: 0o600 });
    await once(file, 'open');
    return {
      write: (l) => writeLine(file, l),
      async close() {
        file.end();
        await once(file, 'finish');
        return out;
      },
      async abort() {
        file.destroy();
      },
    };
  }
  const { bucket, key } = parseS3Url(out);
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
          await s3().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: createReadStream(path), ContentLength: size, ContentType: contentType }));
        } catch (err) {
          throw new Error(`report upload to ${out} failed`, { cause: err });
        }
        return out;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
    async abort() {
      file.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
