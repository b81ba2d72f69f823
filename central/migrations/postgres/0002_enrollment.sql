-- Enrollment (DESIGN decision 6), PostgreSQL. Times are Unix milliseconds (UTC), as in the
-- SQLite store.

-- One-time enrollment tokens. Only the token's SHA-256 is kept, so the database (or a backup
-- of it) cannot enroll anything; `id` is the hash's first 16 hex characters, which lists,
-- logs and revocations name. `used_by` and `used_at` are set together, by the enrollment
-- that spends the token, in the transaction that registers the device (which locks the
-- token's row first: SELECT ... FOR UPDATE).
CREATE TABLE enrollment_tokens (
    token_sha256 BYTEA PRIMARY KEY CHECK (length(token_sha256) = 32),
    id           TEXT COLLATE "C" NOT NULL UNIQUE CHECK (length(id) = 16),
    site         TEXT COLLATE "C" NOT NULL,
    site_name    TEXT NOT NULL,
    created      BIGINT NOT NULL,
    expires      BIGINT NOT NULL,
    used_by      TEXT COLLATE "C",
    used_at      BIGINT,
    revoked      BOOLEAN NOT NULL DEFAULT false,
    CHECK ((used_by IS NULL) = (used_at IS NULL))
);
