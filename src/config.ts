/**
 * Process configuration: the one place that reads the environment. Every other module gets a
 * typed object. Units are in the names; defaults are documented here.
 */
import { hostname } from 'node:os';
import { ConfigError } from './core/errors.ts';
import { clusterUrl, isClusterUrl, parseClusterUrl } from './queue/redis-url.ts';
import { DEFAULT_LEDGER_FORM, type LedgerFormSetting } from './ledger/ledger-form.ts';

export interface ProcessConfig {
  /** Ledger database. Default: the local Postgres. */
  databaseUrl: string;
  /** Data tables of `pg` sources, when they live elsewhere than the ledger. Default: databaseUrl. */
  dataDatabaseUrl: string;
  /**
   * REDIS_URL, default redis://127.0.0.1:6379. A Redis Cluster is `redis+cluster://h1:p1,h2:p2`
   * (rediss+cluster:// for TLS, credentials as user:password@), or REDIS_CLUSTER_NODES
   * (`h1:p1,h2:p2`, which takes the scheme and credentials of REDIS_URL when that is set too).
   * Every Redis role (queue, workers, KMS budget) then uses an ioredis Cluster client.
   */
  redisUrl: string;
  /** BullMQ key prefix; the {hash tag} keeps all queue keys in one Redis Cluster slot. */
  queuePrefix: string;
  s3: {
    endpoint?: string;
    region: string;
    accessKeyId?: string;
    secretAccessKey?: string;
    forcePathStyle: boolean;
    /** REWRAP_S3_REQUEST_TIMEOUT_MS, default 30000: a request without response headers by then fails (transient). */
    requestTimeoutMs: number;
    /** REWRAP_S3_CONNECT_TIMEOUT_MS, default 3000. */
    connectionTimeoutMs: number;
  };
  kms: {
    endpoint?: string;
    region: string;
    accessKeyId?: string;
    secretAccessKey?: string;
    /** REWRAP_KMS_REQUEST_TIMEOUT_MS, default 10000: a hung KMS call fails (transient). */
    requestTimeoutMs: number;
    /** REWRAP_KMS_CONNECT_TIMEOUT_MS, default 3000. */
    connectionTimeoutMs: number;
  };
  /** Keyring used when a campaign's provider file is relative, and by `kek` commands. */
  keyringFile?: string;
  /**
   * REWRAP_KEYRING_READ_ONLY (true/false, default false): the local keyring is shared by hosts
   * from one source (e.g. a Kubernetes Secret), so no process may append to its copy; a scheduled
   * local-keyring rotation is refused (src/kek/keyring-shared.ts). Detected without it for
   * Kubernetes Secret volumes and read-only files.
   */
  keyringReadOnly: boolean;
  /**
   * The value of the environment variable a pkcs11 provider spec names in `pinEnv` (the user PIN
   * of the token), read when a worker opens the token. Undefined when the variable is unset.
   */
  secretFromEnv: (name: string) => string | undefined;
  worker: {
    id: string;
    /** Batches processed at once by one worker process. */
    jobConcurrency: number;
    /** A batch lease; renewed every leaseMs/3. A worker never writes after its lease ran out. */
    leaseMs: number;
    /** How long shutdown waits for batches in hand before releasing them. */
    shutdownTimeoutMs: number;
  };
  scheduler: {
    /** Batches allowed in Redis at once per campaign (invariant 4: a bounded window). */
    windowBatches: number;
    tickMs: number;
    reconcileEveryMs: number;
    /** Items read from a source per planning step. */
    planPageSize: number;
    /** How long one campaign's planning may take per tick before the scheduler moves on. */
    planStepMs: number;
  };
  /**
   * REWRAP_LEDGER_FORM (auto, items or batches; default auto): how campaigns created by this
   * process (`campaign create`, the API, schedules, `incident start`) record their items.
   * 'batches' (Postgres table sources only; docs/batch-ledger-design.md) writes one ledger row per
   * batch, an id range, instead of one per item, and refuses a spec it cannot take; 'auto' uses it
   * where the spec allows and the per-item form otherwise (src/ledger/ledger-form.ts); 'items'
   * keeps one row per item for every campaign.
   */
  ledgerForm: LedgerFormSetting;
  /** Every Postgres pool and connection (ledger, data, the scheduler's lock connection). */
  postgres: {
    /** How long a new connection may take before the attempt fails (the caller retries). */
    connectTimeoutMs: number;
    /**
     * How long one statement may wait for its answer before the client gives up on it and the
     * connection is discarded: a black-holed connection (no RST, no reply) otherwise holds its
     * client, and its caller, forever. 0 turns it off. Far above any statement rewrap sends.
     */
    queryTimeoutMs: number;
    /**
     * The server's statement_timeout for rewrap's sessions: a statement still running after this
     * (typically waiting for a lock another session holds) is cancelled BY THE SERVER, its
     * transaction rolls back and its locks go at once; the caller sees a transient error (57014)
     * and retries. The query timeout above only stops the client waiting: the server's statement
     * keeps running, and holding its locks, until it notices the connection is gone. Below
     * queryTimeoutMs, so the server ends a blocked statement first. 0 turns it off.
     */
    statementTimeoutMs: number;
    /** First backoff after a lost connection (the scheduler's lock); doubles up to reconnectMaxMs, with jitter. */
    reconnectMinMs: number;
    reconnectMaxMs: number;
    /**
     * How long a scheduler or worker starting while the ledger is unreachable (Postgres still
     * starting, a failover) keeps trying, with the reconnect backoff, before it gives up and
     * exits; 0 = give up at once. Errors that waiting cannot fix (a wrong password, a missing
     * database) end the process at once either way.
     */
    startupWaitMs: number;
  };
  logLevel: string;
  metricsPort?: number;
  /**
   * Bearer token the API (`rewrap api`) requires for every mutating call (REWRAP_API_TOKEN, at
   * least 16 characters). Unset: the API serves read-only calls and refuses every mutation.
   */
  apiToken?: string;
  /**
   * Bearer token for the API's read routes (REWRAP_API_READ_TOKEN, at least 16 characters); the
   * write token is accepted for reads too. `rewrap api --public-reads` serves reads without one.
   */
  apiReadToken?: string;
  /** JSON file of what API-created campaigns may name (REWRAP_API_POLICY; src/api/spec-policy.ts). Unset: the API creates no campaign. */
  apiPolicyFile?: string;
  /** Host header values the API accepts beside its bound address and localhost (REWRAP_API_ALLOWED_HOSTS, comma-separated, host or host:port). */
  apiAllowedHosts: string[];
  /** Address the /metrics server of workers and the scheduler binds (REWRAP_METRICS_HOST). Default 127.0.0.1. */
  metricsHost: string;
}

