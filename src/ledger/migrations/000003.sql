-- rewrap ledger, schema 3: the canary stage of a campaign.
-- NULL: no canary yet (or none configured); 'passed': fan out; 'failed': the campaign stopped.
ALTER TABLE rewrap_campaigns ADD COLUMN canary_state text CHECK (canary_state IN ('passed', 'failed'));
ALTER TABLE rewrap_campaigns ADD COLUMN canary_report jsonb;
