/**
 * Mutating endpoints (bearer token required, checked by the server before any of these runs):
 * create a campaign from a spec (held to the operator's policy: spec-policy.ts), and move a
 * campaign between states as the CLI does.
 */
import type pg from 'pg';
import { CampaignConflictError, createCampaign, getCampaign, setCampaignState } from '../ledger/index.ts';
import type { CampaignState } from '../ledger/types.ts';
import { campaignScopes } from '../campaign/create.ts';
import { checkScopesAgainstPolicy, checkSpecAgainstPolicy, PolicyRefusal, type SpecPolicy } from './spec-policy.ts';
import { resolveKeyMap } from '../campaign/key-map-rule.ts';
import { parseCampaignSpec } from '../campaign/spec.ts';
import { ConfigError } from '../core/errors.ts';
import { DEFAULT_LEDGER_FORM, ledgerFormFor, type LedgerFormSetting } from '../ledger/ledger-form.ts';
import { HttpError, readJsonBody, sendJson } from './http-io.ts';
import type { Route } from './router.ts';
import { notFound } from './read-routes.ts';

/** The same transitions as `rewrap campaign start|pause|resume|cancel`. */
export const TRANSITIONS: Record<string, { from: CampaignState[]; to: CampaignState }> = {
  start: { from: ['planning'], to: 'running' },
  pause: { from: ['running', 'planning'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  cancel: { from: ['planning', 'running', 'paused'], to: 'cancelled' },
};

/** `ledgerForm`: REWRAP_LEDGER_FORM of the API process, as `campaign create` reads it. */
export function writeRoutes(pool: pg.Pool, policy: SpecPolicy | undefined, ledgerForm: LedgerFormSetting = DEFAULT_LEDGER_FORM): Route[] {
  const create: Route = {
    method: 'POST',
    path: '/api/campaigns',
    name: 'campaigns.create',
    mutating: true,
    async handle({ req, res, url }) {
      const body = await readJsonBody(req);
      const start = url.searchParams.get('start');
      if (start !== null && start !== 'true' && start !== 'false') throw new HttpError(400, `query parameter start=${JSON.stringify(start)}: expected true or false`);
      if (!policy) {
        throw new HttpError(403, 'creating campaigns through the API is disabled: the operator sets REWRAP_API_POLICY to a policy file listing what they may name (README: API)');
      }
      try {
        const parsed = parseCampaignSpec(body);
        // Precondition: the policy allows every name in the spec before any of them is opened or contacted.
        checkSpecAgainstPolicy(parsed, policy);
        /* A key map rule is resolved against the (allowed) keyring, and the KEKs it names are checked again. */
        const spec = resolveKeyMap(parsed);
        checkSpecAgainstPolicy(spec, policy);
        const scopes = await campaignScopes(spec);
        checkScopesAgainstPolicy(scopes, policy);
        const c = await createCampaign(pool, { name: spec.name, kind: spec.kind, spec, scopes, priority: 0, ledgerForm: ledgerFormFor(spec, ledgerForm) });
        const started = start === 'true' && (await setCampaignState(pool, c.id, ['planning'], 'running'));
        res.setHeader('location', `/api/campaigns/${c.id}`);
        sendJson(res, 201, { id: c.id, name: c.name, state: started ? 'running' : c.state });
      } catch (err) {
        if (err instanceof PolicyRefusal) throw new HttpError(403, err.message, undefined, { cause: err });
        if (err instanceof ConfigError) throw new HttpError(400, err.message, undefined, { cause: err });
        if (err instanceof CampaignConflictError) {
          throw new HttpError(409, err.message, { otherCampaignId: err.otherCampaignId, otherState: err.otherState, retryAfter: err.retryAfter ?? null }, { cause: err });
        }
        throw err;
      }
    },
  };
  const transitions: Route[] = Object.entries(TRANSITIONS).map(([action, t]) => ({
    method: 'POST',
    path: `/api/campaigns/:id/${action}`,
    name: `campaigns.${action}`,
    mutating: true,
    async handle({ res, params }) {
      const id = params.id!;
      const c = await getCampaign(pool, id);
      if (!c) throw notFound(id);
      const ok = await setCampaignState(pool, id, t.from, t.to, action === 'pause' ? 'paused by operator (API)' : undefined);
      if (!ok) {
        const now = (await getCampaign(pool, id))?.state ?? c.state;
        throw new HttpError(409, `campaign ${id} is ${now}; ${action} needs ${t.from.join(' or ')}`, { state: now });
      }
      sendJson(res, 200, { id, state: t.to });
    },
  }));
  return [create, ...transitions];
}
