/**
 * The scheduler's leadership: a session advisory lock held on a dedicated connection (outside
 * the pool, so no pool churn can end the session and no query of the pool waits behind it).
 * Postcondition: a term's signal aborts as soon as its lock connection reports an error, ends,
 * or fails a check; the scheduler stops acting as leader then, and leads again only once it
 * holds the lock on a new connection. A database restart ends every session, and with it the
 * lock: any scheduler may win it next.
 */
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../src/log.ts';
import { LOCK_NAMESPACE } from '../src/ledger/lock-keys.ts';
import { backoffMs } from '../src/core/backoff.ts';

const TRY_LOCK_SQL = `SELECT pg_try_advisory_lock(${LOCK_NAMESPACE}, hashtext(current_schema() || ':scheduler')) AS ok`;

export interface LeaderLockOptions {
  /** A new, unconnected client for the ledger database. */
  newClient: () => pg.Client;
  log: Logger;
  /** How often a standby asks for the lock again. */
  standbyPollMs: number;
  /** Backoff after a failed connection: from min, doubling to max, with full jitter. */
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** How long a check of a held lock's connection may take before the term ends. */
  checkTimeoutMs: number;
}

export class LeaderLock {
  private client?: pg.Client;
  private term?: AbortController;

  constructor(private readonly o: LeaderLockOptions) {}

  /**
   * Resolves with the signal of a new leadership term once this process holds the lock, or with
   * undefined when `stop` aborts first. Failed connections are retried with backoff and jitter;
   * while another scheduler holds the lock, every standbyPollMs.
   */
  async acquire(stop: AbortSignal): Promise<AbortSignal | undefined> {
    let failures = 0;
    let standing = false;
    while (!stop.aborted) {
      let ok = false;
      try {
        const client = this.client ?? (await this.connect());
        const { rows } = await client.query<{ ok: boolean }>({ text: TRY_LOCK_SQL, query_timeout: this.o.checkTimeoutMs } as pg.QueryConfig);
        ok = rows[0]!.ok;
        failures = 0;
      } catch (err) {
        this.drop();
        const waitMs = backoffMs(++failures, this.o.reconnectMinMs, this.o.reconnectMaxMs);
        this.o.log.warn({ err, retryInMs: waitMs }, 'scheduler lock: cannot reach the ledger; trying again');
        await sleep(waitMs, undefined, { signal: stop }).catch(() => undefined);
        continue;
      }
      if (ok) {
        this.term = new AbortController();
        return this.term.signal;
      }
      if (!standing) this.o.log.info('another scheduler is active; standing by');
      standing = true;
      await sleep(this.o.standbyPollMs, undefined, { signal: stop }).catch(() => undefined);
    }
    return undefined;
  }

  /** One round trip on the lock connection. False (and the term ended) when it does not answer in time. */
  async confirm(): Promise<boolean> {
    const client = this.client;
    if (!client || !this.term || this.term.signal.aborted) return false;
    try {
      await client.query({ text: 'SELECT 1', query_timeout: this.o.checkTimeoutMs } as pg.QueryConfig);
      return !this.term.signal.aborted;
    } catch (err) {
      this.lose(client, err);
      return false;
    }
  }

  /** Ends the term and the session, and with it the lock. */
  async release(): Promise<void> {
    const client = this.client;
    this.term?.abort(new Error('scheduler stopping'));
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<pg.Client> {
    const client = this.o.newClient();
    /* Attached before connecting and never removed: an unlistened 'error' (57P01 on a restart)
       would end the process. */
    client.on('error', (err) => this.lose(client, err));
    client.on('end', () => this.lose(client, new Error('lock connection ended')));
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
    return client;
  }

  /** The lock connection failed: whatever this process was doing as leader stops now. */
  private lose(client: pg.Client, err: unknown): void {
    if (client !== this.client) return;
    this.drop();
    if (this.term && !this.term.signal.aborted) {
      this.o.log.warn({ err }, 'scheduler lock connection lost: no longer active until the lock is taken again');
      this.term.abort(new Error('scheduler lock lost', { cause: err }));
    }
  }

  private drop(): void {
    const client = this.client;
    this.client = undefined;
    client?.end().catch(() => undefined);
  }
}
