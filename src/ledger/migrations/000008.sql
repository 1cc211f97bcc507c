-- rewrap ledger, schema 8 (issue 17: the B2 instruction-file regression).
--
-- rewrap_campaign_items.envelope_file_etag: for an S3 item whose envelope is in `<key>.instruction`
-- carrying the instruction-file marker, that file's ETag as the item's last committed attempt
-- left it (written, or read and left alone). A delta pass lists `<key>.instruction` with its ETag:
-- the same ETag is the same bytes our worker saw marked, so the name is no item and needs no
-- HeadObject (src/sources/s3-list-source.ts). NULL everywhere else (no bytes in the row).
ALTER TABLE rewrap_campaign_items ADD COLUMN envelope_file_etag text;
