/** Creating a campaign: validate the spec, work out its scopes, admit it in the ledger. */
import type pg from 'pg';
import { readFile } from 'node:fs/promises';
import { createCampaign } from '../ledger/index.ts';
import type { Campaign, Scope } from '../ledger/types.ts';
import { DEFAULT_LEDGER_FORM, ledgerFormFor, type LedgerFormSetting } from '../ledger/ledger-form.ts';
import { ConfigError } from '../core/errors.ts';
import { parseJsonText } from '../json-text.ts';
import { parseCampaignSpec } from './spec.ts';
import { resolveKeyMap } from './key-map-rule.ts';
import type { CampaignSpec } from '../core/campaign-spec.ts';
import { CsvManifestSource } from '../sources/csv-manifest-source.ts';
import { pgStoreId, s3StoreId } from '../core/store-id.ts';

/** The stores a campaign may write: whole buckets for a manifest (read once, here). */
export async function campaignScopes(spec: CampaignSpec): Promise<Scope[]> {
  const scopes: Scope[] = [];
  for (const s of spec.sources) {
    if (s.type === 's3') scopes.push(s.prefix ? { storeId: s3StoreId(s.bucket), prefix: s.prefix } : { storeId: s3StoreId(s.bucket) });
    else if (s.type === 's3-inventory') scopes.push({ storeId: s3StoreId(s.bucket) });
    else if (s.type === 'pg') scopes.push({ storeId: pgStoreId(s.table) });
    else {
      const src = new CsvManifestSource(s.manifestFile, s.keysUrlEncoded);
      const stores = new Set<string>();
      for (let cursor: unknown = 0, done = false; !done; ) {
        const page = await src.page(cursor, 100_000);
        for (const g of page.groups) stores.add(g.storeId);
        cursor = page.cursor;
        done = page.done;
      }
      if (stores.size === 0) throw new ConfigError(`manifest ${s.manifestFile}: no bucket,key lines`);
      for (const storeId of stores) scopes.push({ storeId });
    }
  }
  // One scope per store id and prefix.
  const seen = new Set<string>();
  return scopes.filter((sc) => {
    const k = `${sc.storeId}|${sc.prefix ?? ''}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

export async function loadSpecFile(path: string): Promise<CampaignSpec> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`campaign spec file ${path} cannot be read`, { cause: err });
  }
  return parseCampaignSpec(parseJsonText(text, `campaign spec file ${path}`));
}

/** Admits the spec as stored: a key map rule resolved against the keyring first (key-map-rule.ts). */
export async function admitCampaign(pool: pg.Pool, parsed: CampaignSpec, priority = 0, ledgerForm: LedgerFormSetting = DEFAULT_LEDGER_FORM): Promise<Campaign> {
  const spec = resolveKeyMap(parsed);
  return createCampaign(pool, { name: spec.name, kind: spec.kind, spec, scopes: await campaignScopes(spec), priority, ledgerForm: ledgerFormFor(spec, ledgerForm) });
}
