/**
 * Least privilege (issue 18, point 5), checked without any service: the AWS SDK commands the
 * shipped code can send are read from the source (`new XxxCommand(` of @aws-sdk/client-s3 and
 * client-kms in src/, scheduler/, workers/), each is assigned to the processes that send it
 * (SENDERS, checked against the import graph), mapped to IAM actions (COMMAND_ACTIONS, which
 * fails on a command it does not know), and deploy/aws/'s policy for each process must grant
 * exactly those actions: every one that is sent, and nothing else.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const POLICIES = join(ROOT, 'deploy/aws');

/** Dev-only code lives in dev/ (the demo, the reference client, the test KMS server), never scanned; nothing in src/ is excluded. */
const NOT_DEPLOYED: string[] = [];

type Role = 'worker' | 'scheduler' | 'scheduler-canary' | 'api' | 'operator' | 'object-lock' | 'noncurrent-deletion';

/** Where each role's process starts: every file a role is said to send from must be reachable. */
const ENTRY: Record<Role, string> = {
  worker: 'workers/worker.ts',
  scheduler: 'scheduler/scheduler.ts',
  'scheduler-canary': 'scheduler/scheduler.ts',
  api: 'src/cli/api-command.ts',
  operator: 'src/cli/main.ts',
  'object-lock': 'workers/worker.ts',
  'noncurrent-deletion': 'scheduler/scheduler.ts',
};

/** The policy documents granting each role's actions (variants are separate documents). */
const POLICY_FILES: Record<Role, string[]> = {
  worker: ['iam-worker.json'],
  scheduler: ['iam-scheduler.json'],
  'scheduler-canary': ['iam-scheduler-canary.json'],
  api: ['iam-api.json'],
  operator: ['iam-operator.json'],
  'object-lock': ['iam-store-object-lock.json'],
  'noncurrent-deletion': ['iam-noncurrent-version-deletion.json', 'iam-noncurrent-version-deletion-governance.json'],
};

/**
 * IAM actions a command needs (AWS "Actions, resources, and condition keys" for S3 and KMS).
 * A command missing here fails the test: decide its actions before it ships.
 */
const COMMAND_ACTIONS: Record<string, string[]> = {
  's3:HeadObject': ['s3:GetObject'],
  's3:GetObject': ['s3:GetObject'],
  's3:PutObject': ['s3:PutObject'],
  's3:CopyObject': ['s3:GetObject', 's3:PutObject'],
  's3:CreateMultipartUpload': ['s3:PutObject'],
  's3:UploadPartCopy': ['s3:GetObject', 's3:PutObject'],
  's3:CompleteMultipartUpload': ['s3:PutObject'],
  's3:AbortMultipartUpload': ['s3:AbortMultipartUpload'],
  's3:GetObjectTagging': ['s3:GetObjectTagging'],
  's3:PutObjectTagging': ['s3:PutObjectTagging'],
  's3:DeleteObject': ['s3:DeleteObject'],
  's3:ListObjectsV2': ['s3:ListBucket'],
  's3:ListObjectVersions': ['s3:ListBucketVersions'],
  's3:GetBucketVersioning': ['s3:GetBucketVersioning'],
  's3:PutObjectLegalHold': ['s3:PutObjectLegalHold'],
  's3:PutObjectRetention': ['s3:PutObjectRetention'],
  'kms:ReEncrypt': ['kms:ReEncryptFrom', 'kms:ReEncryptTo'],
  'kms:Decrypt': ['kms:Decrypt'],
  'kms:DescribeKey': ['kms:DescribeKey'],
  'kms:CreateKey': ['kms:CreateKey'],
  'kms:RotateKeyOnDemand': ['kms:RotateKeyOnDemand'],
  'kms:DisableKey': ['kms:DisableKey'],
  'kms:ListAliases': ['kms:ListAliases'],
};

interface Sender {
  roles: Role[];
  /** Actions when the call differs from the command's default (a VersionId needs *Version actions). */
  actions?: string[];
  /** Per role, when the roles need different actions for the same call (wins over `actions`). */
  actionsOf?: Partial<Record<Role, string[]>>;
  why: string;
}

