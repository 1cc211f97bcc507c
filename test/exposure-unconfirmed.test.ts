/**
 * Issue 13, point 4: the exposure report never calls an item "never under the KEK" when a write
 * of it may have landed without its confirmation. A real worker rewraps an incident bucket
 * through a TCP proxy in front of RGW that lets the write of one object reach RGW but cuts its
 * reply: the write lands, the worker sees a transient failure, the batch is claimed again and the
 * object is found already at the target. The exposure report (the real CLI) must list it as
 * moved-unconfirmed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { startTapProxy, type TapProxy } from './support/tap-proxy.ts';
import { jsonOf, rewrapCli } from './support/cli.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const OBJECTS = 20;
const VICTIM = 'victim';
const guard = new LeakGuard();
guard.secret(k1.material, k2.material);

let pipe: Pipeline;
let proxy: TapProxy;
let s3: S3Client;
let tb: TestBucket;
/** While set, every write of VICTIM reaches RGW and its reply is cut. */
let cutReplies = true;
let cut = 0;

beforeAll(async () => {
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  tb = await freshBucket(s3, 'exposure-unconfirmed');
  proxy = await startTapProxy(env.endpoint, (method, target) => {
    if (!cutReplies || method !== 'PUT' || !target.split('?')[0]!.endsWith(`/${tb.bucket}/${VICTIM}`)) return;
    cut++;
    return 'drop-reply';
  });
  pipe = await startPipeline({ label: 'exposure-unconfirmed', workers: 1, env: { S3_ENDPOINT: proxy.url } });
  const wrap = { kind: 'aes' as const, material: k1.material, matdesc: { kek: 'k@1' } };
  const keys = [VICTIM, ...Array.from({ length: OBJECTS - 1 }, (_, i) => `obj/${i}`)];
  await Promise.all(keys.map((key) => putEncrypted(s3, tb.bucket, key, randomBytes(100), { placement: 'metadata', wrap })));
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await proxy?.close();
  await tb?.cleanup();
});

describe('exposure report and writes whose confirmation was lost', () => {
  it('an object whose write landed but whose reply was lost is listed as moved-unconfirmed, never as never under the KEK (invariant 7)', async () => {
    const keyringFile = await pipe.keyringFile([k1, k2]);
    const c = await pipe.create({
      name: 'incident k@1, lost reply',
      kind: 'incident',
      sources: [{ type: 's3', bucket: tb.bucket }],
      provider: { type: 'local', keyringFile },
      from: 'k@1',
      to: 'k@2',
      options: { batchSize: 50 },
    });
    await pipe.workers[0]!.waitForLine(/failed transiently/, 60_000);
    cutReplies = false;
    await pipe.waitFor(c.id, 'completed', (p) => p.state === 'completed', 120_000);
    expect(cut).toBeGreaterThan(0);

    // The write did land: the object is under k@2 now, and the ledger only saw it already there.
    const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material]]) };
    expect((await getDecrypted(s3, tb.bucket, VICTIM, underK2)).payload.length).toBe(100);
    const { rows } = await pipe.db.pool.query(`SELECT outcome, reason FROM rewrap_campaign_items WHERE campaign_id = $1 AND item_key = $2`, [c.id, VICTIM]);
    expect(rows).toEqual([{ outcome: 'skipped', reason: 'already-at-target' }]);

    const out = join(pipe.dir, 'exposure.jsonl');
    const cli = await rewrapCli(pipe, ['campaign', 'report', c.id, '--kind', 'exposure', '--out', out, '--json']);
    guard.text(cli.stdout, cli.stderr);
    expect(cli.code, cli.stderr).toBe(0);
    const lines = (await readFile(out, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | null>);
    const victim = lines.find((l) => l.item === VICTIM);
    expect(victim).toMatchObject({ store: `s3://${tb.bucket}`, status: 'moved-unconfirmed', reason: 'already-at-target', to_kek: 'k@2', kek_now: 'k@2' });
    expect(Number.isFinite(Date.parse(victim!.moved_at!))).toBe(true);
    expect(lines.filter((l) => l.status === 'moved')).toHaveLength(OBJECTS - 1);
    const summary = jsonOf<{ totals: Record<string, number> }>(cli);
    expect(summary.totals).toEqual({ underKek: OBJECTS, moved: OBJECTS - 1, movedUnconfirmed: 1, exposed: 0, neverUnderKek: 0, noEnvelope: 0, noncurrentExposed: 0 });
  }, 240_000);

  it('no key bytes in any process log or report output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
