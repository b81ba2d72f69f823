-- Enrollment (DESIGN decision 6), SQLite. Times are Unix milliseconds (UTC).

-- One-time enrollment tokens. Only the token's SHA-256 is kept, so the database (or a backup
-- of it) cannot enroll anything; `id` is the hash's first 16 hex characters, which lists,
-- logs and revocations name. `used_by` and `used_at` are set together, by the enrollment
-- that spends the token, in the transaction that registers the device.
CREATE TABLE enrollment_tokens (
    token_sha256 BLOB PRIMARY KEY CHECK (length(token_sha256) = 32),
    id           TEXT NOT NULL UNIQUE CHECK (length(id) = 16),
    site         TEXT NOT NULL,
    site_name    TEXT NOT NULL,
    created      INTEGER NOT NULL,
    expires      INTEGER NOT NULL,
    used_by      TEXT,
    used_at      INTEGER,
    revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    CHECK ((used_by IS NULL) = (used_at IS NULL))
) STRICT;
