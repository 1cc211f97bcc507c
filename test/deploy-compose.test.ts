/**
 * docker-compose.yml and the Dockerfile, checked without a container engine (none on our
 * machines): the file is parsed as Compose parses it (YAML with merge keys) and its services,
 * environment, health checks, ports, restart policies and start order are held to what the code
 * serves and reads. The bootstrap script runs for real against this run's S3 server and a local
 * KMS server, twice (it must be idempotent).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DeleteBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { ListAliasesCommand } from '@aws-sdk/client-kms';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { processCommands } from '../src/cli/process-commands.ts';
import { apiCommand, DEFAULT_API_PORT } from '../src/cli/api-command.ts';
import { createS3Client } from '../src/stores/s3-client.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { startPipeline } from './support/pipeline.ts';
import { ROOT, configEnvVars } from './support/deploy-env.ts';
import { s3TestEnv } from './harness/s3.ts';

interface Service {
  image?: string;
  build?: { context: string; target: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  restart?: string;
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  healthcheck?: { test?: string[]; disable?: boolean; interval?: string; timeout?: string };
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
  deploy?: { replicas?: number };
}

const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;
const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const REWRAP = ['migrate', 'scheduler', 'worker', 'api'];
const LONG_RUNNING = ['scheduler', 'worker', 'api'];
const COMMANDS = new Set([...processCommands, apiCommand].map((c) => c.name));

/** The stages of the Dockerfile and the lines of each. */
function stages(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] = [];
  for (const line of dockerfile.split('\n')) {
    const from = /^FROM\s+\S+\s+AS\s+(\S+)/i.exec(line);
    if (from) out.set(from[1], (current = []));
    else if (!line.startsWith('#')) current.push(line);
  }
  return out;
}

