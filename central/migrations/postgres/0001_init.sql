-- Central's store, first schema (PostgreSQL). Applied once by PostgresStore::connect in the
-- configured schema; the runner records it in schema_version. Times are Unix milliseconds
-- (UTC), as in the SQLite store, so both compare and test the same.
--
-- Text keys are COLLATE "C": compared as bytes, so the order of the indexes is the one the
-- store sorts a batch in before writing it (entity name, then handle) whatever the database's
-- locale, and comparisons skip the locale's collation routines.

-- Sites and the secret their record handles are keyed with (DESIGN decision 1).
CREATE TABLE sites (
    site   TEXT COLLATE "C" PRIMARY KEY,
    secret BYTEA NOT NULL CHECK (length(secret) = 32)
);

-- Enrolled devices, each with its chain head (DESIGN decisions 2 and 3). The head lives in
-- the device row so that apply locks (SELECT ... FOR UPDATE) and advances it in the same
-- transaction as the records.
CREATE TABLE devices (
    device        TEXT COLLATE "C" PRIMARY KEY,
    site          TEXT COLLATE "C" NOT NULL,
    verifying_key BYTEA NOT NULL CHECK (length(verifying_key) = 32),
    revoked       BOOLEAN NOT NULL DEFAULT false,
    next_seq      BIGINT NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    prev          BYTEA NOT NULL DEFAULT decode(repeat('00', 32), 'hex') CHECK (length(prev) = 32)
);

-- Every version of every roster record (DESIGN decision 9, the seed's `elev` table).
-- A version is valid from valid_from (inclusive) to valid_to (exclusive); valid_to is NULL
-- exactly while the version is current.
--
-- `record` is `json`, not `jsonb`: the store never looks inside a record in SQL (it compares
-- digests and reads whole records back to decode them), so `jsonb`'s conversion to its
-- binary form on every insert would be work for nobody; `json` still refuses anything that
-- is not JSON, keeps the canonical text the store wrote, and answers `->` / `->>` for an
-- operator (or `record::jsonb` for more).
--
-- `site` is not a foreign key: PostgreSQL checks a foreign key with a trigger per inserted
-- row, which cost more than the whole rest of a large snapshot's insert. The same integrity
-- holds without it: records are written only by apply, which first reads and locks the
-- site's row (SELECT ... FOR UPDATE) in the same transaction and refuses a site without one;
-- and `sites_keep_records` below refuses to delete, rename or truncate a site that has
-- records, which is what the foreign key's ON DELETE NO ACTION did.
CREATE TABLE records (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site             TEXT COLLATE "C" NOT NULL,
    entity           TEXT COLLATE "C" NOT NULL
                     CHECK (entity IN ('schools', 'students', 'groups', 'enrollments')),
    handle           BYTEA NOT NULL CHECK (length(handle) = 32),
    digest           BYTEA NOT NULL CHECK (length(digest) = 32),
    record           JSON NOT NULL,
    valid_from       BIGINT NOT NULL,
    valid_to         BIGINT,
    is_current       BOOLEAN NOT NULL,
    transaction_time BIGINT NOT NULL,
    CHECK ((valid_to IS NULL) = is_current)
);

-- Two partial indexes split a record's versions: the current one (at most one per record,
-- which the UNIQUE enforces) and the closed ones. Together they cover every lookup: apply
-- reads current versions, rosters and counts read current versions by site, a history reads
-- a record's versions from both, a roster as of a time reads both by site. Splitting them
-- means a version enters the closed index only when it is closed: a snapshot into a new site
-- maintains one index besides the primary key, not the three it would with a full history
-- index and an as-of index beside the current one. Queries name `is_current` or
-- `NOT is_current` so the planner can prove which index applies.
CREATE UNIQUE INDEX records_current ON records (site, entity, handle) WHERE is_current;
CREATE INDEX records_closed ON records (site, entity, handle, valid_from) WHERE NOT is_current;

-- The parent side of the site reference (see `records`): a site with records may not be
-- deleted, renamed or truncated away.
-- `SET search_path FROM CURRENT` pins the function to the store's schema, whatever the
-- search_path of the session deleting.
CREATE FUNCTION sites_keep_records() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM records) THEN
            RAISE EXCEPTION 'sites cannot be truncated while records exist'
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.site IS NOT DISTINCT FROM OLD.site THEN
            RETURN NEW;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM records WHERE site = OLD.site AND is_current)
        OR EXISTS (SELECT 1 FROM records WHERE site = OLD.site AND NOT is_current) THEN
        RAISE EXCEPTION 'site % still has records', OLD.site
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER sites_keep_records BEFORE DELETE OR UPDATE OF site ON sites
    FOR EACH ROW EXECUTE FUNCTION sites_keep_records();
CREATE TRIGGER sites_keep_records_truncate BEFORE TRUNCATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION sites_keep_records();
