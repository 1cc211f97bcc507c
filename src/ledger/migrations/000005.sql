-- rewrap ledger, schema 5: whole-batch failures. A batch whose job fails as a whole (an error that
-- is no item's: its store's table is gone, the store cannot be built...) counts it here; after the
-- campaign's maxBatchFailures the campaign pauses with the batch and the error as its reason, so a
-- batch that can never succeed is not retried and re-added forever (issue 13, point 6).
-- last_error is an error message (names and codes, never key bytes).
ALTER TABLE rewrap_batches ADD COLUMN failures int NOT NULL DEFAULT 0;
ALTER TABLE rewrap_batches ADD COLUMN last_error text;
