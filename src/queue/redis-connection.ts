/**
 * The one Redis connection of a process, single-node or Redis Cluster, from one URL:
 * `redis://` / `rediss://` (one server, ioredis' own parsing) or `redis+cluster://` /
 * `rediss+cluster://[user:password@]host:port,host:port,...` (an ioredis Cluster seeded from
 * those nodes; it discovers the rest). src/config.ts builds the cluster form from
 * REDIS_CLUSTER_NODES, so every caller of createRedis(config.redisUrl) (queue, workers, the KMS
 * budget, the demo) gets a Cluster client without knowing it.
 *
 * Precondition (checked in config): the queue prefix carries a {hash tag}, so that every key
 * BullMQ's multi-key scripts touch, and the KMS budget's key, hash to one slot.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { isClusterUrl, parseClusterUrl } from './redis-url.ts';

/** A connection BullMQ and the KMS budget accept: ioredis' single-node or Cluster client. */
export type RedisConnection = Redis | Cluster;

/**
 * A connection for BullMQ workers, queues and the KMS budget. BullMQ needs
 * maxRetriesPerRequest: null so blocking calls survive reconnects (and, on a cluster, a failover:
 * commands wait for the new master instead of failing after a few retries). One-off clients
 * (cleanup) pass a small number instead, so that an unreachable Redis fails them.
 */
export function createRedis(url: string, o: { maxRetriesPerRequest?: number | null } = {}): RedisConnection {
  const maxRetriesPerRequest = o.maxRetriesPerRequest === undefined ? null : o.maxRetriesPerRequest;
  if (!isClusterUrl(url)) return new Redis(url, { maxRetriesPerRequest, enableReadyCheck: true });
  const t = parseClusterUrl(url);
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest,
    enableReadyCheck: true,
    username: t.username,
    password: t.password,
    // Managed clusters (ElastiCache, MemoryDB) present certificates for the names they announce.
    tls: t.tls ? {} : undefined,
  };
  const options: ClusterOptions = {
    redisOptions,
    // A master's failover (cluster-node-timeout plus the election) takes seconds: keep asking
    // for the slot map instead of failing commands after the default 16 redirections x 100 ms.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    maxRedirections: 64,
    slotsRefreshTimeout: 2000,
    // TLS certificates name the host, not the address the slot map gives (AWS' documented setting).
    dnsLookup: t.tls ? (address, callback) => callback(null, address) : undefined,
  };
  return new Cluster(t.nodes, options);
}

/**
 * The servers that hold data: the cluster's masters, or the one server. A cluster's master list
 * is known once the client has loaded the slot map; this waits for that.
 */
export async function dataServers(redis: RedisConnection): Promise<Redis[]> {
  if (!(redis instanceof Cluster)) return [redis];
  if (redis.status !== 'ready') {
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        redis.off('error', onError);
        resolve();
      };
      const onError = (err: Error) => {
        if (redis.status === 'end') {
          redis.off('ready', onReady);
          reject(err);
        }
      };
      redis.once('ready', onReady);
      redis.on('error', onError);
    });
  }
  return redis.nodes('master');
}
