-- A forced delete ends the protection of the key's registrations (issue #13).
--
-- Key Protect's DELETE ?force=true "removes any registrations that are associated with the key", yet a deleted key's
-- registrations stay readable (history) and sync must still reach the resources. So the row stays and records when
-- its protection ended: an ended registration blocks no later delete (not even with preventKeyDeletion) until the
-- service registers the resource again, which clears the column. NULL = the registration protects its key.
ALTER TABLE registrations ADD COLUMN protection_ended_at INTEGER;

-- The delete rule counts only protecting registrations with preventKeyDeletion.
DROP INDEX registrations_preventing;
CREATE INDEX registrations_preventing ON registrations (key_id) WHERE prevent_key_deletion = 1 AND protection_ended_at IS NULL;
