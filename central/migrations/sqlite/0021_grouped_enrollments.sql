-- Consumer paging of enrollments on a column, SQLite (issue 14). OneRoster's `enrollments`
-- lists only the enrollments with a basisgruppe (one without shows only in its user's
-- `orgs`); the list checked that in each row's JSON (`json_extract(record, '$.group')`), so
-- its count and offset read and parsed every enrollment of the scope.
-- `grouped`: on an enrollment, whether it names a basisgruppe; written at apply beside
--   `school` and `student` (migration 0020). Not personal data: a basisgruppe's key is not
--   sealed, and the column says only whether there is one.
-- Only current versions are backfilled: consumer pages read no other.
ALTER TABLE records ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0 CHECK (grouped IN (0, 1));
UPDATE records SET grouped = 1
 WHERE is_current AND entity = 'enrollments' AND json_extract(record, '$.group') IS NOT NULL;
-- The grouped enrollments in sourcedId order with their site and school (the scope): the
-- count, offset and page of `enrollments` run on this index alone (it holds the rowid),
-- then read the page's rows by id.
CREATE INDEX records_consumer_enrollments ON records (consumer_id, site, school)
    WHERE is_current AND entity = 'enrollments' AND grouped;
