-- The size of each applied batch, PostgreSQL: the envelope's bytes as central received them,
-- so the site page can show what each transfer cost the school's uplink.
-- Numbered 0007: 0006 belongs to another change. Rows from before it read as 0.
ALTER TABLE transfers ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0);
