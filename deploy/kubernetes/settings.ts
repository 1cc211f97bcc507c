/**
 * The numbers and names the Kubernetes manifests share, with the reasoning for each derived one.
 * Defaults come from src/config.ts itself (loadConfig of an empty environment), so a changed
 * default there moves the manifests with it when they are regenerated.
 */
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../src/config.ts';
import { DEFAULT_API_PORT } from '../../src/cli/api-command.ts';

const defaults = loadConfig({});
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export const VERSION = pkg.version;
/** The image the base names; overlays set the registry and tag (kustomize `images:`). */
export const IMAGE = `rewrap:${VERSION}`;
export const PART_OF = 'rewrap';

export const METRICS_PORT = 9464;
export const API_PORT = DEFAULT_API_PORT;
/** The non-root user of the image (Dockerfile: USER 1000:1000). */
export const RUN_AS_UID = 1000;

export const LEASE_MS = defaults.worker.leaseMs;
export const SHUTDOWN_TIMEOUT_MS = defaults.worker.shutdownTimeoutMs;

/**
 * A worker on SIGTERM stops taking jobs, lets its batches finish for REWRAP_SHUTDOWN_TIMEOUT_MS,
 * then aborts them (their leases are released; one that cannot be released expires after
 * REWRAP_LEASE_MS and is taken again). The pod gets both, plus 5 s to close its clients:
 * killed earlier, a batch would be neither finished nor released and wait out its lease.
 */
export const WORKER_GRACE_SECONDS = Math.ceil((SHUTDOWN_TIMEOUT_MS + LEASE_MS) / 1000) + 5;

/**
 * KEDA: the Prometheus query behind the worker count. The backlog of campaigns that are running
 * (a paused or planning campaign's items wake no worker); `max by (campaign)` keeps one series per
 * campaign however many API replicas Prometheus scrapes; `or vector(0)` answers 0 rather than
 * nothing when no campaign runs (scale to zero).
 */
export const BACKLOG_QUERY =
  'sum(max by (campaign) (rewrap_campaign_items_remaining) and on (campaign) (max by (campaign) (rewrap_campaign_state{state="running"}) == 1)) or vector(0)';
/** Items of backlog per worker replica (KEDA's target value): one replica per this many items. */
export const ITEMS_PER_WORKER = 50_000;
export const WORKER_MAX_REPLICAS = 16;
/**
 * Seconds after the backlog last showed items before KEDA scales the workers to zero. The backlog
 * reaches zero when the last batch commits; the scheduler's final delta pass may still plan new
 * items, and the gauges are read at scrape time (30 s interval, 2 s cache): five minutes keeps the
 * workers through a delta pass and several scrapes, and is far above WORKER_GRACE_SECONDS.
 */
export const WORKER_COOLDOWN_SECONDS = 300;
/** HPA scale-down (N to fewer): wait this long after the backlog shrank, then remove at most half the workers per minute. */
export const WORKER_SCALE_DOWN_WINDOW_SECONDS = 120;
export const PROMETHEUS_URL = 'http://prometheus-operated.monitoring.svc:9090';
/** The namespace Prometheus (and the Prometheus Operator) run in: allowed to scrape. */
export const MONITORING_NAMESPACE = 'monitoring';

/** Secrets the manifests reference (created by the operator, never generated here). */
export const SECRETS = {
  connections: 'rewrap-connections',
  apiTokens: 'rewrap-api-tokens',
} as const;
export const CONFIG_MAP = 'rewrap-config';

/** Ports rewrap's pods may connect to (NetworkPolicy egress): Postgres, Redis, S3/KMS over HTTPS. */
export const EGRESS_PORTS = { postgres: 5432, redis: 6379, https: 443 } as const;
