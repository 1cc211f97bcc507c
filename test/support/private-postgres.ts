/**
 * A private PostgreSQL cluster on a free port, for tests that restart or stop the database (the
 * shared server on 5432 serves every other test file). initdb into a temp dir, trust auth on
 * 127.0.0.1, fsync off. Postgres refuses to run as root: as root, every command runs as the
 * `postgres` user (runuser). `stop()` stops the cluster and removes its directory; a parent that
 * exits without calling it (a failed hook) still stops the cluster on exit.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../dev/services/rgw-server.ts';

const run = promisify(execFile);

export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dir: string;
  /** `pg_ctl restart -m fast`: every session is terminated (57P01), the server is back when this resolves. */
  restart(): Promise<void>;
  /** `pg_ctl stop -m fast`: every session is terminated; connections are refused until `startServer()`. */
  stopServer(): Promise<void>;
  /** Starts the stopped server again (same data, same port). */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL server binaries under ${root}/*/bin (apt-get install postgresql)`);
  versions.sort((a, b) => Number(a) - Number(b));
  return join(root, versions.at(-1)!, 'bin');
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'rewrap-pg-'));
  const data = join(dir, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  /** argv of a server binary, as the postgres user when we are root. */
  const cmd = (tool: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', join(bin, tool), ...args]] : [join(bin, tool), args];
  const pgCtl = (args: string[]) => {
    const [file, argv] = cmd('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), ...args]);
    return run(file, argv, { timeout: 60_000 });
  };
  const port = await freePort();
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  let started = false;
  const stopNow = () => {
    if (!started) return;
    started = false;
    const [file, argv] = cmd('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    try {
      execFileSync(file, argv, { stdio: 'ignore', timeout: 30_000 });
    } catch {
      /* already stopped */
    }
  };
  const onExit = () => {
    stopNow();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [file, argv] = cmd('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8']);
    await run(file, argv, { timeout: 120_000 });
    process.once('exit', onExit);
    started = true;
    await pgCtl(['-o', opts, '-w', '-t', '60', 'start']);
  } catch (err) {
    onExit();
    process.removeListener('exit', onExit);
    throw new Error(`private PostgreSQL in ${dir} did not start`, { cause: err });
  }
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async restart() {
      await pgCtl(['-m', 'fast', '-w', '-t', '60', 'restart']);
    },
    async stopServer() {
      await pgCtl(['-m', 'fast', '-w', '-t', '60', 'stop']);
    },
    async startServer() {
      await pgCtl(['-o', opts, '-w', '-t', '60', 'start']);
    },
    async stop() {
      process.removeListener('exit', onExit);
      onExit();
    },
  };
}
