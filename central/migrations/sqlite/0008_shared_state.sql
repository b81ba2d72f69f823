-- What central has heard from its devices, what waits for them, and the sign-in lock,
-- SQLite: kept in the store so a restart loses nothing an operator saw and any central
-- process serves any device. Times are Unix milliseconds (UTC). Numbered 0008: renumber
-- freely at a merge, it depends only on `transfers` (0005).

-- The last heartbeat of each device, as the agent sent it (JSON: state, outbox, deviation
-- groups, held delta). Counts and states only, never personal data. No foreign key to
-- `devices`: the handlers check registration first, and a heartbeat must not wait on the
-- row a batch apply holds.
CREATE TABLE device_heartbeats (
    device    TEXT PRIMARY KEY,
    at        INTEGER NOT NULL,
    heartbeat TEXT NOT NULL
) STRICT;

-- Operators' commands (JSON as the heartbeat answer carries them), oldest first by id.
-- `delivered` is set in the transaction that hands the command to a heartbeat, so each is
-- delivered once; the last few delivered ones stay to show the operator what was delivered.
CREATE TABLE device_commands (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    device    TEXT NOT NULL,
    command   TEXT NOT NULL,
    queued    INTEGER NOT NULL,
    delivered INTEGER
) STRICT;
CREATE INDEX device_commands_device ON device_commands (device, id);

-- The last batch of each device is its newest transfer.
CREATE INDEX transfers_device ON transfers (device, id);

-- The sign-in lock: failed sign-ins per account name as typed, a token bucket (attempts
-- left at `at`), shared by every process on the store. Rows that have refilled whole are
-- dropped on each attempt.
CREATE TABLE sign_in_failures (
    name      TEXT PRIMARY KEY,
    available REAL NOT NULL,
    at        INTEGER NOT NULL
) STRICT;
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
