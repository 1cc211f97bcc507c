/**
 * The package users install: `npm pack` builds dist/ (prepack: `npm run build`) and packs only
 * the compiled code; the tarball installs into an empty folder with its runtime dependencies
 * alone (no tsx, no TypeScript sources) and its `rewrap` command runs: `--help`, and `migrate`
 * against a fresh ledger schema, which proves the SQL migrations ship beside the compiled modules.
 * The install reuses npm's cache (`--prefer-offline`); the registry is reached only for what the
 * cache lacks.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshSchema, type TestSchema } from './harness/pg.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 240_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr: `${stderr}${err && typeof err.code !== 'number' ? err.message : ''}` });
    });
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\nstdout: ${r.stdout.slice(-4000)}\nstderr: ${r.stderr.slice(-4000)}`);
  return r;
}

/** The environment of a user's shell: no vitest or tsx loader options, no repo node_modules/.bin on PATH. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(VITEST|NODE_OPTIONS|TSX|npm_)/i.test(k)) env[k] = v;
  env.PATH = (process.env.PATH ?? '').split(path.delimiter).filter((p) => !p.includes('node_modules')).join(path.delimiter);
  return { ...env, ...extra };
}

describe('npm pack: the package installs into an empty folder and runs', () => {
  let dir: string;
  let tarball: string;
  let files: string[];
  let schema: TestSchema;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'rewrap-pack-'));
    schema = await freshSchema('pack');
    const packed = ok(await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, env: userEnv() }), 'npm pack');
    // npm prints the build's output before the JSON: take the JSON array at the end.
    const json = JSON.parse(packed.stdout.slice(packed.stdout.lastIndexOf('\n[') + 1)) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(dir, json[0].filename);
    files = json[0].files.map((f) => f.path);
  }, 300_000);

  afterAll(async () => {
    await schema?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('packs the compiled code with its run-time files, and no sources, tests or development code', () => {
    expect(files).toContain('bin/rewrap.js');
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain('dist/workers/worker.js');
    expect(files).toContain('dist/scheduler/scheduler.js');
    expect(files).toContain('dist/src/ledger/migrations/000001.sql');
    expect(files).toContain('dist/src/api/public/index.html');
    const unwanted = files.filter((f) => /^(src|test|bench|dev|deploy|scripts|docs)\//.test(f) || /^dist\/(dev|test|bench)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')));
    expect(unwanted).toEqual([]);
  });

  it('installs with its runtime dependencies only (no tsx) and `rewrap --help` and `rewrap migrate` run from it', async () => {
    const app = path.join(dir, 'app');
    await run('mkdir', ['-p', app], { cwd: dir });
    await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'empty', private: true }));
    ok(await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: app, env: userEnv(), timeoutMs: 280_000 }), 'npm install <tarball>');
    expect(existsSync(path.join(app, 'node_modules', 'tsx'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules', 'typescript'))).toBe(false);

    const bin = path.join(app, 'node_modules', '.bin', 'rewrap');
    const help = ok(await run(bin, ['--help'], { cwd: app, env: userEnv() }), 'rewrap --help');
    expect(help.stdout).toMatch(/^Usage: rewrap <command>/m);
    expect(help.stdout).toMatch(/^ {2}worker /m);

    const migrated = ok(await run(bin, ['migrate'], { cwd: app, env: userEnv({ DATABASE_URL: schema.url }) }), 'rewrap migrate');
    expect(migrated.stdout).toMatch(/ledger schema up to date \(applied 1, /);
    const { rows } = await schema.pool.query<{ n: string }>('SELECT count(*) AS n FROM rewrap_migrations');
    expect(Number(rows[0].n)).toBeGreaterThanOrEqual(5);
  }, 300_000);
});