describe('docker-compose.yml', () => {
  it('runs the whole stack: data services, the test KMS server, migration, bootstrap, scheduler, workers and the API', () => {
    expect(Object.keys(services).sort()).toEqual(['api', 'bootstrap', 'kms', 'migrate', 'minio', 'postgres', 'redis', 'scheduler', 'worker']);
    for (const name of REWRAP) {
      const s = services[name];
      expect(s.build?.target, name).toBe('runtime');
      expect(COMMANDS.has(s.command![0]), `${name}: ${s.command![0]} is a rewrap command`).toBe(true);
    }
    expect(services.worker.deploy?.replicas).toBeGreaterThanOrEqual(2);
    expect(services.redis.command).toEqual(expect.arrayContaining(['--maxmemory-policy', 'noeviction']));
  });

  it('builds from stages the Dockerfile has; rewrap runs unprivileged on a read-only root filesystem', () => {
    const st = stages();
    for (const s of Object.values(services)) if (s.build) expect(st.has(s.build.target), s.build.target).toBe(true);
    const runtime = st.get('runtime')!.join('\n');
    expect(dockerfile.trimEnd().split('\n').filter((l) => /^FROM /i.test(l)).pop()).toMatch(/AS runtime$/);
    expect(runtime).toMatch(/^USER 1000:1000$/m);
    expect(runtime).toMatch(/^COPY --from=build \/src\/dist dist$/m);
    expect(runtime).not.toMatch(/^COPY (\.|src|test|bench|dev) /m);
    expect(runtime).toMatch(/^HEALTHCHECK .* CMD \["node", "bin\/healthcheck.js"\]$/m);
    expect(existsSync(path.join(ROOT, 'bin', 'healthcheck.js'))).toBe(true);
    for (const name of [...REWRAP, 'kms', 'bootstrap']) {
      expect(services[name].read_only, name).toBe(true);
      expect(services[name].tmpfs, name).toEqual(['/tmp']);
    }
    for (const name of REWRAP) expect(services[name].cap_drop, name).toEqual(['ALL']);
  });

  it('every service restarts on its own; one-shot jobs only on failure', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.restart, name).toBe(['migrate', 'bootstrap'].includes(name) ? 'on-failure' : 'unless-stopped');
    }
  });

  it('health checks call /readyz where each process serves it, and every dependency waits for health or completion', () => {
    for (const name of LONG_RUNNING) {
      const s = services[name];
      const url = new URL(s.healthcheck!.test!.at(-1)!);
      expect(s.healthcheck!.test!.slice(0, 3)).toEqual(['CMD', 'node', 'bin/healthcheck.js']);
      expect(url.pathname).toBe('/readyz');
      if (name === 'api') {
        const port = s.command![s.command!.indexOf('--port') + 1];
        expect(url.port).toBe(port);
        expect(s.command![s.command!.indexOf('--host') + 1]).toBe('0.0.0.0');
      } else {
        expect(url.port).toBe(s.environment!.REWRAP_METRICS_PORT);
        expect(s.environment!.REWRAP_METRICS_HOST).toBe('0.0.0.0');
      }
    }
    for (const [name, s] of Object.entries(services)) {
      if (!['migrate', 'bootstrap'].includes(name)) expect(s.healthcheck?.test, `${name} has a health check`).toBeDefined();
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        const oneShot = ['migrate', 'bootstrap'].includes(dep);
        expect(condition, `${name} -> ${dep}`).toBe(oneShot ? 'service_completed_successfully' : 'service_healthy');
      }
    }
    for (const name of ['scheduler', 'worker']) {
      expect(Object.keys(services[name].depends_on!).sort()).toEqual(['bootstrap', 'kms', 'migrate', 'minio', 'postgres', 'redis']);
    }
    expect(Object.keys(services.migrate.depends_on!)).toEqual(['postgres']);
    // Workers finish or release their batches on SIGTERM (REWRAP_SHUTDOWN_TIMEOUT_MS, 10 s by default).
    expect(parseInt(services.worker.stop_grace_period!, 10)).toBeGreaterThan(10);
  });

  it('sets only variables rewrap reads, the ones the stack needs, and takes secrets from the environment', () => {
    const known = configEnvVars();
    for (const name of REWRAP) {
      const env = services[name].environment!;
      for (const k of Object.keys(env)) expect(known.has(k), `${name}: ${k} is read by src/config.ts`).toBe(true);
      for (const k of ['DATABASE_URL', 'REDIS_URL', 'S3_ENDPOINT', 'KMS_ENDPOINT', 'AWS_REGION']) expect(env[k], `${name}: ${k}`).toBeTruthy();
      expect(new URL(env.DATABASE_URL).hostname).toBe('postgres');
      expect(new URL(env.REDIS_URL).hostname).toBe('redis');
      expect(new URL(env.S3_ENDPOINT).hostname).toBe('minio');
      expect(new URL(env.KMS_ENDPOINT).hostname).toBe('kms');
    }
    const api = services.api.environment!;
    expect(api.REWRAP_API_TOKEN).toMatch(/^\$\{REWRAP_API_TOKEN:\?/);
    expect(api.REWRAP_API_READ_TOKEN).toMatch(/^\$\{REWRAP_API_READ_TOKEN:\?/);
    expect(services.kms.environment!.KMS_ADMIN_TOKEN).toMatch(/^\$\{KMS_ADMIN_TOKEN:\?/);
    expect(services.kms.command).toEqual(expect.arrayContaining(['--state-file']));
    // Development code runs from the dev image, by a path that must exist in the checkout.
    for (const name of ['kms', 'bootstrap']) {
      expect(services[name].build?.target, name).toBe('dev');
      const script = services[name].entrypoint!.find((a) => a.endsWith('.ts'))!;
      expect(existsSync(path.join(ROOT, script)), `${name}: ${script}`).toBe(true);
    }
    expect(services.kms.command![services.kms.command!.indexOf('--state-file') + 1]).toMatch(/^\/var\/lib\/rewrap\//);
  });

  it('publishes the API (on the host\'s loopback) and nothing else of rewrap or the test KMS server', () => {
    expect(services.api.ports).toEqual([`127.0.0.1:${DEFAULT_API_PORT}:${DEFAULT_API_PORT}`]);
    for (const name of ['migrate', 'scheduler', 'worker', 'kms', 'bootstrap', 'redis', 'postgres']) expect(services[name].ports, name).toBeUndefined();
  });
});

describe('deploy/compose/bootstrap.ts', () => {
  it('creates the demo bucket and both KMS key aliases, and leaves them as they are when run again', async () => {
    const pipe = await startPipeline({ label: 'bootstrap', workers: 0 });
    const bucket = `rewrap-bootstrap-${Date.now().toString(36)}`;
    const run = () =>
      new Promise<{ code: number; out: string }>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', 'deploy/compose/bootstrap.ts', bucket], { cwd: ROOT, env: { ...process.env, ...pipe.env, AWS_REGION: 'us-east-1' }, timeout: 120_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}` }),
        );
      });
    const s3env = s3TestEnv();
    const s3 = createS3Client({ endpoint: s3env.endpoint, region: s3env.region, credentials: { accessKeyId: s3env.accessKeyId, secretAccessKey: s3env.secretAccessKey } });
    const kms = createKmsClient({ endpoint: pipe.kms.url, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    try {
      const first = await run();
      expect(first.code, first.out).toBe(0);
      expect(first.out).toContain(`bucket ${bucket}: created`);
      expect(first.out).toMatch(/alias\/rewrap-demo-old: created/);
      await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      const aliases = async () => ((await kms.send(new ListAliasesCommand({}))).Aliases ?? []).filter((a) => a.AliasName?.startsWith('alias/rewrap-demo-')).map((a) => `${a.AliasName}=${a.TargetKeyId}`).sort();
      const before = await aliases();
      expect(before).toHaveLength(2);

      const again = await run();
      expect(again.code, again.out).toBe(0);
      expect(again.out).toContain(`bucket ${bucket}: exists`);
      expect(await aliases()).toEqual(before);
    } finally {
      await s3.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => undefined);
      s3.destroy();
      kms.destroy();
      await pipe.stop();
    }
  });
});
