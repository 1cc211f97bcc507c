/**
 * Issue 15: `campaign report --out` never overwrites what exists unless forced, writes a local
 * report beside the target and renames it into place (never through a symlink), puts an S3
 * report only where no object is (If-None-Match), and neutralises CSV cells a spreadsheet would
 * run as formulas. Local files in a temporary directory; S3 against the test RGW.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { openReportSink, type ReportSink } from '../src/reports/report-sink.ts';
import { csvField, lineWriter } from '../src/reports/report-format.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';

let dir: string;
let s3: S3Client;
let tb: TestBucket;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rewrap-report-sink-'));
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'report-sink');
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await tb?.cleanup();
});

async function writeReport(sink: ReportSink, lines: string[]): Promise<string> {
  for (const l of lines) await sink.write(l);
  return sink.close();
}

const sinkFor = (out: string, force = false) => openReportSink(out, () => s3, 'text/csv', { force });

describe('local --out (issue 15)', () => {
  it('refuses an existing file unless --force; with --force replaces it whole', async () => {
    const out = join(dir, 'existing.csv');
    writeFileSync(out, 'precious\n');
    await expect(sinkFor(out)).rejects.toThrow(/already exists; choose another name, or pass --force to replace it/);
    expect(readFileSync(out, 'utf8')).toBe('precious\n');
    await writeReport(await sinkFor(out, true), ['a', 'b']);
    expect(readFileSync(out, 'utf8')).toBe('a\nb\n');
    expect(statSync(out).mode & 0o777).toBe(0o600);
  });

  it('never writes through a symlink: refused without --force, and --force replaces the link, not its target', async () => {
    const target = join(dir, 'target.txt');
    writeFileSync(target, 'do not overwrite\n');
    const out = join(dir, 'link.csv');
    symlinkSync(target, out);
    await expect(sinkFor(out)).rejects.toThrow(/already exists/);
    await writeReport(await sinkFor(out, true), ['report']);
    expect(readFileSync(target, 'utf8')).toBe('do not overwrite\n');
    expect(lstatSync(out).isSymbolicLink()).toBe(false);
    expect(readFileSync(out, 'utf8')).toBe('report\n');
  });

  it('the file appears only when complete; a file created meanwhile is not replaced; an aborted report leaves nothing', async () => {
    const out = join(dir, 'late.csv');
    const sink = await sinkFor(out);
    await sink.write('partial');
    expect(existsSync(out)).toBe(false);
    writeFileSync(out, 'someone else\n');
    await expect(sink.close()).rejects.toThrow(/already exists/);
    expect(readFileSync(out, 'utf8')).toBe('someone else\n');
    const aborted = await sinkFor(join(dir, 'aborted.csv'));
    await aborted.write('x');
    await aborted.abort();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp') || f === 'aborted.csv')).toEqual([]);
  });
});

describe('S3 --out (issue 15)', () => {
  it('refuses an existing key unless --force', async () => {
    const key = 'reports/existing.csv';
    await s3.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: 'precious\n' }));
    const url = `s3://${tb.bucket}/${key}`;
    await expect(sinkFor(url)).rejects.toThrow(/already exists; choose another name, or pass --force/);
    const body = async () => (await s3.send(new GetObjectCommand({ Bucket: tb.bucket, Key: key }))).Body!.transformToString();
    expect(await body()).toBe('precious\n');
    await writeReport(await sinkFor(url, true), ['new']);
    expect(await body()).toBe('new\n');
  });

  it('a key that appeared while the report was written is not overwritten', async () => {
    const key = 'reports/race.csv';
    const sink = await sinkFor(`s3://${tb.bucket}/${key}`);
    await sink.write('mine');
    await s3.send(new PutObjectCommand({ Bucket: tb.bucket, Key: key, Body: 'theirs\n' }));
    await expect(sink.close()).rejects.toThrow(/already exists/);
    expect(await (await s3.send(new GetObjectCommand({ Bucket: tb.bucket, Key: key }))).Body!.transformToString()).toBe('theirs\n');
  });
});

describe('CSV cells (issue 15)', () => {
  it('cells starting with = + - @ (or tab, CR) are neutralised with a leading apostrophe; others are unchanged', () => {
    expect(['=HYPERLINK("http://x")', '+1', '-2+3', '@SUM(A1)', '\tx', 'plain', '', 'a=b'].map(csvField)).toEqual([
      `"'=HYPERLINK(""http://x"")"`,
      "'+1",
      "'-2+3",
      "'@SUM(A1)",
      "'\tx",
      'plain',
      '',
      'a=b',
    ]);
    const w = lineWriter<{ item: string; n: number }>('csv', ['item', 'n']);
    expect(w.line({ item: '=cmd|"/c calc"!A1', n: 3 })).toBe(`"'=cmd|""/c calc""!A1",3`);
    expect(lineWriter<{ item: string }>('jsonl', ['item']).line({ item: '=x' })).toBe('{"item":"=x"}');
  });
});
