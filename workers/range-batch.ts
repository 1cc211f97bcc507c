/**
 * A batch of the batch ledger form (docs/batch-ledger-design.md): the rows lo < id <= hi that the
 * campaign's Postgres source selects now, read page by page from the source table and rewrapped
 * a page at a time. Items an earlier attempt (or, for a delta pass's batch, an earlier batch)
 * recorded as exceptions are left out: each is counted once.
 * A page that fails part-way stops the batch (BatchInterruptedError carries what finished).
 */
import type { Resources } from '../src/runtime/resources.ts';
import type { BatchRange, Campaign } from '../src/ledger/types.ts';
import { exceptionsAmong } from '../src/ledger/index.ts';
import type { PgTableSource } from '../src/sources/pg-table-source.ts';
import { pgSourceFor } from '../src/runtime/pg-source-for.ts';
import { BatchInterruptedError } from '../src/rewrap/rewrap-batch.ts';
import { isBatchStore, type EnvelopeStore, type ItemRef, type ReadResult } from '../src/stores/envelope-store.ts';
import type { ItemOutcome } from '../src/rewrap/outcome.ts';

/** One source per campaign and store, kept: it reads the table's column types once. */
const sources = new Map<string, PgTableSource>();

function rangeSource(res: Resources, campaign: Campaign, storeId: string): PgTableSource {
  const key = `${campaign.id}\u0000${storeId}`;
  let source = sources.get(key);
  if (source) return source;
  source = pgSourceFor(res, campaign.spec, storeId);
  if (!source) throw new Error(`campaign ${campaign.id}: no pg source of store ${storeId}; its batches cannot be read`);
  if (sources.size > 1000) sources.clear();
  sources.set(key, source);
  return source;
}

export async function rewrapRange(
  res: Resources,
  campaign: Campaign,
  storeId: string,
  store: EnvelopeStore,
  range: BatchRange,
  rewrap: (items: ItemRef[], reads?: Map<string, ReadResult>) => Promise<ItemOutcome[]>,
  signal?: AbortSignal,
): Promise<ItemOutcome[]> {
  const source = rangeSource(res, campaign, storeId);
  const pageSize = campaign.spec.options.batchSize;
  const exclude = new Set(range.exclude);
  const readSelected = isBatchStore(store) ? store.readSelected?.bind(store) : undefined;
  const outcomes: ItemOutcome[] = [];
  try {
    for (let after = range.lo; ; ) {
      /* One statement for the page's ids and their envelopes where the store can (a table store). */
      const from = after;
      const page = readSelected
        ? await readSelected((columns) => source.rangeRowsQuery(from, range.hi, pageSize, columns), signal)
        : { keys: await source.rangePage(from, range.hi, pageSize), reads: undefined };
      const ids = page.keys;
      if (ids.length === 0) return outcomes;
      after = ids[ids.length - 1]!;
      let keys = exclude.size > 0 ? ids.filter((k) => !exclude.has(k)) : ids;
      if (range.delta) {
        const excepted = await exceptionsAmong(res.ledger, campaign.id, storeId, keys);
        if (excepted.size > 0) keys = keys.filter((k) => !excepted.has(k));
      }
      outcomes.push(...(await rewrap(keys.map((key) => ({ key })), page.reads)));
      /* A short page, or one that reached the range's upper bound: nothing of the range is left to read. */
      if (ids.length < pageSize || after === range.hi) return outcomes;
    }
  } catch (err) {
    /* The pages before this one were written: their outcomes are still committed. */
    if (err instanceof BatchInterruptedError) throw new BatchInterruptedError([...outcomes, ...err.completed], err.cause);
    if (outcomes.length > 0) throw new BatchInterruptedError(outcomes, err);
    throw err;
  }
}
