/**
 * Starts what the whole run shares (the S3 server) once, and stops it at the end.
 * S3: `S3_ENDPOINT` (+ `S3_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`, `S3_REGION`) if set; otherwise a
 * throwaway Ceph RGW from scripts/rgw/start.sh on free ports. Test files get it with
 * `s3TestEnv()` (test/harness/s3.ts), through vitest's provide/inject.
 * TESTCONTAINERS=1: Redis, Postgres and the S3 server run in containers instead (containers.ts);
 * their addresses reach the test files through provide/inject (test/harness/env.ts, s3.ts).
 */
import type { TestProject } from 'vitest/node';
import { startRgw } from '../../dev/services/rgw-server.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TESTCONTAINERS === '1') {
    const { startContainerServices } = await import('./containers.ts');
    const services = await startContainerServices();
    project.provide('services', { redisUrl: services.redisUrl, databaseUrl: services.databaseUrl });
    project.provide('s3', { ...services.s3, server: 'external' });
    return services.stop;
  }
  const external = process.env.S3_ENDPOINT;
  if (external) {
    project.provide('s3', {
      endpoint: external,
      accessKeyId: requireEnv('S3_ACCESS_KEY_ID'),
      secretAccessKey: requireEnv('S3_SECRET_ACCESS_KEY'),
      region: process.env.S3_REGION ?? 'us-east-1',
      server: 'external',
    });
    return async () => {};
  }
  const rgw = await startRgw();
  project.provide('s3', { ...rgw.env, server: 'ceph-rgw' });
  return rgw.stop;
}

function requireEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`S3_ENDPOINT is set, so ${name} must be set too (the access key pair for that endpoint)`);
  return v;
}
