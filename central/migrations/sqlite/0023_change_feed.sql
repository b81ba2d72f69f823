-- Change feeds paged in the store (issue 14). A OneRoster client syncing deltas asks for
-- `dateLastModified>=` its last sync: the current records changed since are few beside the
-- scope, so the list finds them by time on this index and sorts them, instead of reading
-- every record of the scope in sourcedId order to check each one's time. The records
-- closed since are found on `records_closed_until` (migration 0016).
CREATE INDEX records_current_since ON records (entity, valid_from) WHERE is_current;
