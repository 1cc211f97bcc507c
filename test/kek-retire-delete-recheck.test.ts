/**
 * `kek retire --delete` checks the gate again after its full pass, just before it removes the
 * material (invariant 7): the pass re-reads every item in scope and can take hours, and what the
 * gate read before it can change meanwhile. Here a campaign moving items TO k@1 is created while
 * the full pass lists the bucket (a tap proxy in front of S3, for the CLI only, holds that listing
 * until the campaign exists). Before the re-check: exit 0 and k@1 deleted, with a campaign about
 * to wrap DEKs under it. Now: exit 3 naming that campaign, and k@1 is still in the keyring.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../src/stores/s3-client.ts';
import { getDecrypted, matdescKey, putEncrypted } from '../dev/reference/s3ec-client.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { runRewrap } from '../dev/services/processes.ts';
import type { Campaign } from '../src/ledger/types.ts';
import { freshBucket, s3TestEnv, type TestBucket } from './harness/s3.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { jsonOf } from './support/cli.ts';
import { startTapProxy, type TapProxy } from './support/tap-proxy.ts';
import { LeakGuard } from './support/leak-guard.ts';

const k1 = { id: 'k', version: '1', material: randomBytes(32) };
const k2 = { id: 'k', version: '2', material: randomBytes(32) };
const j1 = { id: 'j', version: '1', material: randomBytes(32) };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material, j1.material);

let pipe: Pipeline;
let s3: S3Client;
let a: TestBucket;
let b: TestBucket;
let tap: TapProxy;
let keyringFile: string;
/** Set by the test: what to do when the CLI's full pass first lists bucket a. */
let onFullPassListing: (() => Promise<void>) | undefined;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'retire-recheck', workers: 1 });
  const env = s3TestEnv();
  s3 = createS3Client({ endpoint: env.endpoint, region: env.region, credentials: env });
  a = await freshBucket(s3, 'retire-recheck-a');
  b = await freshBucket(s3, 'retire-recheck-b');
  keyringFile = await pipe.keyringFile([k1, k2, j1]);
  const wrapK1 = { kind: 'aes' as const, material: k1.material, matdesc: { kek: 'k@1' } };
  for (let i = 0; i < 5; i++) await putEncrypted(s3, a.bucket, `o/${i}`, randomBytes(100), { placement: 'metadata', wrap: wrapK1 });
  await putEncrypted(s3, b.bucket, 'o/0', randomBytes(100), { placement: 'metadata', wrap: { kind: 'aes', material: j1.material, matdesc: { kek: 'j@1' } } });
  tap = await startTapProxy(env.endpoint, async (method, target) => {
    if (method !== 'GET' || !target.includes(`/${a.bucket}`) || !target.includes('list-type=2') || !onFullPassListing) return;
    const act = onFullPassListing;
    onFullPassListing = undefined;
    await act();
  });
}, 120_000);

afterAll(async () => {
  await tap?.close();
  await pipe?.stop();
  await a?.cleanup();
  await b?.cleanup();
});

const spec = (name: string, bucket: string, from: string, to: string) => ({ name, sources: [{ type: 's3', bucket }], provider: { type: 'local', keyringFile }, from, to });

describe('kek retire --delete checks again just before the delete (invariant 7)', () => {
  it('a campaign moving items to k@1, created during the full pass, stops the delete (exit 3, named) and k@1 stays in the keyring (invariant 7)', async () => {
    const drained = await pipe.create(spec('k@1 -> k@2', a.bucket, 'k@1', 'k@2'));
    expect(await pipe.waitFor(drained.id, 'completed', (p) => p.state === 'completed', 120_000)).toMatchObject({ planned: 5, rewrapped: 5, failed: 0 });
    const underK2 = { aes: new Map([[matdescKey({ kek: 'k@2' }), k2.material]]) };
    for (let i = 0; i < 5; i++) expect((await getDecrypted(s3, a.bucket, `o/${i}`, underK2)).payload.length).toBe(100);

    let late: Campaign | undefined;
    onFullPassListing = async () => {
      late = await pipe.create(spec('back to k@1', b.bucket, 'j@1', 'k@1'), false);
    };
    const r = await runRewrap(['kek', 'retire', 'k@1', '--grace', '0', '--delete', '--json'], { ...pipe.env, S3_ENDPOINT: tap.url });
    guard.text(r.stdout, r.stderr);
    const json = jsonOf<{ retired: boolean; blockers: string[]; fullPass?: { checked: number } }>(r);
    expect(late, 'the full pass listed bucket a through the tap').toBeDefined();
    expect(r.code, JSON.stringify(json)).toBe(3);
    expect(json.retired).toBe(false);
    expect(json.blockers).toEqual([
      `campaign ${late!.id} (back to k@1) moving items to k@1 is still planning (found checking again after the full pass, just before the delete)`,
    ]);
    expect(json.fullPass?.checked).toBe(5);
    expect(loadKeyringFile(keyringFile).map((e) => `${e.id}@${e.version}`)).toContain('k@1');
  }, 180_000);

  it('no key bytes in any process log or CLI output (invariant 5)', () => {
    guard.text(pipe.logs());
    expect(guard.findLeaks()).toEqual([]);
  });
});
