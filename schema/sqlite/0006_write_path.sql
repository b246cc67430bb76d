-- Fewer pages per command (issue #16): every B-tree a command touches is at least one more page in the WAL and
-- again at checkpoint. Same rows, same values; what changes is how many B-trees hold them.
--
-- GRDB runs a migration with foreign keys off and checks them once at its end (foreign_key_check), which the table
-- rebuilds below need: each follows SQLite's "create new, copy, drop old, rename" procedure.

-- 1. key_versions: one B-tree instead of three. As a rowid table with a TEXT primary key and UNIQUE (key_id,
--    ordinal) it kept the rows, an index on id and an index on (key_id, ordinal), three random pages for every
--    create and rotate. Every read gives the key (versions by key and ordinal; material by key and version id,
--    among the key's few versions), so the rows are stored in (key_id, ordinal) order and nothing else.
CREATE TABLE key_versions_0006 (
    key_id          TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    ordinal         INTEGER NOT NULL,
    id              TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    sealed_material BLOB,
    PRIMARY KEY (key_id, ordinal)
) WITHOUT ROWID;
INSERT INTO key_versions_0006 (key_id, ordinal, id, created_at, sealed_material)
    SELECT key_id, ordinal, id, created_at, sealed_material FROM key_versions;
-- secure_delete is on: the old table's pages, sealed material included, are zeroed as they are freed.
DROP TABLE key_versions;
ALTER TABLE key_versions_0006 RENAME TO key_versions;

-- 2. events: INTEGER PRIMARY KEY without AUTOINCREMENT. AUTOINCREMENT wrote the sqlite_sequence row in every
--    transaction that appends an event (one more page per command). It only differs from a plain rowid when the row
--    with the largest seq is deleted, and events are never deleted (a purge keeps them): seq stays global, increasing
--    and never reused, continuing after the largest seq copied here.
CREATE TABLE events_0006 (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    instance_id     TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    key_seq         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    key_state       INTEGER NOT NULL,
    version_id      TEXT NOT NULL,
    version_created_at INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    principal       TEXT NOT NULL,
    correlation_id  TEXT,
    UNIQUE (key_id, key_seq)
);
INSERT INTO events_0006 (seq, id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at,
                         principal, correlation_id)
    SELECT seq, id, instance_id, key_id, key_seq, kind, key_state, version_id, version_created_at, at, principal,
           correlation_id FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_0006 RENAME TO events;
CREATE INDEX events_by_instance ON events (instance_id, seq);

-- 3. An integer id per (key, resource) pair: notifications_by_key_resource (key_id, resource_crn) repeated the
--    36-byte key id and the ~90-byte CRN of every notification, as many bytes as the notification rows themselves
--    (a sync's fan-out wrote 2.0x the bytes of the same rows inserted raw). A pair gets its id when the resource is
--    registered (or here, for the pairs already stored) and keeps it for good, also after the registration is
--    deleted and made again, so a notification's per-resource order is the same as before; notifications are found
--    per resource by `target_id` (a few bytes per entry) and per key through the pairs of the key.
CREATE TABLE notification_targets (
    id           INTEGER PRIMARY KEY,
    key_id       TEXT NOT NULL,
    resource_crn TEXT NOT NULL,
    UNIQUE (key_id, resource_crn)
);
INSERT OR IGNORE INTO notification_targets (key_id, resource_crn)
    SELECT key_id, resource_crn FROM notifications ORDER BY id;
INSERT OR IGNORE INTO notification_targets (key_id, resource_crn)
    SELECT key_id, resource_crn FROM registrations ORDER BY key_id, resource_crn;

ALTER TABLE registrations ADD COLUMN target_id INTEGER;
UPDATE registrations SET target_id = (SELECT t.id FROM notification_targets t
                                      WHERE t.key_id = registrations.key_id AND t.resource_crn = registrations.resource_crn);

ALTER TABLE notifications ADD COLUMN target_id INTEGER;
UPDATE notifications SET target_id = (SELECT t.id FROM notification_targets t
                                      WHERE t.key_id = notifications.key_id AND t.resource_crn = notifications.resource_crn);
DROP INDEX notifications_by_key_resource;
CREATE INDEX notifications_by_target ON notifications (target_id);
