-- Per-resource delivery work in O(1) of the resource's history (issue 11). Both per-delivery statements looked a
-- resource's notifications up by target_id alone and then read every one of them from the table to test its status:
-- the due query's per-resource order check (an earlier *pending* notification of the same target) and an
-- acknowledgement (the target's pending, sent or dead notifications). Notifications are never pruned, so each
-- delivery cost grew with the number of events the resource had ever been sent.
-- The index now also holds whether a notification is unfinished (status != 'acknowledged', stored as the integer 0
-- or 1: one byte more per entry, where the status text would have made every notification's entry 8 bytes larger,
-- sync_fanout_100k_written_mib's cost). Both statements seek the target's unfinished notifications only
-- (`(status != 'acknowledged') = 1`, the expression exactly as indexed); every other lookup by target_id uses the
-- index's prefix as before. A notification moves in the index once, when it is acknowledged.
DROP INDEX notifications_by_target;
CREATE INDEX notifications_by_target ON notifications (target_id, status != 'acknowledged');
