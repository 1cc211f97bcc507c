/**
 * `npm run demo`: a rotation end to end on this machine. Creates a few thousand encrypted items
 * (S3 objects under a KMS key, Postgres rows under a local keyring KEK), starts the local KMS
 * server, a scheduler and two worker processes, rotates everything to new KEKs while showing
 * progress, verifies every item decrypts under the new KEK, prints a summary and cleans up.
 * Everything it creates is namespaced (schema, bucket, queue prefix) and removed afterwards.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { loadConfig } from '../../src/config.ts';
import { createS3Client } from '../../src/stores/s3-client.ts';
import { S3EnvelopeStore } from '../../src/stores/s3-envelope-store.ts';
import { describeCapabilities } from '../../src/stores/s3-capabilities.ts';
import { createKmsClient } from '../../src/kek/kms-client.ts';
import { startKmsServer } from '../kms-server/server.ts';
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { campaignProgress } from '../../src/ledger/index.ts';
import { createRedis } from '../../src/queue/batch-queue.ts';
import { progressLine } from '../../src/cli/status-view.ts';
import { startRewrapProcess, runRewrap, type RewrapProcess } from '../services/processes.ts';
import { startRgw, RgwNotInstalledError, type S3Endpoint } from '../services/rgw-server.ts';
import { verifyObjects, verifyRows, writeObjects, writeRows } from './demo-data.ts';
import { dropDemoData } from './demo-cleanup.ts';

const say = (s: string) => process.stdout.write(s + '\n');

export async function runDemo(opts: { items?: number; keep?: boolean; json?: boolean }): Promise<boolean> {
  const n = Math.max(10, opts.items ?? 2000);
  const config = loadConfig();
  const tag = randomBytes(4).toString('hex');
  const schema = `rewrap_demo_${tag}`;
  const prefix = `{rewrap-demo-${tag}}`;
  const bucket = `rewrap-demo-${tag}`;
  const cleanups: (() => Promise<unknown>)[] = [];
  const procs: RewrapProcess[] = [];
  const t0 = Date.now();
  try {
    say(`demo: ${n} S3 objects (KMS) + ${n} Postgres rows (local keyring), rotated by 1 scheduler and 2 workers\n`);
    // Postgres and Redis must be up; say how to fix it if not.
    const admin = new pg.Pool({ connectionString: config.databaseUrl, max: 2 });
    cleanups.push(() => admin.end());
    await admin.query(`CREATE SCHEMA "${schema}"`).catch((err: Error) => {
      throw new Error(`Postgres at ${redact(config.databaseUrl)} is not reachable (${err.message}); set DATABASE_URL or start it`, { cause: err });
    });
    cleanups.push(() => dropDemoData(admin, schema, config.redisUrl, prefix));
    const redis = createRedis(config.redisUrl);
    await redis.ping().catch((err: Error) => {
      throw new Error(`Redis at ${config.redisUrl} is not reachable (${err.message}); set REDIS_URL or start it`, { cause: err });
    });
    redis.disconnect();

    // The local KMS server (in this process; the workers reach it over HTTP).
    const kmsServer = await startKmsServer();
    cleanups.push(() => kmsServer.close());
    const kms = createKmsClient({ endpoint: kmsServer.url, region: 'us-east-1', credentials: { accessKeyId: 'demo', secretAccessKey: 'demo' } });
    const oldKey = (await kms.send(new CreateKeyCommand({ Description: 'demo: old KEK' }))).KeyMetadata!.Arn!;
    const newKey = (await kms.send(new CreateKeyCommand({ Description: 'demo: new KEK' }))).KeyMetadata!.Arn!;
    say(`local KMS server at ${kmsServer.url}; old key ${oldKey.split('/')[1]}, new key ${newKey.split('/')[1]}`);

    // S3: the user's endpoint, or a throwaway Ceph RGW (a real S3 implementation).
    let s3env: S3Endpoint;
    if (config.s3.endpoint) {
      s3env = { endpoint: config.s3.endpoint, region: config.s3.region, accessKeyId: config.s3.accessKeyId ?? '', secretAccessKey: config.s3.secretAccessKey ?? '' };
    } else {
      say('starting a throwaway Ceph RGW (real S3) ...');
      try {
        const rgw = await startRgw();
        cleanups.push(() => rgw.stop());
        s3env = rgw.env;
      } catch (err) {
        if (err instanceof RgwNotInstalledError) throw new Error(`the demo needs an S3 server. ${err.message}`, { cause: err });
        throw err;
      }
    }
    const s3: S3Client = createS3Client({ endpoint: s3env.endpoint, region: s3env.region, credentials: s3env });
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    cleanups.push(() => emptyAndDelete(s3, bucket));
    const caps = await new S3EnvelopeStore({ client: s3, bucket }).capabilities();
    say(`S3 at ${s3env.endpoint}; what it protects against concurrent writes:\n  ${describeCapabilities(caps).slice(1).join('\n  ')}`);
    const unconditional = !caps.putIfMatch && !caps.copyLegacyIfMatch && !caps.copySourceIfMatch && !caps.copyDestinationIfMatch;
    if (unconditional) say('  THIS S3 SERVER HONOURS NO CONDITIONAL WRITES: the demo allows unconditional writes; never do that with live data.');

    // Sample data.
    const dir = await mkdtemp(join(tmpdir(), 'rewrap-demo-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const v1 = { id: 'orders', version: '1', material: randomBytes(32) };
    const v2 = { id: 'orders', version: '2', material: randomBytes(32) };
    const keyringFile = join(dir, 'keyring.json');
    await writeFile(keyringFile, JSON.stringify({ keks: [v1, v2].map((k) => ({ id: k.id, version: k.version, material: k.material.toString('base64') })) }), { mode: 0o600 });
    const ledgerUrl = withSearchPath(config.databaseUrl, schema);
    const data = new pg.Pool({ connectionString: ledgerUrl, max: 4 });
    cleanups.push(() => data.end());
    await createEnvelopeTable(data, 'orders');
    let t = Date.now();
    const [payloads, deks] = await Promise.all([writeObjects(s3, kms, bucket, oldKey, n), writeRows(data, 'orders', n, v1)]);
    say(`wrote ${n} objects and ${n} rows in ${((Date.now() - t) / 1000).toFixed(1)} s\n`);

    // The processes, as a user would run them.
    const env: Record<string, string> = {
      DATABASE_URL: ledgerUrl,
      REDIS_URL: config.redisUrl,
      REWRAP_QUEUE_PREFIX: prefix,
      S3_ENDPOINT: s3env.endpoint,
      S3_ACCESS_KEY_ID: s3env.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3env.secretAccessKey,
      KMS_ENDPOINT: kmsServer.url,
      KMS_ACCESS_KEY_ID: 'demo',
      KMS_SECRET_ACCESS_KEY: 'demo',
      LOG_LEVEL: 'warn',
    };
    procs.push(startRewrapProcess('scheduler', ['scheduler'], env));
    for (const i of [1, 2]) procs.push(startRewrapProcess(`worker-${i}`, ['worker'], { ...env, REWRAP_WORKER_ID: `demo-worker-${i}` }));
    const specs = {
      s3: { name: 'demo photos (S3, KMS)', sources: [{ type: 's3', bucket, prefix: 'photos/' }], provider: { type: 'kms' }, from: oldKey, to: newKey, options: { batchSize: 100, concurrency: 16, kmsRequestsPerSecond: 1000, allowUnconditionalWrites: unconditional } },
      rows: {
        name: 'demo orders (Postgres, keyring)',
        sources: [{ type: 'pg', table: 'orders', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' }],
        provider: { type: 'local', keyringFile },
        from: 'orders@1',
        to: 'orders@2',
        options: { batchSize: 500, concurrency: 8 },
      },
    };
    const ids: string[] = [];
    for (const [name, spec] of Object.entries(specs)) {
      const file = join(dir, `${name}.json`);
      await writeFile(file, JSON.stringify(spec, null, 2));
      const r = await runRewrap(['campaign', 'create', '--spec', file, '--start', '--json'], env);
      if (r.code !== 0) throw new Error(`rewrap campaign create failed (${r.code}): ${r.stderr.trim()}`);
      ids.push((JSON.parse(r.stdout) as { id: string }).id);
    }
    say(`campaigns ${ids.join(', ')} started; progress:`);

    // Progress until both complete.
    t = Date.now();
    const deadline = Date.now() + 10 * 60_000;
    let lastPrint = 0;
    for (;;) {
      const ps = await Promise.all(ids.map((id) => campaignProgress(data, id)));
      const done = ps.every((p) => p.state === 'completed');
      if (done || Date.now() - lastPrint > 1000) {
        lastPrint = Date.now();
        say(ps.map((p, i) => `  ${ids[i]} ${p.state.padEnd(9)} ${progressLine(p)}`).join('\n'));
      }
      if (done) break;
      const dead = procs.find((p) => p.child.exitCode !== null);
      if (dead) throw new Error(`${dead.name} exited (${dead.child.exitCode}); its last lines:\n${dead.lines.slice(-15).join('\n')}`);
      if (Date.now() > deadline) throw new Error('the demo campaigns did not complete within 10 minutes');
      await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (Date.now() - t) / 1000;

    // Independent verification.
    const bad = [...(await verifyObjects(s3, kms, bucket, newKey, payloads)), ...(await verifyRows(data, 'orders', v2, deks))];
    const final = await Promise.all(ids.map((id) => campaignProgress(data, id)));
    const kmsStats = kmsServer.stats() as unknown as Record<string, unknown>;
    say(`\nsummary:`);
    say(`  ${2 * n} items rotated in ${seconds.toFixed(1)} s (${((2 * n) / seconds).toFixed(0)} items/s) by 2 workers`);
    for (const [i, p] of final.entries()) say(`  ${ids[i]}: rewrapped ${p.rewrapped}, skipped ${p.skipped}, failed ${p.failed}`);
    say(`  KMS server: ${JSON.stringify(kmsStats)}`);
    say(bad.length === 0 ? `  verified: all ${n} objects decrypt under the new KMS key and all ${n} rows unwrap under orders@2, to their original bytes` : `  VERIFICATION FAILED for ${bad.length} items:\n    ${bad.slice(0, 20).join('\n    ')}`);
    say(`  total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    return bad.length === 0 && final.every((p) => p.failed === 0);
  } finally {
    await Promise.all(procs.map((p) => p.stop('SIGTERM')));
    if (opts.keep) say(`--keep: left schema ${schema}, bucket ${bucket}, queue prefix ${prefix}`);
    else for (const c of cleanups.reverse()) await c().catch((err: Error) => say(`cleanup: ${err.message}`));
  }
}

function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

async function emptyAndDelete(s3: S3Client, bucket: string): Promise<void> {
  const { ListObjectsV2Command, DeleteObjectsCommand, DeleteBucketCommand } = await import('@aws-sdk/client-s3');
  for (let token: string | undefined; ; ) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    const objects = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (objects.length) await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
    if (!page.IsTruncated) break;
    token = page.NextContinuationToken;
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
}
