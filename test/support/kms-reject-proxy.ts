/**
 * An HTTP proxy in front of the local KMS server that answers chosen requests itself with a KMS
 * error (as AWS KMS would answer them) and forwards everything else unchanged. A pipeline test
 * points a campaign's `provider.endpoint` at it to make KMS refuse one item, over real HTTP with
 * the real SDK, without touching the server.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KmsRejectProxy {
  url: string;
  /** Requests answered with an error so far. */
  rejected: number;
  close(): Promise<void>;
}

/** `reject` sees the operation (X-Amz-Target) and the JSON body; a returned error is the answer. */
export type RejectRule = (target: string, body: string) => { name: string; message: string; status?: number } | undefined;

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function startKmsRejectProxy(upstream: string, reject: RejectRule): Promise<KmsRejectProxy> {
  const proxy: KmsRejectProxy = { url: '', rejected: 0, close: async () => undefined };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await bodyOf(req);
      const error = reject(String(req.headers['x-amz-target'] ?? ''), body.toString('utf8'));
      if (error) {
        proxy.rejected++;
        res.writeHead(error.status ?? 400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': `reject-proxy-${proxy.rejected}` });
        res.end(JSON.stringify({ __type: error.name, message: error.message }));
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length' && k !== 'connection') headers[k] = v;
      const up = await fetch(new URL(req.url ?? '/', upstream), { method: req.method, headers, body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body });
      const out = Buffer.from(await up.arrayBuffer());
      const relay: Record<string, string> = {};
      up.headers.forEach((v, k) => {
        if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection' && k !== 'content-encoding') relay[k] = v;
      });
      res.writeHead(up.status, relay);
      res.end(out);
    })().catch((err: unknown) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`kms reject proxy: ${(err as Error).message}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
