/**
 * Starting rewrap's own processes as real OS processes (the demo, and the multi-process tests):
 * `node bin/rewrap.js <command>` with an environment, logs captured line by line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { once } from 'node:events';

export const REWRAP_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/rewrap.js');
/** The local KMS server's entry point (`npm run kms-server`), run with `node --import tsx`. */
export const KMS_SERVER_MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../kms-server/main.ts');

export interface RewrapProcess {
  name: string;
  child: ChildProcess;
  /** Every line the process printed (stdout and stderr), in order. */
  lines: string[];
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

/* A parent that ends without stopping its rewrap processes (a failed test teardown, a crashed
   demo) must not leave them running: they are killed when it exits. */
const live = new Set<ChildProcess>();
let exitHook = false;

function killOnParentExit(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

export function startRewrapProcess(name: string, args: string[], env: Record<string, string>): RewrapProcess {
  const child = spawn(process.execPath, [REWRAP_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  killOnParentExit(child);
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        for (const l of listeners) l(line);
      }
    });
  }
  const exited = new Promise<number | string>((res) => child.on('exit', (code, signal) => res(code ?? signal ?? -1)));
  return {
    name,
    child,
    lines,
    exited,
    waitForLine(pattern, timeoutMs) {
      const found = lines.find((l) => pattern.test(l));
      if (found) return Promise.resolve(found);
      return new Promise((res, rej) => {
        const timer = setTimeout(() => {
          listeners.delete(on);
          rej(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`));
        }, timeoutMs);
        const on = (line: string) => {
          if (pattern.test(line)) {
            clearTimeout(timer);
            listeners.delete(on);
            res(line);
          }
        };
        listeners.add(on);
        void exited.then((code) => {
          if (listeners.has(on)) {
            clearTimeout(timer);
            listeners.delete(on);
            rej(new Error(`${name} exited (${code}) before printing ${pattern}; last lines:\n${lines.slice(-10).join('\n')}`));
          }
        });
      });
    },
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(t);
      }
    },
  };
}

/** Runs a rewrap CLI command to completion; returns its exit code and output. */
export async function runRewrap(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [REWRAP_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code: code ?? -1, stdout, stderr };
}
