/**
 * Issue 15 point 3 (keyring part): a keyring file its group or others may read or write is
 * refused with how to fix it; keyring edits take an advisory lock, so a scheduled new version and
 * an incident's decrypt-only edit at the same moment both land, from one process or several.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKeyringFile } from '../src/kek/keyring-file.ts';
import { appendKeyringVersion, setKeyringState } from '../src/kek/keyring-file-edit.ts';
import { runRewrap } from '../dev/services/processes.ts';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rewrap-keyring-safety-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function keyring(name: string, keks: { id: string; version: string }[], mode = 0o600): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, JSON.stringify({ keks: keks.map((k) => ({ ...k, material: randomBytes(32).toString('base64') })) }), { mode });
  await chmod(f, mode); // whatever the umask
  return f;
}

const ROOT = join(import.meta.dirname, '..');
const HOLDER = join(import.meta.dirname, 'support', 'keyring-lock-holder.ts');

/** Starts a process holding `file`'s edit lock (keyring-lock-holder.ts); resolves once it holds it. */
async function lockHolder(file: string, command = [process.execPath, '--import', 'tsx', HOLDER, file]) {
  const c = spawn(command[0]!, command.slice(1), { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: c.stdout! });
  const next = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      const on = (l: string) => {
        if (!l.startsWith(prefix)) return;
        lines.off('line', on);
        resolve(l.slice(prefix.length));
      };
      lines.on('line', on);
      c.once('exit', (code) => reject(new Error(`lock holder exited (${code}) before printing ${prefix}`)));
    });
  const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
  await next('held');
  return { child: c, next, exited };
}

const versions = (f: string, id: string) => loadKeyringFile(f).filter((e) => e.id === id).map((e) => `${e.version}:${e.state}`);

