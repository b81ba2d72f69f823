-- Who read what, SQLite: one row per consumer API answer that carried personal data (users,
-- demographics, enrollments), kept for `[privacy] access_log_days` and then purged.
-- Times are Unix milliseconds (UTC). Self-contained: it touches no table of another change.
-- `client` is not a foreign key: a row outlives nothing it names, and the name is copied so a
-- renamed or removed client's reads still say who it was. `filter` is stored with every run of
-- 11 digits masked, so a client filtering on a national id leaves no id here.
CREATE TABLE access_log (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    client      TEXT NOT NULL,
    client_name TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    filter      TEXT,
    records     INTEGER NOT NULL CHECK (records >= 0)
) STRICT;
CREATE INDEX access_log_at ON access_log (at);
CREATE INDEX access_log_client ON access_log (client, id);

-- The sites whose records were in the answer: what per-site and municipal views select on.
CREATE TABLE access_log_sites (
    entry INTEGER NOT NULL REFERENCES access_log (id) ON DELETE CASCADE,
    site  TEXT NOT NULL,
    PRIMARY KEY (entry, site)
) STRICT;
CREATE INDEX access_log_sites_site ON access_log_sites (site, entry);
