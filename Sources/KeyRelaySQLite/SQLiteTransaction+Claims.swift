import Foundation
import KeyRelayCore
import KeyRelayStore

// PLACEHOLDER (wt-store branch), to be replaced by the notification-claims branch's real implementation: delete this
// file when that branch lands. It lets SQLite conform to the port's new `claimDueNotifications` requirement without
// a claim column: an SQLite database has one process and so one dispatcher, for which every due notification is
// unclaimed.
extension SQLiteTransaction {
    func claimDueNotifications(at date: Date, limit: Int, leaseUntil: Date) throws -> [ResourceNotification] {
        try dueNotifications(at: date, limit: limit)
    }
}
