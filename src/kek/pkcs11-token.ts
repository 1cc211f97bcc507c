/**
 * One PKCS#11 token as a process uses it: the module loaded and initialised once per process
 * (C_Initialize is per process, not per token), one login (C_Login once: the login state belongs
 * to the application and lasts while any of its sessions with the token is open, so the session
 * that logged in is kept open for the token's life), and a pool of sessions (a session runs one
 * operation at a time; up to `maxSessions` run at once, further callers wait in line).
 * KEK handles are looked up by label once and cached; a stale handle (the object was re-created)
 * is a transient error that drops the cache.
 */
import pkcs11js from 'pkcs11js';
import type { Handle, Mechanism, PKCS11, Template } from 'pkcs11js';
import { ConfigError } from '../core/errors.ts';
import { CKR, ckrOf, classifyPkcs11Error, sessionIsSpent } from './pkcs11-errors.ts';

export interface Pkcs11TokenOptions {
  /** Path of the PKCS#11 module (.so), e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  /** The slot id, or ... */
  slot?: number;
  /** ... the token label (as `softhsm2-util --init-token --label` set it). */
  tokenLabel?: string;
  /** The user PIN (CKU_USER). Read from the environment variable the spec names, never stored. */
  pin: string;
  /** Sessions open at once; also the token operations in flight. */
  maxSessions: number;
}

/** Loaded modules of this process, by path: C_Initialize once, C_Finalize when the last token closes. */
const modules = new Map<string, { lib: PKCS11; users: number }>();

function loadModule(path: string): PKCS11 {
  let m = modules.get(path);
  if (!m) {
    const lib = new pkcs11js.PKCS11();
    try {
      lib.load(path);
    } catch (err) {
      throw new ConfigError(`PKCS#11 module ${path} cannot be loaded (${(err as Error).message}); check provider.module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)`, { cause: err });
    }
    try {
      /* CKF_OS_LOCKING_OK: sessions are used from libuv's thread pool (the *Async calls). */
      lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckrOf(err) !== CKR.CRYPTOKI_ALREADY_INITIALIZED) throw classifyPkcs11Error(err, `C_Initialize of ${path}`);
    }
    m = { lib, users: 0 };
    modules.set(path, m);
  }
  m.users++;
  return m.lib;
}

function releaseModule(path: string): void {
  const m = modules.get(path);
  if (!m || --m.users > 0) return;
  modules.delete(path);
  try {
    m.lib.C_Finalize();
  } catch {
    /* finalising at shutdown: nothing left to do about an error */
  }
}

const handleNumber = (h: Handle): bigint => (h.length >= 8 ? h.readBigUInt64LE(0) : BigInt(h.readUInt32LE(0)));

export class Pkcs11Token {
  readonly lib: PKCS11;
  readonly slot: Handle;
  readonly name: string;
  readonly #opts: Pkcs11TokenOptions;
  readonly #idle: Handle[] = [];
  readonly #waiters: ((s: Handle) => void)[] = [];
  #open = 0;
  #loginSession?: Handle;
  #closed = false;
  readonly #keys = new Map<string, Handle>();
  readonly #mechanisms = new Map<number, { wrap: boolean; unwrap: boolean }>();

  constructor(opts: Pkcs11TokenOptions) {
    this.#opts = opts;
    this.lib = loadModule(opts.module);
    try {
      const { slot, name } = findSlot(this.lib, opts);
      this.slot = slot;
      this.name = name;
    } catch (err) {
      releaseModule(opts.module);
      throw err;
    }
  }

