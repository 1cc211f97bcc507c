/**
 * A private redis-server on a free port, for tests that must FLUSHALL, restart Redis, or read
 * `INFO memory` without the other test files' keys (they share the machine's Redis), and for the
 * bench (a clean `used_memory` and CPU of its own).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { freePort } from './rgw-server.ts';

export interface PrivateRedis {
  url: string;
  pid: number;
  client: Redis;
  usedMemory(): Promise<{ used: number; peak: number }>;
  stop(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy: () => 100 });
  // Refused connections while the server starts (and after a test stops it) are expected here;
  // without a listener ioredis prints each one as an "Unhandled error event".
  client.on('error', () => undefined);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await client.connect();
      await client.ping();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`private redis-server on port ${port} did not answer within 10 s`, { cause: err });
      client.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    pid: child.pid!,
    client,
    async usedMemory() {
      const info = await client.info('memory');
      const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
      return { used: field('used_memory'), peak: field('used_memory_peak') };
    },
    async stop() {
      client.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    },
  };
}
