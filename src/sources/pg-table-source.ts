/**
 * Rows of a Postgres table still under the source KEK, by keyset pagination on the id column
 * (`WHERE id > $last ORDER BY id LIMIT n`: constant cost per page at any depth).
 */
import type pg from 'pg';
import type { KekSelector } from '../core/kek-ref.ts';
import { parseTableName, quoteIdent } from '../stores/pg-table-config.ts';
import type { Source, SourcePage } from './source.ts';
import { KMS_MATERIAL_ID_LENGTH, KMS_MATERIAL_ID_PATTERN } from '../core/kms-material.ts';
import { holdsMaterialId, readColumnTypes } from '../stores/pg-table-columns.ts';
import { ConfigError } from '../core/errors.ts';
import { pgStoreId, type StoreId } from '../core/store-id.ts';

export interface PgTableSourceOptions {
  table: string;
  idColumn: string;
  kekIdColumn: string;
  kekVersionColumn: string;
  /**
   * The campaign drains one KMS key material (drainsKmsMaterial): rows whose version column holds
   * no material id (NULL, empty, anything else) are selected too; KMS tells their material.
   */
  kmsMaterial?: boolean;
  /**
   * Rows that record no KEK are selected too: an empty or NULL KEK id column, or, under the source
   * KEK's id, a NULL version column. A plan leaves them alone; `kek retire --delete`'s full pass
   * reads them (cannot tell which KEK wraps them: they block, invariant 7).
   */
  unrecorded?: boolean;
  /** With `unrecorded`: only rows with a wrapped key (a row without one holds no secret, under no KEK). */
  wrappedKeyColumn?: string;
}

/** A plan page of the batch ledger form (PgTableSource.batchBounds): each batch's last id and row count. */
export interface PlanBounds {
  storeId: StoreId;
  bounds: { hi: string; n: number }[];
  /** Rows in the page (the sum of the counts). */
  items: number;
  cursor: string | null;
  done: boolean;
}

export class PgTableSource implements Source {
  private sql?: string;
  private rangeSql?: string;
  private readonly storeId: StoreId;

  constructor(
    private readonly pool: pg.Pool,
    private readonly o: PgTableSourceOptions,
    /** One source KEK, or the source KEKs of a key map (never a KMS material drain: spec.ts). */
    private readonly from: KekSelector | readonly KekSelector[],
  ) {
    this.storeId = pgStoreId(o.table);
  }

  /** The id is compared in its own type, so the primary key index serves every page. */
  private async query(): Promise<string> {
    if (this.sql) return this.sql;
    const q = await this.buildQuery();
    const id = quoteIdent(this.o.idColumn);
    /* A batch of the batch ledger form: the same rows, up to its upper bound (the last parameter). */
    const hi = ` AND ${id} <= $${q.limitParam + 1}::text::${this.idType}`;
    this.rangeSql = `SELECT ${id}::text AS k FROM ${q.tableSql} WHERE ${q.where}${hi} ORDER BY ${id} LIMIT $${q.limitParam}`;
    /* The same range with a caller's select list over alias t (the store's row columns): ordered by the qualified id, never by an output name. */
    this.rangeRows = (columns) => `SELECT ${columns} FROM ${q.tableSql} AS t WHERE ${q.where}${hi} ORDER BY t.${id} LIMIT $${q.limitParam}`;
    this.sql = `SELECT ${id}::text AS k FROM ${q.tableSql} WHERE ${q.where} ORDER BY ${id} LIMIT $${q.limitParam}`;
    /* The batch ledger form's plan page: the same rows, numbered, of which only each batch's last id (and the page's) leaves Postgres. */
    this.boundsSql =
      `SELECT k::text AS k, rn::int AS rn, total::int AS total FROM (` +
      `SELECT k, row_number() OVER (ORDER BY k) AS rn, count(*) OVER () AS total FROM (` +
      `SELECT ${id} AS k FROM ${q.tableSql} WHERE ${q.where} ORDER BY ${id} LIMIT $${q.limitParam}) page) numbered ` +
      `WHERE rn % $${q.limitParam + 1} = 0 OR rn = total ORDER BY rn`;
    return this.sql;
  }

