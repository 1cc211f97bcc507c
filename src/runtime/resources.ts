/**
 * Clients and adapters of one process, created once and shared by every job (never a client per
 * job): the ledger pool, the data pool, one S3 client, one KMS client, one store per store id and
 * one provider per campaign.
 */
import pg from 'pg';
import type { RedisConnection } from '../queue/redis-connection.ts';
import { isAbsolute, resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { KMSClient } from '../kek/kms-client.ts';
import type { ProcessConfig } from '../config.ts';
import { keyMapOf, sourceKeksOf, type CampaignSpec, type SourceSpec } from '../core/campaign-spec.ts';
import { ConfigError } from '../core/errors.ts';
import type { EnvelopeStore } from '../stores/envelope-store.ts';
import type { KekProvider } from '../kek/kek-provider.ts';
import type { KekAdmin } from '../kek/kek-admin.ts';
import { LocalKeyringAdmin } from '../kek/local-keyring-admin.ts';
import { KmsKekAdmin } from '../kek/kms-kek-admin.ts';
import { createS3Client, payingClient } from '../stores/s3-client.ts';
import { S3EnvelopeStore } from '../stores/s3-envelope-store.ts';
import { PgTableStore } from '../stores/pg-table-store.ts';
import { createKmsClient } from '../kek/kms-client.ts';
import { KmsKekProvider } from '../kek/kms-kek-provider.ts';
import { Pkcs11Token } from '../kek/pkcs11-token.ts';
import { Pkcs11KekProvider } from '../kek/pkcs11-kek-provider.ts';
import { Pkcs11KekAdmin } from '../kek/pkcs11-kek-admin.ts';
import { Pkcs11KekNames } from '../kek/pkcs11-kek-names.ts';
import { WatchedKeyring } from '../kek/keyring-file-watch.ts';
import { BudgetedKekProvider } from '../kek/budgeted-kek-provider.ts';
import { DedupingKekProvider } from '../kek/deduping-kek-provider.ts';
import { SharedDedupingKekProvider, type SharedRewrapStore } from '../kek/shared-deduping-kek-provider.ts';
import { claimDekRewrap, instructionFilesSeen, releaseDekRewrap, storeDekRewrap } from '../ledger/index.ts';
import { KmsBudget } from '../queue/kms-budget.ts';
import type { Source } from '../sources/source.ts';
import type { ProcessMetrics } from '../metrics/process-metrics.ts';
import { InstrumentedKekProvider, instrumentStore } from '../metrics/instrumented.ts';
import { S3ListSource } from '../sources/s3-list-source.ts';
import { CsvManifestSource } from '../sources/csv-manifest-source.ts';
import { drainsKmsMaterial } from '../core/kms-material.ts';
import { PgTableSource } from '../sources/pg-table-source.ts';
import { InventoryCache, S3InventorySource } from '../sources/s3-inventory-source.ts';
import { parseStoreId, s3StoreId } from '../core/store-id.ts';

/**
 * Connection settings shared by every pool and dedicated client (the scheduler's lock
 * connection): bounded connects, bounded waits for an answer (a black-holed connection is
 * discarded instead of holding its client and caller forever), statements the server itself
 * cancels when they run (or wait for a lock) too long, TCP keepalive.
 */
export function pgClientConfig(url: string, c: ProcessConfig['postgres']): pg.ClientConfig {
  return {
    connectionString: url,
    connectionTimeoutMillis: c.connectTimeoutMs,
    query_timeout: c.queryTimeoutMs > 0 ? c.queryTimeoutMs : undefined,
    statement_timeout: c.statementTimeoutMs > 0 ? c.statementTimeoutMs : undefined,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/**
 * A pool that survives its database going away (a restart, a failover): the server's errors on
 * idle clients are dropped here (the pool discards those clients; the next query connects
 * again), errors on checked-out clients reach their callers (withTransaction), and pool.query
 * handles its own. Without the listener one idle client's error ends the process.
 */
function createPool(url: string, c: ProcessConfig['postgres']): pg.Pool {
  const pool = new pg.Pool({ ...pgClientConfig(url, c), max: 10 });
  pool.on('error', () => {});
  /* And a listener of its own on every client, for the moments a checked-out client has none: a
     restart's 57P01 often arrives in the same socket read as the ReadyForQuery of the last query,
     so pg emits it before the caller's `await` has resumed and released the client (seen in
     test/pipeline-pg-restart.test.ts: a worker exited on a data-pool client). The error has
     already failed the client's queries, the client is no longer queryable, and the pool
     discards it on release. */
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/**
 * PKCS#11 sessions per worker process (the login session included) when the spec does not say:
 * one more than libuv's default thread pool, which runs the token calls.
 */
const DEFAULT_PKCS11_SESSIONS = 5;

export class Resources {
  readonly ledger: pg.Pool;
  private dataPool?: pg.Pool;
  private s3?: S3Client;
  private payingS3?: S3Client;
  /** One client per (endpoint, region): campaigns in different regions share a worker. */
  private readonly kmsClients = new Map<string, KMSClient>();
  private readonly stores = new Map<string, EnvelopeStore>();
  private readonly providers = new Map<string, KekProvider>();
  /** The budget each campaign's provider takes its tokens from, for budgetUse. */
  private readonly budgets = new Map<string, KmsBudget>();
  private readonly keyrings = new Map<string, WatchedKeyring>();
  /** One per (module, slot or token label): its sessions are pooled for every campaign of the process. */
  private readonly tokens = new Map<string, Pkcs11Token>();
  /** S3 Inventory manifests read and data files open where planning stopped (a scheduler's). */
  private readonly inventories = new InventoryCache();

  constructor(
    readonly config: ProcessConfig,
    private readonly redis?: RedisConnection,
    readonly metrics?: ProcessMetrics,
  ) {
    this.ledger = createPool(config.databaseUrl, config.postgres);
  }

  data(): pg.Pool {
    if (this.config.dataDatabaseUrl === this.config.databaseUrl) return this.ledger;
    this.dataPool ??= createPool(this.config.dataDatabaseUrl, this.config.postgres);
    return this.dataPool;
  }

  /**
   * The client for requests to `bucket`: sent as requester (`x-amz-request-payer`) when an `s3`
   * source of one of `specs` marks the bucket requesterPays. A requester-pays bucket one does not
   * own answers everything else with 403, which the retirement gate would read as "cannot tell".
   */
  s3ClientFor(bucket: string, specs: readonly CampaignSpec[]): S3Client {
    const payer = specs.some((spec) => spec.sources.some((s) => s.type === 's3' && s.bucket === bucket && s.requesterPays === true));
    if (!payer) return this.s3Client();
    this.payingS3 ??= payingClient(this.s3Client());
    return this.payingS3;
  }

  s3Client(): S3Client {
    const c = this.config.s3;
    this.s3 ??= createS3Client({
      endpoint: c.endpoint,
      region: c.region,
      forcePathStyle: c.forcePathStyle,
      requestTimeoutMs: c.requestTimeoutMs,
      connectionTimeoutMs: c.connectionTimeoutMs,
      credentials: c.accessKeyId && c.secretAccessKey ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } : undefined,
    });
    return this.s3;
  }

  kmsClient(spec?: CampaignSpec): KMSClient {
    const c = this.config.kms;
    const p = spec?.provider.type === 'kms' ? spec.provider : undefined;
    const endpoint = p?.endpoint ?? c.endpoint;
    const region = p?.region ?? c.region;
    const key = JSON.stringify([endpoint ?? null, region]);
    let client = this.kmsClients.get(key);
    if (!client) {
      client = createKmsClient({
        endpoint,
        region,
        requestTimeoutMs: c.requestTimeoutMs,
        connectionTimeoutMs: c.connectionTimeoutMs,
        credentials: c.accessKeyId && c.secretAccessKey ? { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } : undefined,
      });
      this.kmsClients.set(key, client);
    }
    return client;
  }

  /** The store holding `storeId` items, configured by the campaign source that names it. */
  store(spec: CampaignSpec, storeId: string): EnvelopeStore {
    const ref = parseStoreId(storeId);
    const payer = spec.sources.some((s) => s.type === 's3' && ref?.kind === 's3' && s.bucket === ref.bucket && s.requesterPays === true);
    const src = ref?.kind === 's3' ? (spec.sources.find((s) => s.type !== 'pg' && (s.type === 's3-manifest' || s.bucket === ref.bucket)) as Exclude<SourceSpec, { type: 'pg' }> | undefined) : undefined;
    const key = `${storeId}|${JSON.stringify(spec.options.allowUnconditionalWrites)}|${spec.options.multipartThresholdBytes}|${payer}|${src?.placement ?? 'auto'}`;
    let store = this.stores.get(key);
    if (store) return store;
    if (ref?.kind === 's3') {
      const bucket = ref.bucket;
      store = new S3EnvelopeStore({
        client: this.s3Client(),
        bucket,
        placement: src?.placement ?? 'auto',
        multipartThresholdBytes: spec.options.multipartThresholdBytes,
        allowUnconditionalWrites: spec.options.allowUnconditionalWrites,
        requesterPays: payer,
      });
    } else if (ref?.kind === 'pg') {
      const src = spec.sources.find((s) => s.type === 'pg' && s.table === ref.table) as Extract<SourceSpec, { type: 'pg' }> | undefined;
      if (!src) throw new ConfigError(`campaign ${spec.name}: no pg source names store ${storeId}`);
      store = new PgTableStore({
        pool: this.data(),
        table: src.table,
        idColumn: src.idColumn,
        wrappedKeyColumn: src.wrappedKeyColumn,
        kekIdColumn: src.kekIdColumn,
        kekVersionColumn: src.kekVersionColumn,
        contextColumns: src.contextColumns,
        wrapAlg: src.wrapAlg ?? (spec.provider.type === 'kms' ? 'kms+context' : 'AES/GCM'),
      });
    } else {
      throw new ConfigError(`unknown store id ${storeId}: expected s3://<bucket> or pg:<table>`);
    }
    if (this.metrics) store = instrumentStore(store, this.metrics);
    this.stores.set(key, store);
    return store;
  }

  /**
   * The campaign's KEK provider, behind the shared KMS budget when one is set. Called before each
   * batch: a local keyring whose file changed is loaded again, and a target KEK that is no longer
   * enabled there stops the batch with a ConfigError (keyring-file-watch.ts).
   */
  provider(campaignId: string, spec: CampaignSpec): KekProvider {
    const ring = this.keyrings.get(campaignId);
    // A reload also drops the dedupe cache below: results it holds may be under a KEK just taken out.
    const reloaded = ring?.refresh() ?? false;
    if (ring) for (const e of keyMapOf(spec)) ring.assertWrappable(e.to, campaignId);
    let p = this.providers.get(campaignId);
    if (p && !reloaded) return p;
    if (ring) {
      p = ring.provider;
    } else if (spec.provider.type === 'local') {
      const w = new WatchedKeyring(isAbsolute(spec.provider.keyringFile) ? spec.provider.keyringFile : resolve(spec.provider.keyringFile));
      for (const e of keyMapOf(spec)) w.assertWrappable(e.to, campaignId);
      this.keyrings.set(campaignId, w);
      p = w.provider;
    } else if (spec.provider.type === 'pkcs11') {
      p = new Pkcs11KekProvider(this.pkcs11Token(spec), new Pkcs11KekNames(spec.provider.labels ?? {}));
    } else {
      p = new KmsKekProvider(this.kmsClient(spec));
    }
    if (this.metrics) p = new InstrumentedKekProvider(p, this.metrics, spec.kind);
    if (spec.options.kmsRequestsPerSecond > 0 && this.redis) {
      // Incidents get a budget of their own: they must not queue behind routine work's tokens.
      const scope =
        spec.provider.type === 'kms'
          ? `kms-${spec.provider.region ?? this.config.kms.region}-${spec.kind}`
          : spec.provider.type === 'pkcs11'
            ? `pkcs11-${spec.provider.tokenLabel ?? `slot${spec.provider.slot}`}-${spec.kind}`
            : `local-${campaignId}`;
      const budget = new KmsBudget(this.redis, `${this.config.queuePrefix}:budget:${scope}`, spec.options.kmsRequestsPerSecond);
      this.budgets.set(campaignId, budget);
      p = new BudgetedKekProvider(p, budget);
    }
    // A DEK shared by items in other processes' batches costs one provider call per campaign
    // (opt-in: where every item has its own DEK it would only add ledger statements per item).
    if (spec.options.dedupeAcrossWorkers === true) {
      p = new SharedDedupingKekProvider(p, this.sharedRewraps(campaignId), { workerId: this.config.worker.id, claimMs: this.config.worker.leaseMs });
    }
    // Outermost: a DEK shared by many items costs one provider call (and one budget token).
    p = new DedupingKekProvider(p);
    this.providers.set(campaignId, p);
    return p;
  }

  /** How this process uses the campaign's KMS budget (undefined: no budget, or no batch of it ran here yet). */
  budgetUse(campaignId: string): { waiting: number; used: number; backlogMs: number } | undefined {
    const b = this.budgets.get(campaignId);
    return b && { waiting: b.waiting, used: b.counters.used, backlogMs: b.backlogMs() };
  }

  /** The campaign's rewrapped DEKs in the ledger, shared by every worker (rewrap_dek_rewraps). */
  private sharedRewraps(campaignId: string): SharedRewrapStore {
    const db = this.ledger;
    return {
      claim: (digest, owner, claimMs) => claimDekRewrap(db, campaignId, digest, owner, claimMs),
      store: (digest, result) => storeDekRewrap(db, campaignId, digest, result),
      release: (digest, owner) => releaseDekRewrap(db, campaignId, digest, owner),
    };
  }

  /**
   * The PKCS#11 token a pkcs11 campaign names, opened and logged in once per process. The PIN
   * comes from the environment variable the spec names (pinEnv), never from the spec.
   */
  pkcs11Token(spec: CampaignSpec): Pkcs11Token {
    const p = spec.provider;
    if (p.type !== 'pkcs11') throw new ConfigError(`campaign ${spec.name}: provider is ${p.type}, not pkcs11`);
    const key = JSON.stringify([p.module, p.slot ?? null, p.tokenLabel ?? null]);
    let token = this.tokens.get(key);
    if (!token) {
      const pin = this.config.secretFromEnv(p.pinEnv);
      if (pin === undefined) throw new ConfigError(`campaign ${spec.name}: provider.pinEnv names ${p.pinEnv}, which is not set in this process's environment; set it to the token's user PIN`);
      token = new Pkcs11Token({ module: p.module, slot: p.slot, tokenLabel: p.tokenLabel, pin, maxSessions: p.maxSessions ?? DEFAULT_PKCS11_SESSIONS });
      try {
        token.login();
      } catch (err) {
        token.close();
        throw err;
      }
      this.tokens.set(key, token);
    }
    return token;
  }

  /**
   * The KEK lifecycle (current version, next version, disable, destroy, verify) of the campaign's
   * provider; `keyringFile` overrides a local provider's file.
   */
  kekAdmin(spec: CampaignSpec, o: { keyringFile?: string } = {}): KekAdmin {
    if (spec.provider.type === 'local') return new LocalKeyringAdmin(o.keyringFile ?? spec.provider.keyringFile, { declaredReadOnly: this.config.keyringReadOnly });
    if (spec.provider.type === 'pkcs11') return new Pkcs11KekAdmin(this.pkcs11Token(spec), new Pkcs11KekNames(spec.provider.labels ?? {}));
    return new KmsKekAdmin(this.kmsClient(spec));
  }

  /**
   * `unrecordedRows`: a pg source selects the rows that record no KEK too (PgTableSourceOptions.unrecorded).
   * `planning`: the planner's sources for that campaign (an `s3` source checks its `.instruction`
   * names in the delta pass only, skipping those its workers saw: S3ListSource).
   */
  source(spec: CampaignSpec, index: number, o: { unrecordedRows?: boolean; planning?: { campaignId: string } } = {}): Source {
    const s = spec.sources[index]!;
    /* A requester-pays bucket is listed as requester too (its instruction-file HEADs as well). */
    if (s.type === 's3') {
      const planning = o.planning;
      const listing = planning
        ? { instructionChecksInDeltaPass: true, instructionFilesSeen: (keys: string[]) => instructionFilesSeen(this.ledger, planning.campaignId, s3StoreId(s.bucket), keys) }
        : {};
      return new S3ListSource(this.s3ClientFor(s.bucket, [spec]), s.bucket, s.prefix, listing);
    }
    if (s.type === 's3-manifest') return new CsvManifestSource(s.manifestFile, s.keysUrlEncoded);
    if (s.type === 's3-inventory') return new S3InventorySource(this.s3Client(), s, this.inventories);
    const from = sourceKeksOf(spec);
    /* One KEK: today's query. A key map: rows under any of its source KEKs. */
    const unrecorded = o.unrecordedRows === true;
    if (from.length === 1) return new PgTableSource(this.data(), { ...s, kmsMaterial: drainsKmsMaterial(spec.provider.type, from[0]!), unrecorded }, from[0]!);
    return new PgTableSource(this.data(), { ...s, unrecorded }, from);
  }

  async close(): Promise<void> {
    for (const p of this.providers.values()) (p as { close?: () => void }).close?.();
    for (const t of this.tokens.values()) t.close();
    this.inventories.close();
    this.s3?.destroy();
    for (const k of this.kmsClients.values()) k.destroy();
    await Promise.allSettled([this.ledger.end(), this.dataPool?.end()]);
  }
}
