-- Transfer windows, SQLite. Times are Unix milliseconds (UTC).
-- Numbered 0006: 0007 belongs to another change.

-- A county admission office's (inntakskontoret's) delivery periods: the county's schools
-- deliver their lists between opens and closes. Windows of one county do not overlap; the
-- store checks that inside the transaction that inserts one.
CREATE TABLE transfer_windows (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    fylke      TEXT NOT NULL CHECK (fylke GLOB '[0-9][0-9]'),
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    opens      INTEGER NOT NULL,
    closes     INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    CHECK (closes > opens)
) STRICT;
CREATE INDEX transfer_windows_fylke ON transfer_windows (fylke, opens);

-- Which batches came in during or after a window is read by time, across sites.
CREATE INDEX transfers_at ON transfers (at);
