/**
 * A TCP fault proxy for the reliability tests (`tc netem` is not available on these machines):
 * clients connect to it instead of a server (S3, KMS, Postgres), and it forwards bytes both ways
 * while injecting, as set at run time:
 * - latency: every chunk the client sends is held `latencyMs` +- `jitterMs` (uniform) before it
 *   is forwarded; order is kept, so a request waits behind the one before it on its connection;
 * - resets: a fraction of the chunks the client sends (`resetRatio`, i.e. of HTTP requests) are
 *   forwarded, then the connection is reset (RST) at the first byte of the reply: the server acted
 *   on the request, the client never hears the answer;
 * - a black hole (`blackhole: true`): new connections are accepted and then nothing happens (no
 *   reply, no reset, no FIN), and an existing connection that sends or receives anything during
 *   the hole is dead from then on (its bytes are dropped, as by a router that lost the route): a
 *   request never arrives late, after the client gave up. The client's own timeouts must end it;
 * - refusal (`refuse()` / `accept()`): the listening socket is closed (new connections get
 *   ECONNREFUSED, open ones are reset) and opened again on the same port.
 * Bytes are forwarded unchanged (SigV4 signs the proxy's host, which is what the server sees).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface NetFaults {
  latencyMs?: number;
  jitterMs?: number;
  resetRatio?: number;
  blackhole?: boolean;
}

export interface FaultProxyStats {
  connections: number;
  chunks: number;
  delayed: number;
  resets: number;
  /** Connections that went dead in a black hole. */
  blackholed: number;
  /** Dead connections the client closed: its timeout fired (the proxy never closes them). */
  abandoned: number;
  /** Connection attempts refused while the proxy did not listen cannot be counted; windows are. */
  refusals: number;
}

export interface FaultProxy {
  url: string;
  port: number;
  stats: FaultProxyStats;
  set(f: NetFaults): void;
  /** Stops listening: connections are refused (and open ones reset) until accept(). */
  refuse(): Promise<void>;
  accept(): Promise<void>;
  close(): Promise<void>;
}

/** `upstream`: an http(s) URL or host:port of the server behind the proxy. */
export async function startFaultProxy(upstream: string, initial: NetFaults = {}): Promise<FaultProxy> {
  const u = new URL(upstream.includes('://') ? upstream : `tcp://${upstream}`);
  const upPort = Number(u.port || 80);
  let faults: NetFaults = { ...initial };
  const stats: FaultProxyStats = { connections: 0, chunks: 0, delayed: 0, resets: 0, blackholed: 0, abandoned: 0, refusals: 0 };
  const sockets = new Set<Socket>();

  const onConnection = (client: Socket) => {
    stats.connections++;
    sockets.add(client);
    let dead = false; // black-holed: drop everything, close nothing
    let up: Socket | undefined;
    const end = () => {
      client.destroy();
      up?.destroy();
      sockets.delete(client);
      if (up) sockets.delete(up);
    };
    const holed = () => {
      if (dead) return true;
      if (!faults.blackhole) return false;
      dead = true;
      stats.blackholed++;
      return true;
    };
    client.on('error', end);
    client.on('close', () => {
      if (dead) stats.abandoned++;
      sockets.delete(client);
      up?.destroy();
    });
    if (holed()) return; // accepted; nothing will ever come back
    up = connect(upPort, u.hostname);
    sockets.add(up);
    up.on('error', () => (dead ? undefined : end()));
    up.on('close', () => (dead ? undefined : end()));
    let resetAtReply = false;
    up.on('data', (chunk: Buffer) => {
      if (holed()) return;
      if (resetAtReply) {
        stats.resets++;
        client.resetAndDestroy();
        up!.destroy();
        return;
      }
      client.write(chunk);
    });
    // Chunks leave strictly in order: a delayed chunk holds everything behind it.
    let chain = Promise.resolve();
    client.on('data', (chunk: Buffer) => {
      stats.chunks++;
      const delay = Math.max(0, (faults.latencyMs ?? 0) + (Math.random() * 2 - 1) * (faults.jitterMs ?? 0));
      const reset = Math.random() < (faults.resetRatio ?? 0);
      chain = chain.then(async () => {
        if (delay > 0) {
          stats.delayed++;
          await new Promise((r) => setTimeout(r, delay));
        }
        if (holed() || up!.destroyed) return;
        if (reset) resetAtReply = true;
        up!.write(chunk);
      });
    });
  };

  let server: Server = createServer(onConnection);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const port = await listen(0);
  let listening = true;

  return {
    url: `${u.protocol === 'tcp:' ? 'tcp:' : 'http:'}//127.0.0.1:${port}`,
    port,
    stats,
    set(f) {
      faults = { ...f };
    },
    async refuse() {
      if (!listening) return;
      listening = false;
      stats.refusals++;
      await new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.resetAndDestroy();
        sockets.clear();
      });
    },
    async accept() {
      if (listening) return;
      server = createServer(onConnection);
      await listen(port);
      listening = true;
    },
    async close() {
      for (const s of sockets) s.destroy();
      if (listening) await new Promise((r) => server.close(r));
      listening = false;
    },
  };
}
