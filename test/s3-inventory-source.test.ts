/**
 * Issue 14 point 5, acceptance 4: an S3 Inventory report (gzip CSV, written by
 * support/s3-inventory-writer.ts as S3 writes it) as a campaign source, against RGW and real
 * scheduler/worker processes.
 * - 100,000 listed keys in 10 files plan exactly those keys, once each, through a scheduler
 *   SIGKILLed mid-plan and restarted (the cursor resumes inside a file);
 * - a few hundred real encrypted objects whose names hold spaces, `+`, `%` and non-ASCII are
 *   rotated; objects the report does not list (or lists only as noncurrent versions) keep the old KEK;
 * - bad reports are ConfigErrors naming the field, never quoting the file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { ConfigError } from '../src/core/errors.ts';
import { parseCampaignSpec } from '../src/campaign/spec.ts';
import { getCampaign, setCampaignState } from '../src/ledger/index.ts';
import { checkSpecAgainstPolicy } from '../src/api/spec-policy.ts';
import { rewrapCli, specFile } from './support/cli.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { InventoryCache, S3InventorySource } from '../src/sources/s3-inventory-source.ts';
import type { Source } from '../src/sources/source.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { inventoryEncodeKey, writeInventory, type InventoryRow } from './support/s3-inventory-writer.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { eventually } from './support/eventually.ts';

const v1 = { id: 'k', version: '1', material: randomBytes(32) };
const v2 = { id: 'k', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(v1.material, v2.material);

/** Names an inventory must carry through its URL encoding unchanged. */
const ODD = ['a b', 'plus+sign', 'per%cent', '100%25 literal', 'é ü ß', '日本語/ファイル', 'emoji 🔑', 'a+b c%2Bd', "quote\"d 'x' (1) ~*!", 'tab\there'];

let s3: S3Client;
let reports: TestBucket;
let objects: TestBucket;
let pipe: Pipeline;

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  reports = await freshBucket(s3, 'inventory-reports');
  objects = await freshBucket(s3, 'inventory-objects');
  pipe = await startPipeline({ label: 'inventory', workers: 0, env: { REWRAP_PLAN_PAGE: '1000' } });
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
  await reports?.cleanup();
  await objects?.cleanup();
});

async function allPages(source: Source, limit: number, fresh?: () => Source): Promise<{ keys: string[]; cursors: unknown[] }> {
  const keys: string[] = [];
  const cursors: unknown[] = [];
  let s = source;
  for (let cursor: unknown = null, done = false; !done; ) {
    const page = await s.page(cursor, limit);
    for (const g of page.groups) keys.push(...g.keys);
    cursors.push(page.cursor);
    ({ cursor, done } = page);
    if (fresh) s = fresh(); // a restarted process: nothing cached, only the saved cursor
  }
  return { keys, cursors };
}