const STORE: Role[] = ['worker', 'scheduler']; // workers, and the scheduler's canary, rewrite items
/**
 * A version read (HEAD or GET) in reports/noncurrent-versions.ts, by who makes it. By VersionId it
 * needs s3:GetObjectVersion; the sweep's delete step reads the current version too (s3:GetObject).
 * Only the deleting process decides on the object-lock headers, and S3 returns them only with
 * s3:GetObjectRetention / s3:GetObjectLegalHold (without them a lock reads as none, and S3 refuses
 * the delete: recorded as delete-refused).
 */
const VERSION_READ: Partial<Record<Role, string[]>> = {
  operator: ['s3:GetObjectVersion'],
  scheduler: ['s3:GetObject', 's3:GetObjectVersion'],
  'noncurrent-deletion': ['s3:GetObjectLegalHold', 's3:GetObjectRetention'],
};
/** `file#Command` → who sends it. A pair found in the code but not here fails, and so does a stale one. */
const SENDERS: Record<string, Sender> = {
  'src/stores/s3-null-version.ts#s3:GetBucketVersioning': { roles: STORE, why: 'a write in a versioning-suspended bucket must not replace an older null version' },
  'src/stores/s3-null-version.ts#s3:HeadObject': { roles: STORE, actions: ['s3:GetObjectVersion'], why: 'does the key have a null version (HEAD ?versionId=null), in suspended buckets only' },
  'src/stores/s3-envelope-store.ts#s3:HeadObject': { roles: [...STORE, 'operator'], why: 'reads an item (kek retire --full re-reads every item)' },
  'src/stores/s3-instruction-placement.ts#s3:GetObject': { roles: [...STORE, 'operator'], why: 'reads an instruction file' },
  'src/stores/s3-instruction-placement.ts#s3:PutObject': { roles: STORE, why: 'conditional write of an instruction file' },
  'src/stores/s3-metadata-placement.ts#s3:CopyObject': { roles: STORE, why: 'conditional self-copy with the new envelope' },
  'src/stores/s3-multipart-copy.ts#s3:CreateMultipartUpload': { roles: STORE, why: 'large-object copy' },
  'src/stores/s3-multipart-copy.ts#s3:UploadPartCopy': { roles: STORE, why: 'large-object copy' },
  'src/stores/s3-multipart-copy.ts#s3:HeadObject': { roles: STORE, why: 'ETag re-check before completing' },
  'src/stores/s3-multipart-copy.ts#s3:CompleteMultipartUpload': { roles: STORE, why: 'large-object copy' },
  'src/stores/s3-multipart-copy.ts#s3:AbortMultipartUpload': { roles: STORE, why: 'cleanup of a failed copy' },
  'src/stores/s3-tags.ts#s3:GetObjectTagging': { roles: STORE, why: 'tags kept across a self-copy' },
  'src/stores/s3-tags.ts#s3:PutObjectTagging': { roles: STORE, why: 'tags put back after a self-copy (RGW)' },
  'src/stores/s3-uncopyable.ts#s3:GetObject': { roles: STORE, why: 'archived-object check' },
  'src/stores/s3-uncopyable.ts#s3:HeadObject': { roles: STORE, why: 'requester-pays check' },
  'src/stores/s3-content-check.ts#s3:GetObject': { roles: ['scheduler'], why: "the canary decrypts an object's payload" },
  'src/stores/s3-capabilities.ts#s3:HeadObject': { roles: STORE, why: 'capability probe (.rewrap-probe/)' },
  'src/stores/s3-capabilities.ts#s3:PutObject': { roles: STORE, why: 'capability probe' },
  'src/stores/s3-capabilities.ts#s3:CopyObject': { roles: STORE, why: 'capability probe' },
  'src/stores/s3-capabilities.ts#s3:CreateMultipartUpload': { roles: STORE, why: 'capability probe' },
  'src/stores/s3-capabilities.ts#s3:UploadPartCopy': { roles: STORE, why: 'capability probe' },
  'src/stores/s3-capabilities.ts#s3:CompleteMultipartUpload': { roles: STORE, why: 'capability probe' },
  'src/stores/s3-capabilities.ts#s3:AbortMultipartUpload': { roles: STORE, why: 'capability probe cleanup' },
  'src/stores/s3-capabilities.ts#s3:ListObjectVersions': { roles: STORE, why: "capability probe cleanup: the probe object's versions" },
  'src/stores/s3-capabilities.ts#s3:DeleteObject': { roles: STORE, actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'], why: 'capability probe cleanup (by VersionId in a versioned bucket)' },
  'src/sources/s3-list-source.ts#s3:ListObjectsV2': { roles: ['scheduler', 'operator'], why: 'planning; campaign create --dry-run' },
  'src/sources/instruction-files.ts#s3:HeadObject': { roles: ['scheduler', 'operator'], why: 'planning: is a .instruction object an instruction file' },
  'src/sources/s3-inventory-manifest.ts#s3:GetObject': { roles: ['scheduler', 'operator'], why: 'S3 Inventory manifest (campaign create checks it)' },
  'src/sources/s3-inventory-file.ts#s3:GetObject': { roles: ['scheduler', 'operator'], why: 'S3 Inventory data files' },
  'src/kek/kms-kek-provider.ts#kms:ReEncrypt': { roles: STORE, why: 'the rewrap itself' },
  'src/kek/kms-kek-provider.ts#kms:DescribeKey': { roles: STORE, why: "resolves a destination alias to check ReEncrypt's KeyId" },
  'src/kek/kms-kek-provider.ts#kms:Decrypt': { roles: ['scheduler-canary'], why: 'the canary unwraps a moved DEK under the destination key' },
  'src/kek/kms-kek-admin.ts#kms:DescribeKey': { roles: ['scheduler', 'operator'], why: "scheduled rotation: the current key material; kek retire: the retired key's id and ARN" },
  'src/kek/kms-kek-admin.ts#kms:ListAliases': { roles: ['operator'], why: "kek retire: the retired key's aliases (items may record the key by one)" },
  'src/kek/kms-kek-admin.ts#kms:RotateKeyOnDemand': { roles: ['scheduler'], why: 'scheduled rotation: rotate-on-demand' },
  'src/kek/kms-kek-admin.ts#kms:CreateKey': { roles: ['scheduler'], why: 'scheduled rotation: a new key' },
  'src/kek/kms-kek-admin.ts#kms:DisableKey': { roles: ['operator'], why: 'kek retire' },
  'src/kek/kms-kek-admin.ts#kms:Decrypt': { roles: ['operator'], why: 'kek retire: a sample of moved items unwraps under the new key' },
  // The noncurrent sweep (src/campaign/noncurrent-sweep.ts) runs in the scheduler for every
  // campaign with an S3 bucket in scope, whatever its noncurrentVersions mode, through the same
  // reader as the exposure report and kek retire: the scheduler sends all four.
  'src/reports/noncurrent-versions.ts#s3:GetBucketVersioning': { roles: ['operator', 'scheduler'], why: 'exposure report; kek retire: versioned buckets block; the sweep: is the bucket versioned' },
  'src/reports/noncurrent-versions.ts#s3:ListObjectVersions': { roles: ['operator', 'scheduler'], why: 'exposure report, kek retire and the sweep: noncurrent versions' },
  'src/reports/noncurrent-versions.ts#s3:GetObject': {
    roles: ['operator', 'scheduler', 'noncurrent-deletion'],
    actionsOf: VERSION_READ,
    why: "a version's instruction file (by VersionId); the sweep's delete step also re-reads the current version (no VersionId)",
  },
  'src/reports/noncurrent-versions.ts#s3:HeadObject': {
    roles: ['operator', 'scheduler', 'noncurrent-deletion'],
    actionsOf: VERSION_READ,
    why: "a version's metadata (by VersionId); the sweep's delete step also re-reads the current version (no VersionId)",
  },
  'src/reports/report-sink.ts#s3:HeadObject': { roles: ['operator'], why: 'campaign report --out s3://: never overwrite' },
  'src/stores/s3-object-lock.ts#s3:HeadObject': { roles: STORE, why: "reads the new version's lock settings" },
  'src/stores/s3-object-lock.ts#s3:PutObjectLegalHold': { roles: ['object-lock'], why: 'object lock kept on the new version (object-lock buckets)' },
  'src/stores/s3-object-lock.ts#s3:PutObjectRetention': { roles: ['object-lock'], why: 'object lock kept on the new version (object-lock buckets)' },
  'src/campaign/suspended-buckets.ts#s3:GetBucketVersioning': { roles: ['operator'], why: 'campaign create warns about versioning-suspended buckets' },
  'src/campaign/noncurrent-sweep.ts#s3:GetBucketVersioning': { roles: ['scheduler'], why: 'the sweep deletes a null version only while versioning is Enabled, read just before' },
  'src/campaign/noncurrent-sweep.ts#s3:DeleteObject': { roles: ['noncurrent-deletion'], actions: ['s3:DeleteObjectVersion', 's3:BypassGovernanceRetention'], why: 'noncurrent-version deletion, when enabled (governance bypass when enabled)' },
  'src/reports/report-sink.ts#s3:PutObject': { roles: ['operator'], why: 'campaign report --out s3://' },
  'src/reports/ledger-retention.ts#s3:HeadObject': { roles: ['operator'], why: 'ledger prune --archive s3://: the archive is read back (size, ETag) before any ledger row is deleted' },
};

/**
 * Senders a process's import graph reaches although the process never makes that call, and why
 * (the reachability above is a necessary condition only: a file is reached for its other exports).
 */
const NOT_SENT_BY: Record<'worker' | 'scheduler', Record<string, string>> = {
  worker: {
    'src/sources/s3-list-source.ts#s3:ListObjectsV2': 'src/runtime builds sources for the scheduler; a worker never plans',
    'src/sources/instruction-files.ts#s3:HeadObject': 'planning only (src/runtime)',
    'src/sources/s3-inventory-manifest.ts#s3:GetObject': 'planning only (src/runtime)',
    'src/sources/s3-inventory-file.ts#s3:GetObject': 'planning only (src/runtime)',
    'src/stores/s3-content-check.ts#s3:GetObject': 'the canary runs in the scheduler',
    'src/kek/kms-kek-provider.ts#kms:Decrypt': 'the canary unwrap runs in the scheduler',
    'src/kek/kms-kek-admin.ts#kms:DescribeKey': 'the KEK admin port serves scheduled rotation and kek retire, never a worker',
    'src/kek/kms-kek-admin.ts#kms:RotateKeyOnDemand': 'scheduled rotation (scheduler)',
    'src/kek/kms-kek-admin.ts#kms:CreateKey': 'scheduled rotation (scheduler)',
    'src/kek/kms-kek-admin.ts#kms:DisableKey': 'kek retire (operator)',
    'src/kek/kms-kek-admin.ts#kms:Decrypt': 'kek retire (operator)',
    'src/kek/kms-kek-admin.ts#kms:ListAliases': 'kek retire (operator)',
  },
  scheduler: {
    'src/kek/kms-kek-admin.ts#kms:DisableKey': 'kek retire (operator); the scheduler reaches the admin port for scheduled rotation',
    'src/kek/kms-kek-admin.ts#kms:Decrypt': "kek retire's sample (operator)",
    'src/kek/kms-kek-admin.ts#kms:ListAliases': "kek retire: the key's other names (operator)",
  },
};
/** The roles one process kind takes: its base policy and the variants attached to the same process. */
const PROCESS_ROLES: Record<'worker' | 'scheduler', Role[]> = {
  worker: ['worker', 'object-lock'],
  scheduler: ['scheduler', 'scheduler-canary', 'object-lock', 'noncurrent-deletion'],
};

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) return filesUnder(rel);
    return rel.endsWith('.ts') ? [rel] : [];
  });
}

