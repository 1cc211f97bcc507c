/**
 * B1H (informational, opt-in: `--only B1H`): B1's rows end to end through the PKCS#11 provider
 * on a SoftHSM2 token instead of the local keyring. Rows are wrapped with RFC 5649 (AESWrapPad);
 * every rewrap is C_UnwrapKey + C_WrapKey + C_DestroyObject in the token, inside each worker
 * process (SoftHSM2 is a library). No target: a real HSM's rate is its own (network round trips,
 * its cryptographic throughput), so this measures rewrap's overhead around a token, not an HSM.
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import { createEnvelopeTable } from '../../src/stores/pg-table-schema.ts';
import { encryptPayload } from '../../dev/reference/s3ec-client.ts';
import { Deployment, measureCampaign, round } from '../lib/deployment.ts';
import { scenarioEnv, type BenchContext, type ScenarioResult } from '../lib/context.ts';
import { initTestToken, keyUnwrap, keyWrap } from '../../test/support/softhsm.ts';
import { JOBS_PER_WORKER, ROW_BATCH, ROW_CONCURRENCY } from './b1-rows.ts';

export async function runB1Hsm(ctx: BenchContext): Promise<ScenarioResult> {
  const started = performance.now();
  const n = ctx.quick ? 10_000 : 200_000;
  const workers = 2;
  const env = await scenarioEnv(ctx, 'b1h');
  const hsm = initTestToken('bench-b1h');
  const table = 'hsm_envelopes';
  try {
    const v1 = randomBytes(32);
    const v2 = randomBytes(32);
    await hsm.importKek('bench', '1', v1);
    await hsm.importKek('bench', '2', v2);
    ctx.say(`  B1H: inserting ${n.toLocaleString('en')} rows under bench@1 (AESWrapPad) ...`);
    await createEnvelopeTable(env.db.pool, table);
    const sample = new Map<string, Buffer>();
    const limit = pLimit(2);
    const chunks: number[] = [];
    for (let first = 1; first <= n; first += 20_000) chunks.push(first);
    await Promise.all(
      chunks.map((first) =>
        limit(async () => {
          const ids: string[] = [];
          const payloads: Buffer[] = [];
          const ivs: Buffer[] = [];
          const wrapped: Buffer[] = [];
          for (let id = first; id < Math.min(n + 1, first + 20_000); id++) {
            const dek = randomBytes(32);
            const { iv, body } = encryptPayload(dek, Buffer.from(`row ${id}`));
            if (id % 997 === 1) sample.set(String(id), dek);
            ids.push(String(id));
            payloads.push(body);
            ivs.push(iv);
            wrapped.push(keyWrap('AESWrapPad', v1, dek));
          }
          await env.db.pool.query(
            `INSERT INTO ${table} (id, payload, iv, wrapped_dek, kek_id, kek_version)
             SELECT id, p, iv, w, 'bench', '1' FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(id, p, iv, w)`,
            [ids, payloads, ivs, wrapped],
          );
        }),
      ),
    );
    await env.db.pool.query(`ANALYZE ${table}`);

    ctx.say(`  B1H (a): rewrap end to end through SoftHSM2, scheduler + ${workers} workers, bench@1 -> bench@2`);
    const d = await Deployment.start({ db: env.db, redisUrl: env.redis.url, prefix: env.prefix, dir: env.dir, meter: env.meter, env: hsm.env }, workers);
    let e2e;
    try {
      const spec = {
        name: 'bench B1H',
        sources: [{ type: 'pg', table, idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version', wrapAlg: 'AESWrapPad' }],
        provider: hsm.providerSpec,
        from: 'bench@1',
        to: 'bench@2',
        options: { batchSize: ROW_BATCH, concurrency: ROW_CONCURRENCY },
      };
      e2e = await measureCampaign(d, env.meter, spec, n, 30 * 60_000, ctx.say);
    } finally {
      await d.stop();
    }
    ctx.say(`    ${e2e.itemsPerSec.toLocaleString('en')} rows/s (${e2e.seconds} s)`);
    const { rows } = await env.db.pool.query<{ id: string; wrapped_dek: Buffer; kek_version: string }>(`SELECT id::text, wrapped_dek, kek_version FROM ${table} WHERE id = ANY($1::bigint[])`, [
      [...sample.keys()],
    ]);
    const bad = rows.filter((r) => r.kek_version !== '2' || !keyUnwrap('AESWrapPad', v2, r.wrapped_dek).equals(sample.get(r.id)!));
    if (bad.length || rows.length !== sample.size) throw new Error(`B1H: ${bad.length} sampled rows wrong, ${sample.size - rows.length} missing`);
    return {
      id: 'B1H',
      title: 'Postgres rows, PKCS#11 provider (SoftHSM2), informational',
      params: { rows: n, workers, jobsPerWorker: JOBS_PER_WORKER, batchSize: ROW_BATCH, concurrency: ROW_CONCURRENCY, wrapAlg: 'AESWrapPad' },
      phases: { a_endToEnd: e2e, verifiedSample: sample.size },
      ratios: {},
      targets: {},
      notes: ['informational: SoftHSM2 runs inside each worker process; a network HSM adds its round trip per C_UnwrapKey and C_WrapKey'],
      seconds: round((performance.now() - started) / 1000, 1),
    };
  } finally {
    hsm.close();
    await env.close();
  }
}
