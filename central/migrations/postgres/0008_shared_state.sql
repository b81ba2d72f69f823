-- What central has heard from its devices, what waits for them, and the sign-in lock,
-- PostgreSQL: kept in the store so a restart loses nothing an operator saw and any central
-- process serves any device. Times are Unix milliseconds (UTC). Numbered 0008: renumber
-- freely at a merge, it depends only on `transfers` (0005).

-- The last heartbeat of each device, as the agent sent it (JSON text: state, outbox,
-- deviation groups, held delta). Counts and states only, never personal data. No foreign
-- key to `devices`: the handlers check registration first, and a foreign key check would
-- wait on the device row a batch apply holds `FOR UPDATE`.
CREATE TABLE device_heartbeats (
    device    TEXT COLLATE "C" PRIMARY KEY,
    at        BIGINT NOT NULL,
    heartbeat TEXT NOT NULL
);

-- Operators' commands (JSON as the heartbeat answer carries them), oldest first by id.
-- `delivered` is set by the `UPDATE … RETURNING` that hands the command to a heartbeat: a
-- second heartbeat racing it on another central waits for the row and then skips it, so
-- each command is delivered once. The last few delivered ones stay for the operator.
CREATE TABLE device_commands (
    id        BIGSERIAL PRIMARY KEY,
    device    TEXT COLLATE "C" NOT NULL,
    command   TEXT NOT NULL,
    queued    BIGINT NOT NULL,
    delivered BIGINT
);
CREATE INDEX device_commands_device ON device_commands (device, id);

-- The last batch of each device is its newest transfer.
CREATE INDEX transfers_device ON transfers (device, id);

-- The sign-in lock: failed sign-ins per account name as typed, a token bucket (attempts
-- left at `at`), shared by every central on the database. Rows that have refilled whole
-- are dropped on each attempt.
CREATE TABLE sign_in_failures (
    name      TEXT COLLATE "C" PRIMARY KEY,
    available DOUBLE PRECISION NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_at ON sign_in_failures (at);
