-- Key continuity, PostgreSQL: a record renamed by its source (a PIFU Old/New sourcedid pair,
-- a OneRoster sourcedId change) keeps one identity across the change of handle.
-- `identity` is the handle of the record's first version, written only on versions that
-- continue a renamed record; NULL means the version's own handle, so every row from before
-- this migration keeps the identity (and consumer sourcedId) it had, and nothing is rewritten.
-- `renamed_to` is the new handle on the version a rename closed, so history tells a rename
-- from a deletion. A transfer counts its renames apart from additions and removals.
ALTER TABLE records ADD COLUMN identity BYTEA CHECK (identity IS NULL OR length(identity) = 32);
ALTER TABLE records ADD COLUMN renamed_to BYTEA CHECK (renamed_to IS NULL OR length(renamed_to) = 32);
-- The consumer API resolves references through the site's renamed current records: few rows.
CREATE INDEX records_renamed ON records (site, entity) WHERE is_current AND identity IS NOT NULL;
ALTER TABLE transfers ADD COLUMN renamed BIGINT NOT NULL DEFAULT 0 CHECK (renamed >= 0);
