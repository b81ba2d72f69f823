-- Paging the consumer API in the store, SQLite (docs/API.md, "Paging"). `consumer_id` is
-- the first 16 bytes of the OneRoster sourcedId's SHA-256 (`store::records::consumer_id`),
-- whose hex is the sourcedId: byte order is sourcedId order, so a list sorted by sourcedId
-- is an index range. SQLite has no SHA-256, so the store fills it on versions written before
-- this migration when it opens (`sqlite::fill_consumer_ids`); every version inserted since
-- carries it.
ALTER TABLE records ADD COLUMN consumer_id BLOB CHECK (consumer_id IS NULL OR length(consumer_id) = 16);
-- One page of a kind in sourcedId order, across the scope's sites.
CREATE INDEX records_consumer_page ON records (entity, consumer_id, site) WHERE is_current;
-- Whether a student is enrolled at a school of the scope: one probe per student.
CREATE INDEX records_enrolled ON records
    (site, json_extract(record, '$.student'), json_extract(record, '$.school'))
    WHERE is_current AND entity = 'enrollments';
