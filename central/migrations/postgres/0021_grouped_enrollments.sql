-- Consumer paging of enrollments on a column, PostgreSQL (issue 14). OneRoster's
-- `enrollments` lists only the enrollments with a basisgruppe (one without shows only in its
-- user's `orgs`); the list checked that in each row's JSON (`record->>'group'`), so its
-- count and offset read every enrollment of the scope from the heap.
-- `grouped`: on an enrollment, whether it names a basisgruppe; written at apply beside
--   `school` and `student` (migration 0020). Not personal data: a basisgruppe's key is not
--   sealed, and the column says only whether there is one.
-- Only current versions are backfilled: consumer pages read no other.
ALTER TABLE records ADD COLUMN grouped BOOLEAN NOT NULL DEFAULT false;
UPDATE records SET grouped = true
 WHERE is_current AND entity = 'enrollments' AND record->>'group' IS NOT NULL;
-- The grouped enrollments in sourcedId order with their site and school (the scope) and row
-- id: the count, offset and page of `enrollments` run on this index alone (index-only once
-- the rows are visible to all), then fetch the page's rows by id.
CREATE INDEX records_consumer_enrollments ON records (consumer_id, site, school) INCLUDE (id)
    WHERE is_current AND entity = 'enrollments' AND grouped;
