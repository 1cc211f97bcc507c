/**
 * A requester-pays bucket as a non-owner sees it: in front of an S3 endpoint, every request
 * without `x-amz-request-payer: requester` gets AWS's 403 (bucket and object requests alike), the
 * rest is passed through. RGW never charges the bucket's owner (the test user), hence the front.
 * `seen` records each request and whether it was sent as requester. `objectsOnly`: only object
 * requests are refused (bucket requests such as a listing pass), as for a bucket whose listing one
 * is granted.
 */
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RequesterPaysFront {
  url: string;
  seen: { method: string; path: string; payer: boolean }[];
  close(): Promise<void>;
}

export async function requesterPaysFront(upstream: string, o: { objectsOnly?: boolean } = {}): Promise<RequesterPaysFront> {
  const up = new URL(upstream);
  const seen: RequesterPaysFront['seen'] = [];
  const server = createServer((req, res) => {
    const payer = req.headers['x-amz-request-payer'] === 'requester';
    seen.push({ method: req.method ?? '', path: req.url ?? '', payer });
    const objectRequest = /^\/[^/?]+\/[^?]/.test(req.url ?? '');
    if (!payer && (objectRequest || !o.objectsOnly)) {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end(req.method === 'HEAD' ? undefined : '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    const fwd = httpRequest({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