type Env = Record<string, string | undefined>;

function ledgerForm(value: string | undefined): LedgerFormSetting {
  if (value === undefined || value === '') return DEFAULT_LEDGER_FORM;
  if (value === 'items' || value === 'batches' || value === 'auto') return value;
  throw new ConfigError(
    `REWRAP_LEDGER_FORM: expected "auto" (one ledger row per batch where the campaign allows, per item otherwise; the default), "items" (one row per item for every campaign) ` +
      `or "batches" (one per batch; Postgres table sources only, anything else refused), got "${value}"`,
  );
}

function int(env: Env, name: string, dflt: number, min = 0): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name}=${JSON.stringify(v)}: expected an integer >= ${min}`);
  return n;
}

function bool(env: Env, name: string, dflt: boolean): boolean {
  const v = env[name]?.trim().toLowerCase();
  if (v === undefined || v === '') return dflt;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`${name}=${JSON.stringify(env[name])}: expected true or false`);
}

export function loadConfig(env: Env = process.env): ProcessConfig {
  const databaseUrl = env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  return {
    databaseUrl,
    dataDatabaseUrl: env.DATA_DATABASE_URL || databaseUrl,
    ...redisSettings(env),
    s3: {
      endpoint: env.S3_ENDPOINT || undefined,
      region: env.S3_REGION || region,
      accessKeyId: env.S3_ACCESS_KEY_ID || env.AWS_ACCESS_KEY_ID || undefined,
      secretAccessKey: env.S3_SECRET_ACCESS_KEY || env.AWS_SECRET_ACCESS_KEY || undefined,
      forcePathStyle: env.S3_FORCE_PATH_STYLE ? env.S3_FORCE_PATH_STYLE === 'true' : Boolean(env.S3_ENDPOINT),
      requestTimeoutMs: int(env, 'REWRAP_S3_REQUEST_TIMEOUT_MS', 30_000, 100),
      connectionTimeoutMs: int(env, 'REWRAP_S3_CONNECT_TIMEOUT_MS', 3_000, 100),
    },
    kms: {
      endpoint: env.KMS_ENDPOINT || undefined,
      region: env.KMS_REGION || region,
      accessKeyId: env.KMS_ACCESS_KEY_ID || env.AWS_ACCESS_KEY_ID || undefined,
      secretAccessKey: env.KMS_SECRET_ACCESS_KEY || env.AWS_SECRET_ACCESS_KEY || undefined,
      requestTimeoutMs: int(env, 'REWRAP_KMS_REQUEST_TIMEOUT_MS', 10_000, 100),
      connectionTimeoutMs: int(env, 'REWRAP_KMS_CONNECT_TIMEOUT_MS', 3_000, 100),
    },
    keyringFile: env.REWRAP_KEYRING || undefined,
    keyringReadOnly: bool(env, 'REWRAP_KEYRING_READ_ONLY', false),
    secretFromEnv: (name) => env[name] || undefined,
    worker: {
      id: env.REWRAP_WORKER_ID || `${hostname()}-${process.pid}`,
      jobConcurrency: int(env, 'REWRAP_WORKER_JOBS', 2, 1),
      leaseMs: int(env, 'REWRAP_LEASE_MS', 15_000, 1000),
      shutdownTimeoutMs: int(env, 'REWRAP_SHUTDOWN_TIMEOUT_MS', 10_000, 0),
    },
    scheduler: {
      /* 20 capped a campaign at ~10,000 items/s whatever the worker count (bench B4): the workers
         drained the window between two feeds. Redis holds a job id per batch: 64 is still tiny. */
      windowBatches: int(env, 'REWRAP_WINDOW_BATCHES', 64, 1),
      tickMs: int(env, 'REWRAP_TICK_MS', 250, 10),
      reconcileEveryMs: int(env, 'REWRAP_RECONCILE_MS', 3000, 100),
      planPageSize: int(env, 'REWRAP_PLAN_PAGE', 5000, 1),
      planStepMs: int(env, 'REWRAP_PLAN_STEP_MS', 200, 10),
    },
    ledgerForm: ledgerForm(env.REWRAP_LEDGER_FORM),
    postgres: postgresSettings(env),
    logLevel: env.LOG_LEVEL || 'info',
    metricsPort: env.REWRAP_METRICS_PORT ? int(env, 'REWRAP_METRICS_PORT', 0, 0) : undefined,
    apiToken: apiToken(env.REWRAP_API_TOKEN),
    apiReadToken: apiToken(env.REWRAP_API_READ_TOKEN, 'REWRAP_API_READ_TOKEN'),
    apiPolicyFile: env.REWRAP_API_POLICY || undefined,
    apiAllowedHosts: (env.REWRAP_API_ALLOWED_HOSTS ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
    metricsHost: env.REWRAP_METRICS_HOST || '127.0.0.1',
  };
}

/**
 * Redis URL and queue prefix, checked together: on a cluster a prefix without a {hash tag}
 * spreads BullMQ's keys over slots, and its multi-key scripts then fail with CROSSSLOT.
 */
function redisSettings(env: Env): Pick<ProcessConfig, 'redisUrl' | 'queuePrefix'> {
  const queuePrefix = env.REWRAP_QUEUE_PREFIX || '{rewrap}';
  let redisUrl = env.REDIS_URL || 'redis://127.0.0.1:6379';
  const nodes = env.REDIS_CLUSTER_NODES?.trim();
  if (nodes) {
    const base = env.REDIS_URL && !isClusterUrl(env.REDIS_URL) ? singleNodeAuth(env.REDIS_URL) : { tls: false };
    const seed = parseClusterUrl(`redis+cluster://${nodes}`);
    redisUrl = clusterUrl({ ...base, nodes: seed.nodes });
  }
  if (isClusterUrl(redisUrl)) {
    parseClusterUrl(redisUrl); // a malformed node list fails here, at start, naming the node
    /* Redis hashes what lies between the first '{' and the first '}' after it, if not empty. */
    const open = queuePrefix.indexOf('{');
    if (open < 0 || queuePrefix.indexOf('}', open + 1) <= open + 1) {
      throw new ConfigError(
        `REWRAP_QUEUE_PREFIX=${JSON.stringify(queuePrefix)} has no {hash tag}: on a Redis Cluster BullMQ's keys would spread over slots and its scripts fail with CROSSSLOT. ` +
          'Fix: wrap the prefix in braces, e.g. REWRAP_QUEUE_PREFIX={rewrap}.',
      );
    }
  }
  return { redisUrl, queuePrefix };
}