describe('s3-inventory source', () => {
  it('reads the report S3 writes: current versions only, URL-encoded keys round-trip, same keys whether resumed from the cursor or not', async () => {
    const rows: InventoryRow[] = [];
    const current: string[] = [];
    for (let i = 0; i < 120; i++) {
      const key = `v/${ODD[i % ODD.length]} ${i}`;
      rows.push({ key, versionId: `old${i}`, isLatest: false });
      if (i % 7 === 3) rows.push({ key, versionId: `dm${i}`, isLatest: true, isDeleteMarker: true }); // deleted: nothing to rotate
      else {
        rows.push({ key, versionId: `cur${i}`, isLatest: true });
        current.push(key);
      }
    }
    const r = await writeInventory(s3, { destinationBucket: reports.bucket, sourceBucket: 'src-a', rows, files: 3, allVersions: true });
    const spec = { manifest: r.manifestUrl, bucket: 'src-a' };
    const once = await allPages(new S3InventorySource(s3, spec, new InventoryCache()), 25);
    expect(once.keys).toEqual(current);
    // Resumed from each saved cursor by a fresh process: the same keys, none doubled.
    const resumed = await allPages(new S3InventorySource(s3, spec, new InventoryCache()), 25, () => new S3InventorySource(s3, spec, new InventoryCache()));
    expect(resumed.keys).toEqual(current);
    // The cursor is descriptive JSON: which file, its key, how many of its records were read.
    expect(once.cursors[0]).toEqual({ fileIndex: 0, fileKey: r.fileKeys[0], rowsRead: 25 });
    expect(inventoryEncodeKey('a b+c%/é')).toBe('a+b%2Bc%25%2F%C3%A9'); // the writer encodes as S3 does
  });

  it('refuses bad reports with a ConfigError naming the field and what was expected, never quoting the content', async () => {
    const put = async (key: string, body: string) => {
      await s3.send(new PutObjectCommand({ Bucket: reports.bucket, Key: key, Body: body }));
      return `s3://${reports.bucket}/${key}`;
    };
    const good = { sourceBucket: 'src-b', destinationBucket: `arn:aws:s3:::${reports.bucket}`, version: '2016-11-30', creationTimestamp: '1', fileFormat: 'CSV', fileSchema: 'Bucket, Key, Size', files: [] };
    const secretish = 'SECRET-LOOKING-CONTENT-'.repeat(20);
    const cases: [string, string, RegExp][] = [
      ['bad/notjson/manifest.json', `{ not json ${secretish}`, /not JSON .*expected the manifest\.json of an S3 Inventory report/],
      ['bad/nosource/manifest.json', JSON.stringify({ ...good, sourceBucket: undefined }), /field sourceBucket missing .*expected the name of the bucket/],
      ['bad/orc/manifest.json', JSON.stringify({ ...good, fileFormat: 'ORC' }), /fileFormat "ORC" is not supported; expected "CSV"/],
      ['bad/parquet/manifest.json', JSON.stringify({ ...good, fileFormat: 'Parquet' }), /fileFormat "Parquet" is not supported/],
      ['bad/nokey/manifest.json', JSON.stringify({ ...good, fileSchema: `Bucket, Size, ${secretish}` }), /fileSchema has no Bucket or no Key column/],
      ['bad/files/manifest.json', JSON.stringify({ ...good, files: [{ key: 'x.csv.gz', size: 1 }] }), /files\[0\]\.MD5checksum: expected 32 hex digits/],
      ['bad/other/manifest.json', JSON.stringify({ ...good, sourceBucket: 'someone-elses' }), /bucket is "src-b" but the inventory .* lists bucket "someone-elses" \(its sourceBucket\)/],
    ];
    for (const [key, body, expected] of cases) {
      const url = await put(key, body);
      const err = await new S3InventorySource(s3, { manifest: url, bucket: 'src-b' }, new InventoryCache()).page(null, 100).catch((e: unknown) => e);
      expect(err, key).toBeInstanceOf(ConfigError);
      expect((err as Error).message, key).toMatch(expected);
      expect((err as Error).message, key).not.toContain('SECRET-LOOKING');
    }
    // A data file replaced after the manifest was written: caught by its size/MD5, before the plan is done.
    const r = await writeInventory(s3, { destinationBucket: reports.bucket, sourceBucket: 'src-b', rows: [{ key: 'x' }, { key: 'y' }], files: 1 });
    await s3.send(new PutObjectCommand({ Bucket: reports.bucket, Key: r.fileKeys[0]!, Body: (await import('node:zlib')).gzipSync('"src-b","x","1","","","","","",""\n') }));
    const err = await allPages(new S3InventorySource(s3, { manifest: r.manifestUrl, bucket: 'src-b' }, new InventoryCache()), 100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/files\[0\] .*the manifest says \d+ bytes with MD5 [0-9a-f]{32}; the file was changed or cut short/);
    // The spec: manifest must be an s3:// address, bucket is required; unknown fields are refused.
    const base = { name: 'x', provider: { type: 'local', keyringFile: '/k.json' }, from: 'k@1', to: 'k@2' };
    expect(() => parseCampaignSpec({ ...base, sources: [{ type: 's3-inventory', manifest: '/tmp/manifest.json', bucket: 'b' }] })).toThrow(/sources\[0\]\.manifest: expected the s3:\/\/ address/);
    expect(() => parseCampaignSpec({ ...base, sources: [{ type: 's3-inventory', manifest: 's3://r/m.json' }] })).toThrow(/sources\[0\]\.bucket: expected the inventory's source bucket/);
    expect(() => parseCampaignSpec({ ...base, sources: [{ type: 's3-inventory', manifest: 's3://r/m.json', bucket: 'b', manifestFile: 'x' }] })).toThrow(/sources\[0\]\.manifestFile: unknown field/);
    // Overlap: an inventory of bucket b and a listing of b would plan the same objects twice.
    expect(() => parseCampaignSpec({ ...base, sources: [{ type: 's3', bucket: 'b', prefix: 'p/' }, { type: 's3-inventory', manifest: 's3://r/m.json', bucket: 'b' }] })).toThrow(/covers the same items/);
  });

  it('a report of another bucket is refused at creation by the CLI, pauses a campaign created around it, and the API policy must allow both buckets', async () => {
    const r = await writeInventory(s3, { destinationBucket: reports.bucket, sourceBucket: 'someone-elses', rows: [{ key: 'a' }], files: 1 });
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const spec = { name: 'wrong report', sources: [{ type: 's3-inventory', manifest: r.manifestUrl, bucket: 'mine' }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2' };
    const cli = await rewrapCli(pipe, ['campaign', 'create', '--spec', await specFile(pipe, spec), '--json']);
    expect(cli.code, cli.stdout).toBe(2);
    expect(cli.stderr).toMatch(/sources\[0\]: bucket is "mine" but the inventory .* lists bucket "someone-elses" \(its sourceBucket\)/);
    const c = await pipe.create(spec); // around the CLI: planning reads the manifest and pauses the campaign
    const paused = await eventually('paused', async () => {
      const x = await getCampaign(pipe.db.pool, c.id);
      return x!.state === 'paused' ? x : undefined;
    }, 30_000, 100);
    expect(paused.pauseReason).toMatch(/lists bucket "someone-elses"/);
    expect((await pipe.progress(c.id)).planned).toBe(0);
    await setCampaignState(pipe.db.pool, c.id, ['paused'], 'cancelled');
    const policy = { tables: [], buckets: ['mine'], keys: ['k'], keyringFiles: [keyringFile], manifestFiles: [], kmsEndpoints: [], kmsRegions: [] };
    expect(() => checkSpecAgainstPolicy(parseCampaignSpec(spec), policy)).toThrow(/sources\[0\]\.manifest bucket "[^"]+" is not allowed/);
    expect(() => checkSpecAgainstPolicy(parseCampaignSpec(spec), { ...policy, buckets: ['mine', reports.bucket] })).not.toThrow();
    expect(() => checkSpecAgainstPolicy(parseCampaignSpec(spec), { ...policy, buckets: [reports.bucket] })).toThrow(/sources\[0\]\.bucket "mine" is not allowed/);
  }, 60_000);

  it('plans exactly the 100,000 keys of a 10-file report, once each, through a scheduler SIGKILLed mid-plan (acceptance 4)', async () => {
    const bucket = `inv-plan-${randomBytes(4).toString('hex')}`; // planning only: the objects need not exist
    const keys = Array.from({ length: 100_000 }, (_, i) => `p/${String(i).padStart(6, '0')} ${ODD[i % ODD.length]}`);
    const r = await writeInventory(s3, { destinationBucket: reports.bucket, sourceBucket: bucket, rows: keys.map((key) => ({ key })), files: 10 });
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create(
      { name: 'inventory plan', sources: [{ type: 's3-inventory', manifest: r.manifestUrl, bucket }], provider: { type: 'local', keyringFile }, from: 'k@1', to: 'k@2', options: { batchSize: 500 } },
      false, // stays in planning: the scheduler plans it, nothing is fed to workers
    );
    const planned = async () => Number((await pipe.db.pool.query('SELECT count(*) AS n FROM rewrap_campaign_items WHERE campaign_id = $1', [c.id])).rows[0].n);
    const t0 = Date.now();
    await pipe.waitFor(c.id, 'a quarter planned', (p) => p.planned >= 25_000, 120_000);
    pipe.scheduler.child.kill('SIGKILL');
    await pipe.scheduler.exited;
    const atKill = await getCampaign(pipe.db.pool, c.id);
    expect(atKill!.planDone, 'the kill must land mid-plan').toBe(false);
    const cursorAtKill = atKill!.planCursor as { c: { fileIndex: number; rowsRead: number } };
    console.log(`inventory: killed at ${await planned()} planned, cursor ${JSON.stringify(cursorAtKill)}`);
    await pipe.startScheduler();
    await eventually('the plan done after the restart', async () => ((await getCampaign(pipe.db.pool, c.id))!.planDone ? true : undefined), 180_000, 200);
    console.log(`inventory: 100,000 keys planned in ${((Date.now() - t0) / 1000).toFixed(1)} s with one SIGKILL`);
    const { rows } = await pipe.db.pool.query<{ store_id: string; item_key: string }>('SELECT store_id, item_key FROM rewrap_campaign_items WHERE campaign_id = $1', [c.id]);
    expect(rows.length).toBe(100_000);
    expect(new Set(rows.map((x) => x.store_id))).toEqual(new Set([`s3://${bucket}`]));
    const got = rows.map((x) => x.item_key).sort();
    expect(got).toEqual([...keys].sort());
    expect((await pipe.progress(c.id)).planned).toBe(100_000);
  }, 300_000);

  it('rotates the listed objects (names with spaces, +, %, non-ASCII) and leaves unlisted and noncurrent-only ones under the old KEK', async () => {
    const listed: string[] = [];
    const unlisted: string[] = [];
    for (let i = 0; i < 300; i++) (i % 5 === 4 ? unlisted : listed).push(`e/${ODD[i % ODD.length]} ${i}`);
    const payloads = new Map<string, Buffer>();
    const placement = (k: string) => (Number(k.split(' ').pop()) % 3 === 0 ? 'instruction' : 'metadata');
    const all = [...listed, ...unlisted];
    const workerUp = pipe.startWorker(); // meanwhile: it takes seconds to start
    for (let i = 0; i < all.length; i += 32) {
      await Promise.all(
        all.slice(i, i + 32).map(async (key) => {
          const payload = randomBytes(100 + (key.length % 50));
          payloads.set(key, payload);
          const { dek } = await putEncrypted(s3, objects.bucket, key, payload, { placement: placement(key), wrap: { kind: 'aes', material: v1.material, matdesc: { kek: 'k@1' } } });
          guard.secret(dek);
        }),
      );
    }
    const etag = async (key: string) => (await s3.send(new HeadObjectCommand({ Bucket: objects.bucket, Key: key }))).ETag;
    const before = new Map(await Promise.all(unlisted.map(async (k) => [k, await etag(k)] as const)));
    // As S3 lists a bucket with instruction files: the file of each listed object is in the report too.
    const rows: InventoryRow[] = [];
    for (const key of listed) {
      rows.push({ key, versionId: 'null', isLatest: true });
      if (placement(key) === 'instruction') rows.push({ key: `${key}.instruction`, versionId: 'null', isLatest: true });
    }
    for (const key of unlisted.slice(0, 20)) rows.push({ key, versionId: 'older', isLatest: false }); // noncurrent only: not planned
    rows.push({ key: 'e/gone', versionId: 'dm', isLatest: true, isDeleteMarker: true });
    const r = await writeInventory(s3, { destinationBucket: reports.bucket, sourceBucket: objects.bucket, rows, files: 4, allVersions: true });

    const keyringFile = await pipe.keyringFile([v1, v2]);
    await workerUp;
    const tRun = Date.now();
    const c = await pipe.create({
      name: 'inventory e2e',
      sources: [{ type: 's3-inventory', manifest: r.manifestUrl, bucket: objects.bucket }],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 50, concurrency: 8 },
    });
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 90_000);
    console.log(`inventory e2e: ${listed.length} objects rotated in ${Date.now() - tRun} ms`);
    expect(p).toMatchObject({ planned: listed.length, rewrapped: listed.length, failed: 0 });

    const newOnly = { aes: new Map([[matdescKey({ kek: 'k@2' }), v2.material]]) };
    const oldOnly = { aes: new Map([[matdescKey({ kek: 'k@1' }), v1.material]]) };
    for (let i = 0; i < all.length; i += 32) {
      await Promise.all(
        all.slice(i, i + 32).map(async (key) => {
          const isListed = listed.includes(key);
          const d = await getDecrypted(s3, objects.bucket, key, isListed ? newOnly : oldOnly);
          expect(d.payload.equals(payloads.get(key)!), key).toBe(true);
          if (isListed) await expect(getDecrypted(s3, objects.bucket, key, oldOnly), `${key} must not open under k@1`).rejects.toThrow();
          else expect(await etag(key), `${key} untouched`).toBe(before.get(key));
        }),
      );
    }
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  }, 180_000);
});
