-- Claims (issue 11): several dispatchers on one database each take distinct due notifications.
-- `claimed_until` (milliseconds since 1970) is set by StorageTransaction.claimDueNotifications and cleared by
-- recordDelivery; a notification whose claim has not ended (claimed_until > now) is not claimed again. A dispatcher
-- that dies leaves its claims behind: they fall due again when the lease ends. No index: the claim query walks
-- notifications_due_at (next_attempt_at) as dueNotifications does and tests claimed_until on the rows it reads.
ALTER TABLE notifications ADD COLUMN claimed_until INTEGER;
