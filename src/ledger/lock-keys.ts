/**
 * Advisory lock keys. Two-int form: a fixed namespace for rewrap, and a hash of the purpose and
 * the current schema (so ledgers in different schemas of one database do not block each other).
 */
/** 'rwrp' as a 32-bit integer: the namespace of every advisory lock rewrap takes. */
export const LOCK_NAMESPACE = 0x72777270;

/** SQL that takes a transaction-scoped advisory lock for `purpose` ($1 is the purpose text). */
export const XACT_LOCK_SQL = `SELECT pg_advisory_xact_lock(${LOCK_NAMESPACE}, hashtext(current_schema() || ':' || $1::text))`;

export const lockPurpose = {
  migrate: 'migrate',
  /** Serialises campaign creation, so two overlapping campaigns can never both be admitted. */
  createCampaign: 'create-campaign',
  /** Serialises the planners of one campaign (batch numbering and the cursor). */
  plan: (campaignId: string) => `plan:${campaignId}`,
} as const;
