/**
 * A SoftHSM2 token of its own for one test file: a token directory in a temp dir, named by a
 * SOFTHSM2_CONF written there (SoftHSM reads it at C_Initialize, once per process: set it before
 * the first token of the process is opened), initialised with `softhsm2-util --init-token --free`.
 * Test KEKs are imported from known bytes (C_CreateObject), so that independent code can unwrap
 * what the token wrapped: the token never hands them out.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { Pkcs11Token } from '../../src/kek/pkcs11-token.ts';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface TestToken {
  label: string;
  pin: string;
  conf: string;
  /** What a rewrap process needs in its environment to find and open the token. */
  env: Record<string, string>;
  /** The provider spec of a campaign on this token. */
  providerSpec: { type: 'pkcs11'; module: string; tokenLabel: string; pinEnv: string };
  /** A session-pooled handle on the token for the test's own setup calls. */
  token: Pkcs11Token;
  /** Imports `material` as the AES-256 token KEK labelled `<id>@<version>`. */
  importKek(id: string, version: string, material: Buffer): Promise<void>;
  attributes(label: string, types: number[]): Promise<Map<number, Buffer | Error>>;
  close(): void;
}

export const PIN_ENV = 'REWRAP_PKCS11_PIN';

/** `spareLabels`: more tokens initialised in the same directory (nobody logs in to them). */
export function initTestToken(label: string, spareLabels: string[] = []): TestToken {
  const dir = mkdtempSync(join(tmpdir(), `rewrap-softhsm-${label}-`));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const pin = randomBytes(6).toString('hex');
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  for (const l of [label, ...spareLabels]) {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', l, '--pin', pin, '--so-pin', randomBytes(6).toString('hex')], { env, stdio: 'pipe' });
  }
  process.env.SOFTHSM2_CONF = conf;
  const token = new Pkcs11Token({ module: SOFTHSM_MODULE, tokenLabel: label, pin, maxSessions: 3 });
  token.login();
  return {
    label,
    pin,
    conf,
    env: { SOFTHSM2_CONF: conf, [PIN_ENV]: pin },
    providerSpec: { type: 'pkcs11', module: SOFTHSM_MODULE, tokenLabel: label, pinEnv: PIN_ENV },
    token,
    async importKek(id, version, material) {
      await token.withSession((s) => {
        token.lib.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_VALUE, value: material },
          { type: pkcs11js.CKA_LABEL, value: `${id}@${version}` },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_WRAP, value: true },
          { type: pkcs11js.CKA_UNWRAP, value: true },
        ]);
      });
    },
    async attributes(label, types) {
      return token.withSession((s) => {
        const h = token.findKey(s, label);
        if (!h) throw new Error(`no key ${label}`);
        const out = new Map<number, Buffer | Error>();
        for (const t of types) {
          try {
            out.set(t, token.lib.C_GetAttributeValue(s, h, [{ type: t }])[0]!.value!);
          } catch (err) {
            out.set(t, err as Error);
          }
        }
        return out;
      });
    },
    close() {
      token.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** RFC 5649 (AESWrapPad) and RFC 3394 (AESWrap) with Node's OpenSSL: the independent side. */
const KW = { AESWrapPad: ['id-aes256-wrap-pad', 'A65959A6'], AESWrap: ['id-aes256-wrap', 'A6A6A6A6A6A6A6A6'] } as const;

export function keyWrap(alg: keyof typeof KW, kek: Buffer, dek: Buffer): Buffer {
  const c = createCipheriv(KW[alg][0], kek, Buffer.from(KW[alg][1], 'hex'));
  return Buffer.concat([c.update(dek), c.final()]);
}

/** Throws when `wrapped` does not unwrap under `kek` (the integrity check of the key wrap fails). */
export function keyUnwrap(alg: keyof typeof KW, kek: Buffer, wrapped: Buffer): Buffer {
  const d = createDecipheriv(KW[alg][0], kek, Buffer.from(KW[alg][1], 'hex'));
  return Buffer.concat([d.update(wrapped), d.final()]);
}
