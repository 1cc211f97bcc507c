import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/harness/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // 2 cores: a few files at once keeps the shared services busy without starving them.
    maxWorkers: 3,
    minWorkers: 1,
  },
});
