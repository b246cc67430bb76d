-- KeyRelay schema, migration 1. Times are integer milliseconds since 1970-01-01T00:00:00Z (UTC).
-- This directory is the single source of truth: the KeyRelaySQLite module embeds these files at build time
-- and applies them in order (see Plugins/EmbedSchema).

-- Facts about the database itself (master-key check value, creation time).
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE instances (
    id         TEXT PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE key_rings (
    instance_id TEXT NOT NULL REFERENCES instances(id),
    id          TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (instance_id, id)
) WITHOUT ROWID;

CREATE TABLE keys (
    id                     TEXT PRIMARY KEY NOT NULL,
    instance_id            TEXT NOT NULL REFERENCES instances(id),
    name                   TEXT NOT NULL,
    description            TEXT,
    tags                   TEXT NOT NULL DEFAULT '[]',        -- JSON array of strings
    key_ring_id            TEXT NOT NULL DEFAULT 'default',
    extractable            INTEGER NOT NULL,                   -- 0 root key, 1 standard key
    imported               INTEGER NOT NULL,
    state                  INTEGER NOT NULL CHECK (state IN (1, 2, 3, 5)),
    created_at             INTEGER NOT NULL,
    created_by             TEXT NOT NULL,
    updated_at             INTEGER NOT NULL,
    updated_by             TEXT NOT NULL,
    last_action_at         INTEGER,                            -- last rotate/disable/enable/delete/restore
    last_sync_at           INTEGER,                            -- last accepted sync
    last_rotate_at         INTEGER,
    expires_at             INTEGER,
    version_id             TEXT NOT NULL,
    version_created_at     INTEGER NOT NULL,
    version_count          INTEGER NOT NULL,
    deleted_at             INTEGER,
    deleted_by             TEXT,
    dual_auth_enabled      INTEGER NOT NULL DEFAULT 0,
    dual_auth_by           TEXT,
    dual_auth_expires_at   INTEGER,
    dual_auth_stamp        TEXT,                               -- JSON PolicyStamp
    rotation_enabled       INTEGER,
    rotation_interval      INTEGER,
    rotation_stamp         TEXT,                               -- JSON PolicyStamp
    event_sequence         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX keys_by_instance ON keys (instance_id, created_at, id);
CREATE INDEX keys_expiring ON keys (expires_at) WHERE expires_at IS NOT NULL AND state = 1;

-- One row per key version; the material is sealed under the master key (AES-GCM), NULL once purged.
CREATE TABLE key_versions (
    id              TEXT PRIMARY KEY NOT NULL,
    key_id          TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    ordinal         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sealed_material BLOB,
    UNIQUE (key_id, ordinal)
);

CREATE TABLE aliases (
    instance_id TEXT NOT NULL,
    alias       TEXT NOT NULL,
    key_id      TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (instance_id, alias)
) WITHOUT ROWID;
CREATE INDEX aliases_by_key ON aliases (key_id);

CREATE TABLE instance_policies (
    instance_id TEXT NOT NULL REFERENCES instances(id),
    policy_type TEXT NOT NULL,
    enabled     INTEGER NOT NULL,
    attributes  TEXT,                                          -- JSON object
    stamp       TEXT NOT NULL,                                 -- JSON PolicyStamp
    PRIMARY KEY (instance_id, policy_type)
) WITHOUT ROWID;

CREATE TABLE registrations (
    key_id                 TEXT NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    resource_crn           TEXT NOT NULL,
    instance_id            TEXT NOT NULL,
    service                TEXT NOT NULL,
    description            TEXT,
    metadata               TEXT,
    prevent_key_deletion   INTEGER NOT NULL DEFAULT 0,
    key_version_id         TEXT NOT NULL,
    key_version_created_at INTEGER NOT NULL,
    created_by             TEXT NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_by             TEXT NOT NULL,
    updated_at             INTEGER NOT NULL,
    ack_event_id           TEXT,
    ack_state              TEXT,
    ack_key_version_id     TEXT,
    ack_processed_at       INTEGER,
    ack_received_at        INTEGER,
    PRIMARY KEY (key_id, resource_crn)
) WITHOUT ROWID;
CREATE INDEX registrations_by_crn ON registrations (instance_id, resource_crn);
CREATE INDEX registrations_preventing ON registrations (key_id) WHERE prevent_key_deletion = 1;

-- Lifecycle events; seq is global and never reused.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX events_by_instance ON events (instance_id, seq);

-- The outbox: one row per (event, registered resource), written in the event's transaction.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    event_seq       INTEGER NOT NULL REFERENCES events(seq),
    key_id          TEXT NOT NULL,
    resource_crn    TEXT NOT NULL,
    service         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'acknowledged', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT,
    sent_at         INTEGER,
    acked_at        INTEGER
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at) WHERE status IN ('pending', 'sent');
CREATE INDEX notifications_by_resource ON notifications (key_id, resource_crn, id);
CREATE INDEX notifications_by_event ON notifications (event_seq);
