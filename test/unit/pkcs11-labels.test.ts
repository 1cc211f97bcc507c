/** A pkcs11 provider's `labels` map must be one-to-one: two KEK names on one token object would let retiring one take the other's. */
import { describe, expect, it } from 'vitest';
import { parseCampaignSpec } from '../../src/campaign/spec.ts';

const provider = (labels: Record<string, string>) => ({ type: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', tokenLabel: 'hsm', pinEnv: 'PIN', labels });
const spec = (labels: Record<string, string>) => parseCampaignSpec({ name: 'h', sources: [{ type: 's3', bucket: 'b' }], from: 'a@1', to: 'a@2', provider: provider(labels) });

describe('pkcs11 labels', () => {
  it('two names on one label are refused, naming both and the label', () => {
    expect(() => spec({ 'a@1': 'legacy', 'b@1': 'legacy' })).toThrow('campaign spec.provider.labels: "a@1" and "b@1" both name the token object labelled "legacy"');
  });

  it("a label that is another KEK version's default label is refused unless that version is mapped elsewhere", () => {
    expect(() => spec({ 'a@1': 'b@1' })).toThrow('"a@1" is mapped to the label "b@1", which is also the default label of the KEK version b@1');
    expect(spec({ 'a@1': 'b@1', 'b@1': 'legacy-b' }).provider).toMatchObject({ labels: { 'a@1': 'b@1', 'b@1': 'legacy-b' } });
  });

  it('distinct labels, and a name mapped to itself, are accepted', () => {
    expect(spec({ 'a@1': 'legacy-a', 'a@2': 'a@2' }).provider).toMatchObject({ labels: { 'a@1': 'legacy-a', 'a@2': 'a@2' } });
  });
});
