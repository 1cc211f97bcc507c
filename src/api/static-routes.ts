/**
 * The dashboard: plain HTML/CSS/JS from src/api/public and uPlot from node_modules, served by the
 * API itself (nothing is fetched from a CDN at run time). Only the listed files are served.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Route } from './router.ts';

const require = createRequire(import.meta.url);
const publicFile = (name: string) => fileURLToPath(new URL(`./public/${name}`, import.meta.url));

const ASSETS: Record<string, { file: () => string; type: string }> = {
  'dashboard.js': { file: () => publicFile('dashboard.js'), type: 'text/javascript; charset=utf-8' },
  'dashboard.css': { file: () => publicFile('dashboard.css'), type: 'text/css; charset=utf-8' },
  'uPlot.iife.min.js': { file: () => require.resolve('uplot/dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { file: () => require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/** The page loads only its own scripts and styles, and talks only to this server. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

export function staticRoutes(): Route[] {
  const files = new Map<string, Promise<Buffer>>();
  // Read once per process; a failed read is retried on the next request.
  const load = (path: string) => {
    let p = files.get(path);
    if (!p) {
      p = readFile(path);
      files.set(path, p);
      p.catch(() => files.delete(path));
    }
    return p;
  };
  const send = async (res: import('node:http').ServerResponse, path: string, type: string) => {
    const body = await load(path);
    res.writeHead(200, {
      'content-type': type,
      'content-length': body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'content-security-policy': CSP,
      'referrer-policy': 'no-referrer',
    });
    res.end(body);
  };
  return [
    {
      method: 'GET',
      path: '/',
      name: 'dashboard',
      public: true,
      handle: ({ res }) => send(res, publicFile('index.html'), 'text/html; charset=utf-8'),
    },
    {
      method: 'GET',
      path: '/assets/:file',
      name: 'assets',
      public: true,
      async handle({ res, params }) {
        const a = ASSETS[params.file!];
        if (!a || !Object.hasOwn(ASSETS, params.file!)) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end(`no asset ${params.file}\n`);
          return;
        }
        await send(res, a.file(), a.type);
      },
    },
  ];
}
