-- rewrap ledger, schema 4: how many commits each batch received. A batch claimed more often than
-- it was committed had a claim whose commit was lost (fenced, failed, process killed): that claim
-- may have written items the next claim then found at the target (deltaPassChanges).
ALTER TABLE rewrap_batches ADD COLUMN commits int NOT NULL DEFAULT 0;
