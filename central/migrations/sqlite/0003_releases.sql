-- Remote update (DESIGN decision 7), SQLite. Times are Unix milliseconds (UTC).

-- Registered releases: the signed manifest as operations made it, the fields central selects
-- and orders by, whether the artifact is stored (under `releases_dir`, checked against
-- `size` and `sha256`), and the rollout policy. A device is offered the release if it is in
-- the first `percent` percent of the release's stable cohorts or its site is in `sites` (a
-- JSON array of site ids), unless the release is paused.
CREATE TABLE releases (
    id              TEXT PRIMARY KEY,
    major           INTEGER NOT NULL CHECK (major >= 0),
    minor           INTEGER NOT NULL CHECK (minor >= 0),
    patch           INTEGER NOT NULL CHECK (patch >= 0),
    target          TEXT NOT NULL,
    size            INTEGER NOT NULL CHECK (size >= 0),
    sha256          BLOB NOT NULL CHECK (length(sha256) = 32),
    allow_downgrade INTEGER NOT NULL CHECK (allow_downgrade IN (0, 1)),
    manifest        BLOB NOT NULL,
    created         INTEGER NOT NULL,
    artifact_stored INTEGER NOT NULL DEFAULT 0 CHECK (artifact_stored IN (0, 1)),
    percent         INTEGER NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
    sites           TEXT NOT NULL DEFAULT '[]',
    paused          INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1))
) STRICT;

-- What devices reported about a release (and when central first offered it): one row per
-- device, release and state, so an agent repeating its report counts once.
CREATE TABLE release_updates (
    release TEXT NOT NULL REFERENCES releases (id),
    device  TEXT NOT NULL,
    state   TEXT NOT NULL CHECK (state IN
                ('offered', 'downloaded', 'installed', 'healthy', 'rolled_back', 'refused')),
    reason  TEXT,
    at      INTEGER NOT NULL,
    PRIMARY KEY (release, device, state)
) STRICT;

CREATE INDEX release_updates_device ON release_updates (device);
