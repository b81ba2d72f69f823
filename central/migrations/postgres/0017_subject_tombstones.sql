-- Subject erasure (docs/PRIVACY.md, "A pupil's data: access and erasure"), PostgreSQL. Numbered
-- 0017; depends only on `records` (0001).

-- One row per pupil erased at a site: what keeps a later batch from storing the pupil
-- again unseen. `subject` is the keyed hash of the national id (the lookup key's HMAC, as
-- sealed rows hold it; an unkeyed hash on a central without sealing), `student_keys` a JSON
-- array of the same hashes of the pupil's student keys at the site, so an enrollment naming
-- the pupil is recognised too. No clear id, no name. `returned` counts the records a later
-- batch carried and central held back; `returned_at` is the newest such batch.
CREATE TABLE subject_tombstones (
    subject      TEXT NOT NULL,
    site         TEXT NOT NULL,
    student_keys TEXT NOT NULL,
    erased_at    BIGINT NOT NULL,
    erased_by    TEXT NOT NULL,
    reason       TEXT NOT NULL,
    returned     BIGINT NOT NULL DEFAULT 0 CHECK (returned >= 0),
    returned_at  BIGINT,
    PRIMARY KEY (site, subject)
);
