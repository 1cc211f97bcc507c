/**
 * Issue 13 point 8 (invariant 5): no error text quotes keyring or spec file content. Node's JSON
 * syntax error quotes the text around the error (`Unexpected token 'q', ..."material":q3uvbojMMR"`),
 * ten characters of key material, which the campaign's worker logged as the error's cause. Every
 * CLI path that reads a user's file (bad keyring, bad spec, bad schedule spec, bad manifest) and
 * the scheduler and worker logs of a campaign with a bad keyring are checked here, for the
 * registered secrets (LeakGuard) and for any 8 characters of their base64 text.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEnvelopeTable } from '../src/stores/pg-table-schema.ts';
import { insertRows } from '../dev/reference/row-client.ts';
import { runRewrap } from '../dev/services/processes.ts';
import { startPipeline, type Pipeline } from './support/pipeline.ts';
import { LeakGuard } from './support/leak-guard.ts';
import { eventually } from './support/eventually.ts';

/** Key material whose base64 starts with a letter JSON cannot take (V8 then quotes the text). */
function material(): Buffer {
  for (;;) {
    const b = randomBytes(32);
    if (/^[A-Za-eg-mo-su-z]/.test(b.toString('base64'))) return b;
  }
}
const k1 = { id: 'nk', version: '1', material: material() };
const k2 = { id: 'nk', version: '2', material: material() };
const guard = new LeakGuard();
guard.secret(k1.material, k2.material);
const outputs: string[] = [];
let pipe: Pipeline;

const pgSource = { type: 'pg', table: 'nk_rows', idColumn: 'id', wrappedKeyColumn: 'wrapped_dek', kekIdColumn: 'kek_id', kekVersionColumn: 'kek_version' };
/** A keyring whose second material lost its quotes: a JSON syntax error right at the key. */
const brokenKeyring = () =>
  `{"keks":[{"id":"nk","version":"1","material":"${k1.material.toString('base64')}"},{"id":"nk","version":"2","material":${k2.material.toString('base64')}, "state":"enabled"}]}`;

async function file(name: string, text: string): Promise<string> {
  const f = join(pipe.dir, name);
  await writeFile(f, text, { mode: 0o600 });
  await chmod(f, 0o600);
  return f;
}

async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const r = await runRewrap(args, pipe.env);
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** Any 8 consecutive characters of a secret's base64 text in `text`. */
function base64Pieces(text: string): string[] {
  const found: string[] = [];
  for (const k of [k1, k2]) {
    const b64 = k.material.toString('base64');
    for (let i = 0; i + 8 <= b64.length; i++) if (text.includes(b64.slice(i, i + 8))) found.push(`${k.id}@${k.version}: ${b64.slice(i, i + 8)}`);
  }
  return found;
}

beforeAll(async () => {
  pipe = await startPipeline({ label: 'no-key-bytes', workers: 1 });
  await createEnvelopeTable(pipe.db.pool, 'nk_rows');
  await insertRows(pipe.db.pool, 'nk_rows', 200, k1);
}, 120_000);

afterAll(async () => {
  await pipe?.stop();
});

describe('no key bytes in error text (issue 13 point 8, invariant 5)', () => {
  it('every CLI error path for a bad keyring, spec, schedule spec or manifest names the file and the place, and quotes none of it', async () => {
    const ring = await file('broken-keyring.json', brokenKeyring());
    const spec = await file('spec.json', JSON.stringify({ name: 'nk', sources: [pgSource], provider: { type: 'local', keyringFile: ring }, from: 'nk@1', to: 'nk@2' }));

    // A key pasted into a spec by mistake, unquoted: the spec's syntax error must not show it.
    const badSpec = await file('bad-spec.json', `{"name":"nk","sources":[],"provider":{"type":"local","keyringFile":${k1.material.toString('base64')}}}`);
    const badSchedule = await file('bad-schedule.json', `{"name":"s","cron":"0 3 1 * *","kek":${k2.material.toString('base64')}}`);
    // A manifest line that is a key, not "bucket,key".
    const manifest = await file('manifest.csv', `${k1.material.toString('base64')}\n`);
    const mspec = await file('manifest-spec.json', JSON.stringify({ name: 'm', sources: [{ type: 's3-manifest', manifestFile: manifest }], provider: { type: 'local', keyringFile: ring }, from: 'nk@1', to: 'nk@2' }));

    // In parallel: each CLI start costs seconds on a loaded box.
    const [incident, create, schedule, fromManifest] = await Promise.all([
      cli(['incident', 'start', '--kek', 'nk@1', '--spec', spec, '--decrypt-only']),
      cli(['campaign', 'create', '--spec', badSpec]),
      cli(['schedule', 'create', '--spec', badSchedule]),
      cli(['campaign', 'create', '--spec', mspec, '--dry-run']),
    ]);
    expect(incident.code).toBe(2);
    expect(incident.stderr).toMatch(/keyring file .*broken-keyring.json is not valid JSON: unexpected character at line 1, column \d+/);
    expect(create.code).toBe(2);
    expect(create.stderr).toMatch(/campaign spec file .*bad-spec.json is not valid JSON: unexpected character at line 1, column \d+/);
    expect(schedule.code).toBe(2);
    expect(schedule.stderr).toMatch(/schedule spec file .*bad-schedule.json is not valid JSON/);
    expect(fromManifest.code).toBe(2);
    expect(fromManifest.stderr).toMatch(/manifest .*manifest.csv line 1: expected "bucket,key"/);

    const text = outputs.join('\n');
    guard.text(text);
    expect(guard.findLeaks()).toEqual([]);
    expect(base64Pieces(text)).toEqual([]);
  }, 400_000);

  it('a campaign whose keyring file is broken pauses with a reason that names the place, and no process log quotes the file', async () => {
    const ring = await file('campaign-keyring.json', brokenKeyring());
    const c = await pipe.create({ name: 'broken keyring', sources: [pgSource], provider: { type: 'local', keyringFile: ring }, from: 'nk@1', to: 'nk@2', options: { batchSize: 50 } });
    // Whichever process meets the file first logs the error.
    await eventually('the keyring error in a process log', async () => (pipe.logs().includes('not valid JSON') ? true : undefined), 60_000);
    const logs = pipe.logs();
    guard.text(logs);
    expect(guard.findLeaks()).toEqual([]);
    expect(base64Pieces(logs)).toEqual([]);
    const p = await pipe.waitFor(c.id, 'paused', (x) => x.state === 'paused', 30_000);
    expect(p.pauseReason).toMatch(/keyring file .*campaign-keyring.json is not valid JSON: unexpected character at line 1, column \d+/);
    expect(base64Pieces(p.pauseReason!)).toEqual([]);
  }, 120_000);
});
