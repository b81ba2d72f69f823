-- Retention and a site's exit, PostgreSQL (docs/PRIVACY.md). Numbered 0016: 0013 to 0015
-- belong to other changes; this one depends only on `records` (0001) and `audit_log` (0005).
-- Times are Unix milliseconds (UTC).

-- Closed versions by site and the time they were closed: what the retention job scans for
-- versions older than a county's period, without reading the current ones.
CREATE INDEX records_closed_until ON records (site, valid_to) WHERE NOT is_current;

-- Audit lines are purged by age once older than `[privacy] audit_days`.
CREATE INDEX audit_log_at ON audit_log (at);

-- One row per finished retention run (serve's schedule or `retention run`): what the
-- metrics report, whichever process ran it. Counts only, no personal data.
CREATE TABLE retention_runs (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started  BIGINT NOT NULL,
    finished BIGINT NOT NULL,
    versions BIGINT NOT NULL CHECK (versions >= 0),
    departed BIGINT NOT NULL CHECK (departed >= 0),
    audit    BIGINT NOT NULL CHECK (audit >= 0)
);
