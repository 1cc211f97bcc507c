import { describe, expect, it } from 'vitest';
import { bucketOf, formatStoreId, parseStoreId, pgStoreId, s3StoreId } from '../../src/core/store-id.ts';

describe('StoreId: the two forms the ledger keeps as text', () => {
  it('format and parse are inverse for both kinds (the persisted form never changes)', () => {
    expect(s3StoreId('orders')).toBe('s3://orders');
    expect(pgStoreId('public.secrets')).toBe('pg:public.secrets');
    for (const ref of [{ kind: 's3', bucket: 'orders' }, { kind: 'pg', table: 'public.secrets' }] as const) {
      expect(parseStoreId(formatStoreId(ref))).toEqual(ref);
    }
    expect(parseStoreId('manifest:/tmp/m.csv')).toBeUndefined();
  });

  it('bucketOf gives the bucket of an S3 id and refuses anything else, naming the id', () => {
    expect(bucketOf('s3://orders')).toBe('orders');
    expect(() => bucketOf('pg:public.secrets')).toThrow('store id "pg:public.secrets": expected an S3 store id, s3://<bucket>');
    expect(() => bucketOf('s3://')).toThrow('expected an S3 store id');
    expect(() => bucketOf('manifest:/tmp/m.csv')).toThrow('"manifest:/tmp/m.csv"');
  });
});
