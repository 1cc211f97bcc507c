/**
 * A keyring shared across hosts (issue 18, point 8). A scheduled local-keyring rotation appends a
 * version to the scheduler's own copy only; workers on other hosts would fail `unknown-kek`.
 * When the scheduler cannot or must not write the keyring (declared shared, a Kubernetes Secret
 * volume, a read-only mount) the run is refused with what, why and how to fix it: the schedule
 * run ends `failed` with that message, the keyring is untouched, and no campaign is created.
 * The ledger and the rows are real (a fresh schema); the schedule runs on a test clock in 2100.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../src/config.ts';
import { Resources } from '../src/runtime/resources.ts';
import { createSchedule, listCampaigns, listSchedules, migrate } from '../src/ledger/index.ts';
import { parseScheduleSpec } from '../src/schedule/schedule-spec.ts';
import { runDueSchedules } from '../src/schedule/run-due-schedules.ts';
import { freshSchema, type TestSchema } from './harness/pg.ts';
import { rowSource, rowTable } from './support/row-fixture.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { WatchedKeyring } from '../src/kek/keyring-file-watch.ts';

let db: TestSchema;
let dir: string;
const mounts: string[] = [];
const guard = new LeakGuard();
const resources: Resources[] = [];

beforeAll(async () => {
  db = await freshSchema('kshared');
  await migrate(db.pool);
  dir = await mkdtemp(join(tmpdir(), 'rewrap-kshared-'));
}, 60_000);

afterAll(async () => {
  for (const m of mounts.reverse()) execFileSync('umount', [m]);
  for (const r of resources) await r.close();
  await db?.drop();
  if (dir) {
    await chmod(dir, 0o700).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

function keyringDoc(id: string): string {
  const material = randomBytes(32);
  guard.secret(material);
  return JSON.stringify({ keks: [{ id, version: '1', material: material.toString('base64'), state: 'enabled' }] });
}

/** A table under `<id>@1`, a schedule over it, and one due run of it; returns the run's result. */
async function runSchedule(name: string, keyringFile: string, id: string, env: Record<string, string> = {}) {
  const kek = { id, version: '1', material: Buffer.alloc(32) };
  // rowTable needs the material only to wrap the rows' DEKs; read it back from the file.
  const doc = JSON.parse(await readFile(keyringFile, 'utf8')) as { keks: { material: string }[] };
  kek.material = Buffer.from(doc.keks[0]!.material, 'base64');
  await rowTable(db.pool, name, 5, kek);
  await createSchedule(db.pool, parseScheduleSpec({ name, cron: '* * * * *', kek: id, campaign: { sources: [rowSource(name)], provider: { type: 'local', keyringFile }, options: { batchSize: 50 } } }, new Date('2100-03-01T00:00:10Z')));
  const res = new Resources(loadConfig({ DATABASE_URL: db.url, ...env }));
  resources.push(res);
  const [run] = await runDueSchedules(res, guard.logger, new Date('2100-03-01T00:01:00Z'));
  return run!;
}

