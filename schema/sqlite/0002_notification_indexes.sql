-- Narrower notification indexes (issue #6: sync fan-out cost, delivery scans).
--
-- notifications_due (status, next_attempt_at) could not give dueNotifications its ORDER BY next_attempt_at, id:
-- with status IN ('pending', 'sent') SQLite read every due row, ran the per-resource NOT EXISTS on each and sorted
-- them all (a temp B-tree) before applying LIMIT, so each delivery batch cost O(due notifications). Indexing
-- next_attempt_at alone under the same partial condition yields rows in (next_attempt_at, rowid) order: the query
-- stops after LIMIT rows, and each entry is smaller (no status text).
DROP INDEX notifications_due;
CREATE INDEX notifications_due_at ON notifications (next_attempt_at) WHERE status IN ('pending', 'sent');

-- The rowid (id) is part of every index entry already: the explicit trailing id stored it twice. Same lookups
-- (key_id; key_id + resource_crn; key_id + resource_crn + id < ?), one integer less per notification.
DROP INDEX notifications_by_resource;
CREATE INDEX notifications_by_key_resource ON notifications (key_id, resource_crn);
