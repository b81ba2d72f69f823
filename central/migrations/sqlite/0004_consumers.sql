-- Consumers of the data (OneRoster REST), SQLite. Times are Unix milliseconds (UTC).
-- Numbered 0004: 0003 belongs to another change.

-- OAuth2 clients, created by operations. Only a salted SHA-256 of the secret is kept, so
-- the database (or a backup of it) cannot authenticate as a client. The scope is one county
-- (fylkesnummer, 2 digits) or one kommune (kommunenummer, 4 digits).
CREATE TABLE consumer_clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    scope_kind    TEXT NOT NULL CHECK (scope_kind IN ('county', 'kommune')),
    scope_code    TEXT NOT NULL,
    secret_salt   BLOB NOT NULL CHECK (length(secret_salt) = 16),
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created       INTEGER NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;

-- Short-lived bearer tokens, by their SHA-256 (a token is 256 random bits, so no salt is
-- needed to keep a stolen table from being turned back into tokens).
CREATE TABLE consumer_tokens (
    token_sha256 BLOB PRIMARY KEY CHECK (length(token_sha256) = 32),
    client       TEXT NOT NULL REFERENCES consumer_clients (id),
    expires      INTEGER NOT NULL
) STRICT;
CREATE INDEX consumer_tokens_expires ON consumer_tokens (expires);

-- The current school records of every site, for scoping consumers by county and kommune
-- without scanning every site's records.
CREATE INDEX records_current_schools ON records (site) WHERE is_current AND entity = 'schools';
