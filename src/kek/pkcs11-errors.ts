/**
 * PKCS#11 return codes (CKR_*) to rewrap's two kinds of failure, decided once, here, by code:
 * transient (the token, its session or its connection is in trouble: retry with backoff) or
 * permanent for the item (the wrapped key does not unwrap, the KEK may not be used), or a
 * ConfigError (the PIN, the module, the token: nothing an item retry can fix; the batch fails and
 * the campaign pauses after maxBatchFailures, naming it). A code not listed here is permanent for
 * the item as `provider-rejected`, with its name in the detail: an unknown answer never turns into
 * an endless retry.
 *
 * Values are from the PKCS#11 2.40 headers (pkcs11t.h); pkcs11js raises Pkcs11Error with `code`.
 */
import { ConfigError, ItemError, permanent, transient } from '../core/errors.ts';
import type { PermanentReason } from '../core/reasons.ts';

export const CKR = {
  OK: 0x0,
  HOST_MEMORY: 0x2,
  GENERAL_ERROR: 0x5,
  FUNCTION_FAILED: 0x6,
  ARGUMENTS_BAD: 0x7,
  ATTRIBUTE_READ_ONLY: 0x10,
  ATTRIBUTE_SENSITIVE: 0x11,
  ATTRIBUTE_TYPE_INVALID: 0x12,
  ATTRIBUTE_VALUE_INVALID: 0x13,
  ACTION_PROHIBITED: 0x1b,
  DATA_INVALID: 0x20,
  DATA_LEN_RANGE: 0x21,
  DEVICE_ERROR: 0x30,
  DEVICE_MEMORY: 0x31,
  DEVICE_REMOVED: 0x32,
  ENCRYPTED_DATA_INVALID: 0x40,
  ENCRYPTED_DATA_LEN_RANGE: 0x41,
  FUNCTION_CANCELED: 0x50,
  KEY_HANDLE_INVALID: 0x60,
  KEY_SIZE_RANGE: 0x62,
  KEY_TYPE_INCONSISTENT: 0x63,
  KEY_FUNCTION_NOT_PERMITTED: 0x68,
  KEY_NOT_WRAPPABLE: 0x69,
  KEY_UNEXTRACTABLE: 0x6a,
  MECHANISM_INVALID: 0x70,
  MECHANISM_PARAM_INVALID: 0x71,
  OBJECT_HANDLE_INVALID: 0x82,
  OPERATION_ACTIVE: 0x90,
  OPERATION_NOT_INITIALIZED: 0x91,
  PIN_INCORRECT: 0xa0,
  PIN_EXPIRED: 0xa3,
  PIN_LOCKED: 0xa4,
  SESSION_CLOSED: 0xb0,
  SESSION_COUNT: 0xb1,
  SESSION_HANDLE_INVALID: 0xb3,
  SESSION_READ_ONLY: 0xb5,
  TEMPLATE_INCOMPLETE: 0xd0,
  TEMPLATE_INCONSISTENT: 0xd1,
  TOKEN_NOT_PRESENT: 0xe0,
  TOKEN_NOT_RECOGNIZED: 0xe1,
  UNWRAPPING_KEY_HANDLE_INVALID: 0xf0,
  UNWRAPPING_KEY_SIZE_RANGE: 0xf1,
  UNWRAPPING_KEY_TYPE_INCONSISTENT: 0xf2,
  USER_ALREADY_LOGGED_IN: 0x100,
  USER_NOT_LOGGED_IN: 0x101,
  USER_PIN_NOT_INITIALIZED: 0x102,
  WRAPPED_KEY_INVALID: 0x110,
  WRAPPED_KEY_LEN_RANGE: 0x112,
  WRAPPING_KEY_HANDLE_INVALID: 0x113,
  WRAPPING_KEY_SIZE_RANGE: 0x114,
  WRAPPING_KEY_TYPE_INCONSISTENT: 0x115,
  RANDOM_NO_RNG: 0x121,
  BUFFER_TOO_SMALL: 0x150,
  CRYPTOKI_NOT_INITIALIZED: 0x190,
  CRYPTOKI_ALREADY_INITIALIZED: 0x191,
} as const;

const NAMES = new Map<number, string>(Object.entries(CKR).map(([k, v]) => [v, `CKR_${k}`]));

/** `CKR_WRAPPED_KEY_INVALID`, or the hex code for one not named above. */
export function ckrName(code: number): string {
  return NAMES.get(code) ?? `CKR 0x${code.toString(16)}`;
}

