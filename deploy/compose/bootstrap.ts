/**
 * The compose stack's one-shot bootstrap (service `bootstrap`, development image): creates the
 * demo bucket in MinIO and two KMS keys in the local KMS server, `alias/rewrap-demo-old` and
 * `alias/rewrap-demo-new`, and prints a campaign spec over them. Safe to run again: what exists is
 * kept. Reads the same environment as rewrap (src/config.ts) plus the bucket name in argv.
 *
 *   node --import tsx deploy/compose/bootstrap.ts [bucket]
 */
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { CreateAliasCommand, CreateKeyCommand, ListAliasesCommand } from '@aws-sdk/client-kms';
import { loadConfig } from '../../src/config.ts';
import { createS3Client } from '../../src/stores/s3-client.ts';
import { createKmsClient } from '../../src/kek/kms-client.ts';

export const DEMO_BUCKET = 'rewrap-demo';
export const DEMO_ALIASES = { old: 'alias/rewrap-demo-old', new: 'alias/rewrap-demo-new' } as const;

async function main(bucket: string): Promise<void> {
  const config = loadConfig();
  const creds = (id?: string, secret?: string) => (id && secret ? { accessKeyId: id, secretAccessKey: secret } : undefined);
  const s3 = createS3Client({ ...config.s3, credentials: creds(config.s3.accessKeyId, config.s3.secretAccessKey) });
  const kms = createKmsClient({ ...config.kms, credentials: creds(config.kms.accessKeyId, config.kms.secretAccessKey) });
  try {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: bucket }));
      console.log(`bucket ${bucket}: exists`);
    } catch {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      console.log(`bucket ${bucket}: created`);
    }
    const aliases = (await kms.send(new ListAliasesCommand({}))).Aliases ?? [];
    const keys: Record<string, string> = {};
    for (const [which, alias] of Object.entries(DEMO_ALIASES)) {
      const found = aliases.find((a) => a.AliasName === alias);
      if (found?.TargetKeyId) {
        keys[which] = found.TargetKeyId;
        console.log(`${alias}: exists (${found.TargetKeyId})`);
        continue;
      }
      const key = (await kms.send(new CreateKeyCommand({ Description: `rewrap compose demo: ${which} KEK` }))).KeyMetadata!;
      await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: key.KeyId! }));
      keys[which] = key.KeyId!;
      console.log(`${alias}: created (${key.KeyId})`);
    }
    const spec = {
      name: 'compose demo',
      kind: 'routine',
      sources: [{ type: 's3', bucket, placement: 'auto' }],
      provider: { type: 'kms' },
      from: keys.old,
      to: keys.new,
    };
    console.log(`a campaign spec over them:\n${JSON.stringify(spec, null, 2)}`);
  } finally {
    s3.destroy();
    kms.destroy();
  }
}

main(process.argv[2] ?? DEMO_BUCKET).catch((err: unknown) => {
  console.error(`bootstrap failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
