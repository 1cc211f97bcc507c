/**
 * Envelopes kept in the user's own Postgres table: one row per item, a wrapped-DEK column and
 * KEK id / version columns (optionally material id and encryption-context columns).
 * A batch is read with ONE SELECT and written with ONE set-based conditional UPDATE
 * (`UPDATE ... FROM unnest(...)`), 8-20x faster than per-row statements.
 *
 * Column types are read from the catalog at first use (not configured): the id type, so keys
 * are cast to it and the primary-key index is used; bytea or base64-text for the wrapped key.
 * Writes touch only the wrapped-key, KEK id/version and material-id columns; context columns
 * are compared, never written, and matdesc keys that are not context columns are not stored.
 */
import type pg from 'pg';
import type { BatchEnvelopeStore, CasLevel, ItemRef, ReadResult, WriteFence, WriteResult } from './envelope-store.ts';
import type { Envelope } from '../core/envelope.ts';
import { validatePgTableConfig, type PgTableShape, type PgTableStoreConfig } from './pg-table-config.ts';
import { describeColumns, type PgTableColumns } from './pg-table-columns.ts';
import { rowColumns, selectSql, updateSql } from './pg-table-sql.ts';
import { rowToReadResult, writeParams, itemName, type SelectedRow } from './pg-table-row.ts';
import { storeFailure } from './pg-table-errors.ts';
import { ConfigError } from '../core/errors.ts';
import type { StoreId } from '../core/store-id.ts';

/** How long a table's column types are trusted before they are read from the catalog again. */
export const DESCRIBE_TTL_MS = 60_000;

export type { PgTableStoreConfig } from './pg-table-config.ts';

/** The column types and the two statements, built once per store. */
export interface PgTableStatements {
  cols: PgTableColumns;
  select: string;
  update: string;
  /** The select list of `select` over alias t, with the key as the id in text (readSelected). */
  columns: string;
}

export class PgTableStore implements BatchEnvelopeStore {
  readonly id: StoreId;
  readonly shape: PgTableShape;
  private readonly pool: pg.Pool;
  private prepared?: Promise<PgTableStatements>;
  private preparedAt = 0;

  /** Validates the config (throws ConfigError naming the field); touches no database. */
  constructor(config: PgTableStoreConfig) {
    this.shape = validatePgTableConfig(config);
    this.pool = config.pool;
    this.id = this.shape.storeId;
  }

  /**
   * Looks up the column types and builds both statements, again every DESCRIBE_TTL_MS: a column
   * an operator altered (say, a version column widened for KMS material ids) is seen without a
   * restart. A failed lookup is not cached, so a database that was down is asked again next call.
   */
  prepare(signal?: AbortSignal): Promise<PgTableStatements> {
    signal?.throwIfAborted();
    if (!this.prepared || Date.now() - this.preparedAt > DESCRIBE_TTL_MS) {
      const p = this.describe();
      this.prepared = p;
      this.preparedAt = Date.now();
      p.catch(() => {
        if (this.prepared === p) this.prepared = undefined;
      });
    }
    return this.prepared;
  }

  private async describe(): Promise<PgTableStatements> {
    let cols: PgTableColumns;
    try {
      cols = await describeColumns(this.pool, this.shape);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw storeFailure(this.id, 'reading the column types from the catalog', err);
    }
    return { cols, select: selectSql(this.shape, cols), update: updateSql(this.shape, cols), columns: rowColumns(this.shape) };
  }

  async read(item: ItemRef, signal?: AbortSignal): Promise<ReadResult> {
    const results = await this.readMany([item], signal);
    return results.get(item.key)!;
  }

