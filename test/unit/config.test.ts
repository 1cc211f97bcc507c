import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/core/errors.ts';
import { parseDuration } from '../../src/retirement/retire-kek.ts';

describe('process configuration: read once, validated at the edge', () => {
  it('defaults: local services, documented timeouts, path-style S3 only with an endpoint', () => {
    const c = loadConfig({});
    expect(c.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/postgres');
    expect(c.dataDatabaseUrl).toBe(c.databaseUrl);
    expect(c.queuePrefix).toBe('{rewrap}');
    expect(c.worker).toMatchObject({ jobConcurrency: 2, leaseMs: 15_000, shutdownTimeoutMs: 10_000 });
    expect(c.scheduler).toMatchObject({ windowBatches: 64, tickMs: 250, reconcileEveryMs: 3000 });
    expect(c.s3.forcePathStyle).toBe(false);
    expect(loadConfig({ S3_ENDPOINT: 'http://127.0.0.1:9000' }).s3.forcePathStyle).toBe(true);
    expect(loadConfig({ AWS_REGION: 'eu-west-1', KMS_REGION: 'eu-central-1' })).toMatchObject({ s3: { region: 'eu-west-1' }, kms: { region: 'eu-central-1' } });
  });

  it('a bad number names the variable and the rule', () => {
    expect(() => loadConfig({ REWRAP_LEASE_MS: '500' })).toThrow(new ConfigError('REWRAP_LEASE_MS="500": expected an integer >= 1000'));
    expect(() => loadConfig({ REWRAP_WORKER_JOBS: '1.5' })).toThrow(ConfigError);
    expect(() => loadConfig({ REWRAP_PG_RECONNECT_MIN_MS: '500', REWRAP_PG_RECONNECT_MAX_MS: '100' })).toThrow(/at least as high as the minimum/);
  });

  it('a short API token is refused without quoting it (it is a secret)', () => {
    const err = (() => {
      try {
        loadConfig({ REWRAP_API_TOKEN: 'short-secret' });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toContain('REWRAP_API_TOKEN');
    expect(err!.message).not.toContain('short-secret');
  });

  it('durations: a number with a unit, or 0', () => {
    expect(parseDuration('24h', '--grace')).toBe(86_400_000);
    expect(parseDuration('1.5s', '--grace')).toBe(1500);
    expect(parseDuration('0', '--grace')).toBe(0);
    expect(() => parseDuration('10', '--grace')).toThrow(/give a unit/);
    expect(() => parseDuration('soon', '--grace')).toThrow(/--grace: expected a duration/);
  });
});
