/**
 * The KEK admin port, beside KekProvider (which only moves DEKs between KEKs): the lifecycle of a
 * KEK itself, for scheduled rotation and retirement. Which version is current, making the next
 * one, disabling and destroying a version, and checking that a DEK unwraps (and under which KEK).
 * Adapters: the local keyring file (local-keyring-admin.ts), AWS KMS (kms-kek-admin.ts); an HSM
 * (PKCS#11) adapter implements the same interface. The lifecycle and retirement code knows KEKs
 * only through this port: no KMS call and no keyring edit outside src/kek/.
 * Invariant 5: nothing here returns or reports key bytes; verdicts name KEKs and error types only.
 */
import type { KekProvider } from './kek-provider.ts';
import type { KekSelector, KekVersionRef, WrappedDek } from '../core/kek-ref.ts';

/**
 * How a scheduled rotation makes the next KEK: a new version of the same KEK (keyring
 * `<id>@<n+1>`, KMS RotateKeyOnDemand), or a new key (KMS CreateKey; the schedule follows it).
 */
export type KekRotation = 'new-version' | 'new-key';

export interface KekLifecycleOptions {
  rotation: KekRotation;
  /** Who asks, for messages and key descriptions, e.g. "schedule nightly". */
  requester: string;
}

export type UnwrapVerdict = { ok: true; kek: string } | { ok: false; underRetiring: boolean; problem: string };

export interface KekAdmin {
  readonly kind: KekProvider['kind'];
  /** Local keyring: the file this admin edits (reports name it). */
  readonly keyringFile?: string;
  /** The KEK version everything should be under now: what the next campaign drains. */
  currentVersion(kekId: string, o: KekLifecycleOptions, signal?: AbortSignal): Promise<KekSelector>;
  /**
   * Creates the next KEK version after `from` (the current one); `nextKekId` is the KEK id to
   * rotate next time. Throws when `from` is no longer the newest (someone else rotated meanwhile).
   */
  createNextVersion(kekId: string, from: KekSelector, o: KekLifecycleOptions, signal?: AbortSignal): Promise<{ to: KekSelector; nextKekId: string }>;
  /** ConfigError when this provider cannot retire `kek` that way (before any check runs). */
  assertRetirable(kek: KekSelector, o: { destroy: boolean }): void;
  /** Nothing can wrap or unwrap under `kek` any more (reversible where the provider allows). */
  disable(kek: KekSelector, signal?: AbortSignal): Promise<void>;
  /** Removes `kek` and its material: irreversible. */
  destroy(kek: KekSelector, signal?: AbortSignal): Promise<void>;
  /** Loads what verification needs (a keyring's material, zeroed by the verifier's close()). */
  verifier(): KekVerifier;
  /**
   * Every other name the provider gives the key `kekId` names (KMS: its key id, key ARN, aliases
   * and alias ARNs), for providers where one key has several. Items and rows may record any of
   * them; the retirement gate checks them all. Throws when the provider cannot say.
   */
  otherNames?(kekId: string, signal?: AbortSignal): Promise<string[]>;
}

/** Verifying DEKs against the KEKs (the retirement gate's sample and full pass). */
export interface KekVerifier {
  readonly kind: KekProvider['kind'];
  /** Which KEK wraps the DEK, where it can tell without a remote call (KekProvider.identify). */
  identify(dek: WrappedDek): KekVersionRef | undefined;
  /**
   * "Does this DEK still decrypt, and not under the KEK being retired?" The plaintext is zeroed
   * at once. `expectedKeyId`: the KEK the ledger says wraps it now, where known.
   */
  verifyUnwrap(dek: WrappedDek, retiring: KekSelector, expectedKeyId?: string, signal?: AbortSignal): Promise<UnwrapVerdict>;
  /** Zeroes any key material it loaded. */
  close(): void;
}
