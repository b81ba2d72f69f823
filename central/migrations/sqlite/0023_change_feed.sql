-- Change feeds paged in the store (issue 14). A OneRoster client syncing deltas asks for
-- `dateLastModified>=` its last sync: the current records changed since are few beside the
-- scope, so the list finds them by time on this index (forced with `INDEXED BY`) and sorts
-- them, instead of reading every record of the scope in sourcedId order to check each
-- one's time. The records closed since are found on `records_closed_until` (migration 0016).
-- On time alone, unlike PostgreSQL's (entity, valid_from): SQLite plans without statistics,
-- and an index led by `entity` tied with `records_enrollment_student` in the refresh of
-- `enrolled`, whose probe per student then walked the site's every enrollment.
CREATE INDEX records_current_since ON records (valid_from) WHERE is_current;