  /** Opens the login session and logs in; throws ConfigError on a wrong PIN or token. Idempotent. */
  login(): void {
    if (this.#loginSession) return;
    const s = this.#openSession();
    try {
      this.lib.C_Login(s, pkcs11js.CKU_USER, this.#opts.pin);
    } catch (err) {
      if (ckrOf(err) !== CKR.USER_ALREADY_LOGGED_IN) {
        this.#closeSession(s);
        throw classifyPkcs11Error(err, `C_Login to token ${this.name}`);
      }
    }
    this.#loginSession = s;
    this.#idle.push(s);
  }

  /**
   * Runs `fn` with a session of its own. A session that saw a transient error (or any error
   * that is not a PKCS#11 answer) is closed, not reused; a lost login is redone on next use.
   */
  async withSession<T>(fn: (session: Handle) => Promise<T> | T): Promise<T> {
    if (this.#closed) throw new Error(`PKCS#11 token ${this.name} is closed`);
    this.login();
    const s = await this.#acquire();
    let spent = false;
    try {
      return await fn(s);
    } catch (err) {
      spent = sessionIsSpent(err) && s !== this.#loginSession;
      const code = ckrOf(err);
      if (code === CKR.USER_NOT_LOGGED_IN || code === CKR.SESSION_HANDLE_INVALID || code === CKR.SESSION_CLOSED) this.#relogin();
      if (code === CKR.KEY_HANDLE_INVALID || code === CKR.OBJECT_HANDLE_INVALID || code === CKR.WRAPPING_KEY_HANDLE_INVALID || code === CKR.UNWRAPPING_KEY_HANDLE_INVALID) {
        this.#keys.clear();
      }
      throw err;
    } finally {
      if (spent) {
        this.#closeSession(s);
        this.#open--;
        this.#wakeWithNewSession();
      } else {
        this.#release(s);
      }
    }
  }

  /** The handle of the secret-key token object labelled `label`, or undefined when there is none. */
  findKey(session: Handle, label: string): Handle | undefined {
    const cached = this.#keys.get(label);
    if (cached) return cached;
    const found = this.findObjects(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    if (found.length > 1) throw new ConfigError(`PKCS#11 token ${this.name}: ${found.length} secret keys are labelled ${JSON.stringify(label)}; a KEK label must be unique`);
    if (found.length === 1) this.#keys.set(label, found[0]!);
    return found[0];
  }

  /** Forgets cached handles (after a KEK was destroyed or re-created). */
  forgetKeys(): void {
    this.#keys.clear();
  }

  findObjects(session: Handle, template: Template): Handle[] {
    this.lib.C_FindObjectsInit(session, template);
    try {
      const out: Handle[] = [];
      for (;;) {
        const page = this.lib.C_FindObjects(session, 64);
        out.push(...page);
        if (page.length < 64) return out;
      }
    } finally {
      this.lib.C_FindObjectsFinal(session);
    }
  }

  /** Whether the token can wrap and unwrap with `mechanism` (C_GetMechanismInfo, cached). */
  supports(mechanism: number): { wrap: boolean; unwrap: boolean } {
    let m = this.#mechanisms.get(mechanism);
    if (!m) {
      try {
        const info = this.lib.C_GetMechanismInfo(this.slot, mechanism);
        m = { wrap: (info.flags & pkcs11js.CKF_WRAP) !== 0, unwrap: (info.flags & pkcs11js.CKF_UNWRAP) !== 0 };
      } catch (err) {
        if (ckrOf(err) !== CKR.MECHANISM_INVALID) throw classifyPkcs11Error(err, 'C_GetMechanismInfo');
        m = { wrap: false, unwrap: false };
      }
      this.#mechanisms.set(mechanism, m);
    }
    return m;
  }

  /** Closes every session (which logs out) and releases the module. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#idle.splice(0)) this.#closeSession(s);
    this.#loginSession = undefined;
    releaseModule(this.#opts.module);
  }

  #openSession(): Handle {
    try {
      return this.lib.C_OpenSession(this.slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    } catch (err) {
      throw classifyPkcs11Error(err, `C_OpenSession on token ${this.name}`);
    }
  }

  #closeSession(s: Handle): void {
    try {
      this.lib.C_CloseSession(s);
    } catch {
      /* already gone */
    }
  }

  #relogin(): void {
    const s = this.#loginSession;
    if (!s) return;
    try {
      this.lib.C_Login(s, pkcs11js.CKU_USER, this.#opts.pin);
    } catch {
      /* USER_ALREADY_LOGGED_IN, or the next call reports what is wrong */
    }
  }

  async #acquire(): Promise<Handle> {
    const idle = this.#idle.pop();
    if (idle) return idle;
    if (this.#open < this.#opts.maxSessions - 1) {
      // maxSessions counts the login session too.
      this.#open++;
      try {
        return this.#openSession();
      } catch (err) {
        this.#open--;
        throw err;
      }
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #release(s: Handle): void {
    if (this.#closed) {
      if (s !== this.#loginSession) this.#closeSession(s);
      return;
    }
    const next = this.#waiters.shift();
    if (next) next(s);
    else this.#idle.push(s);
  }

  #wakeWithNewSession(): void {
    const next = this.#waiters.shift();
    if (!next) return;
    this.#open++;
    try {
      next(this.#openSession());
    } catch {
      this.#open--;
      /* the waiter stays unserved only until the next release; put it back first in line */
      this.#waiters.unshift(next);
    }
  }
}

function findSlot(lib: PKCS11, o: Pkcs11TokenOptions): { slot: Handle; name: string } {
  let slots: Handle[];
  try {
    slots = lib.C_GetSlotList(true);
  } catch (err) {
    throw classifyPkcs11Error(err, 'C_GetSlotList');
  }
  const labels = slots.map((s) => {
    try {
      return lib.C_GetTokenInfo(s).label.trim();
    } catch {
      return '';
    }
  });
  if (o.slot !== undefined) {
    const i = slots.findIndex((s) => handleNumber(s) === BigInt(o.slot!));
    if (i < 0) throw new ConfigError(`PKCS#11 module ${o.module}: no token in slot ${o.slot}; slots with a token: ${slots.map((s) => handleNumber(s).toString()).join(', ') || 'none'}`);
    return { slot: slots[i]!, name: labels[i] || `slot ${o.slot}` };
  }
  const i = labels.indexOf(o.tokenLabel ?? '');
  if (i < 0) {
    throw new ConfigError(
      `PKCS#11 module ${o.module}: no token labelled ${JSON.stringify(o.tokenLabel)}; tokens: ${labels.map((l) => JSON.stringify(l)).join(', ') || 'none'} (SoftHSM2: check SOFTHSM2_CONF)`,
    );
  }
  return { slot: slots[i]!, name: o.tokenLabel! };
}

/** The template of the session object a wrapped DEK is unwrapped into (see pkcs11-kek-provider.ts). */
export function sessionDekTemplate(): Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    /* A session object: gone when the session closes even if C_DestroyObject never ran. */
    { type: pkcs11js.CKA_TOKEN, value: false },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    /* Its value can never be read (C_GetAttributeValue of CKA_VALUE fails) ... */
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    /* ... and it leaves the token only wrapped: C_WrapKey needs CKA_EXTRACTABLE. */
    { type: pkcs11js.CKA_EXTRACTABLE, value: true },
    { type: pkcs11js.CKA_ENCRYPT, value: false },
    { type: pkcs11js.CKA_DECRYPT, value: false },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
  ];
}

export type { Handle, Mechanism };
