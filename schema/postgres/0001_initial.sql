-- KeyRelay schema for PostgreSQL, migration 1: the tables, constraints and indexes of schema/sqlite/ after its
-- migrations 0001-0005, in PostgreSQL's types, plus what a database shared by several replicas needs (the claim of a
-- notification by one dispatcher). Times are BIGINT milliseconds since 1970-01-01T00:00:00Z (UTC), as SQLite stores
-- them; JSON values are TEXT holding the same JSON the SQLite backend writes. Every TEXT column is COLLATE "C":
-- ids, aliases and CRNs sort by their bytes as SQLite's BINARY collation sorts them, whatever the database's locale,
-- and lower()/ILIKE fold ASCII letters only, as SQLite's NOCASE and LIKE do.
-- The KeyRelayPostgres module embeds this directory at build time and applies it in order, under an advisory lock
-- (see PostgresStore+Migrations.swift).

-- Facts about the database itself (master-key check value, creation time).
CREATE TABLE meta (
    name  TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE instances (
    id         TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE key_rings (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances(id),
    id          TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (instance_id, id)
);

CREATE TABLE keys (
    id                     TEXT COLLATE "C" PRIMARY KEY,
    instance_id            TEXT COLLATE "C" NOT NULL REFERENCES instances(id),
    name                   TEXT COLLATE "C" NOT NULL,
    description            TEXT COLLATE "C",
    tags                   TEXT COLLATE "C" NOT NULL DEFAULT '[]',        -- JSON array of strings
    key_ring_id            TEXT COLLATE "C" NOT NULL DEFAULT 'default',
    extractable            BOOLEAN NOT NULL,                   -- false: root key, true: standard key
    imported               BOOLEAN NOT NULL,
    state                  INTEGER NOT NULL CHECK (state IN (1, 2, 3, 5)),
    created_at             BIGINT NOT NULL,
    created_by             TEXT COLLATE "C" NOT NULL,
    updated_at             BIGINT NOT NULL,
    updated_by             TEXT COLLATE "C" NOT NULL,
    last_action_at         BIGINT,                             -- last rotate/disable/enable/delete/restore
    last_sync_at           BIGINT,                             -- last accepted sync
    last_rotate_at         BIGINT,
    expires_at             BIGINT,
    version_id             TEXT COLLATE "C" NOT NULL,
    version_created_at     BIGINT NOT NULL,
    version_count          BIGINT NOT NULL,
    deleted_at             BIGINT,
    deleted_by             TEXT COLLATE "C",
    dual_auth_enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    dual_auth_by           TEXT COLLATE "C",
    dual_auth_expires_at   BIGINT,
    dual_auth_stamp        TEXT COLLATE "C",                               -- JSON PolicyStamp
    rotation_enabled       BOOLEAN,
    rotation_interval      BIGINT,
    rotation_stamp         TEXT COLLATE "C",                               -- JSON PolicyStamp
    event_sequence         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX keys_by_instance ON keys (instance_id, created_at, id);
CREATE INDEX keys_expiring ON keys (expires_at) WHERE expires_at IS NOT NULL AND state = 1;
-- Active, generated root keys with an enabled rotation policy, and destroyed keys by deletion instant: the
-- dispatcher's time-driven questions read only these.
CREATE INDEX keys_rotation_policy ON keys (instance_id)
    WHERE rotation_enabled AND state = 1 AND NOT extractable AND NOT imported;
CREATE INDEX keys_deleted ON keys (deleted_at, id) WHERE state = 5;

-- One row per key version; the material is sealed under the master key (AES-GCM).
CREATE TABLE key_versions (
    id              TEXT COLLATE "C" PRIMARY KEY,
    key_id          TEXT COLLATE "C" NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    ordinal         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    sealed_material BYTEA,
    UNIQUE (key_id, ordinal)
);

CREATE TABLE aliases (
    instance_id TEXT COLLATE "C" NOT NULL,
    alias       TEXT COLLATE "C" NOT NULL,
    key_id      TEXT COLLATE "C" NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (instance_id, alias)
);
CREATE INDEX aliases_by_key ON aliases (key_id);

CREATE TABLE instance_policies (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances(id),
    policy_type TEXT COLLATE "C" NOT NULL,
    enabled     BOOLEAN NOT NULL,
    attributes  TEXT COLLATE "C",                                          -- JSON object
    stamp       TEXT COLLATE "C" NOT NULL,                                 -- JSON PolicyStamp
    PRIMARY KEY (instance_id, policy_type)
);

CREATE TABLE registrations (
    key_id                 TEXT COLLATE "C" NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
    resource_crn           TEXT COLLATE "C" NOT NULL,
    instance_id            TEXT COLLATE "C" NOT NULL,
    service                TEXT COLLATE "C" NOT NULL,
    description            TEXT COLLATE "C",
    metadata               TEXT COLLATE "C",
    prevent_key_deletion   BOOLEAN NOT NULL DEFAULT FALSE,
    key_version_id         TEXT COLLATE "C" NOT NULL,
    key_version_created_at BIGINT NOT NULL,
    created_by             TEXT COLLATE "C" NOT NULL,
    created_at             BIGINT NOT NULL,
    updated_by             TEXT COLLATE "C" NOT NULL,
    updated_at             BIGINT NOT NULL,
    ack_event_id           TEXT COLLATE "C",
    ack_state              TEXT COLLATE "C",
    ack_key_version_id     TEXT COLLATE "C",
    ack_processed_at       BIGINT,
    ack_received_at        BIGINT,
    -- A forced delete ends the registration's protection; NULL = it protects its key.
    protection_ended_at    BIGINT,
    PRIMARY KEY (key_id, resource_crn)
);
CREATE INDEX registrations_by_crn ON registrations (instance_id, resource_crn);
CREATE INDEX registrations_preventing ON registrations (key_id) WHERE prevent_key_deletion AND protection_ended_at IS NULL;

-- Lifecycle events; seq is global and never reused. A sequence value is taken before its transaction commits, so
-- appendEvent allocates it under a transaction-scoped advisory lock: sequences commit in order, and a reader tailing
-- by seq sees a prefix, never a hole that fills later (see PostgresStore's DocC).
CREATE TABLE events (
    seq                BIGSERIAL PRIMARY KEY,
    id                 TEXT COLLATE "C" NOT NULL UNIQUE,
    instance_id        TEXT COLLATE "C" NOT NULL,
    key_id             TEXT COLLATE "C" NOT NULL,
    key_seq            BIGINT NOT NULL,
    kind               TEXT COLLATE "C" NOT NULL,
    key_state          INTEGER NOT NULL,
    version_id         TEXT COLLATE "C" NOT NULL,
    version_created_at BIGINT NOT NULL,
    at                 BIGINT NOT NULL,
    principal          TEXT COLLATE "C" NOT NULL,
    correlation_id     TEXT COLLATE "C",
    UNIQUE (key_id, key_seq)
);
CREATE INDEX events_by_instance ON events (instance_id, seq);

-- The outbox: one row per (event, registered resource), written in the event's transaction.
CREATE TABLE notifications (
    id              BIGSERIAL PRIMARY KEY,
    event_seq       BIGINT NOT NULL REFERENCES events(seq),
    key_id          TEXT COLLATE "C" NOT NULL,
    resource_crn    TEXT COLLATE "C" NOT NULL,
    service         TEXT COLLATE "C" NOT NULL,
    status          TEXT COLLATE "C" NOT NULL CHECK (status IN ('pending', 'sent', 'acknowledged', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT COLLATE "C",
    sent_at         BIGINT,
    acked_at        BIGINT,
    -- 408: no acknowledgement within 4 h; 409: the adopter acknowledged another key state.
    incomplete      INTEGER CHECK (incomplete IN (408, 409)),
    -- A dispatcher's claim (claimDueNotifications): no other dispatcher takes the row before this instant.
    -- recordDelivery clears it.
    claimed_until   BIGINT
);
CREATE INDEX notifications_due_at ON notifications (next_attempt_at, id) WHERE status IN ('pending', 'sent');
CREATE INDEX notifications_by_key_resource ON notifications (key_id, resource_crn, id);
CREATE INDEX notifications_by_event ON notifications (event_seq);
CREATE INDEX notifications_incomplete ON notifications (id) WHERE incomplete IS NOT NULL;

-- KMIP adapter management (reference §1.5). An adapter holds its root key (no ON DELETE); certificates and objects
-- go with their adapter.
CREATE TABLE kmip_adapters (
    id          TEXT COLLATE "C" PRIMARY KEY,
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances(id),
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT COLLATE "C",
    profile     TEXT COLLATE "C" NOT NULL,
    crk_id      TEXT COLLATE "C" NOT NULL REFERENCES keys(id),
    created_at  BIGINT NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT COLLATE "C" NOT NULL,
    UNIQUE (instance_id, name)
);
CREATE INDEX kmip_adapters_by_key ON kmip_adapters (crk_id);

CREATE TABLE kmip_client_certificates (
    id          TEXT COLLATE "C" PRIMARY KEY,
    adapter_id  TEXT COLLATE "C" NOT NULL REFERENCES kmip_adapters(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    certificate TEXT COLLATE "C" NOT NULL,   -- PEM, as added
    created_at  BIGINT NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    UNIQUE (adapter_id, name)
);

CREATE TABLE kmip_objects (
    id                          TEXT COLLATE "C" PRIMARY KEY,
    adapter_id                  TEXT COLLATE "C" NOT NULL REFERENCES kmip_adapters(id) ON DELETE CASCADE,
    object_type                 BIGINT NOT NULL,
    state                       INTEGER NOT NULL,   -- KMIP: 1 pre-active … 6 destroyed-compromised
    created_at                  BIGINT NOT NULL,
    created_by                  TEXT COLLATE "C",
    created_by_certificate_id   TEXT COLLATE "C",
    updated_at                  BIGINT,
    updated_by                  TEXT COLLATE "C",
    updated_by_certificate_id   TEXT COLLATE "C",
    destroyed_at                BIGINT,
    destroyed_by                TEXT COLLATE "C",
    destroyed_by_certificate_id TEXT COLLATE "C"
);
CREATE INDEX kmip_objects_by_adapter ON kmip_objects (adapter_id, state);
