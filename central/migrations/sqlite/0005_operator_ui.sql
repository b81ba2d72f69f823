-- The operator web interface, SQLite. Times are Unix milliseconds (UTC).
-- Numbered 0005: 0003 belongs to another change.

-- Operator accounts. The password is kept only as an argon2id PHC string (salt and
-- parameters included). A municipality account names its kommune (four digits); the others
-- name none.
CREATE TABLE ui_users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('operations', 'municipality', 'read_only')),
    kommune       TEXT CHECK ((role = 'municipality') = (kommune IS NOT NULL)),
    password_hash TEXT NOT NULL,
    created       INTEGER NOT NULL
) STRICT;

-- Signed-in sessions, by the SHA-256 of the cookie's random id, so the table (or a backup
-- of it) cannot be replayed as cookies. The CSRF token is per session.
CREATE TABLE ui_sessions (
    id_sha256 BLOB PRIMARY KEY CHECK (length(id_sha256) = 32),
    user      TEXT NOT NULL REFERENCES ui_users (name),
    csrf      TEXT NOT NULL,
    expires   INTEGER NOT NULL
) STRICT;
CREATE INDEX ui_sessions_expires ON ui_sessions (expires);

-- Every operator action: who, when, what, on which target, with the operator's reason.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
) STRICT;

-- One row per applied batch, written in the batch's transaction: the site's transfers over
-- time, with how many records each added, changed and removed.
CREATE TABLE transfers (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    site      TEXT NOT NULL,
    device    TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    snapshot  INTEGER NOT NULL CHECK (snapshot IN (0, 1)),
    added     INTEGER NOT NULL,
    changed   INTEGER NOT NULL,
    removed   INTEGER NOT NULL,
    unchanged INTEGER NOT NULL
) STRICT;
CREATE INDEX transfers_site ON transfers (site, id);
