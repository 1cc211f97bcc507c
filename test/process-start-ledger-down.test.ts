/**
 * A worker or scheduler started before its ledger is up (containers start in any order; a
 * failover at deploy time) waits for it, within REWRAP_PG_STARTUP_WAIT_MS, instead of exiting;
 * an error that waiting cannot fix (a database that does not exist) still ends it at once, with
 * the reason. A private PostgreSQL cluster is stopped before the processes start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startRewrapProcess, type RewrapProcess } from '../dev/services/processes.ts';
import { REDIS_URL } from './harness/env.ts';
import { startPrivatePostgres, type PrivatePostgres } from './support/private-postgres.ts';

let pg: PrivatePostgres;
const started: RewrapProcess[] = [];

function start(name: string, args: string[], databaseUrl: string): RewrapProcess {
  const p = startRewrapProcess(name, args, {
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REWRAP_QUEUE_PREFIX: `{test-startwait-${randomBytes(4).toString('hex')}}`,
    REWRAP_PG_CONNECT_TIMEOUT_MS: '1000',
    REWRAP_PG_RECONNECT_MIN_MS: '100',
    REWRAP_PG_RECONNECT_MAX_MS: '500',
    LOG_LEVEL: 'info',
  });
  started.push(p);
  return p;
}

beforeAll(async () => {
  pg = await startPrivatePostgres();
  await pg.stopServer();
}, 180_000);

afterAll(async () => {
  await Promise.allSettled(started.map((p) => p.stop()));
  await pg?.stop();
});

describe('a process started while the ledger is down', () => {
  it('waits for Postgres with backoff, then starts and migrates the ledger', async () => {
    const worker = start('worker', ['worker'], pg.url);
    const scheduler = start('scheduler', ['scheduler'], pg.url);
    await worker.waitForLine(/ledger unreachable at start: retrying/, 90_000);
    await scheduler.waitForLine(/ledger unreachable at start: retrying/, 90_000);
    await pg.startServer();
    await worker.waitForLine(/worker started/, 90_000);
    await scheduler.waitForLine(/scheduler active|standing by/, 90_000);
    expect(worker.child.exitCode).toBeNull();
    expect(scheduler.child.exitCode).toBeNull();
  }, 240_000);

  it('exits at once, naming the cause, when waiting cannot help (the database does not exist)', async () => {
    const worker = start('worker-nodb', ['worker'], pg.url.replace(/\/postgres$/, '/no_such_database'));
    expect(await worker.exited).not.toBe(0);
    expect(worker.lines.join('\n')).toMatch(/no_such_database/);
    expect(worker.lines.join('\n')).not.toMatch(/retrying/);
  }, 120_000);
});
