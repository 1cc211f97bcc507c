import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { defineConfig } from 'vitest/config';

/*
 * Three projects, so that a run starts only the services its files need:
 *   unit      test/unit/: the decision core with fake ports; Node only (no Postgres, Redis, S3).
 *   services  the other test files that need no S3 (Postgres and Redis on 127.0.0.1).
 *   s3        the files that use S3, directly or through a helper (test/harness/s3.ts): only this
 *             project has the global setup that starts Ceph RGW (test/harness/global-setup.ts).
 * Vitest runs a project's global setup only when one of its files is queued, so
 * `npx vitest run test/unit` (or test/ledger.test.ts) starts no RGW; `npm test` runs all three.
 */
const S3_HARNESS = resolve('test/harness/s3.ts');
const imports = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)].map((m) => resolve(dirname(file), m[1]!)).filter((f) => f.includes('/test/'));
const usesS3Memo = new Map<string, boolean>();
function usesS3(file: string): boolean {
  if (file === S3_HARNESS) return true;
  let v = usesS3Memo.get(file);
  if (v === undefined) {
    usesS3Memo.set(file, false); // an import cycle does not loop
    v = imports(file).some(usesS3);
    usesS3Memo.set(file, v);
  }
  return v;
}
const topLevel = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .map((f) => join('test', f));
const s3Files = topLevel.filter((f) => usesS3(resolve(f)));
const serviceFiles = topLevel.filter((f) => !s3Files.includes(f));

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2 cores: a few files at once keeps the shared services busy without starving them.
    maxWorkers: 3,
    minWorkers: 1,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000 } },
      { extends: true, test: { name: 'services', include: serviceFiles } },
      { extends: true, test: { name: 's3', include: s3Files, globalSetup: ['test/harness/global-setup.ts'] } },
    ],
  },
});
