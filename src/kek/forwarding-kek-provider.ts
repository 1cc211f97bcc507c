/** Base of the provider decorators (budget, metrics, dedupe): everything forwards to `inner`. */
import type { KekProvider, RewrapResult } from './kek-provider.ts';
import type { KekSelector, WrappedDek } from '../core/kek-ref.ts';

export abstract class ForwardingKekProvider implements KekProvider {
  constructor(protected readonly inner: KekProvider) {}

  get kind(): KekProvider['kind'] {
    return this.inner.kind;
  }

  identify(dek: WrappedDek) {
    return this.inner.identify(dek);
  }

  rewrap(dek: WrappedDek, from: KekSelector, to: KekSelector, signal?: AbortSignal): Promise<RewrapResult> {
    return this.inner.rewrap(dek, from, to, signal);
  }

  withUnwrapped<T>(dek: WrappedDek, kek: KekSelector, fn: (plaintextDek: Buffer) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.inner.withUnwrapped(dek, kek, fn, signal);
  }

  /** Zeroes key material held below (the local keyring). */
  close(): void {
    (this.inner as { close?: () => void }).close?.();
  }
}
