-- Per-resource delivery work in O(1) of the resource's history (issue 11). Both per-delivery statements looked a
-- resource's notifications up by target_id alone and then read every one of them from the table to test its status:
-- the due query's per-resource order check (an earlier *pending* notification of the same target) and an
-- acknowledgement (the target's pending, sent or dead notifications). Notifications are never pruned, so each
-- delivery cost grew with the number of events the resource had ever been sent. With the status in the index, the
-- order check is one covering seek (target_id, 'pending', rowid < ?) and an acknowledgement one seek per status.
-- Every other lookup by target_id uses the index's prefix as before.
DROP INDEX notifications_by_target;
CREATE INDEX notifications_by_target ON notifications (target_id, status);
