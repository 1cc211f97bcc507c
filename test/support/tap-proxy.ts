/**
 * A TCP proxy in front of an HTTP/1.1 server (the test S3 endpoint) that shows each request line
 * a client sends to a hook BEFORE forwarding it. A fault test uses it to act at an exact point
 * of a worker's work, e.g. freeze the worker (SIGSTOP) the moment it asks for a given object.
 * The hook may return a promise: the request is held until it settles. A hook that answers
 * 'drop' closes the client's connection instead of forwarding the request (the server never
 * sees it; the client gets a connection reset). Returning 'drop-reply' forwards the request but
 * cuts the connection at the first byte of the reply: the server acts on it, the client never
 * learns (a write whose reply was lost).
 * Bytes are forwarded unchanged (SigV4 signs the proxy's host, which is what the server sees).
 */
import { connect, createServer, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';

export interface TapProxy {
  url: string;
  close(): Promise<void>;
}

type HookAnswer = void | 'drop' | 'drop-reply';
export type RequestHook = (method: string, target: string) => HookAnswer | Promise<HookAnswer>;

const REQUEST_LINE = /^(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP\/1\.[01]\r$/gm;

export async function startTapProxy(upstream: string, onRequest: RequestHook): Promise<TapProxy> {
  const u = new URL(upstream);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const up = connect(Number(u.port || 80), u.hostname);
    sockets.add(client).add(up);
    const end = () => {
      client.destroy();
      up.destroy();
      sockets.delete(client);
      sockets.delete(up);
    };
    for (const s of [client, up]) {
      s.on('error', end);
      s.on('close', end);
    }
    let dropReply = false;
    up.on('data', () => {
      if (dropReply) end(); // registered before pipe(): runs before the bytes are passed on
    });
    up.pipe(client);
    // Chunks are handled strictly in order: a held request holds everything behind it.
    let chain = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      const hooks = [...chunk.toString('latin1').matchAll(REQUEST_LINE)].map((m) => [m[1]!, m[2]!] as const);
      chain = chain.then(async () => {
        for (const [method, target] of hooks) {
          const answer = await onRequest(method, target);
          if (answer === 'drop') return end();
          if (answer === 'drop-reply') dropReply = true;
        }
        if (!up.destroyed) up.write(chunk);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Sends SIGSTOP and resolves once the kernel reports the process stopped (/proc state T). */
export async function freeze(pid: number, timeoutMs = 5_000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name (which may contain spaces).
    if (/^[Tt]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!)) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} not stopped ${timeoutMs} ms after SIGSTOP`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