async function expectRefusedUntouched(name: string, keyringFile: string, before: string, why: RegExp) {
  const [s] = await listSchedules(db.pool, name);
  expect(s!.lastRun).toMatchObject({ outcome: 'failed' });
  const detail = s!.lastRun!.detail!;
  expect(detail).toMatch(new RegExp(`refusing to add a KEK version to keyring file ${keyringFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  expect(detail).toMatch(why);
  expect(detail).toMatch(/unknown-kek/);
  expect(detail).toMatch(/Fix: .*KMS or HSM/);
  expect(await readFile(keyringFile, 'utf8')).toBe(before);
  expect((await listCampaigns(db.pool)).filter((c) => c.name.startsWith(name))).toEqual([]);
}

describe('a scheduled local-keyring rotation when the keyring is shared across hosts', () => {
  it('a writable private keyring: the rotation appends a version and starts a campaign (the control)', async () => {
    const file = join(dir, 'own.json');
    await writeFile(file, keyringDoc('own'), { mode: 0o600 });
    const run = await runSchedule('own', file, 'own');
    expect(run).toMatchObject({ outcome: 'campaign-started', from: 'own@1', to: 'own@2' });
  });

  it('REWRAP_KEYRING_READ_ONLY=true: refused, saying so and how to fix it; the keyring is untouched', async () => {
    const file = join(dir, 'declared.json');
    await writeFile(file, keyringDoc('decl'), { mode: 0o600 });
    const before = await readFile(file, 'utf8');
    const run = await runSchedule('declared', file, 'decl', { REWRAP_KEYRING_READ_ONLY: 'true' });
    expect(run.outcome).toBe('failed');
    await expectRefusedUntouched('declared', file, before, /REWRAP_KEYRING_READ_ONLY=true/);
  });

  it('a Kubernetes Secret volume (keyring.json -> ..data/keyring.json): refused, and the symlink is not replaced by a local copy', async () => {
    const vol = join(dir, 'secret-volume');
    await mkdir(join(vol, '..2100_03_01_00_00_00.000000001'), { recursive: true });
    await writeFile(join(vol, '..2100_03_01_00_00_00.000000001', 'keyring.json'), keyringDoc('k8s'), { mode: 0o600 });
    await symlink('..2100_03_01_00_00_00.000000001', join(vol, '..data'));
    const file = join(vol, 'keyring.json');
    await symlink(join('..data', 'keyring.json'), file);
    const before = await readFile(file, 'utf8');
    await runSchedule('kubernetes', file, 'k8s');
    await expectRefusedUntouched('kubernetes', file, before, /Kubernetes Secret/);
    expect((await lstat(file)).isSymbolicLink()).toBe(true);
  });

  it('a keyring on a read-only mount (or, for a non-root user, in a directory without write permission): refused', async () => {
    const src = join(dir, 'ro-src');
    const file = join(dir, 'ro', 'keyring.json');
    await mkdir(src);
    await mkdir(join(dir, 'ro'));
    await writeFile(join(src, 'keyring.json'), keyringDoc('ro'), { mode: 0o600 });
    if (process.getuid?.() === 0) {
      // Permission bits do not stop root; a read-only bind mount does (EROFS), as a read-only volume would.
      execFileSync('mount', ['--bind', src, join(dir, 'ro')]);
      mounts.push(join(dir, 'ro'));
      execFileSync('mount', ['-o', 'remount,bind,ro', join(dir, 'ro')]);
    } else {
      await writeFile(file, await readFile(join(src, 'keyring.json')), { mode: 0o600 });
      await chmod(join(dir, 'ro'), 0o500);
    }
    const before = await readFile(file, 'utf8');
    await runSchedule('readonly', file, 'ro');
    await expectRefusedUntouched('readonly', file, before, /not writable by this process \((EROFS: a read-only mount|EACCES)\)/);
  });

  it("workers read a Secret volume's group-readable keyring (0440 with fsGroup) and reload it when the kubelet swaps ..data; a plain 0440 file is still refused", async () => {
    const vol = join(dir, 'secret-reload');
    const gen = async (name: string, doc: string) => {
      await mkdir(join(vol, name), { recursive: true });
      await writeFile(join(vol, name, 'keyring.json'), doc);
      await chmod(join(vol, name, 'keyring.json'), 0o440);
    };
    const one = JSON.parse(keyringDoc('sec')) as { keks: object[] };
    await gen('..2100_01', JSON.stringify(one));
    await symlink('..2100_01', join(vol, '..data'));
    const file = join(vol, 'keyring.json');
    await symlink(join('..data', 'keyring.json'), file);
    const ring = new WatchedKeyring(file);
    ring.assertWrappable({ id: 'sec', version: '1' }, 'c');
    expect(() => ring.assertWrappable({ id: 'sec', version: '2' }, 'c')).toThrow(/not in keyring file/);

    // The kubelet's update: a new timestamped directory, then ..data renamed onto it atomically.
    const two = JSON.parse(keyringDoc('sec')) as { keks: { version: string }[] };
    two.keks[0]!.version = '2';
    await gen('..2100_02', JSON.stringify({ keks: [...one.keks, ...two.keks] }));
    await symlink('..2100_02', join(vol, '..data_tmp'));
    await rename(join(vol, '..data_tmp'), join(vol, '..data'));
    expect(ring.refresh()).toBe(true);
    ring.assertWrappable({ id: 'sec', version: '2' }, 'c');

    const plain = join(dir, 'plain-0440.json');
    await writeFile(plain, keyringDoc('plain'));
    await chmod(plain, 0o440);
    expect(() => loadKeyringFile(plain)).toThrow(/has mode 0440: .*chmod 600/);
    await chmod(join(vol, '..2100_02', 'keyring.json'), 0o444); // others may read: refused even in a Secret
    await rename(join(vol, '..data'), join(vol, '..data_x')).then(() => rename(join(vol, '..data_x'), join(vol, '..data')));
    expect(() => loadKeyringFile(file)).toThrow(/has mode 0444/);
  });

  it('no key material in the logs (invariant 5)', () => {
    expect(guard.findLeaks()).toEqual([]);
  });
});
