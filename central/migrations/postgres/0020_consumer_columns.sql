-- Consumer paging on columns, PostgreSQL (issue 14). The consumer API's scope checks read
-- columns on an index instead of JSON fields row by row:
-- `school`: the skolenummer of a school, basisgruppe or enrollment (not personal data).
-- `student`: on an enrollment, the handle of the student it names, the same HMAC of the
--   student's key under the site secret as the student row's `handle`. The key itself may be
--   a national id and is sealed at rest, so it never goes into a clear column.
-- `enrolled`: on a current student row, whether a current enrollment names it at a school
--   the site has a current record of; the store refreshes it as each batch is applied
--   (`store::records::REFRESH_ENROLLED`), so a consumer whose scope covers a whole site
--   counts and pages its students on one index, with no probe per student.
-- Only current versions are backfilled here: consumer pages read no other.
ALTER TABLE records
    ADD COLUMN school TEXT COLLATE "C",
    ADD COLUMN student BYTEA CHECK (student IS NULL OR length(student) = 32),
    ADD COLUMN enrolled BOOLEAN NOT NULL DEFAULT false;
UPDATE records SET school = record->>'skolenummer' WHERE is_current AND entity = 'schools';
UPDATE records SET school = record->>'school'
 WHERE is_current AND entity IN ('groups', 'enrollments');
-- The stored student key (clear, or its keyed hash when sealed) as the enrollment stores it.
UPDATE records e SET student = s.handle
  FROM records s
 WHERE e.is_current AND e.entity = 'enrollments'
   AND s.site = e.site AND s.is_current AND s.entity = 'students'
   AND (s.record->>'source_key') = (e.record->>'student');
-- Replaced by the columns' index below.
DROP INDEX records_enrolled;
-- A student's enrollments, and whether one is at a school of the scope: one index probe.
CREATE INDEX records_enrollment_student ON records (site, student, school)
    WHERE is_current AND entity = 'enrollments';
-- The schools a site has, for `enrolled`.
CREATE INDEX records_site_schools ON records (site, school) WHERE is_current AND entity = 'schools';
UPDATE records r SET enrolled = true
 WHERE r.is_current AND r.entity = 'students' AND EXISTS (
    SELECT 1 FROM records e
     WHERE e.site = r.site AND e.is_current AND e.entity = 'enrollments'
       AND e.student = r.handle
       AND EXISTS (SELECT 1 FROM records c WHERE c.site = e.site AND c.is_current
                      AND c.entity = 'schools' AND c.school = e.school));
-- The enrolled students in sourcedId order, with their site and row id: the offset and page
-- of `users` for a scope of whole sites run on this index alone (an index-only scan once
-- the rows are visible to all, which autovacuum sees to after a large snapshot), then
-- fetch the page's rows by id.
CREATE INDEX records_consumer_students ON records (consumer_id, site) INCLUDE (id)
    WHERE is_current AND entity = 'students' AND enrolled;
-- The enrolled students by site: their count for a scope of whole sites, one index range
-- per site.
CREATE INDEX records_enrolled_students ON records (site)
    WHERE is_current AND entity = 'students' AND enrolled;
