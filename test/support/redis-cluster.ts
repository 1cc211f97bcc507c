/**
 * A private Redis Cluster for one test file: `masters` masters with `replicasPerMaster` replicas
 * each, every node a real `redis-server --cluster-enabled yes` on a free loopback port, its
 * files in a temp dir, joined by `redis-cli --cluster create`. No container.
 * `cluster-node-timeout` is short, so a killed master's replica takes over within seconds.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../../dev/services/rgw-server.ts';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  child: ChildProcess;
}

export interface LocalRedisCluster {
  /** `redis+cluster://127.0.0.1:p1,...` with every node as a seed. */
  url: string;
  nodes: ClusterNode[];
  /** Runs one command on the node at `port` (a short-lived connection). */
  command(port: number, ...args: (string | number)[]): Promise<unknown>;
  /** The port of the master serving `slot`, as the live nodes see it now. */
  masterOfSlot(slot: number): Promise<number>;
  /** SIGKILLs the redis-server on `port` (no shutdown, no save): a crashed master. */
  kill(port: number): Promise<void>;
  /** Waits until every live node reports cluster_state:ok and `slot` is served by a live master. */
  waitHealthy(slot: number, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

export async function startRedisCluster(o: { masters: number; replicasPerMaster: number; nodeTimeoutMs: number }): Promise<LocalRedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'rewrap-redis-cluster-'));
  const nodes: ClusterNode[] = [];
  const count = o.masters * (1 + o.replicasPerMaster);
  const stopAll = async () => {
    await Promise.all(
      nodes.map(async (n) => {
        if (n.child.exitCode === null && n.child.signalCode === null) {
          n.child.kill('SIGKILL');
          await once(n.child, 'exit');
        }
      }),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const ndir = join(dir, String(port));
      await mkdir(ndir);
      const child = spawn(
        'redis-server',
        [
          '--port', String(port), '--bind', '127.0.0.1', '--dir', ndir,
          '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', String(o.nodeTimeoutMs),
          '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction',
          // A replica whose master died just now may be promoted at once (the default factor
          // refuses replicas that lost contact "too long" ago, which a short timeout reaches).
          '--cluster-replica-validity-factor', '0',
        ],
        { stdio: 'ignore' },
      );
      nodes.push({ port, child });
    }
    for (const n of nodes) await waitForPing(n.port, 10_000);
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(o.replicasPerMaster), '--cluster-yes'], { timeout: 60_000 });
  } catch (err) {
    await stopAll();
    throw err;
  }

  const command = async (port: number, ...args: (string | number)[]) => {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return await c.call(String(args[0]), ...args.slice(1).map(String));
    } finally {
      c.disconnect();
    }
  };
  const live = () => nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
  const masterOfSlot = async (slot: number): Promise<number> => {
    for (const n of live()) {
      try {
        const shards = (await command(n.port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number, string]][];
        const range = shards.find(([from, to]) => slot >= from && slot <= to);
        if (range) return Number(range[2][1]);
      } catch {
        // this node does not answer: ask the next
      }
    }
    throw new Error(`no live node knows a master for slot ${slot}`);
  };
  const cluster: LocalRedisCluster = {
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    command,
    masterOfSlot,
    async kill(port) {
      const n = nodes.find((x) => x.port === port);
      if (!n) throw new Error(`no cluster node on port ${port}`);
      n.child.kill('SIGKILL');
      await once(n.child, 'exit');
    },
    async waitHealthy(slot, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        try {
          const states = await Promise.all(live().map(async (n) => String(await command(n.port, 'CLUSTER', 'INFO'))));
          const owner = await masterOfSlot(slot);
          if (states.every((s) => s.includes('cluster_state:ok')) && live().some((n) => n.port === owner)) return owner;
          last = `owner ${owner}; ${states.map((s) => /cluster_state:\w+/.exec(s)?.[0]).join(', ')}`;
        } catch (err) {
          last = String(err);
        }
        if (Date.now() > deadline) throw new Error(`Redis Cluster not healthy within ${timeoutMs} ms: ${last}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: stopAll,
  };
  await cluster.waitHealthy(0, 30_000);
  return cluster;
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.ping();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`, { cause: err });
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      c.disconnect();
    }
  }
}
