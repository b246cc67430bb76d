-- KMIP adapter management (issue #13 item 4; reference §1.5): adapters on a root key, their client certificates
-- and the KMIP objects their clients create. Self-contained: it only adds tables.
--
-- An adapter holds its root key: the key cannot be deleted while an adapter names it, so the reference to keys
-- never dangles (no ON DELETE). Certificates and objects belong to their adapter and go with it.

CREATE TABLE kmip_adapters (
    id          TEXT PRIMARY KEY NOT NULL,
    instance_id TEXT NOT NULL REFERENCES instances(id),
    name        TEXT NOT NULL,
    description TEXT,
    profile     TEXT NOT NULL,
    crk_id      TEXT NOT NULL REFERENCES keys(id),
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    UNIQUE (instance_id, name)
) WITHOUT ROWID;
CREATE INDEX kmip_adapters_by_key ON kmip_adapters (crk_id);

CREATE TABLE kmip_client_certificates (
    id          TEXT PRIMARY KEY NOT NULL,
    adapter_id  TEXT NOT NULL REFERENCES kmip_adapters(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    certificate TEXT NOT NULL,   -- PEM, as added
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    UNIQUE (adapter_id, name)
) WITHOUT ROWID;

CREATE TABLE kmip_objects (
    id                          TEXT PRIMARY KEY NOT NULL,
    adapter_id                  TEXT NOT NULL REFERENCES kmip_adapters(id) ON DELETE CASCADE,
    object_type                 INTEGER NOT NULL,
    state                       INTEGER NOT NULL,   -- KMIP: 1 pre-active … 6 destroyed-compromised
    created_at                  INTEGER NOT NULL,
    created_by                  TEXT,
    created_by_certificate_id   TEXT,
    updated_at                  INTEGER,
    updated_by                  TEXT,
    updated_by_certificate_id   TEXT,
    destroyed_at                INTEGER,
    destroyed_by                TEXT,
    destroyed_by_certificate_id TEXT
) WITHOUT ROWID;
CREATE INDEX kmip_objects_by_adapter ON kmip_objects (adapter_id, state);
