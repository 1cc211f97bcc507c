/** Validation shared by the lease operations. */
import { ConfigError } from '../core/errors.ts';

export function validateLease(operation: string, r: { campaignId: string; batchNo: number; owner: string; leaseMs?: number }): void {
  if (typeof r.campaignId !== 'string' || r.campaignId.length === 0) throw new ConfigError(`${operation}: campaignId must be a non-empty string`);
  if (!Number.isInteger(r.batchNo) || r.batchNo < 1) throw new ConfigError(`${operation}(${r.campaignId}): batchNo must be a positive integer, got ${r.batchNo}`);
  if (typeof r.owner !== 'string' || r.owner.length === 0) throw new ConfigError(`${operation}(${r.campaignId}/${r.batchNo}): owner must be a non-empty string`);
  if (r.leaseMs !== undefined && (!Number.isInteger(r.leaseMs) || r.leaseMs < 1)) {
    throw new ConfigError(`${operation}(${r.campaignId}/${r.batchNo}): leaseMs must be a positive integer, got ${r.leaseMs}`);
  }
}
