-- Central's store, first schema (SQLite). Applied once by SqliteStore::open; the runner
-- records it in schema_version. Times are Unix milliseconds (UTC).

-- Sites and the secret their record handles are keyed with (DESIGN decision 1).
CREATE TABLE sites (
    site   TEXT PRIMARY KEY,
    secret BLOB NOT NULL CHECK (length(secret) = 32)
) STRICT;

-- Enrolled devices, each with its chain head (DESIGN decisions 2 and 3). The head lives in
-- the device row so that apply locks and advances it in the same transaction as the records.
CREATE TABLE devices (
    device        TEXT PRIMARY KEY,
    site          TEXT NOT NULL,
    verifying_key BLOB NOT NULL CHECK (length(verifying_key) = 32),
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    next_seq      INTEGER NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    prev          BLOB NOT NULL DEFAULT (zeroblob(32)) CHECK (length(prev) = 32)
) STRICT;

-- Every version of every roster record (DESIGN decision 9, the seed's `elev` table).
-- A version is valid from valid_from (inclusive) to valid_to (exclusive); valid_to is NULL
-- exactly while the version is current.
CREATE TABLE records (
    id               INTEGER PRIMARY KEY,
    site             TEXT NOT NULL REFERENCES sites (site),
    entity           TEXT NOT NULL CHECK (entity IN ('schools', 'students', 'groups', 'enrollments')),
    handle           BLOB NOT NULL CHECK (length(handle) = 32),
    digest           BLOB NOT NULL CHECK (length(digest) = 32),
    record           TEXT NOT NULL CHECK (json_valid(record)),
    valid_from       INTEGER NOT NULL,
    valid_to         INTEGER,
    is_current       INTEGER NOT NULL CHECK (is_current IN (0, 1)),
    transaction_time INTEGER NOT NULL,
    CHECK ((valid_to IS NULL) = (is_current = 1))
) STRICT;

-- Two partial indexes split a record's versions: the current one (at most one per record,
-- which the UNIQUE enforces) and the closed ones. Together they cover every lookup: apply
-- reads current versions, rosters and counts read current versions by site, a history reads
-- a record's versions from both, a roster as of a time reads both by site. Splitting them
-- means a version enters the closed index only when it is closed: a snapshot into a new site
-- maintains one index, not the three it would with a full history index and an as-of index
-- beside the current one. Queries name `is_current` or `NOT is_current` so SQLite can prove
-- which index applies.
CREATE UNIQUE INDEX records_current ON records (site, entity, handle) WHERE is_current;
CREATE INDEX records_closed ON records (site, entity, handle, valid_from) WHERE NOT is_current;
