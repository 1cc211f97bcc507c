/**
 * The folder import graph of what ships (src/, scheduler/, workers/) has no loop, and src/ imports
 * nothing outside itself except its entry point: src/cli/ starts the scheduler/ and workers/
 * processes. Nothing shipped imports dev/, test/ or bench/; src/core/ imports only itself.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const files = ['src', 'scheduler', 'workers'].flatMap((d) => readdirSync(join(ROOT, d), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(d, f)));
/** `src/ledger/sql/x.ts` → `src/ledger`; `src/config.ts` → `src/config.ts`; `workers/x.ts` → `workers`. */
const node = (f: string) => (f.startsWith('src/') ? f.split('/').slice(0, 2).join('/') : f.split('/')[0]!);
const edges = new Map<string, Set<string>>();
for (const f of files) {
  for (const [, spec] of readFileSync(join(ROOT, f), 'utf8').matchAll(/(?:from|import\()\s*['"](\.[^'"]+)['"]/g)) {
    const [from, to] = [node(f), node(relative(ROOT, resolve(ROOT, dirname(f), spec!)))];
    if (from !== to) edges.set(from, (edges.get(from) ?? new Set()).add(to));
  }
}

test('no loop between folders; src imports outside src only from its entry point, src/cli (scheduler/, workers/)', () => {
  const cycles: string[] = [];
  const seen = new Set<string>(); // depth first: a loop shows as a node met again on the current path
  const visit = (n: string, path: string[]): void => {
    if (path.includes(n)) return void cycles.push([...path.slice(path.indexOf(n)), n].join(' -> '));
    if (seen.has(n)) return;
    seen.add(n);
    for (const m of edges.get(n) ?? []) visit(m, [...path, n]);
  };
  for (const n of edges.keys()) visit(n, []);
  expect(cycles).toEqual([]);
  const outside = [...edges].flatMap(([from, tos]) => [...tos].filter((to) => !/^(src\/|scheduler$|workers$)/.test(to) || (from.startsWith('src/') && !to.startsWith('src/') && from !== 'src/cli')).map((to) => `${from} -> ${to}`));
  expect(outside).toEqual([]);
  expect([...(edges.get('src/core') ?? [])]).toEqual([]);
});
