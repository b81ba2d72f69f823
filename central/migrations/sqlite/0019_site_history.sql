-- Each device's history by Oslo day, SQLite, for the site page's charts (issue 16): whether a
-- delta was held that day and the deviations its day's latest heartbeat reported, by code.
-- Numbered 0019: it depends only on `devices` (0001). Written by each heartbeat; rows older
-- than 90 days are dropped by the next heartbeat of the device, and a site's exit drops them
-- all. Codes and counts only, never a national id or a name. Times are Unix milliseconds
-- (UTC); `day` counts days since 1970-01-01 on Oslo's calendar.

-- One row per device and day: the newest heartbeat's time that day (which heartbeat's
-- deviations are kept) and whether any heartbeat that day carried a held delta.
CREATE TABLE device_days (
    device TEXT NOT NULL,
    day    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    held   INTEGER NOT NULL CHECK (held IN (0, 1)),
    PRIMARY KEY (device, day)
) STRICT;

-- The deviation groups of the day's newest heartbeat: one row per device, day and code.
CREATE TABLE device_day_deviations (
    device TEXT NOT NULL,
    day    INTEGER NOT NULL,
    code   TEXT NOT NULL,
    error  INTEGER NOT NULL CHECK (error IN (0, 1)),
    count  INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (device, day, code)
) STRICT;
