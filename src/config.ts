/**
 * Process configuration: the one place that reads the environment. Every other module gets a
 * typed object. Units are in the names; defaults are documented here.
 */
import { hostname } from 'node:os';
import { ConfigError } from './core/errors.ts';

export interface ProcessConfig {
  /** Ledger database. Default: the local Postgres. */
  databaseUrl: string;
  /** Data tables of `pg` sources, when they live elsewhere than the ledger. Default: databaseUrl. */
  dataDatabaseUrl: string;
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
  };
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

function int(env: Env, name: string, dflt: number, min = 0): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${name}=${JSON.stringify(v)}: expected an integer >= ${min}`);
  return n;
}

export function loadConfig(env: Env = process.env): ProcessConfig {
  const databaseUrl = env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  return {
    databaseUrl,
    dataDatabaseUrl: env.DATA_DATABASE_URL || databaseUrl,
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    queuePrefix: env.REWRAP_QUEUE_PREFIX || '{rewrap}',
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
    },
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
  };
}

/** The message names the variable and the rule, never the value (it is a secret). */
function apiToken(v: string | undefined, name = 'REWRAP_API_TOKEN'): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (v.trim().length < 16) throw new ConfigError(`${name}: expected at least 16 characters (e.g. \`openssl rand -hex 24\`)`);
  return v;
}
