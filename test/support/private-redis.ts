/**
 * A private redis-server on a free port, for tests that must FLUSHALL, restart Redis, or read
 * `INFO memory` without the other test files' keys (they share the machine's Redis).
 */
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from '../../src/demo/rgw-server.ts';

export interface PrivateRedis {
  url: string;
  client: Redis;
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
      if (Date.now() > deadline) throw new Error(`private redis-server on ${port} did not answer`, { cause: err });
      client.disconnect();
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    client,
    async stop() {
      client.disconnect();
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
