-- Paging the consumer API in the store, PostgreSQL (docs/API.md, "Paging"). `consumer_id`
-- is the first 16 bytes of the OneRoster sourcedId's SHA-256 (`store::records::consumer_id`),
-- whose hex is the sourcedId: byte order is sourcedId order, so a list sorted by sourcedId
-- is an index range. Versions written before this migration get it here; every version
-- inserted since carries it.
ALTER TABLE records ADD COLUMN consumer_id BYTEA CHECK (consumer_id IS NULL OR length(consumer_id) = 16);
UPDATE records
   SET consumer_id = substring(sha256('skolebro-oneroster-v1'::bytea || COALESCE(identity, handle)) FROM 1 FOR 16);
-- One page of a kind in sourcedId order, across the scope's sites.
CREATE INDEX records_consumer_page ON records (entity, consumer_id, site) WHERE is_current;
-- Whether a student is enrolled at a school of the scope: one probe per student.
CREATE INDEX records_enrolled ON records (site, (record->>'student'), (record->>'school'))
    WHERE is_current AND entity = 'enrollments';