  private rangeRows?: (columns: string) => string;

  private boundsSql?: string;

  private idType = 'text';

  /** The WHERE clause ($1 the keyset cursor, then the KEK parameters) and the LIMIT's parameter number. */
  private async buildQuery(): Promise<{ tableSql: string; where: string; limitParam: number }> {
    const { tableSql } = parseTableName(this.o.table);
    const id = quoteIdent(this.o.idColumn);
    const columns = await readColumnTypes(this.pool, tableSql);
    if (!columns) throw new ConfigError(`pg source ${this.o.table}: table does not exist (or is not on the search_path of the pool); check the table setting`);
    const idCol = columns.get(this.o.idColumn);
    if (!idCol) throw new ConfigError(`pg source ${this.o.table}: no column "${this.o.idColumn}" (idColumn)`);
    this.idType = idCol.declared;
    const versionCol = columns.get(this.o.kekVersionColumn);
    if (!versionCol) throw new ConfigError(`pg source ${this.o.table}: no column "${this.o.kekVersionColumn}" (kekVersionColumn)`);
    const one = this.from as KekSelector;
    if (this.o.kmsMaterial && !holdsMaterialId(versionCol.type, versionCol.typmod)) {
      /* The drain selects by the material recorded there and records the new one; neither fits. */
      throw new ConfigError(
        `pg source ${this.o.table}: draining KMS key material ${one.version} needs kekVersionColumn "${this.o.kekVersionColumn}" ` +
          `to hold ${KMS_MATERIAL_ID_LENGTH}-character material ids (text, or varchar(${KMS_MATERIAL_ID_LENGTH}) or longer); it is ${versionCol.declared}. ` +
          'Change the column type, wait a minute (workers read column types again every minute), then resume the campaign',
      );
    }
    const version = quoteIdent(this.o.kekVersionColumn);
    const kekId = quoteIdent(this.o.kekIdColumn);
    const withSecret = this.o.wrappedKeyColumn ? ` AND ${quoteIdent(this.o.wrappedKeyColumn)} IS NOT NULL` : '';
    const noKekId = this.o.unrecorded ? ` OR ((${kekId} IS NULL OR ${kekId}::text = '')${withSecret})` : '';
    const noVersion = this.o.unrecorded ? ` OR ${version} IS NULL` : '';
    if (Array.isArray(this.from)) {
      /* A key map: rows whose KEK columns name one of its sources (a source without a version: any version of its id). */
      return {
        tableSql,
        where:
          `($1::text IS NULL OR ${id} > $1::text::${idCol.declared}) ` +
          `AND (EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) AS m(i, v) WHERE m.i = ${kekId} AND (m.v IS NULL OR m.v = ${version}::text${noVersion}))${noKekId})`,
        limitParam: 4,
      };
    }
    /* Draining one KMS key material: rows with no material recorded may be under it (kms-material.ts). */
    const unrecorded = this.o.kmsMaterial ? ` OR ${version} IS NULL OR ${version}::text !~ '${KMS_MATERIAL_ID_PATTERN}'` : '';
    const versionFilter = one.version === undefined ? '' : ` AND (${version} = $3${unrecorded}${noVersion})`;
    return {
      tableSql,
      where: `($1::text IS NULL OR ${id} > $1::text::${idCol.declared}) AND ((${kekId} = $2${versionFilter})${noKekId})`,
      limitParam: one.version === undefined ? 3 : 4,
    };
  }

  async page(cursor: unknown, limit: number): Promise<SourcePage> {
    const last = typeof cursor === 'string' ? cursor : null;
    const { rows } = await this.pool.query<{ k: string }>(await this.query(), this.params(last, limit));
    const keys = rows.map((r) => r.k);
    const done = keys.length < limit;
    return { groups: [{ storeId: this.storeId, keys }], cursor: done ? null : keys[keys.length - 1], done };
  }

