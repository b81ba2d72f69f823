-- Each device's history by Oslo day, PostgreSQL, for the site page's charts (issue 16):
-- whether a delta was held that day and the deviations its day's latest heartbeat reported,
-- by code. Numbered 0019: it depends only on `devices` (0001). Written by each heartbeat;
-- rows older than 90 days are dropped by the next heartbeat of the device, and a site's exit
-- drops them all. Codes and counts only, never a national id or a name. Times are Unix
-- milliseconds (UTC); `day` counts days since 1970-01-01 on Oslo's calendar. No foreign key
-- to `devices`, as for `device_heartbeats` (0008).

-- One row per device and day: the newest heartbeat's time that day (which heartbeat's
-- deviations are kept) and whether any heartbeat that day carried a held delta.
CREATE TABLE device_days (
    device TEXT COLLATE "C" NOT NULL,
    day    BIGINT NOT NULL,
    at     BIGINT NOT NULL,
    held   BOOLEAN NOT NULL,
    PRIMARY KEY (device, day)
);

-- The deviation groups of the day's newest heartbeat: one row per device, day and code.
CREATE TABLE device_day_deviations (
    device TEXT COLLATE "C" NOT NULL,
    day    BIGINT NOT NULL,
    code   TEXT COLLATE "C" NOT NULL,
    error  BOOLEAN NOT NULL,
    count  BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (device, day, code)
);
