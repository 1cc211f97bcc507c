/**
 * Issue 15: a KMS answer whose KeyId is not the requested destination key is rejected before
 * anything could be written. Two bad endpoints in front of the real local KMS server: one that
 * re-encrypts under another key (it rewrites DestinationKeyId on the way), one that is not KMS at
 * all (a metadata service answering any POST with a blob). The provider refuses both answers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateAliasCommand, CreateKeyCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startKmsServer, type KmsServer } from '../dev/kms-server/server.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';
import { kmsEncryptionContext, KmsKekProvider } from '../src/kek/kms-kek-provider.ts';
import type { WrappedDek } from '../src/core/kek-ref.ts';

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };
let kmsServer: KmsServer;
let kms: KMSClient;
let swapper: Server;
let rogue: Server;
const servers: Server[] = [];
let keyA: string;
let keyB: string;
let keyC: { id: string; arn: string };

async function newKey(): Promise<{ id: string; arn: string }> {
  const m = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
  return { id: m.KeyId!, arn: m.Arn! };
}

async function listen(s: Server): Promise<string> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const provider = (endpoint: string) => new KmsKekProvider(createKmsClient({ endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 }));

async function dekUnder(keyId: string): Promise<WrappedDek> {
  const dek: WrappedDek = { wrapAlg: 'kms+context', cekAlg: 'AES/GCM/NoPadding', wrapped: Buffer.alloc(0), matdesc: { kms_cmk_id: keyId } };
  const out = await kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: kmsEncryptionContext(dek) }));
  (out.Plaintext as Uint8Array).fill(0);
  return { ...dek, wrapped: Buffer.from(out.CiphertextBlob!) };
}

let swapperUrl: string;
let rogueUrl: string;

beforeAll(async () => {
  kmsServer = await startKmsServer({ region: REGION });
  kms = createKmsClient({ endpoint: kmsServer.url, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
  keyA = (await newKey()).id;
  keyB = (await newKey()).id;
  keyC = await newKey();
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/dest-c', TargetKeyId: keyC.id }));
  const upstream = new URL(kmsServer.url);
  // Forwards to the real KMS server, but asks it to encrypt under key B whatever the client asked.
  swapper = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      if ('DestinationKeyId' in body) body.DestinationKeyId = keyB;
      const text = JSON.stringify(body);
      const headers = { ...req.headers, 'content-length': String(Buffer.byteLength(text)), host: upstream.host };
      const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (r) => {
        res.writeHead(r.statusCode!, r.headers);
        r.pipe(res);
      });
      up.end(text);
    });
  });
  swapperUrl = await listen(swapper);
  // Not KMS: answers every request with a blob and no KeyId, as http://169.254.169.254/latest/ might.
  rogue = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify({ CiphertextBlob: Buffer.alloc(64, 7).toString('base64') })));
  rogueUrl = await listen(rogue);
});

afterAll(async () => {
  for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  await kmsServer?.close();
});

describe('a KMS answer not under the requested destination key is rejected (issue 15)', () => {
  it('an endpoint that re-encrypted under another key: rejected, naming the key it used; nothing is returned to write', async () => {
    const dek = await dekUnder(keyA);
    const err = await provider(swapperUrl).rewrap(dek, { id: keyA }, { id: keyC.id }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err, 'the rewrap returned a blob under the wrong key').toBeInstanceOf(Error);
    expect(err!.message).toMatch(new RegExp(`answered a ciphertext under ".*:key/${keyB}", not the requested destination key; nothing was written`));
  });

  it('an endpoint that is not KMS (a blob, no KeyId): rejected', async () => {
    const dek = await dekUnder(keyA);
    await expect(provider(rogueUrl).rewrap(dek, { id: keyA }, { id: keyC.id })).rejects.toThrow(/answered a ciphertext under no KeyId, not the requested destination key/);
  });

  it('the real KMS: the destination named by key id, ARN or alias is accepted', async () => {
    const p = provider(kmsServer.url);
    for (const to of [keyC.id, keyC.arn, 'alias/dest-c', keyC.arn.replace(/key\/.*$/, 'alias/dest-c')]) {
      const r = await p.rewrap(await dekUnder(keyA), { id: keyA }, { id: to });
      expect(r.wrapped.length, to).toBeGreaterThan(0);
    }
  });
});
