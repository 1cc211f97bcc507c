/**
 * The local KMS-compatible server, exercised only through @aws-sdk/client-kms over real HTTP
 * (plus fetch for the admin endpoints and protocol edge cases), and as a separate process.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  ListAliasesCommand,
  ListKeysCommand,
  ReEncryptCommand,
  RotateKeyOnDemandCommand,
  type KMSClient,
} from '@aws-sdk/client-kms';
import { startKmsServer, TEST_SERVER_HEADER, type KmsServer } from '../dev/kms-server/server.ts';
import { createKmsClient } from '../src/kek/kms-client.ts';

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };
const clientFor = (url: string) => createKmsClient({ endpoint: url, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });

async function kmsErrorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as Error).name;
  }
  throw new Error('expected the KMS call to fail');
}

let server: KmsServer;
let kms: KMSClient;
const tmp = mkdtempSync(join(tmpdir(), 'rewrap-kms-server-'));

async function newKey(client = kms): Promise<{ keyId: string; arn: string; material: string }> {
  const out = await client.send(new CreateKeyCommand({ Description: 'test key' }));
  const m = out.KeyMetadata!;
  return { keyId: m.KeyId!, arn: m.Arn!, material: m.CurrentKeyMaterialId! };
}

/** The admin routes, with the server's admin token. */
function admin(s: { url: string; adminToken: string }, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${s.url}/__admin/${path}`, { ...init, headers: { authorization: `Bearer ${s.adminToken}` } });
}

async function setFaultsOverHttp(s: { url: string; adminToken: string }, faults: object): Promise<void> {
  const res = await admin(s, 'faults', { method: 'POST', body: JSON.stringify(faults) });
  expect(res.status, await res.clone().text()).toBe(200);
}

beforeAll(async () => {
  server = await startKmsServer({ port: 0, region: REGION });
  kms = clientFor(server.url);
});

afterAll(async () => {
  kms?.destroy();
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('keys and ciphertexts', () => {
  it('CreateKey makes an enabled symmetric key whose ARN, state and key material DescribeKey reports', async () => {
    const key = await newKey();
    expect(key.keyId).toMatch(/^[0-9a-f-]{36}$/);
    expect(key.arn).toBe(`arn:aws:kms:${REGION}:111122223333:key/${key.keyId}`);
    const d = (await kms.send(new DescribeKeyCommand({ KeyId: key.arn }))).KeyMetadata!;
    expect(d).toMatchObject({ KeyId: key.keyId, KeyState: 'Enabled', Enabled: true, KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT' });
    expect(d.CurrentKeyMaterialId).toMatch(/^[0-9a-f]{64}$/);
    expect(d.CreationDate).toBeInstanceOf(Date);
    const keys = (await kms.send(new ListKeysCommand({}))).Keys!;
    expect(keys).toContainEqual({ KeyId: key.keyId, KeyArn: key.arn });
  });

  it('Encrypt then Decrypt without a KeyId round-trips under the same context, in any key order', async () => {
    const key = await newKey();
    const plaintext = randomBytes(32);
    const enc = await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: plaintext, EncryptionContext: { a: '1', b: '2', '10': 'x' } }));
    expect(enc.KeyId).toBe(key.arn);
    expect(enc).not.toHaveProperty('KeyMaterialId', expect.anything()); // AWS Encrypt does not report it
    expect(Buffer.from(enc.CiphertextBlob!).includes(plaintext)).toBe(false);
    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: { '10': 'x', b: '2', a: '1' } }));
    expect(Buffer.from(dec.Plaintext!).equals(plaintext)).toBe(true);
    expect(dec.KeyId).toBe(key.arn);
    expect(dec.KeyMaterialId).toBe(key.material);
  });

  it('a wrong, missing or extra encryption context and a tampered blob are InvalidCiphertextException', async () => {
    const key = await newKey();
    const blob = (await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(32), EncryptionContext: { bucket: 'b1' } })))
      .CiphertextBlob!;
    expect(await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { bucket: 'b2' } })))).toBe('InvalidCiphertextException');
    expect(await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: blob })))).toBe('InvalidCiphertextException');
    expect(await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { bucket: 'b1', x: 'y' } })))).toBe(
      'InvalidCiphertextException',
    );
    for (const at of [5, 30, 70, blob.length - 1]) {
      const tampered = Buffer.from(blob);
      tampered[at]! ^= 0x01;
      const name = await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: { bucket: 'b1' } })));
      expect(name, `byte ${at} flipped`).toBe('InvalidCiphertextException');
    }
    expect(await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: randomBytes(120) })))).toBe('InvalidCiphertextException');
  });

  it('GenerateDataKey returns a data key of the requested size that Decrypt gives back', async () => {
    const key = await newKey();
    const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: key.keyId, KeySpec: 'AES_256', EncryptionContext: { k: 'v' } }));
    expect(dk.Plaintext).toHaveLength(32);
    expect(dk.KeyMaterialId).toBe(key.material);
    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { k: 'v' } }));
    expect(Buffer.from(dec.Plaintext!).equals(Buffer.from(dk.Plaintext!))).toBe(true);
    expect((await kms.send(new GenerateDataKeyCommand({ KeyId: key.keyId, KeySpec: 'AES_128' }))).Plaintext).toHaveLength(16);
    expect((await kms.send(new GenerateDataKeyCommand({ KeyId: key.keyId, NumberOfBytes: 64 }))).Plaintext).toHaveLength(64);
    expect(await kmsErrorName(kms.send(new GenerateDataKeyCommand({ KeyId: key.keyId, NumberOfBytes: 32, KeySpec: 'AES_256' })))).toBe(
      'ValidationException',
    );
  });

  it('a disabled key refuses Encrypt, Decrypt, ReEncrypt and GenerateDataKey with DisabledException until enabled', async () => {
    const key = await newKey();
    const other = await newKey();
    const blob = (await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(32) }))).CiphertextBlob!;
    const otherBlob = (await kms.send(new EncryptCommand({ KeyId: other.keyId, Plaintext: randomBytes(32) }))).CiphertextBlob!;
    await kms.send(new DisableKeyCommand({ KeyId: key.keyId }));
    expect((await kms.send(new DescribeKeyCommand({ KeyId: key.keyId }))).KeyMetadata).toMatchObject({ KeyState: 'Disabled', Enabled: false });
    expect(await kmsErrorName(kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) })))).toBe('DisabledException');
    expect(await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: blob })))).toBe('DisabledException');
    expect(await kmsErrorName(kms.send(new GenerateDataKeyCommand({ KeyId: key.keyId, KeySpec: 'AES_256' })))).toBe('DisabledException');
    // disabled as the source and as the destination of a ReEncrypt
    expect(await kmsErrorName(kms.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: other.keyId })))).toBe('DisabledException');
    expect(await kmsErrorName(kms.send(new ReEncryptCommand({ CiphertextBlob: otherBlob, DestinationKeyId: key.keyId })))).toBe('DisabledException');
    await kms.send(new EnableKeyCommand({ KeyId: key.arn }));
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: blob }))).KeyId).toBe(key.arn);
  });

  it('an unknown key, alias or foreign-region ARN is NotFoundException', async () => {
    const id = randomUUID();
    expect(await kmsErrorName(kms.send(new EncryptCommand({ KeyId: id, Plaintext: randomBytes(8) })))).toBe('NotFoundException');
    expect(await kmsErrorName(kms.send(new DescribeKeyCommand({ KeyId: 'alias/does-not-exist' })))).toBe('NotFoundException');
    const key = await newKey();
    const foreign = key.arn.replace(`:${REGION}:`, ':eu-west-1:');
    expect(await kmsErrorName(kms.send(new DescribeKeyCommand({ KeyId: foreign })))).toBe('NotFoundException');
    const blob = (await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(32) }))).CiphertextBlob!;
    expect(await kmsErrorName(kms.send(new ReEncryptCommand({ CiphertextBlob: blob, DestinationKeyId: id })))).toBe('NotFoundException');
  });

  it('Decrypt with KeyId and ReEncrypt with SourceKeyId of another key are IncorrectKeyException', async () => {
    const a = await newKey();
    const b = await newKey();
    const blob = (await kms.send(new EncryptCommand({ KeyId: a.keyId, Plaintext: randomBytes(32), EncryptionContext: { c: '1' } }))).CiphertextBlob!;
    expect(await kmsErrorName(kms.send(new DecryptCommand({ CiphertextBlob: blob, KeyId: b.keyId, EncryptionContext: { c: '1' } })))).toBe(
      'IncorrectKeyException',
    );
    const wrongSource = new ReEncryptCommand({
      CiphertextBlob: blob,
      SourceKeyId: b.arn,
      DestinationKeyId: b.keyId,
      SourceEncryptionContext: { c: '1' },
      DestinationEncryptionContext: { c: '1' },
    });
    expect(await kmsErrorName(kms.send(wrongSource))).toBe('IncorrectKeyException');
  });

  it('RotateKeyOnDemand makes a new current material; old ciphertexts still decrypt and ReEncrypt reports both materials', async () => {
    const a = await newKey();
    const b = await newKey();
    const plaintext = randomBytes(32);
    const old = (await kms.send(new EncryptCommand({ KeyId: a.keyId, Plaintext: plaintext, EncryptionContext: { c: '1' } }))).CiphertextBlob!;
    expect((await kms.send(new RotateKeyOnDemandCommand({ KeyId: a.keyId }))).KeyId).toBe(a.keyId);
    const rotated = (await kms.send(new DescribeKeyCommand({ KeyId: a.keyId }))).KeyMetadata!.CurrentKeyMaterialId!;
    expect(rotated).toMatch(/^[0-9a-f]{64}$/);
    expect(rotated).not.toBe(a.material);

    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: old, EncryptionContext: { c: '1' } }));
    expect(Buffer.from(dec.Plaintext!).equals(plaintext)).toBe(true);
    expect(dec.KeyMaterialId).toBe(a.material);
    const fresh = (await kms.send(new EncryptCommand({ KeyId: a.keyId, Plaintext: plaintext }))).CiphertextBlob;
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: fresh }))).KeyMaterialId).toBe(rotated);

    // ReEncrypt within the same key moves the ciphertext from the old material to the new one
    const same = await kms.send(
      new ReEncryptCommand({ CiphertextBlob: old, SourceKeyId: a.keyId, DestinationKeyId: a.keyId, SourceEncryptionContext: { c: '1' }, DestinationEncryptionContext: { c: '1' } }),
    );
    expect(same).toMatchObject({ SourceKeyId: a.arn, KeyId: a.arn, SourceKeyMaterialId: a.material, DestinationKeyMaterialId: rotated });
    const cross = await kms.send(
      new ReEncryptCommand({ CiphertextBlob: old, SourceKeyId: a.arn, DestinationKeyId: b.arn, SourceEncryptionContext: { c: '1' }, DestinationEncryptionContext: { d: '2' } }),
    );
    expect(cross).toMatchObject({ SourceKeyId: a.arn, KeyId: b.arn, SourceKeyMaterialId: a.material, DestinationKeyMaterialId: b.material });
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: cross.CiphertextBlob, EncryptionContext: { d: '2' } }));
    expect(Buffer.from(back.Plaintext!).equals(plaintext)).toBe(true);
  });

  it('aliases resolve as alias/name and alias ARN where AWS accepts them, and can be listed and deleted', async () => {
    const key = await newKey();
    const name = `alias/test-${randomUUID()}`;
    await kms.send(new CreateAliasCommand({ AliasName: name, TargetKeyId: key.arn }));
    expect(await kmsErrorName(kms.send(new CreateAliasCommand({ AliasName: name, TargetKeyId: key.keyId })))).toBe('AlreadyExistsException');
    expect(await kmsErrorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/reserved', TargetKeyId: key.keyId })))).toBe(
      'InvalidAliasNameException',
    );
    const aliasArn = `arn:aws:kms:${REGION}:111122223333:${name}`;
    for (const ref of [name, aliasArn]) {
      const enc = await kms.send(new EncryptCommand({ KeyId: ref, Plaintext: randomBytes(16) }));
      expect(enc.KeyId).toBe(key.arn);
      expect((await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, KeyId: ref }))).KeyId).toBe(key.arn);
    }
    const listed = (await kms.send(new ListAliasesCommand({ KeyId: key.keyId }))).Aliases!;
    expect(listed).toEqual([expect.objectContaining({ AliasName: name, AliasArn: aliasArn, TargetKeyId: key.keyId })]);
    // EnableKey takes a key id or key ARN only, as in AWS
    expect(await kmsErrorName(kms.send(new EnableKeyCommand({ KeyId: name })))).toBe('NotFoundException');
    await kms.send(new DeleteAliasCommand({ AliasName: name }));
    expect(await kmsErrorName(kms.send(new EncryptCommand({ KeyId: name, Plaintext: randomBytes(8) })))).toBe('NotFoundException');
    expect(await kmsErrorName(kms.send(new DeleteAliasCommand({ AliasName: name })))).toBe('NotFoundException');
  });
});

describe('protocol', () => {
  it('requires an Authorization header, answers JSON 1.1 errors with __type, and sends x-amzn-RequestId every time', async () => {
    const headers = { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.ListKeys' };
    const unsigned = await fetch(server.url, { method: 'POST', headers, body: '{}' });
    expect(unsigned.status).toBe(400);
    expect(await unsigned.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
    expect(unsigned.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);

    const signed = await fetch(server.url, { method: 'POST', headers: { ...headers, authorization: 'AWS4-HMAC-SHA256 anything' }, body: '{}' });
    expect(signed.status).toBe(200);
    expect(signed.headers.get('content-type')).toBe('application/x-amz-json-1.1');
    expect(signed.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);

    const unknown = await fetch(server.url, {
      method: 'POST',
      headers: { ...headers, 'x-amz-target': 'TrentService.Nope', authorization: 'x' },
      body: '{}',
    });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({ __type: 'UnknownOperationException' });
  });
});

describe('faults', () => {
  it('throttle ratio 1.0, set over HTTP from another process, makes every call ThrottlingException; stats count them', async () => {
    const key = await newKey();
    await admin(server, 'stats/reset', { method: 'POST' });
    await setFaultsOverHttp(server, { throttleRatio: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        expect(await kmsErrorName(kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) })))).toBe('ThrottlingException');
      }
      const stats = await (await admin(server, 'stats')).json();
      expect(stats).toMatchObject({ requestsTotal: 5, requests: { Encrypt: 5 }, throttled: 5, throttledByOp: { Encrypt: 5 } });
    } finally {
      await setFaultsOverHttp(server, {});
    }
    await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) }));
    expect(server.stats().requests.Encrypt).toBe(6);
  });

  it('an rps limit lets a burst of its size through and throttles the rest', async () => {
    const key = await newKey();
    server.setFaults({ rpsLimit: 5 });
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, () => kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) }))),
      );
      const ok = results.filter((r) => r.status === 'fulfilled').length;
      const throttled = results.filter((r) => r.status === 'rejected' && (r.reason as Error).name === 'ThrottlingException').length;
      expect(ok + throttled).toBe(20);
      expect(ok).toBeGreaterThanOrEqual(5);
      expect(ok).toBeLessThanOrEqual(8); // 5 in the bucket, plus what refills while 20 requests arrive
    } finally {
      server.setFaults({});
    }
  });

  it('an outage window fails every call with 500 KMSInternalException (or 503) until cleared', async () => {
    const key = await newKey();
    await setFaultsOverHttp(server, { outageForMs: 60_000 });
    try {
      const err = await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) })).catch((e: unknown) => e as { name: string; $metadata: { httpStatusCode: number } });
      expect(err).toMatchObject({ name: 'KMSInternalException', $metadata: { httpStatusCode: 500 } });
      await setFaultsOverHttp(server, { outageForMs: 60_000, outageStatus: 503 });
      const res = await fetch(server.url, { method: 'POST', headers: { authorization: 'x', 'x-amz-target': 'TrentService.ListKeys' }, body: '{}' });
      expect(res.status).toBe(503);
    } finally {
      await setFaultsOverHttp(server, {});
    }
    await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) }));
  });

  it('added latency delays every KMS answer, and bad fault options are refused naming the field', async () => {
    server.setFaults({ latencyMs: 150 });
    try {
      const t0 = performance.now();
      await kms.send(new ListKeysCommand({}));
      expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
    } finally {
      server.setFaults({});
    }
    const bad = await admin(server, 'faults', { method: 'POST', body: JSON.stringify({ throttleRatio: 2 }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/throttleRatio must be a number from 0 to 1/);
  });
});

describe('the local KMS server says what it is (issue 15)', () => {
  it('admin routes without the admin token are 401 and change nothing', async () => {
    const before = await (await admin(server, 'faults')).json();
    for (const headers of [{}, { authorization: 'Bearer wrong-token-of-some-length' }, { authorization: `Basic ${server.adminToken}` }] as Record<string, string>[]) {
      const set = await fetch(`${server.url}/__admin/faults`, { method: 'POST', headers, body: JSON.stringify({ throttleRatio: 1 }) });
      expect(set.status).toBe(401);
      expect((await fetch(`${server.url}/__admin/stats`, { headers })).status).toBe(401);
    }
    expect(await (await admin(server, 'faults')).json()).toEqual(before);
    const key = await newKey();
    await kms.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) })); // not throttled
  });

  it('every response, KMS or admin, success or error, carries the test-server header', async () => {
    const ok = await fetch(server.url, { method: 'POST', headers: { authorization: 'x', 'x-amz-target': 'TrentService.ListKeys' }, body: '{}' });
    const err = await fetch(server.url, { method: 'POST', headers: { 'x-amz-target': 'TrentService.ListKeys' }, body: '{}' });
    const adminRes = await admin(server, 'stats');
    const unauthorized = await fetch(`${server.url}/__admin/stats`);
    for (const r of [ok, err, adminRes, unauthorized]) expect(r.headers.get(TEST_SERVER_HEADER)).toMatch(/development and tests.*never a key store for real data/);
  });

  it('listens on loopback only unless insecureListenAny (--insecure-listen-any)', async () => {
    await expect(startKmsServer({ host: '0.0.0.0' })).rejects.toThrow(/--host 0\.0\.0\.0 is not a loopback address.*--insecure-listen-any/);
    const any = await startKmsServer({ host: '0.0.0.0', insecureListenAny: true });
    await any.close();
  });
});

describe('state file', () => {
  it('is written through a fresh temporary file: a planted symlink at the old predictable name is never followed', async () => {
    const stateFile = join(tmp, 'kms-state-planted.json');
    const victim = join(tmp, 'victim.txt');
    writeFileSync(victim, 'do not overwrite\n');
    symlinkSync(victim, `${stateFile}.${process.pid}.tmp`);
    const s = await startKmsServer({ stateFile });
    const c = clientFor(s.url);
    try {
      await newKey(c);
    } finally {
      c.destroy();
      await s.close();
    }
    expect(readFileSync(victim, 'utf8')).toBe('do not overwrite\n');
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).keys).toHaveLength(1);
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    expect(readdirSync(tmp).filter((f) => f.startsWith('kms-state-planted.json.') && f !== `kms-state-planted.json.${process.pid}.tmp`)).toEqual([]);
  });


  it('a restarted server keeps keys, materials and aliases; the file is 0600 and no API returns key material', async () => {
    const stateFile = join(tmp, 'kms-state.json');
    const first = await startKmsServer({ stateFile });
    const c1 = clientFor(first.url);
    const key = await newKey(c1);
    await c1.send(new CreateAliasCommand({ AliasName: 'alias/kept', TargetKeyId: key.keyId }));
    const plaintext = randomBytes(32);
    const oldBlob = (await c1.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: plaintext, EncryptionContext: { c: '1' } }))).CiphertextBlob!;
    await c1.send(new RotateKeyOnDemandCommand({ KeyId: key.keyId }));
    const newBlob = (await c1.send(new EncryptCommand({ KeyId: 'alias/kept', Plaintext: plaintext }))).CiphertextBlob!;
    const current = (await c1.send(new DescribeKeyCommand({ KeyId: key.keyId }))).KeyMetadata!.CurrentKeyMaterialId;
    c1.destroy();
    await first.close();

    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    const second = await startKmsServer({ stateFile });
    const c2 = clientFor(second.url);
    try {
      expect((await c2.send(new DescribeKeyCommand({ KeyId: 'alias/kept' }))).KeyMetadata).toMatchObject({ KeyId: key.keyId, CurrentKeyMaterialId: current });
      const a = await c2.send(new DecryptCommand({ CiphertextBlob: oldBlob, EncryptionContext: { c: '1' } }));
      const b = await c2.send(new DecryptCommand({ CiphertextBlob: newBlob }));
      expect(Buffer.from(a.Plaintext!).equals(plaintext) && Buffer.from(b.Plaintext!).equals(plaintext)).toBe(true);
      expect([a.KeyMaterialId, b.KeyMaterialId]).toEqual([key.material, current]);

      // Key material lives only in the state file: no management API or admin answer carries it.
      const secrets = JSON.parse(readFileSync(stateFile, 'utf8')).keys.flatMap((k: { materials: { keyBase64: string }[] }) =>
        k.materials.map((m) => m.keyBase64),
      ) as string[];
      expect(secrets).toHaveLength(2);
      const raw: string[] = [];
      for (const [op, body] of [['DescribeKey', { KeyId: key.keyId }], ['ListKeys', {}], ['ListAliases', {}]] as const) {
        const res = await fetch(second.url, { method: 'POST', headers: { authorization: 'x', 'x-amz-target': `TrentService.${op}` }, body: JSON.stringify(body) });
        raw.push(await res.text());
      }
      raw.push(await (await admin(second, 'stats')).text(), await (await admin(second, 'faults')).text());
      for (const text of raw) {
        for (const s of secrets) {
          expect(text).not.toContain(s);
          expect(text).not.toContain(Buffer.from(s, 'base64').toString('hex'));
        }
      }
    } finally {
      c2.destroy();
      await second.close();
    }
  });
});

describe('as a separate process', () => {
  it('main.ts prints its url, serves the SDK, takes faults over HTTP, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'dev/kms-server/main.ts', '--port', '0', '--latency-ms', '1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`kms-server exited with ${code} before printing its url`)));
      });
      const { url, adminToken } = JSON.parse(line) as { url: string; adminToken: string };
      expect(adminToken).toMatch(/^[0-9a-f]{48}$/);
      const client = clientFor(url);
      try {
        const key = await newKey(client);
        await setFaultsOverHttp({ url, adminToken }, { throttleRatio: 1 });
        expect(await kmsErrorName(client.send(new EncryptCommand({ KeyId: key.keyId, Plaintext: randomBytes(8) })))).toBe('ThrottlingException');
        expect(await (await admin({ url, adminToken }, 'stats')).json()).toMatchObject({ throttled: 1, requests: { CreateKey: 1, Encrypt: 1 } });
      } finally {
        client.destroy();
      }
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
