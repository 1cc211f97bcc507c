#!/usr/bin/env node
// The image's HEALTHCHECK: GET a health route of this container's rewrap process and exit 0 on
// 200, 1 otherwise (no curl in the image). Default: /readyz on the metrics port, where the worker
// and the scheduler serve it (REWRAP_METRICS_PORT; 9464 in the image). `rewrap api` serves it on
// its own port: `healthcheck.js http://127.0.0.1:4600/readyz`.
const url = process.argv[2] ?? `http://127.0.0.1:${process.env.REWRAP_METRICS_PORT || 9464}/readyz`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(4000) });
  process.stdout.write(`${res.status} ${(await res.text()).trim()}\n`);
  process.exitCode = res.status === 200 ? 0 : 1;
} catch (err) {
  process.stdout.write(`${url}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
