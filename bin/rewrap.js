#!/usr/bin/env node
// The `rewrap` command. An installed package (npm, the container image) runs the compiled
// JavaScript in dist/ (`npm run build`, done by `npm pack`). A development checkout runs the
// TypeScript sources through tsx (a devDependency), so that tests, the demo and the bench never
// run a stale build; REWRAP_USE_DIST=1 runs dist/ there too (to try the build).
import { existsSync } from 'node:fs';

const here = (p) => new URL(p, import.meta.url);
const compiled = here('../dist/src/cli/main.js');

function tsxAvailable() {
  try {
    import.meta.resolve('tsx/esm/api');
    return true;
  } catch {
    return false;
  }
}

if (process.env.REWRAP_USE_DIST !== '1' && existsSync(here('../src/cli/main.ts')) && tsxAvailable()) {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write('rewrap: dist/ is missing: run `npm run build` (or `npm install` in a checkout, for tsx)\n');
  process.exitCode = 1;
}
