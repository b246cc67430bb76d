-- Time-driven behaviour (issue #13): the dispatcher asks, at every round, for the next policy rotation and the
-- next automatic purge. Each partial index holds only the keys that can be due, so both questions read a few
-- index entries rather than the whole keys table.

-- Active, generated root keys with an enabled rotation policy (their due instant is computed on these rows).
CREATE INDEX keys_rotation_policy ON keys (instance_id)
    WHERE rotation_enabled = 1 AND state = 1 AND extractable = 0 AND imported = 0;

-- Destroyed keys by deletion instant (purged 90 days after it).
CREATE INDEX keys_deleted ON keys (deleted_at, id) WHERE state = 5;