/**
 * The token or its session is in trouble; the same call may well succeed later (another
 * session, after a re-login, once the device answers). The session is discarded, not reused.
 */
const TRANSIENT = new Set<number>([
  CKR.HOST_MEMORY,
  CKR.GENERAL_ERROR,
  CKR.FUNCTION_FAILED,
  CKR.DEVICE_ERROR,
  CKR.DEVICE_MEMORY,
  CKR.DEVICE_REMOVED,
  CKR.FUNCTION_CANCELED,
  CKR.OPERATION_ACTIVE,
  CKR.SESSION_CLOSED,
  CKR.SESSION_COUNT,
  CKR.SESSION_HANDLE_INVALID,
  CKR.TOKEN_NOT_PRESENT,
  CKR.USER_NOT_LOGGED_IN,
  CKR.CRYPTOKI_NOT_INITIALIZED,
  /* A cached KEK handle went stale (the object was re-created): looked up again next time. */
  CKR.KEY_HANDLE_INVALID,
  CKR.OBJECT_HANDLE_INVALID,
  CKR.WRAPPING_KEY_HANDLE_INVALID,
  CKR.UNWRAPPING_KEY_HANDLE_INVALID,
]);

/** This wrapped key, or this KEK for this item, will not work however often it is tried. */
const PERMANENT: ReadonlyMap<number, PermanentReason> = new Map<number, PermanentReason>([
  [CKR.WRAPPED_KEY_INVALID, 'invalid-ciphertext'],
  [CKR.WRAPPED_KEY_LEN_RANGE, 'invalid-ciphertext'],
  [CKR.ENCRYPTED_DATA_INVALID, 'invalid-ciphertext'],
  [CKR.ENCRYPTED_DATA_LEN_RANGE, 'invalid-ciphertext'],
  [CKR.DATA_INVALID, 'invalid-ciphertext'],
  [CKR.DATA_LEN_RANGE, 'invalid-ciphertext'],
  /* The KEK exists but may not unwrap or wrap (CKA_UNWRAP / CKA_WRAP false): disabled in the token. */
  [CKR.KEY_FUNCTION_NOT_PERMITTED, 'kek-disabled'],
  [CKR.ACTION_PROHIBITED, 'access-denied'],
  [CKR.KEY_UNEXTRACTABLE, 'access-denied'],
  [CKR.KEY_NOT_WRAPPABLE, 'access-denied'],
  [CKR.MECHANISM_INVALID, 'hsm-mechanism-unsupported'],
  [CKR.MECHANISM_PARAM_INVALID, 'hsm-mechanism-unsupported'],
]);

/** Nothing about the item: the module, the token or the login is misconfigured. */
const CONFIG = new Set<number>([
  CKR.PIN_INCORRECT,
  CKR.PIN_EXPIRED,
  CKR.PIN_LOCKED,
  CKR.USER_PIN_NOT_INITIALIZED,
  CKR.TOKEN_NOT_RECOGNIZED,
  CKR.SESSION_READ_ONLY,
]);

/** The CKR code of a pkcs11js error (Pkcs11Error carries `code`), or undefined for any other error. */
export function ckrOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Whether the session that saw `err` must be closed rather than returned to the pool. */
export function sessionIsSpent(err: unknown): boolean {
  const code = ckrOf(err);
  return code === undefined || TRANSIENT.has(code);
}

/**
 * The error rewrap raises for a token error during `what` (e.g. "C_UnwrapKey under app@1").
 * Invariant 5: the message names the call, the KEK label and the CKR code, never key bytes.
 */
export function classifyPkcs11Error(err: unknown, what: string): Error {
  if (err instanceof ItemError || err instanceof ConfigError) return err;
  const code = ckrOf(err);
  if (code === undefined) return transient('provider-unavailable', `PKCS#11 ${what} failed: ${(err as Error)?.message ?? String(err)}`, err);
  const name = ckrName(code);
  if (TRANSIENT.has(code)) return transient('provider-unavailable', `PKCS#11 ${what}: ${name}`, err);
  if (CONFIG.has(code)) return new ConfigError(`PKCS#11 ${what}: ${name}; check the token, the PIN (pinEnv) and the user's state on the token`, { cause: err });
  const reason = PERMANENT.get(code);
  if (reason) return permanent(reason, `PKCS#11 ${what}: ${name}`, err);
  return permanent('provider-rejected', `PKCS#11 ${what}: ${name}`, err);
}
