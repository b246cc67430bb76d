-- KeyRelay schema for PostgreSQL, migration 3: an integer id per (key, resource) pair (issue 12), as
-- schema/sqlite/0006 (section 3) gave SQLite.
--
-- notifications_by_key_resource (key_id, resource_crn, id) repeated the 36-byte key id and the ~90-byte CRN of every
-- notification: each fan-out row put a ~150-byte entry into it, the widest of the table's indexes, and the fan-out of
-- a sync (one INSERT ... SELECT) paid for it row by row. A pair now gets an integer id when its resource is
-- registered (or here, for the pairs already stored) and keeps it for good, also after the registration is deleted
-- and made again, so a notification's per-resource order stays what it was. The fan-out copies the registration's
-- target_id into each notification; notifications are found per resource by `target_id` (a 24-byte entry), per key
-- through the pairs of the key (notification_targets' own unique index, one entry per pair, not per event) and per
-- event through the pairs of the event's key.
--
-- The rows keep key_id and resource_crn: a notification still reads as before, and the key's notifications of a
-- purged key (its registrations gone with it) are still found through the pairs, which are never deleted.
CREATE TABLE notification_targets (
    id           BIGSERIAL PRIMARY KEY,
    key_id       TEXT COLLATE "C" NOT NULL,
    resource_crn TEXT COLLATE "C" NOT NULL,
    UNIQUE (key_id, resource_crn)
);
-- Every pair a notification or a registration names (a purged key's notifications have no registration left).
INSERT INTO notification_targets (key_id, resource_crn)
    SELECT key_id, resource_crn FROM notifications
    UNION
    SELECT key_id, resource_crn FROM registrations
    ORDER BY key_id, resource_crn;

ALTER TABLE registrations ADD COLUMN target_id BIGINT;
UPDATE registrations r SET target_id = t.id FROM notification_targets t
    WHERE t.key_id = r.key_id AND t.resource_crn = r.resource_crn;
ALTER TABLE registrations ALTER COLUMN target_id SET NOT NULL;

ALTER TABLE notifications ADD COLUMN target_id BIGINT;
UPDATE notifications n SET target_id = t.id FROM notification_targets t
    WHERE t.key_id = n.key_id AND t.resource_crn = n.resource_crn;
ALTER TABLE notifications ALTER COLUMN target_id SET NOT NULL;

DROP INDEX notifications_by_key_resource;
-- The per-resource order check (an earlier pending notification of the same target), acknowledgements
-- (`target_id = ? AND event_seq <= ?`), a state conflict and a notification by event and resource (`target_id = ?
-- AND event_seq = ?`), and, through the key's pairs, every per-key question (a key's notifications, its delivery
-- counts, a purge).
CREATE INDEX notifications_by_target ON notifications (target_id, event_seq);
-- An event's notifications are found through its key's pairs too: (the event's key's targets) x (target_id,
-- event_seq), one index probe per notification returned. notifications_by_event (event_seq) was one more entry
-- per fan-out row for that question only; the fan-out writes three indexes now (the primary key,
-- notifications_due_at, notifications_by_target), where it wrote four and the widest of them.
DROP INDEX notifications_by_event;
COMMENT ON COLUMN notifications.target_id IS
    'The (key_id, resource_crn) pair of this notification (notification_targets.id), copied from registrations.target_id by the fan-out: per-resource and per-event lookups use it since migration 0003.';