/** `file#service:Operation` for every SDK command constructed in deployed code. */
function sentCommands(): Map<string, string> {
  const found = new Map<string, string>();
  for (const file of ['src', 'scheduler', 'workers'].flatMap(filesUnder)) {
    if (NOT_DEPLOYED.some((p) => file.startsWith(p))) continue;
    const text = readFileSync(join(ROOT, file), 'utf8');
    const imported = new Map<string, string>();
    for (const m of text.matchAll(/import\s*(?:type\s*)?\{([^}]*)\}\s*from\s*'@aws-sdk\/client-(s3|kms)'/g)) {
      for (const name of m[1]!.split(',').map((s) => s.trim().replace(/^type\s+/, '').split(/\s+as\s+/).pop()!)) if (name) imported.set(name, m[2]!);
    }
    for (const m of text.matchAll(/new\s+([A-Z]\w*)Command\(/g)) {
      const service = imported.get(`${m[1]}Command`);
      if (!service) throw new Error(`${file}: new ${m[1]}Command( is not imported from @aws-sdk/client-s3 or client-kms; teach this test where it comes from`);
      found.set(`${file}#${service}:${m[1]}`, file);
    }
  }
  return found;
}

/** Files reachable from `entry` through relative static and dynamic imports. */
function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const stack = [entry];
  while (stack.length) {
    const file = stack.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(join(ROOT, file), 'utf8');
    for (const m of text.matchAll(/(?:from\s*|import\s*\(\s*)'(\.{1,2}\/[^']+\.ts)'/g)) {
      stack.push(relative(ROOT, resolve(ROOT, dirname(file), m[1]!)));
    }
  }
  return seen;
}

interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Principal?: { AWS: string | string[] };
}
const list = <T,>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);
function statements(file: string): Statement[] {
  const doc = JSON.parse(readFileSync(join(POLICIES, file), 'utf8')) as { Statement: Statement[] };
  return doc.Statement;
}
function allowed(files: string[]): Set<string> {
  return new Set(files.flatMap(statements).filter((s) => s.Effect === 'Allow').flatMap((s) => list(s.Action)));
}
function needed(role: Role): Set<string> {
  const out = new Set<string>();
  for (const [key, s] of Object.entries(SENDERS)) {
    if (!s.roles.includes(role)) continue;
    const command = key.split('#')[1]!;
    for (const a of s.actionsOf?.[role] ?? s.actions ?? COMMAND_ACTIONS[command] ?? []) out.add(a);
  }
  return out;
}
const sorted = (s: Set<string>) => [...s].sort();

describe('IAM policies in deploy/aws/ (least privilege)', () => {
  const sent = sentCommands();

  it('every SDK command the deployed code sends has known IAM actions and known senders, and no sender entry is stale', () => {
    const unknownCommands = [...sent.keys()].map((k) => k.split('#')[1]!).filter((c) => !(c in COMMAND_ACTIONS));
    expect(unknownCommands, 'commands without an IAM mapping in COMMAND_ACTIONS').toEqual([]);
    expect([...sent.keys()].filter((k) => !(k in SENDERS)).sort(), 'sent but not in SENDERS').toEqual([]);
    expect(Object.keys(SENDERS).filter((k) => !sent.has(k)).sort(), 'in SENDERS but no longer sent').toEqual([]);
    expect(sent.size).toBeGreaterThan(30); // the scan finds the code, not nothing
  });

  it("each sender is reachable from its role's entry point (the table claims nothing the import graph rules out)", () => {
    const graphs = new Map<Role, Set<string>>();
    const unreachable: string[] = [];
    for (const [key, s] of Object.entries(SENDERS)) {
      const file = key.split('#')[0]!;
      for (const role of s.roles) {
        const g = graphs.get(role) ?? reachable(ENTRY[role]);
        graphs.set(role, g);
        if (!g.has(file)) unreachable.push(`${role}: ${file}`);
      }
    }
    expect(unreachable).toEqual([]);
    // The scan of the API's graph is what makes its deny-all policy safe to claim.
    expect([...sent.values()].some((f) => reachable(ENTRY.api).has(f))).toBe(true);
  });

  it('the long-running processes are traced the other way too: every sender their import graph reaches names them, or says why not', () => {
    const untraced: string[] = [];
    const stale: string[] = [];
    for (const kind of ['worker', 'scheduler'] as const) {
      const g = reachable(ENTRY[kind]);
      for (const [key, s] of Object.entries(SENDERS)) {
        const named = s.roles.some((r) => PROCESS_ROLES[kind].includes(r));
        if (g.has(key.split('#')[0]!) && !named && !(key in NOT_SENT_BY[kind])) untraced.push(`${kind}: ${key}`);
        if (key in NOT_SENT_BY[kind] && named) stale.push(`${kind}: ${key} is named in SENDERS and excused in NOT_SENT_BY`);
      }
      for (const key of Object.keys(NOT_SENT_BY[kind])) if (!(key in SENDERS)) stale.push(`${kind}: ${key} is no longer a sender`);
    }
    expect(untraced, 'senders a process reaches without naming it (add its role, or say why in NOT_SENT_BY)').toEqual([]);
    expect(stale).toEqual([]);
  });

  for (const role of Object.keys(POLICY_FILES) as Role[]) {
    it(`${role}: the policy grants exactly the actions its process sends`, () => {
      expect(sorted(allowed(POLICY_FILES[role]))).toEqual(sorted(needed(role)));
    });
  }

  it('the API sends no AWS request and its policy denies every S3 and KMS action', () => {
    expect(needed('api').size).toBe(0);
    const deny = statements('iam-api.json').filter((s) => s.Effect === 'Deny').flatMap((s) => list(s.Action));
    expect(deny.sort()).toEqual(['kms:*', 's3:*']);
  });

  it('KMS: ReEncryptFrom only on the source key, ReEncryptTo and Decrypt only on the destination key; no kms:Decrypt in the base worker and scheduler policies', () => {
    const all = Object.values(POLICY_FILES).flat().flatMap(statements).filter((s) => s.Effect === 'Allow');
    const resourcesOf = (action: string) => new Set(all.filter((s) => list(s.Action).includes(action)).flatMap((s) => list(s.Resource)));
    expect(sorted(resourcesOf('kms:ReEncryptFrom'))).toEqual(['arn:aws:kms:REGION:ACCOUNT:key/SOURCE_KEY_ID']);
    expect(sorted(resourcesOf('kms:ReEncryptTo'))).toEqual(['arn:aws:kms:REGION:ACCOUNT:key/DESTINATION_KEY_ID']);
    expect(sorted(resourcesOf('kms:Decrypt'))).toEqual(['arn:aws:kms:REGION:ACCOUNT:key/DESTINATION_KEY_ID']);
    expect(allowed(['iam-worker.json']).has('kms:Decrypt')).toBe(false);
    expect(allowed(['iam-scheduler.json']).has('kms:Decrypt')).toBe(false);
  });

  it('no wildcard action is allowed, and only kms:CreateKey (which has no key yet) and kms:ListAliases (which IAM scopes to no resource) are granted on every resource', () => {
    for (const file of readdirSync(POLICIES).filter((f) => f.startsWith('iam-'))) {
      for (const s of statements(file).filter((x) => x.Effect === 'Allow')) {
        for (const a of list(s.Action)) expect(a, `${file} ${s.Sid}`).not.toMatch(/\*/);
        if (list(s.Resource).includes('*')) expect(['kms:CreateKey', 'kms:ListAliases'], `${file} ${s.Sid}`).toEqual(expect.arrayContaining(list(s.Action)));
      }
    }
  });

  it('the key-policy snippets give each role on each key what its IAM policy uses there, and nothing else', () => {
    const principalActions = (file: string) => {
      const m = new Map<string, Set<string>>();
      for (const s of statements(file)) {
        for (const p of list(s.Principal!.AWS)) {
          const role = /role\/rewrap-(\w+)$/.exec(p)![1]!;
          const set = m.get(role) ?? new Set<string>();
          for (const a of list(s.Action)) set.add(a);
          m.set(role, set);
        }
      }
      return m;
    };
    /** KMS actions a role's policies allow on one key. */
    const onKey = (files: string[], keyArn: string) =>
      new Set(files.flatMap(statements).filter((s) => s.Effect === 'Allow' && list(s.Resource).includes(keyArn)).flatMap((s) => list(s.Action)).filter((a) => a.startsWith('kms:')));
    const SRC = 'arn:aws:kms:REGION:ACCOUNT:key/SOURCE_KEY_ID';
    const DST = 'arn:aws:kms:REGION:ACCOUNT:key/DESTINATION_KEY_ID';
    const roles = { worker: POLICY_FILES.worker, scheduler: [...POLICY_FILES.scheduler, ...POLICY_FILES['scheduler-canary']], operator: POLICY_FILES.operator };
    for (const [file, key] of [['kms-key-policy-source.json', SRC], ['kms-key-policy-destination.json', DST]] as const) {
      const granted = principalActions(file);
      for (const [role, files] of Object.entries(roles)) {
        expect(sorted(granted.get(role) ?? new Set()), `${file}: ${role}`).toEqual(sorted(onKey(files, key)));
      }
    }
  });

  it('the documented extras (SSE-KMS buckets, object lock, noncurrent-version deletion) are separate documents that grant only their own actions', () => {
    expect(sorted(allowed(['iam-store-sse-kms.json']))).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(statements('iam-store-sse-kms.json')[0]).toMatchObject({ Condition: { StringEquals: { 'kms:ViaService': 's3.REGION.amazonaws.com' } } });
    expect(sorted(allowed(['iam-store-object-lock.json']))).toEqual(['s3:PutObjectLegalHold', 's3:PutObjectRetention']);
    // Listing and reading versions is the base scheduler's (the sweep runs in every mode); deleting adds these.
    expect(sorted(allowed(['iam-noncurrent-version-deletion.json']))).toEqual(['s3:DeleteObjectVersion', 's3:GetObjectLegalHold', 's3:GetObjectRetention']);
    expect(sorted(allowed(['iam-noncurrent-version-deletion-governance.json']))).toEqual(['s3:BypassGovernanceRetention']);
  });
});
