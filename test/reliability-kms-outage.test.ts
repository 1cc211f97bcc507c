/**
 * Issue 20, scenario 2: a KMS outage mid-campaign. Every KMS call fails, first with connection
 * refused (the endpoint does not listen) for a minute, then with 503 ServiceUnavailable answers
 * for another: the 2 minutes (the test mostly waits, beside the other files). Items are not failed
 * permanently, the campaign stays running and shows as degraded (campaign status, the API's
 * progress.health, the rewrap_campaign_batches_retrying gauge) with the reason, and it resumes
 * by itself once KMS is back. Then the usual proof: every row decrypts under the new key
 * (DecryptCommand with KeyId set, so KMS refuses any other key), the ledger's counts equal the
 * table, and no row was written twice (a row-update log).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { inventoryByKek } from '../src/ledger/index.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { expectKmsRowsUnder, kmsRowSource, kmsRowTable } from './support/kms-row-fixture.ts';
import { logRowWrites, rowsWrittenTwice } from './support/row-fixture.ts';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.ts';
import { rewrapCli } from './support/cli.ts';
import { eventually } from './support/eventually.ts';
import { recordFigure, secondsSince } from './support/reliability-figures.ts';

const ROWS = 1_000;
const REFUSED_MS = 60_000;
const UNAVAILABLE_MS = 60_000;

let pipe: Pipeline;
let kms: KMSClient;
let proxy: FaultProxy;
let keyA: string;
let keyB: string;
let deks: Map<string, Buffer>;

beforeAll(async () => {
  pipe = await startPipeline({ label: 'kmsoutage', workers: 2 });
  kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 't', secretAccessKey: 't' } });
  [keyA, keyB] = await Promise.all([0, 1].map(async () => (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.Arn!));
  ({ deks } = await kmsRowTable(pipe.db.pool, kms, 'secrets', ROWS, keyA!));
  await logRowWrites(pipe.db.pool, 'secrets');
  // The workers reach KMS only through the proxy (the campaign's provider.endpoint).
  proxy = await startFaultProxy(pipe.kms.url);
}, 180_000);

afterAll(async () => {
  await pipe?.stop();
  await proxy?.close();
  kms?.destroy();
});

describe('KMS outage (issue 20, scenario 2)', () => {
  it('refused for 60 s, then 503 for 60 s: nothing fails for good, the campaign shows degraded and resumes by itself', async () => {
    const c = await pipe.create({
      name: 'kms outage',
      sources: [kmsRowSource('secrets')],
      provider: { type: 'kms', region: 'us-east-1', endpoint: proxy.url },
      from: keyA,
      to: keyB,
      // Paced by the shared budget so that the outage lands mid-campaign.
      options: { batchSize: 100, concurrency: 8, kmsRequestsPerSecond: 100 },
    });
    const t0 = Date.now();
    const before = await pipe.waitFor(c.id, 'under way', (p) => p.rewrapped >= ROWS / 5, 120_000);
    expect(before.state).toBe('running');
    expect(before.health.status).toBe('ok');

    // Phase 1: connection refused.
    const outageAt = Date.now();
    await proxy.refuse();
    const degraded = await pipe.waitFor(c.id, 'degraded', (p) => p.health.status === 'degraded', 60_000);
    const detectSeconds = secondsSince(outageAt);
    expect(degraded.state).toBe('running');
    expect(degraded.health.reason).toMatch(/provider-unavailable/);
    expect(degraded.failed).toBe(0);
    console.log(`kms-outage: degraded after ${detectSeconds} s: ${JSON.stringify(degraded.health)}`);

    // What an operator sees: `campaign status` says so, in words.
    const status = await rewrapCli(pipe, ['campaign', 'status', c.id]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/— degraded/);
    expect(status.stdout).toMatch(/DEGRADED: \d+ batches retrying with backoff \(.*provider-unavailable.*\).*resumes by itself/);

    // The fault lasts a set time: this wait is the fault, not a hope that something happened.
    await sleep(REFUSED_MS - (Date.now() - outageAt));
    // Phase 2: KMS answers again, but every call with 503.
    pipe.kms.setFaults({ outageForMs: UNAVAILABLE_MS, outageStatus: 503 });
    const unavailableAt = Date.now();
    await proxy.accept();
    await eventually('503 answers', async () => (pipe.kms.stats().outageFailures > 0 ? true : undefined), UNAVAILABLE_MS, 100);
    await sleep(UNAVAILABLE_MS - (Date.now() - unavailableAt));
    const endedAt = Date.now();
    const during = await pipe.progress(c.id);
    expect(during.state).toBe('running');
    expect(during.health.status, 'still shown degraded at the end of the outage').toBe('degraded');
    expect(during.failed).toBe(0);
    expect(during.rewrapped).toBeLessThan(ROWS); // the outage held the campaign back

    // It resumes by itself: nobody resumes anything.
    await pipe.waitFor(c.id, 'moving again', (p) => p.rewrapped > during.rewrapped, 120_000);
    const recoverSeconds = secondsSince(endedAt);
    const p = await pipe.waitFor(c.id, 'completed', (x) => x.state === 'completed', 180_000);
    expect(p.health.status).toBe('ok');
    console.log(`kms-outage: outage at ${secondsSince(t0, outageAt)} s, ended at ${secondsSince(t0, endedAt)} s, completed at ${secondsSince(t0)} s`);

    // Proof: every row decrypts under keyB to its own DEK; ledger = table; written once.
    expect(await expectKmsRowsUnder(pipe.db.pool, kms, 'secrets', keyB, deks)).toBe(ROWS);
    expect(p.planned).toBe(ROWS);
    expect(p.failed).toBe(0);
    expect(p.rewrapped + p.skipped).toBe(ROWS);
    const inv = await inventoryByKek(pipe.db.pool);
    expect(inv.filter((r) => r.kekId === keyB).reduce((a, r) => a + r.items, 0)).toBe(ROWS);
    const twice = await rowsWrittenTwice(pipe.db.pool, 'secrets');
    expect(twice).toEqual([]);
    const stats = pipe.kms.stats();
    expect(stats.outageFailures).toBeGreaterThan(0);

    recordFigure({
      scenario: 'KMS outage',
      items: ROWS,
      faults: `KMS refused connections ${REFUSED_MS / 1000} s, then answered 503 ${UNAVAILABLE_MS / 1000} s (${stats.outageFailures} calls); nothing failed for good, running + degraded throughout`,
      lost: ROWS - p.rewrapped - p.skipped,
      duplicatedWrites: twice.length,
      detectSeconds,
      recoverSeconds,
      wallSeconds: secondsSince(t0),
      failedForGood: p.failed,
    });
  }, 420_000);
});
