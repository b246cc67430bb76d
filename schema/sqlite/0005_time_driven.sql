-- Time-driven behaviour (issue #13 item 6): the dispatcher asks, at every round, for the next policy rotation and the
-- next automatic purge. Each partial index holds only the keys that can be due, so both questions read a few
-- index entries rather than the whole keys table.

-- Active, generated root keys with an enabled rotation policy (their due instant is computed on these rows).
CREATE INDEX keys_rotation_policy ON keys (instance_id)
    WHERE rotation_enabled = 1 AND state = 1 AND extractable = 0 AND imported = 0;

-- Destroyed keys by deletion instant (purged 90 days after it).
CREATE INDEX keys_deleted ON keys (deleted_at, id) WHERE state = 5;

-- A notification whose lifecycle action did not complete at its resource (Key Protect's "Lifecycle action on a
-- key with registrations did not complete"): 408, no acknowledgement within 4 h; 409, the adopter acknowledged
-- another key state. Kept after a late acknowledgement, as the record of what happened.
ALTER TABLE notifications ADD COLUMN incomplete INTEGER CHECK (incomplete IN (408, 409));
CREATE INDEX notifications_incomplete ON notifications (id) WHERE incomplete IS NOT NULL;
