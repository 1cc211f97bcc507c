/**
 * A throwaway Ceph RADOS Gateway (a real S3 server from Debian packages) on free local ports,
 * via scripts/rgw/start.sh. Used by the demo and the test harness.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const RGW_SCRIPTS = resolve(dirname(fileURLToPath(import.meta.url)), '../../scripts/rgw');
export const RGW_INSTALL_HINT = 'apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common';

export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export class RgwNotInstalledError extends Error {
  constructor(options?: { cause?: unknown }) {
    super(`Ceph RGW is not installed. Install it (Debian 12) with\n  ${RGW_INSTALL_HINT}\nor point S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY at an S3 server.`, options);
    this.name = 'RgwNotInstalledError';
  }
}

export async function startRgw(): Promise<{ env: S3Endpoint; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'rewrap-rgw-'));
  const rgwPort = await freePort();
  let monPort = await freePort();
  while (monPort === rgwPort) monPort = await freePort();
  const accessKeyId = 'rewrap-local';
  const secretAccessKey = 'rewrap-local-secret';
  try {
    await run('bash', [join(RGW_SCRIPTS, 'start.sh')], {
      env: { ...process.env, RGW_DIR: dir, RGW_PORT: String(rgwPort), MON_PORT: String(monPort), ACCESS_KEY: accessKeyId, SECRET_KEY: secretAccessKey },
      timeout: 180_000,
    });
  } catch (cause) {
    const e = cause as { code?: number; stderr?: string };
    if (e.code === 127) throw new RgwNotInstalledError({ cause });
    throw new Error(`scripts/rgw/start.sh failed; logs kept in ${dir}/log. Its stderr:\n${e.stderr ?? ''}`, { cause });
  }
  /* If the process dies without the normal stop, the daemons must not outlive it. stop.sh is idempotent. */
  const stopNow = () => execFileSync('bash', [join(RGW_SCRIPTS, 'stop.sh'), dir], { stdio: 'ignore', timeout: 30_000 });
  process.once('exit', stopNow);
  return {
    env: { endpoint: `http://127.0.0.1:${rgwPort}`, accessKeyId, secretAccessKey, region: 'us-east-1' },
    stop: async () => {
      process.off('exit', stopNow);
      await run('bash', [join(RGW_SCRIPTS, 'stop.sh'), dir], { timeout: 30_000 });
    },
  };
}

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}
