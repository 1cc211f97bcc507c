/**
 * What the deploy artefacts are checked against (test/deploy-compose.test.ts,
 * test/deploy-kubernetes.test.ts): the environment variables src/config.ts reads (the one place
 * reading process.env), the CLI's long-running commands, the health routes.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Every variable name src/config.ts reads: `env.NAME` and `int(env, 'NAME', ...)`. */
export function configEnvVars(): Set<string> {
  const src = readFileSync(new URL('../../src/config.ts', import.meta.url), 'utf8');
  const names = new Set<string>();
  for (const m of src.matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]);
  for (const m of src.matchAll(/\bint\(env, '([A-Z][A-Z0-9_]+)'/g)) names.add(m[1]);
  for (const m of src.matchAll(/apiToken\(env\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]);
  return names;
}

/** The variables of the configuration table in the README (`| `NAME`, `NAME` | default | meaning |`). */
export function readmeEnvVars(): Set<string> {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const names = new Set<string>();
  for (const line of readme.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const first = line.split('|')[1] ?? '';
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]);
  }
  return names;
}

/** A URL path served by the health endpoints of every long-running process (src/metrics/health.ts). */
export const HEALTH_ROUTES = ['/healthz', '/readyz'];
