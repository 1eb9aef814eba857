-- Idempotency keys remember what they were first used for, so a reuse for
-- different content is refused (422) instead of answered with the first
-- request's ids. NULL for keys stored before this migration: those are
-- honoured as before until they expire.
ALTER TABLE idempotency_keys ADD COLUMN fingerprint TEXT;
ALTER TABLE events ADD COLUMN idempotency_fingerprint TEXT;

-- The hourly sweep frees event keys past their time-to-live; this index
-- holds keyed events only, so the sweep never walks the whole history.
CREATE INDEX events_keyed_received ON events (received_at)
    WHERE idempotency_key IS NOT NULL;
