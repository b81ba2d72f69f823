-- Key rotations, SQLite (issue 18, "Keys that can be rotated"): the statements operations
-- publish with `skolebro-provision rotate-key`, which every heartbeat answer carries to every
-- device. Central cannot check a stick key rotation (it holds no stick key) and could not forge
-- one (it holds no signing key), so it keeps the bytes as published; the role and sequence are
-- read from them to order and deduplicate. Times are Unix milliseconds (UTC). Self-contained: it
-- touches no table of another change.
CREATE TABLE key_rotations (
    role      TEXT NOT NULL CHECK (role IN ('stick', 'release')),
    sequence  INTEGER NOT NULL CHECK (sequence > 0),
    statement BLOB NOT NULL,
    published INTEGER NOT NULL,
    PRIMARY KEY (role, sequence)
) STRICT;
