-- `grouped` at current schools only, PostgreSQL (issue 14). OneRoster's `enrollments` lists
-- an enrollment with a basisgruppe only when its school is a current school of its site (the
-- mapped path, `oneroster::Mapping::site`); `grouped` (migration 0021) said only whether
-- there is a basisgruppe, so a page of a whole site's enrollments had to check each one's
-- school against the scope. From here `grouped` is both, kept by every apply and erasure
-- (`store::paging::refresh_grouped_sql`, as `enrolled` is), and a scope covering a whole
-- site checks the site alone on `records_consumer_enrollments`, whose predicate is the
-- column: the index stays as it is and now leaves out enrollments at absent schools.
-- Recomputed on current enrollments only, writing only the rows whose flag changes.
UPDATE records r SET grouped = NOT r.grouped
 WHERE r.is_current AND r.entity = 'enrollments'
   AND r.grouped <> ((r.record->>'group') IS NOT NULL
                     AND EXISTS (SELECT 1 FROM records c
                                  WHERE c.site = r.site AND c.entity = 'schools'
                                    AND c.is_current AND c.school = r.school));
-- The grouped enrollments by site: their count for a scope of whole sites, one index range
-- per site (as `records_enrolled_students` counts the enrolled students).
CREATE INDEX records_grouped_enrollments ON records (site)
    WHERE is_current AND entity = 'enrollments' AND grouped;
