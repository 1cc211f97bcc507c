/**
 * Redis settings as config.ts reads them (no server needed): a cluster named by
 * REDIS_CLUSTER_NODES or a redis+cluster:// URL, and the hash-tag precondition on the prefix.
 */
import { describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { ConfigError } from '../src/core/errors.ts';
import { createRedis } from '../src/queue/redis-connection.ts';
import { parseClusterUrl } from '../src/queue/redis-url.ts';

describe('Redis Cluster configuration', () => {
  it('REDIS_CLUSTER_NODES makes the cluster URL every process gets, with the scheme and credentials of REDIS_URL', () => {
    const c = loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.5:6379, 10.0.0.6:6380', REDIS_URL: 'rediss://app:s%40cret@ignored:1' });
    expect(c.redisUrl).toBe('rediss+cluster://app:s%40cret@10.0.0.5:6379,10.0.0.6:6380');
    expect(parseClusterUrl(c.redisUrl)).toEqual({
      nodes: [{ host: '10.0.0.5', port: 6379 }, { host: '10.0.0.6', port: 6380 }],
      username: 'app',
      password: 's@cret',
      tls: true,
    });
    expect(loadConfig({ REDIS_URL: 'redis+cluster://a:7000,b' }).redisUrl).toBe('redis+cluster://a:7000,b');
    expect(loadConfig({}).redisUrl).toBe('redis://127.0.0.1:6379');
  });

  it('a cluster with a queue prefix that has no {hash tag} is refused at start, saying how to fix it', () => {
    for (const prefix of ['rewrap', '{}rewrap', 'rew{rap']) {
      expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REWRAP_QUEUE_PREFIX: prefix })).toThrow(ConfigError);
    }
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REWRAP_QUEUE_PREFIX: 'rewrap' })).toThrow(/Fix: wrap the prefix in braces/);
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REWRAP_QUEUE_PREFIX: 'prod{rewrap}' }).queuePrefix).toBe('prod{rewrap}');
    // A single server does not care.
    expect(loadConfig({ REWRAP_QUEUE_PREFIX: 'rewrap' }).queuePrefix).toBe('rewrap');
  });

  it('a malformed node is refused naming the node, never the password', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'a:notaport' })).toThrow(/"a:notaport": expected host:port/);
    try {
      loadConfig({ REDIS_URL: 'redis+cluster://u:hunter2hunter2@a:99999' });
      expect.unreachable();
    } catch (err) {
      expect(String((err as Error).message)).not.toContain('hunter2');
    }
  });

  it('createRedis gives an ioredis Cluster client for a cluster URL and a plain client otherwise', () => {
    const cl = createRedis('redis+cluster://127.0.0.1:1');
    cl.on('error', () => undefined);
    expect(cl).toBeInstanceOf(Cluster);
    cl.disconnect();
    const one = createRedis('redis://127.0.0.1:1');
    one.on('error', () => undefined);
    expect(one).toBeInstanceOf(Redis);
    one.disconnect();
  });
});
