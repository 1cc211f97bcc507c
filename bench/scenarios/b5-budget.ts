/**
 * B5: budget fidelity. A campaign with kmsRequestsPerSecond = R (well below what the pipeline can
 * do) while the local KMS server itself throttles above R (its rpsLimit fault). Over the window,
 * the KMS server counts the requests it received and how many it throttled.
 * Rows with KMS-wrapped DEKs (wrapAlg kms+context) are used: they are quick to create and the
 * pipeline moves them far faster than R, so the budget, not the store, sets the pace.
 */
import { EncryptCommand } from '@aws-sdk/client-kms';
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { failureCountsByReason } from '../../src/ledger/index.ts';
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { Deployment, round } from '../lib/deployment.ts';
import { startKmsProcess } from '../lib/services.ts';
import { scenarioEnv, target, type BenchContext, type ScenarioResult } from '../lib/context.ts';

const R = 200;

export async function runB5(ctx: BenchContext): Promise<ScenarioResult> {
  const started = performance.now();
  const windowSeconds = ctx.quick ? 8 : 60;
  const warmupSeconds = 3;
  const rows = Math.ceil(R * (windowSeconds + warmupSeconds + 10) * 1.5);
  const env = await scenarioEnv(ctx, 'b5');
  const kms = await startKmsProcess();
  env.meter.track('kms', kms.pid);
  const table = 'kms_rows';
  try {
    const oldKey = await kms.createKey('bench B5 old');
    const newKey = await kms.createKey('bench B5 new');
    /* A distinct DEK per row: identical wrapped keys would be rewrapped once (DedupingKekProvider). */
    const limit = pLimit(32);
    const blobs = await Promise.all(
      Array.from({ length: rows }, () =>
        limit(async () => Buffer.from((await kms.client.send(new EncryptCommand({ KeyId: oldKey, Plaintext: randomBytes(32), EncryptionContext: { 'aws:x-amz-cek-alg': 'AES/GCM/NoPadding' } }))).CiphertextBlob!)),
      ),
    );
    await createEnvelopeTable(env.db.pool, table);
    await env.db.pool.query(`INSERT INTO ${table} (id, wrapped_dek, kek_id) SELECT i, w, $2 FROM unnest($1::bytea[]) WITH ORDINALITY AS u(w, i)`, [blobs, oldKey]);
    await kms.resetStats();
    await kms.setFaults({ rpsLimit: R });
    const d = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: env.prefix, dir: env.dir, meter: env.meter, kmsUrl: kms.url }, 2);
    let measured;
    try {
      const id = await d.startCampaign({
        name: 'bench B5',
        sources: [{ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'kms+context' }],
        provider: { type: 'kms' },
        from: oldKey,
        to: newKey,
        options: { batchSize: 200, concurrency: 16, kmsRequestsPerSecond: R },
      });
      ctx.say(`  B5: budget ${R} req/s, KMS server throttling above ${R} req/s; measuring ${windowSeconds} s after ${warmupSeconds} s of warm-up`);
      const deadline = Date.now() + 120_000;
      while ((await kms.stats()).requestsTotal === 0) {
        if (Date.now() > deadline) throw new Error('B5: no KMS request within 120 s of the campaign start');
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
      const s0 = await kms.stats();
      const end = await env.meter.begin();
      const t0 = performance.now();
      for (let i = 0; i < windowSeconds; i += 5) {
        await new Promise((r) => setTimeout(r, Math.min(5, windowSeconds - i) * 1000));
        const s = await kms.stats();
        ctx.say(`    ${s.requestsTotal - s0.requestsTotal} KMS requests, ${s.throttled - s0.throttled} throttled`);
      }
      const s1 = await kms.stats();
      const seconds = (performance.now() - t0) / 1000;
      const cpu = await end();
      const p = await d.progress(id);
      if (p.rewrapped + p.skipped + p.failed >= rows) {
        const reasons = await failureCountsByReason(env.db.pool, id);
        throw new Error(`B5: the campaign ran out of rows (${rows}) before the window ended: ${JSON.stringify(p)}; failures ${JSON.stringify(reasons)}`);
      }
      await d.cancel(id);
      const requests = s1.requestsTotal - s0.requestsTotal;
      const throttled = s1.throttled - s0.throttled;
      measured = { seconds: round(seconds), requests, throttled, requestsPerSec: round(requests / seconds, 1), throttledPercent: round((100 * throttled) / Math.max(1, requests), 2), failed: p.failed, cpu };
    } finally {
      await d.stop();
    }
    const deviation = round((100 * (measured.requestsPerSec - R)) / R, 1);
    ctx.say(`    ${measured.requestsPerSec} req/s (${deviation >= 0 ? '+' : ''}${deviation}% of R), ${measured.throttledPercent}% throttled`);
    return {
      id: 'B5',
      title: 'KMS budget fidelity',
      params: { R, windowSeconds, warmupSeconds, workers: 2, rows },
      phases: { window: measured },
      ratios: { 'measured/R': round(measured.requestsPerSec / R, 3) },
      targets: { 'deviation from R (%)': target(Math.abs(deviation), '<=', 5), 'throttled (%)': target(measured.throttledPercent, '<=', 0.5) },
      notes: [],
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    await kms.stop();
    await env.close();
  }
}
