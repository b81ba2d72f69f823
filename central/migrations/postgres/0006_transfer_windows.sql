-- Transfer windows, PostgreSQL. Times are Unix milliseconds (UTC).
-- Numbered 0006: 0007 belongs to another change.

-- A county admission office's (inntakskontoret's) delivery periods: the county's schools
-- deliver their lists between opens and closes. Windows of one county do not overlap; the
-- store checks that inside the transaction that inserts one, under a table lock.
CREATE TABLE transfer_windows (
    id         BIGSERIAL PRIMARY KEY,
    fylke      TEXT COLLATE "C" NOT NULL CHECK (fylke ~ '^[0-9]{2}$'),
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    opens      BIGINT NOT NULL,
    closes     BIGINT NOT NULL,
    created    BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    CHECK (closes > opens)
);
CREATE INDEX transfer_windows_fylke ON transfer_windows (fylke, opens);

-- Which batches came in during or after a window is read by time, across sites.
CREATE INDEX transfers_at ON transfers (at);
