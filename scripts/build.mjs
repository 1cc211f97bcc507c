#!/usr/bin/env node
// `npm run build`: compiles the runtime code (src, scheduler, workers; tsconfig.build.json) to
// dist/ and copies the files it reads at run time beside the compiled modules (the ledger's SQL
// migrations, the dashboard's static files), keeping the same relative layout so that
// `new URL('./migrations/', import.meta.url)` finds them in dist as it does in the sources.
// Plain JavaScript: it must run where only `typescript` is installed.
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = path.join(ROOT, 'dist');
const ROOTS = ['src', 'scheduler', 'workers'];

rmSync(OUT, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

let copied = 0;
function copyAssets(rel) {
  for (const name of readdirSync(path.join(ROOT, rel))) {
    const from = path.join(rel, name);
    if (statSync(path.join(ROOT, from)).isDirectory()) copyAssets(from);
    else if (!name.endsWith('.ts')) {
      cpSync(path.join(ROOT, from), path.join(OUT, from));
      copied++;
    }
  }
}
for (const root of ROOTS) copyAssets(root);
console.log(`built ${path.relative(process.cwd(), OUT) || '.'}/ (${copied} asset files copied)`);
