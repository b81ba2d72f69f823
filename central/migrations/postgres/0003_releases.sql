-- Remote update (DESIGN decision 7), PostgreSQL. Times are Unix milliseconds (UTC), as in
-- the SQLite store.

-- Registered releases: the signed manifest as operations made it, the fields central selects
-- and orders by, whether the artifact is stored (under `releases_dir`, checked against
-- `size` and `sha256`), and the rollout policy. A device is offered the release if it is in
-- the first `percent` percent of the release's stable cohorts or its site is in `sites` (a
-- JSON array of site ids), unless the release is paused.
CREATE TABLE releases (
    id              TEXT COLLATE "C" PRIMARY KEY,
    major           BIGINT NOT NULL CHECK (major >= 0),
    minor           BIGINT NOT NULL CHECK (minor >= 0),
    patch           BIGINT NOT NULL CHECK (patch >= 0),
    target          TEXT COLLATE "C" NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    sha256          BYTEA NOT NULL CHECK (length(sha256) = 32),
    allow_downgrade BOOLEAN NOT NULL,
    manifest        BYTEA NOT NULL,
    created         BIGINT NOT NULL,
    artifact_stored BOOLEAN NOT NULL DEFAULT false,
    percent         SMALLINT NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
    sites           TEXT NOT NULL DEFAULT '[]',
    paused          BOOLEAN NOT NULL DEFAULT false
);

-- What devices reported about a release (and when central first offered it): one row per
-- device, release and state, so an agent repeating its report counts once.
CREATE TABLE release_updates (
    release TEXT COLLATE "C" NOT NULL REFERENCES releases (id),
    device  TEXT COLLATE "C" NOT NULL,
    state   TEXT NOT NULL CHECK (state IN
                ('offered', 'downloaded', 'installed', 'healthy', 'rolled_back', 'refused')),
    reason  TEXT,
    at      BIGINT NOT NULL,
    PRIMARY KEY (release, device, state)
);

CREATE INDEX release_updates_device ON release_updates (device);
