/**
 * Creates a campaign in state 'planning', refusing any overlap with a campaign that may still write
 * to the same items. Invariant: at most one campaign at a time writes an item (an overlapping
 * active campaign, or a cancelled one whose workers may still hold leases, blocks creation).
 */
import type pg from 'pg';
import { randomBytes } from 'node:crypto';
import { ConfigError } from '../../core/errors.ts';
import { batchFormProblem } from '../ledger-form.ts';
import { withTransaction } from '../transaction.ts';
import { XACT_LOCK_SQL, lockPurpose } from '../lock-keys.ts';
import { CAMPAIGN_COLUMNS, jsonParam, toCampaign } from '../campaign-row.ts';
import { CampaignConflictError } from '../ledger-errors.ts';
import { formatScope, scopesOverlap, validateScopes } from '../scopes.ts';
import type { Campaign, CampaignState, NewCampaign, Scope } from '../types.ts';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 'c' + 10 random base32 characters (50 bits): no ':' so it is safe inside BullMQ job ids. */
export function newCampaignId(): string {
  const bytes = randomBytes(10);
  let id = 'c';
  for (const b of bytes) id += BASE32[b & 31];
  return id;
}

export async function createCampaign(pool: pg.Pool, input: NewCampaign): Promise<Campaign> {
  if (typeof input.name !== 'string' || input.name.length === 0) throw new ConfigError('campaign name: expected a non-empty string');
  if (input.kind !== 'routine' && input.kind !== 'incident') throw new ConfigError('campaign kind: expected "routine" or "incident"');
  const priority = input.priority ?? 0;
  if (!Number.isInteger(priority)) throw new ConfigError('campaign priority: expected an integer');
  if (typeof input.spec !== 'object' || input.spec === null) throw new ConfigError('campaign spec: expected an object');
  const scopes = validateScopes(input.scopes);
  const ledgerForm = input.ledgerForm ?? 'items';
  if (ledgerForm !== 'items' && ledgerForm !== 'batches') throw new ConfigError(`campaign ledgerForm: expected "items" or "batches", got ${String(ledgerForm)}`);
  const problem = ledgerForm === 'batches' ? batchFormProblem(input.spec) : undefined;
  if (problem) {
    throw new ConfigError(`campaign "${input.name}": the batch ledger form (REWRAP_LEDGER_FORM=batches) cannot take it: ${problem}; or set REWRAP_LEDGER_FORM=auto (per-item ledger where the batch form cannot serve) or unset it`);
  }

  return withTransaction(pool, async (client) => {
    await client.query(XACT_LOCK_SQL, [lockPurpose.createCampaign]);
    const { rows: others } = await client.query<{ id: string; state: CampaignState; scopes: Scope[]; lease_until: Date | null }>(
      `SELECT c.id, c.state, c.scopes, l.lease_until
         FROM rewrap_campaigns c
         LEFT JOIN LATERAL (
           SELECT max(b.lease_until) AS lease_until FROM rewrap_batches b
            WHERE b.campaign_id = c.id AND b.lease_until > now()
         ) l ON c.state = 'cancelled'
        WHERE c.state IN ('planning', 'running', 'paused')
           OR (c.state = 'cancelled' AND l.lease_until IS NOT NULL)
        ORDER BY c.created_at`,
    );
    for (const other of others) {
      for (const scope of scopes) {
        const otherScope = other.scopes.find((s) => scopesOverlap(scope, s));
        if (!otherScope) continue;
        const base = `cannot create campaign "${input.name}": scope ${formatScope(scope)} overlaps scope ${formatScope(otherScope)} of campaign ${other.id} (state ${other.state})`;
        if (other.state === 'cancelled') {
          const retryAfter = other.lease_until!;
          throw new CampaignConflictError(
            `${base}, whose workers may still hold leases until ${retryAfter.toISOString()}; retry after that time`,
            { otherCampaignId: other.id, otherState: other.state, scope, otherScope, retryAfter },
          );
        }
        throw new CampaignConflictError(`${base}; wait for it to complete, or cancel it first`, {
          otherCampaignId: other.id,
          otherState: other.state,
          scope,
          otherScope,
        });
      }
    }
    const { rows } = await client.query(
      `INSERT INTO rewrap_campaigns (id, name, kind, spec, scopes, priority, ledger_form)
       VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)
       RETURNING ${CAMPAIGN_COLUMNS}`,
      [newCampaignId(), input.name, input.kind, jsonParam(input.spec), jsonParam(scopes), priority, ledgerForm],
    );
    await client.query('INSERT INTO rewrap_campaign_counters (campaign_id) VALUES ($1)', [rows[0].id]);
    return toCampaign(rows[0]);
  });
}
