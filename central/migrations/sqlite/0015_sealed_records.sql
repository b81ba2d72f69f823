-- Sealing at rest (central::seal, issue 19). The data keys that seal record fields and key
-- the lookup hashes, each wrapped by the key-encryption key, which is never stored here.
-- `kek` is the public id of the KEK that wrapped the key (Kek::id), not the KEK.
CREATE TABLE seal_keys (
    key_id  INTEGER PRIMARY KEY CHECK (key_id > 0),
    purpose TEXT NOT NULL CHECK (purpose IN ('records', 'lookup')),
    wrapped BLOB NOT NULL,
    kek     TEXT NOT NULL,
    created INTEGER NOT NULL,
    active  INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
) STRICT;
-- At most one records key seals new rows.
CREATE UNIQUE INDEX seal_keys_active ON seal_keys (purpose) WHERE active = 1;

-- The records key a row's sealed fields are under; NULL for a clear row (written before
-- sealing, or a school or basisgruppe, which hold no personal data). The reseal job visits
-- the rows of students and enrollments whose key is not the active one.
ALTER TABLE records ADD COLUMN key_id INTEGER;
-- The clear rows of students and enrollments: empty once sealed, so start-up sees at once
-- whether rows from before sealing are left to seal.
CREATE INDEX records_clear ON records (id)
    WHERE key_id IS NULL AND entity IN ('students', 'enrollments');
