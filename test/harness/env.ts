/** Where the test services are: containers started by global-setup.ts (TESTCONTAINERS=1), else the environment, defaulting to the local ones. */
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set only with TESTCONTAINERS=1 (test/harness/containers.ts). */
    services?: { redisUrl: string; databaseUrl: string };
  }
}

const containers = inject('services');
export const REDIS_URL = containers?.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const DATABASE_URL = containers?.databaseUrl ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
