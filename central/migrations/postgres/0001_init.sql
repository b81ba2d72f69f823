-- Central's store, first schema (PostgreSQL). Applied once by PostgresStore::connect in the
-- configured schema; the runner records it in schema_version. Times are Unix milliseconds
-- (UTC), as in the SQLite store, so both compare and test the same.

-- Sites and the secret their record handles are keyed with (DESIGN decision 1).
CREATE TABLE sites (
    site   TEXT PRIMARY KEY,
    secret BYTEA NOT NULL CHECK (length(secret) = 32)
);

-- Enrolled devices, each with its chain head (DESIGN decisions 2 and 3). The head lives in
-- the device row so that apply locks (SELECT ... FOR UPDATE) and advances it in the same
-- transaction as the records.
CREATE TABLE devices (
    device        TEXT PRIMARY KEY,
    site          TEXT NOT NULL,
    verifying_key BYTEA NOT NULL CHECK (length(verifying_key) = 32),
    revoked       BOOLEAN NOT NULL DEFAULT false,
    next_seq      BIGINT NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    prev          BYTEA NOT NULL DEFAULT decode(repeat('00', 32), 'hex') CHECK (length(prev) = 32)
);

-- Every version of every roster record (DESIGN decision 9, the seed's `elev` table).
-- A version is valid from valid_from (inclusive) to valid_to (exclusive); valid_to is NULL
-- exactly while the version is current.
CREATE TABLE records (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site             TEXT NOT NULL REFERENCES sites (site),
    entity           TEXT NOT NULL CHECK (entity IN ('schools', 'students', 'groups', 'enrollments')),
    handle           BYTEA NOT NULL CHECK (length(handle) = 32),
    digest           BYTEA NOT NULL CHECK (length(digest) = 32),
    record           JSONB NOT NULL,
    valid_from       BIGINT NOT NULL,
    valid_to         BIGINT,
    is_current       BOOLEAN NOT NULL,
    transaction_time BIGINT NOT NULL,
    CHECK ((valid_to IS NULL) = is_current)
);

-- At most one current version per record; also the index apply and current reads use.
CREATE UNIQUE INDEX records_current ON records (site, entity, handle) WHERE is_current;
-- History: a record's versions, and rosters as of a time.
CREATE INDEX records_history ON records (site, entity, handle, valid_from);
CREATE INDEX records_as_of ON records (site, valid_from);
