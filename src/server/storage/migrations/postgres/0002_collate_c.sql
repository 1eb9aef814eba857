-- Names and keys are compared byte for byte (COLLATE "C"): nothing sorts
-- them for people, and a locale's collation made every index insert slower
-- (20,000 event_rooms rows: 148 ms under C.UTF-8, 103 ms under C). It also
-- keeps the store's behaviour independent of the server's locale.
--
-- A collation change does not rewrite the tables, only rebuilds the indexes
-- on these columns (once, at the first start of this version).
ALTER TABLE events
    ALTER COLUMN tenant_id       TYPE TEXT COLLATE "C",
    ALTER COLUMN event_type      TYPE TEXT COLLATE "C",
    ALTER COLUMN idempotency_key TYPE TEXT COLLATE "C";

ALTER TABLE event_rooms
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C",
    ALTER COLUMN room      TYPE TEXT COLLATE "C";

ALTER TABLE idempotency_keys
    ALTER COLUMN scope TYPE TEXT COLLATE "C",
    ALTER COLUMN key   TYPE TEXT COLLATE "C";

ALTER TABLE tenant_heads
    ALTER COLUMN tenant_id TYPE TEXT COLLATE "C";