  /**
   * The batch ledger form's plan page: of the next `limit` rows the source selects after `cursor`
   * (as `page` reads them), the batches of `batchSize` as their last id and row count, in id
   * order. Postgres numbers the rows and sends limit / batchSize of them instead of `limit` ids:
   * reading every id into the planner, and checking it, was most of the plan's cost (10,000,000
   * rows: 16 s of which 4 s in Postgres, `npm run bench -- --scale`).
   */
  async batchBounds(cursor: unknown, limit: number, batchSize: number): Promise<PlanBounds> {
    const last = typeof cursor === 'string' ? cursor : null;
    await this.query();
    const { rows } = await this.pool.query<{ k: string; rn: number; total: number }>(this.boundsSql!, [...this.params(last, limit), batchSize]);
    const bounds: { hi: string; n: number }[] = [];
    for (let i = 0, before = 0; i < rows.length; i++) {
      bounds.push({ hi: rows[i]!.k, n: rows[i]!.rn - before });
      before = rows[i]!.rn;
    }
    const total = rows.length > 0 ? rows[0]!.total : 0;
    const done = total < limit;
    return { storeId: this.storeId, bounds, items: total, cursor: done ? null : bounds[bounds.length - 1]!.hi, done };
  }

  /**
   * Every row lo < id <= hi, whatever KEK it names (`campaign report --expand`): its id and KEK
   * columns as the table holds them now, `limit` rows at a time after `after` (and after `floor`,
   * when given), in id order.
   */
  async rowsBetween(after: string | null, hi: string, limit: number, floor: string | null = null): Promise<{ key: string; kekId: string | null; kekVersion: string | null }[]> {
    await this.query();
    const { tableSql } = parseTableName(this.o.table);
    const id = quoteIdent(this.o.idColumn);
    const { rows } = await this.pool.query<{ k: string; i: string | null; v: string | null }>(
      `SELECT ${id}::text AS k, ${quoteIdent(this.o.kekIdColumn)}::text AS i, ${quoteIdent(this.o.kekVersionColumn)}::text AS v FROM ${tableSql}
        WHERE ($1::text IS NULL OR ${id} > $1::text::${this.idType}) AND ($4::text IS NULL OR ${id} > $4::text::${this.idType})
          AND ${id} <= $2::text::${this.idType} ORDER BY ${id} LIMIT $3`,
      [after, hi, limit, floor],
    );
    return rows.map((r) => ({ key: r.k, kekId: r.i, kekVersion: r.v }));
  }

  /**
   * A batch of the batch ledger form: up to `limit` ids after `after` (null: from `lo`'s side, the
   * caller passes lo) and at most `hi`, of the rows the source selects now, in id order.
   */
  async rangePage(after: string | null, hi: string, limit: number): Promise<string[]> {
    await this.query();
    const { rows } = await this.pool.query<{ k: string }>(this.rangeSql!, [...this.params(after, limit), hi]);
    return rows.map((r) => r.k);
  }

  /**
   * The statement of `rangePage` with `columns` (over alias t) as its select list, for a store that
   * reads the rows' envelopes in the same statement (PgTableStore.readSelected): one statement
   * per page instead of one for the ids and one for their rows.
   */
  async rangeRowsQuery(after: string | null, hi: string, limit: number, columns: string): Promise<{ text: string; values: unknown[] }> {
    await this.query();
    return { text: this.rangeRows!(columns), values: [...this.params(after, limit), hi] };
  }

  private params(last: string | null, limit: number): unknown[] {
    const params: unknown[] = [last];
    if (Array.isArray(this.from)) {
      const from = this.from as readonly KekSelector[];
      params.push(from.map((f) => f.id), from.map((f) => f.version ?? null));
    } else {
      const from = this.from as KekSelector;
      params.push(from.id);
      if (from.version !== undefined) params.push(from.version);
    }
    params.push(limit);
    return params;
  }

  /** Rows still under the source KEK are exactly what is left: the same query from the start. */
  deltaPage(_since: Date, cursor: unknown, limit: number): Promise<SourcePage> {
    return this.page(cursor, limit);
  }
}