  /** One SELECT for all items. Keys with no row are 'item-missing'. */
  async readMany(items: ItemRef[], signal?: AbortSignal): Promise<Map<string, ReadResult>> {
    const { cols, select } = await this.prepare(signal);
    const out = new Map<string, ReadResult>();
    const wanted = new Set<string>();
    for (const { key } of items) {
      if (out.has(key) || wanted.has(key)) continue;
      const problem = cols.keyProblem(key);
      if (problem) out.set(key, { kind: 'invalid', reason: 'item-missing', detail: `${itemName(this.shape, key)}: the key ${problem}, so no row has it` });
      else wanted.add(key);
    }
    const keys = [...wanted];
    if (keys.length > 0) {
      signal?.throwIfAborted();
      let rows: SelectedRow[];
      try {
        ({ rows } = await this.pool.query<SelectedRow>(select, [keys]));
      } catch (err) {
        throw storeFailure(this.id, `reading ${keys.length} row(s)`, err);
      }
      for (const row of rows) out.set(row.key, rowToReadResult(this.shape, cols, row));
    }
    for (const key of keys) {
      if (!out.has(key)) out.set(key, { kind: 'invalid', reason: 'item-missing', detail: `${itemName(this.shape, key)}: no such row` });
    }
    return out;
  }

  /**
   * The rows a source's statement selects, read with their envelopes in that one statement (the
   * batch ledger form's range pages: PgTableSource.rangeRowsQuery). `query` gets this store's
   * select list over alias t and returns the statement. Keys come back in the statement's order.
   */
  async readSelected(
    query: (columns: string) => Promise<{ text: string; values: unknown[] }>,
    signal?: AbortSignal,
  ): Promise<{ keys: string[]; reads: Map<string, ReadResult> }> {
    const { cols, columns } = await this.prepare(signal);
    const q = await query(columns);
    signal?.throwIfAborted();
    let rows: SelectedRow[];
    try {
      ({ rows } = await this.pool.query<SelectedRow>(q));
    } catch (err) {
      throw storeFailure(this.id, 'reading a range of rows', err);
    }
    const keys: string[] = new Array(rows.length);
    const reads = new Map<string, ReadResult>();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      keys[i] = row.key;
      reads.set(row.key, rowToReadResult(this.shape, cols, row));
    }
    return { keys, reads };
  }

  async writeIfUnchanged(item: ItemRef, token: unknown, next: Envelope, signal?: AbortSignal, fence?: WriteFence): Promise<WriteResult> {
    const results = await this.writeManyIfUnchanged([{ item, token, next }], signal, fence);
    return results.get(item.key)!;
  }

  /**
   * ONE conditional UPDATE for all writes. A row whose wrapped key (or context) changed since it
   * was read, or that vanished, is 'conflict' and keeps what the application wrote.
   * Throws a transient ItemError 'store-unavailable' for the whole batch when the database is
   * unreachable or busy; the statement is atomic, so then no row of the batch was written.
   * Invariant 8: `fence` runs once a connection is in hand, right before the UPDATE is sent
   * (not before waiting for a free connection of the pool).
   */
  async writeManyIfUnchanged(
    writes: { item: ItemRef; token: unknown; next: Envelope }[],
    signal?: AbortSignal,
    fence?: WriteFence,
  ): Promise<Map<string, WriteResult>> {
    const { cols, update } = await this.prepare(signal);
    const out = new Map<string, WriteResult>();
    /* Keys that cannot name a row cannot have been read: nothing to write, nothing to send. */
    const sendable = writes.filter(({ item }) => cols.keyProblem(item.key) === undefined);
    if (sendable.length > 0) {
      const params = writeParams(this.shape, cols, sendable);
      signal?.throwIfAborted();
      let conn: pg.PoolClient;
      try {
        conn = await this.pool.connect();
      } catch (err) {
        throw storeFailure(this.id, `writing ${sendable.length} row(s)`, err);
      }
      let rows: { key: string }[] = [];
      let broken = false;
      try {
        fence?.(); // what it throws goes to the caller as is: nothing was sent
        try {
          ({ rows } = await conn.query<{ key: string }>(update, params));
        } catch (err) {
          broken = true; // a failed statement may have left the connection unusable: not reused
          throw storeFailure(this.id, `writing ${sendable.length} row(s)`, err);
        }
      } finally {
        conn.release(broken);
      }
      for (const { key } of rows) out.set(key, 'written');
    }
    for (const { item } of writes) if (!out.has(item.key)) out.set(item.key, 'conflict');
    return out;
  }

  /** The wrapped key itself is compared in the UPDATE: the strongest compare-and-swap. */
  async casLevel(): Promise<CasLevel> {
    return 'envelope';
  }
}