describe('keyring file safety (issue 15 point 3)', () => {
  it.each(['0644', '0640', '0604', '0660'])('a keyring file with mode %s is refused, saying how to fix it', async (octal) => {
    const f = await keyring(`open-${octal}.json`, [{ id: 'p', version: '1' }], parseInt(octal, 8));
    expect(() => loadKeyringFile(f)).toThrow(new RegExp(`keyring file .* has mode ${octal}: its group or others may read or change the key material in it; make it private to its owner: chmod 600 `));
  });

  it('the CLI refuses to edit a group-readable keyring (incident start --decrypt-only), exit 2, and leaves it as it was', async () => {
    const f = await keyring('cli-open.json', [{ id: 'p', version: '1' }, { id: 'p', version: '2' }], 0o640);
    const spec = join(dir, 'spec.json');
    await writeFile(spec, JSON.stringify({ name: 'p', sources: [{ type: 's3', bucket: 'b' }], provider: { type: 'local', keyringFile: f }, from: 'p@1', to: 'p@2' }));
    const r = await runRewrap(['incident', 'start', '--kek', 'p@1', '--spec', spec, '--decrypt-only'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has mode 0640: .*chmod 600 /);
    await chmod(f, 0o600);
    expect(versions(f, 'p')).toEqual(['1:enabled', '2:enabled']);
  });

  it('a new version and a decrypt-only edit at the same moment both land (one process)', async () => {
    const f = await keyring('race.json', [{ id: 'r', version: '1' }, { id: 'x', version: '1' }]);
    const [created, before] = await Promise.all([appendKeyringVersion(f, 'r'), setKeyringState(f, 'x', '1', 'decrypt-only')]);
    expect(created).toEqual({ previous: '1', created: '2' });
    expect(before).toBe('enabled');
    expect(versions(f, 'r')).toEqual(['1:enabled', '2:enabled']);
    expect(versions(f, 'x')).toEqual(['1:decrypt-only']);
  });

  it('two processes editing the same keyring at once lose no edit, and leave no lock or temporary file', async () => {
    const f = await keyring('two-procs.json', [{ id: 'a', version: '1' }, { id: 'b', version: '1' }]);
    const child = join(import.meta.dirname, 'support', 'keyring-edit-child.ts');
    const edit = (id: string) => run(process.execPath, ['--import', 'tsx', child, f, id, '15'], { cwd: join(import.meta.dirname, '..') });
    await Promise.all([edit('a'), edit('b')]);
    const seq = Array.from({ length: 16 }, (_, i) => `${i + 1}:enabled`);
    expect(versions(f, 'a')).toEqual(seq);
    expect(versions(f, 'b')).toEqual(seq);
    expect((await readdir(dir)).filter((n) => n.includes('two-procs') && n !== 'two-procs.json')).toEqual([]);
  }, 60_000);

  it("editors that all find a dead editor's lock break it once: every edit lands, none is lost", async () => {
    const editors = 6;
    const ids = Array.from({ length: editors }, (_, i) => `s${i}`);
    const f = await keyring('stale.json', ids.map((id) => ({ id, version: '1' })));
    // A real editor's lock, left by its crash (SIGKILL while it held it).
    const dead = await lockHolder(f);
    dead.child.kill('SIGKILL');
    await dead.exited;
    expect(await readFile(`${f}.lock`, 'utf8')).toMatch(new RegExp(`^${dead.child.pid}@${hostname()} pidns=pid:\\[\\d+\\] boot=[0-9a-f-]+$`));
    const child = join(import.meta.dirname, 'support', 'keyring-edit-child.ts');
    const children = ids.map((id) => spawn(process.execPath, ['--import', 'tsx', child, f, id, '3', '--barrier'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] }));
    const exited = children.map((c) => new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code))));
    // The barrier: every child has loaded and waits on stdin; one write each releases them together.
    await Promise.all(children.map((c) => new Promise<void>((resolve) => c.stdout!.once('data', () => resolve()))));
    for (const c of children) c.stdin!.write('go\n');
    expect(await Promise.all(exited)).toEqual(ids.map(() => 0));
    for (const id of ids) expect(versions(f, id)).toEqual(['1:enabled', '2:enabled', '3:enabled', '4:enabled']);
    expect((await readdir(dir)).filter((n) => n.startsWith('stale.json') && n !== 'stale.json')).toEqual([]);
    expect((await readdir(dir)).filter((n) => n.includes('stale.json') && n.endsWith('.tmp'))).toEqual([]);
  }, 60_000);

  /* Two containers of one pod share the host name, not the PID namespace: a pid in the lock means
     nothing to the other. A real holder in a PID namespace of its own (unshare, as root), whose pid
     does not exist here, must be waited for: breaking its lock is two edits at once, one lost. */
  const canUnshare = process.getuid?.() === 0 && existsSync('/usr/bin/unshare');
  it.skipIf(!canUnshare)('a live editor in another PID namespace under the same host name is waited for, never judged dead', async () => {
    const f = await keyring('other-ns.json', [{ id: 'n', version: '1' }]);
    /* In the new namespace the holder gets pid 99991, which this host's pid_max (or its processes) leaves free here. */
    const inner = `echo 99990 > /proc/sys/kernel/ns_last_pid; '${process.execPath}' --import tsx '${HOLDER}' '${f}'`;
    const holder = await lockHolder(f, ['unshare', '--pid', '--fork', '--mount-proc', 'sh', '-c', inner]);
    const held = await readFile(`${f}.lock`, 'utf8');
    const pid = Number(/^(\d+)@/.exec(held)![1]);
    expect(() => process.kill(pid, 0), `pid ${pid} exists here too: the test cannot tell`).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    let editDone = false;
    const edit = appendKeyringVersion(f, 'n').finally(() => (editDone = true));
    /* A bounded wait, not a sleep for an event: the editor polls every 20 ms, and one poll is enough
       to break a lock it judges dead. Nothing but time can show that it does not. */
    await new Promise((r) => setTimeout(r, 600));
    expect(editDone, 'the editor went ahead while the other namespace held the lock').toBe(false);
    const atRelease = holder.next('lock:');
    holder.child.stdin!.write('go\n');
    expect(await atRelease, 'the lock was taken from its live holder').toBe(held);
    expect(await holder.exited).toBe(0);
    expect(await edit).toEqual({ previous: '1', created: '2' });
    expect(versions(f, 'n')).toEqual(['1:enabled', '2:enabled']);
  }, 60_000);
});
