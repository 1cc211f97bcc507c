/**
 * B4: throughput with 1, 2 and 4 worker processes, for rows (local keyring) and S3 objects (KMS).
 * One table and one bucket; each setting moves everything one KEK further (v1->v2, v2->v3, ...),
 * so no data is re-created between settings.
 */
import { Deployment, measureCampaign, round } from '../lib/deployment.ts';
import { startKmsProcess } from '../lib/services.ts';
import { benchKeyring, scenarioEnv, type BenchContext, type ScenarioResult } from '../lib/context.ts';
import { insertRowFixture, rowSpec } from './b1-rows.ts';
import { createBucket, needsUnconditional, s3Spec, writeObjectFixture } from './b2-s3.ts';
import type { RowKek } from '../../dev/reference/row-client.ts';

const SETTINGS = [1, 2, 4];

export async function runB4(ctx: BenchContext): Promise<ScenarioResult> {
  if (!ctx.s3) throw new Error('B4 needs S3');
  const started = performance.now();
  const rows = ctx.quick ? 3_000 : 60_000;
  const objects = ctx.quick ? 60 : 1_200;
  const env = await scenarioEnv(ctx, 'b4');
  const kms = await startKmsProcess();
  env.meter.track('kms', kms.pid);
  const { s3, target: t } = await createBucket(ctx.s3, 'b4');
  const phases: Record<string, unknown> = {};
  const ratios: Record<string, number> = {};
  try {
    const { keks, file } = await benchKeyring(env.dir, 'bench', SETTINGS.length + 1);
    const kmsKeys = [];
    for (let i = 0; i <= SETTINGS.length; i++) kmsKeys.push(await kms.createKey(`bench B4 ${i}`));
    ctx.say(`  B4: ${rows.toLocaleString('en')} rows and ${objects.toLocaleString('en')} objects (metadata placement) ...`);
    await insertRowFixture(env.db.pool, 'envelopes', rows, keks[0] as RowKek);
    await writeObjectFixture(env.meter, t, kms.url, kmsKeys[0]!, [{ prefix: 'm/', placement: 'metadata' }], objects);
    const unconditional = await needsUnconditional(s3, t.bucket);
    const d = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: env.prefix, dir: env.dir, meter: env.meter, kmsUrl: kms.url, s3: t }, SETTINGS[0]!);
    try {
      for (const [i, w] of SETTINGS.entries()) {
        await d.scaleTo(w);
        ctx.say(`  B4 rows, ${w} worker(s): bench@${i + 1} -> bench@${i + 2}`);
        const r = await measureCampaign(d, env.meter, rowSpec(`bench B4 rows ${w}`, 'envelopes', file, `bench@${i + 1}`, `bench@${i + 2}`), rows, 30 * 60_000, ctx.say);
        ctx.say(`    ${r.itemsPerSec.toLocaleString('en')} rows/s`);
        phases[`rows_${w}_workers`] = r;
        ctx.say(`  B4 S3, ${w} worker(s)`);
        const o = await measureCampaign(d, env.meter, s3Spec(`bench B4 s3 ${w}`, t.bucket, 'm/', kmsKeys[i]!, kmsKeys[i + 1]!, unconditional), objects, 30 * 60_000, ctx.say);
        ctx.say(`    ${o.itemsPerSec.toLocaleString('en')} objects/s`);
        phases[`s3_${w}_workers`] = o;
      }
    } finally {
      await d.stop();
    }
    const rate = (k: string) => (phases[k] as { itemsPerSec: number }).itemsPerSec;
    for (const w of SETTINGS.slice(1)) {
      ratios[`rows ${w}w/1w`] = round(rate(`rows_${w}_workers`) / rate('rows_1_workers'));
      ratios[`s3 ${w}w/1w`] = round(rate(`s3_${w}_workers`) / rate('s3_1_workers'));
    }
    return {
      id: 'B4',
      title: 'Scaling with worker processes',
      params: { rows, objects, workerSettings: SETTINGS.join('/') },
      phases,
      ratios,
      targets: {},
      notes: ['on 2 cores shared by every process kind, more workers compete with Postgres, RGW and the KMS server for the same CPU'],
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    s3.destroy();
    await kms.stop();
    await env.close();
  }
}