/** Scheme and credentials of a redis:// URL, to carry over to REDIS_CLUSTER_NODES. */
function singleNodeAuth(url: string): { username?: string; password?: string; tls: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError('REDIS_URL is not a URL: expected redis://[user:password@]host:port or rediss://...');
  }
  return { username: decodeURIComponent(u.username) || undefined, password: decodeURIComponent(u.password) || undefined, tls: u.protocol === 'rediss:' };
}

function postgresSettings(env: Env): ProcessConfig['postgres'] {
  const reconnectMinMs = int(env, 'REWRAP_PG_RECONNECT_MIN_MS', 250, 1);
  const reconnectMaxMs = int(env, 'REWRAP_PG_RECONNECT_MAX_MS', 10_000, 1);
  if (reconnectMaxMs < reconnectMinMs) {
    throw new ConfigError(`REWRAP_PG_RECONNECT_MAX_MS=${reconnectMaxMs} is below REWRAP_PG_RECONNECT_MIN_MS=${reconnectMinMs}: set the maximum at least as high as the minimum`);
  }
  return {
    connectTimeoutMs: int(env, 'REWRAP_PG_CONNECT_TIMEOUT_MS', 10_000, 1),
    queryTimeoutMs: int(env, 'REWRAP_PG_QUERY_TIMEOUT_MS', 300_000, 0),
    statementTimeoutMs: int(env, 'REWRAP_PG_STATEMENT_TIMEOUT_MS', 120_000, 0),
    reconnectMinMs,
    reconnectMaxMs,
    startupWaitMs: int(env, 'REWRAP_PG_STARTUP_WAIT_MS', 300_000, 0),
  };
}

/** The message names the variable and the rule, never the value (it is a secret). */
function apiToken(v: string | undefined, name = 'REWRAP_API_TOKEN'): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (v.trim().length < 16) throw new ConfigError(`${name}: expected at least 16 characters (e.g. \`openssl rand -hex 24\`)`);
  return v;
}
