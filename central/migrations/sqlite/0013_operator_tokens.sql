-- The operator API's clients, SQLite: one bearer token per named client (a script, Prometheus'
-- neighbour, `skolebro-provision` on an operator's shell), made and revoked with
-- `skolebro-central operator-token`. Times are Unix milliseconds (UTC). Self-contained: it
-- touches no table of another change. Only the token's SHA-256 is kept (a token is 256 random
-- bits, so no salt or slow hash is needed), so the database, or a backup of it, cannot call the
-- API. A revoked token keeps its row, so the list says when; a new token for the same name
-- replaces the revoked one.
CREATE TABLE operator_tokens (
    name         TEXT PRIMARY KEY,
    token_sha256 BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created      INTEGER NOT NULL,
    revoked      INTEGER
) STRICT;
