/** Errors the ledger throws on purpose. */
import type { CampaignState, Scope } from './types.ts';

/** A new campaign would touch items that another campaign may still write. */
export class CampaignConflictError extends Error {
  readonly otherCampaignId: string;
  readonly otherState: CampaignState;
  readonly scope: Scope;
  readonly otherScope: Scope;
  /** For a cancelled campaign whose workers may still hold leases: when to try again. */
  readonly retryAfter?: Date;
  constructor(
    message: string,
    details: { otherCampaignId: string; otherState: CampaignState; scope: Scope; otherScope: Scope; retryAfter?: Date },
  ) {
    super(message);
    this.name = 'CampaignConflictError';
    this.otherCampaignId = details.otherCampaignId;
    this.otherState = details.otherState;
    this.scope = details.scope;
    this.otherScope = details.otherScope;
    this.retryAfter = details.retryAfter;
  }
}

export class CampaignNotFoundError extends Error {
  readonly campaignId: string;
  constructor(campaignId: string, operation: string) {
    super(`${operation}: campaign ${campaignId} does not exist in the ledger`);
    this.name = 'CampaignNotFoundError';
    this.campaignId = campaignId;
  }
}
