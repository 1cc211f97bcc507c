/**
 * Issue acceptance (pipeline) 1: one scheduler and three worker processes rotate 20,000 items
 * (S3 objects and Postgres rows in one campaign) while workers are SIGKILLed five times at
 * random moments and restarted. Afterwards every item is at the target KEK and decrypts, the
 * ledger's counts equal an independent scan exactly, and no item was written twice after it
 * reached the target (S3 object versions; a row-update log).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ListObjectVersionsCommand, PutBucketVersioningCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { inventoryByKek } from '../src/ledger/index.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { insertRows, unwrapAll } from '../dev/reference/row-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';

const OBJECTS = 6_000; // 4,000 in a versioned bucket (metadata placement), 2,000 instruction files
const INSTRUCTION_EVERY = 3;
const ROWS = 14_000;
const v1 = { id: 'k', version: '1', material: randomBytes(32) };
const v2 = { id: 'k', version: '2', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(v1.material, v2.material);

let pipe: Pipeline;
let s3: S3Client;
let tb: TestBucket;
/** RGW ignores PutObject If-Match in versioned buckets (rewrap's probe finds it and refuses), so
 * instruction-file objects live in an unversioned bucket; the versioned one counts writes. */
let tbi: TestBucket;
const bucketOf = (key: string) => (key.startsWith('i/') ? tbi.bucket : tb.bucket);
const payloads = new Map<string, Buffer>();
let deks: Map<string, Buffer>;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'chaos', workers: 3, env: { REWRAP_WORKER_JOBS: '2' } });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'chaos');
  tbi = await freshBucket(s3, 'chaos-instr');
  await s3.send(new PutBucketVersioningCommand({ Bucket: tb.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  const keys = Array.from({ length: OBJECTS }, (_, i) => (i % INSTRUCTION_EVERY === 0 ? `i/${i}` : `o/${i}`));
  for (let i = 0; i < keys.length; i += 64) {
    await Promise.all(
      keys.slice(i, i + 64).map(async (key, j) => {
        const payload = randomBytes(200);
        payloads.set(key, payload);
        await putEncrypted(s3, bucketOf(key), key, payload, { placement: key.startsWith('i/') ? 'instruction' : 'metadata', wrap: { kind: 'aes', material: v1.material, matdesc: { kek: 'k@1' } } });
      }),
    );
  }
  await createEnvelopeTable(pipe.db.pool, 'secrets');
  deks = await insertRows(pipe.db.pool, 'secrets', ROWS, v1);
  await pipe.db.pool.query(`
    CREATE TABLE row_writes (id bigint, at timestamptz DEFAULT clock_timestamp());
    CREATE FUNCTION log_row_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO row_writes (id) VALUES (NEW.id); RETURN NEW; END $$;
    CREATE TRIGGER secrets_writes AFTER UPDATE ON secrets FOR EACH ROW EXECUTE FUNCTION log_row_write();`);
}, 300_000);

afterAll(async () => {
  /* Processes first: a worker restarted late may still probe or write the buckets. */
  await pipe?.stop();
  await tb?.cleanup();
  await tbi?.cleanup();
}, 300_000); // two buckets of thousands of objects to empty, 32 deletes at a time

describe('multi-process rotation under SIGKILL', () => {
  it('rotates 20,000 items exactly once each while workers are killed five times', async () => {
    const keyringFile = await pipe.keyringFile([v1, v2]);
    const c = await pipe.create({
      name: 'chaos',
      sources: [
        { type: 's3', bucket: tb.bucket },
        { type: 's3', bucket: tbi.bucket },
        { type: 'pg', table: 'secrets', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' },
      ],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 100, concurrency: 8 },
    });
    const t0 = Date.now();
    await pipe.waitFor(c.id, 'started', (p) => p.rewrapped > 0, 60_000);
    const recover: number[] = [];
    for (let kill = 0; kill < 5; kill++) {
      const live = pipe.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      const victim = live[Math.floor(Math.random() * live.length)]!;
      victim.child.kill('SIGKILL');
      await victim.exited;
      const killedAt = Date.now();
      pipe.workers.splice(pipe.workers.indexOf(victim), 1);
      await pipe.startWorker();
      const before = (await pipe.progress(c.id)).rewrapped;
      await pipe.waitFor(c.id, 'moving again', (p) => p.rewrapped > before || p.state === 'completed', 60_000);
      recover.push(secondsSince(killedAt)); // includes starting the replacement worker
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 1500)); // a random moment, on purpose
    }
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 600_000);
    console.log(`chaos: completed ${JSON.stringify(p)} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    // Independent scan: every object decrypts under k@2 only; every row unwraps under k@2 only.
    const aes = new Map([[matdescKey({ kek: 'k@2' }), v2.material]]);
    let objectsAtTarget = 0;
    const keys = [...payloads.keys()];
    for (let i = 0; i < keys.length; i += 32) {
      await Promise.all(
        keys.slice(i, i + 32).map(async (key) => {
          const d = await getDecrypted(s3, bucketOf(key), key, { aes });
          expect(d.payload.equals(payloads.get(key)!)).toBe(true);
          objectsAtTarget++;
        }),
      );
    }
    const rows = await unwrapAll(pipe.db.pool, 'secrets', [v2]);
    for (const [id, r] of rows) expect(r.dek.equals(deks.get(id)!), `row ${id}`).toBe(true);
    const scan = objectsAtTarget + rows.size;
    expect(scan).toBe(OBJECTS + ROWS);

    // The ledger agrees exactly: every item done once, nothing failed, nothing left.
    expect(p.planned).toBe(OBJECTS + ROWS);
    expect(p.failed).toBe(0);
    expect(p.rewrapped + p.skipped).toBe(scan);
    const inv = await inventoryByKek(pipe.db.pool);
    expect(inv.filter((r) => r.kekId === 'k' && r.kekVersion === '2').reduce((a, r) => a + r.items, 0)).toBe(scan);

    // No item was written twice: one rewrap write per row, at most one new version per S3 object.
    const twice = await pipe.db.pool.query('SELECT id, count(*) FROM row_writes GROUP BY id HAVING count(*) > 1');
    expect(twice.rows).toEqual([]);
    const versions = new Map<string, number>();
    for (let km: string | undefined, vm: string | undefined, more = true; more; ) {
      const page = await s3.send(new ListObjectVersionsCommand({ Bucket: tb.bucket, KeyMarker: km, VersionIdMarker: vm }));
      for (const v of page.Versions ?? []) if (!v.Key!.startsWith('.rewrap-probe/')) versions.set(v.Key!, (versions.get(v.Key!) ?? 0) + 1);
      more = Boolean(page.IsTruncated);
      km = page.NextKeyMarker;
      vm = page.NextVersionIdMarker;
    }
    const overwritten = [...versions].filter(([, n]) => n > 2);
    expect(overwritten).toEqual([]);
    recordFigure({
      scenario: 'Worker SIGKILL x5',
      items: OBJECTS + ROWS,
      faults: '5 workers of 3 SIGKILLed at random moments, each replaced',
      lost: OBJECTS + ROWS - scan,
      duplicatedWrites: twice.rows.length + overwritten.length,
      detectSeconds: null,
      recoverSeconds: Math.max(...recover),
      wallSeconds: secondsSince(t0),
    });
  }, 900_000);

  it('no DEK or KEK bytes in any process log (invariant 5)', () => {
    guard.text(pipe.logs());
    for (const d of deks.values()) guard.secret(d);
    expect(guard.findLeaks()).toEqual([]);
  });
});
