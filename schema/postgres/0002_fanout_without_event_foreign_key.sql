-- KeyRelay schema for PostgreSQL, migration 2: the fan-out without a per-row foreign-key check (issue 12).
--
-- notifications.event_seq REFERENCES events(seq) made PostgreSQL run its referential-integrity trigger once per
-- inserted notification: a sync of a key with 100,000 registrations ran 100,000 `SELECT 1 FROM events WHERE seq = ?
-- FOR KEY SHARE` lookups of the same event row. EXPLAIN (ANALYZE) of that fan-out on a durable PostgreSQL 15 showed
-- the trigger at 0.86 s of 2.77 s, and the server's CPU for the fan-out went from 880 ms to 580 ms without it (the same
-- INSERT ... SELECT, the same indexes).
--
-- What the constraint guarded still holds without it: a notification is only written by the fan-out, whose
-- event_seq is the sequence the same transaction's INSERT INTO events returned, and events are never deleted or
-- updated (a purge keeps them; no statement of the store deletes or updates an event row). The SQLite backend keeps
-- its REFERENCES clause, where a check is a lookup in the same B-tree page cache, not a trigger.
ALTER TABLE notifications DROP CONSTRAINT notifications_event_seq_fkey;
COMMENT ON COLUMN notifications.event_seq IS
    'The event (events.seq) this notification announces. No foreign key since migration 0002: the fan-out writes the sequence its own transaction appended, and events are never deleted.';
