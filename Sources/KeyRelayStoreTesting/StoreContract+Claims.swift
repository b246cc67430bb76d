import Foundation
import KeyRelayCore
import KeyRelayStore

extension StoreContract {

    static let notificationClaims = StoreContractCheck(
        "notificationClaims",
        "claimDueNotifications gives concurrent claimers disjoint sets of what dueNotifications returns, skips a notification under a live claim until its lease ends, ends a claim with recordDelivery, and keeps per-resource order (a claimed pending notification still holds the later ones of its resource back)."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let buckets = (0..<12).map { "b\($0)" }
        let e1 = try await store.write { tx in
            try F.seed(tx, key, buckets: buckets)
            let first = try F.emit(tx, key, 1)
            try F.emit(tx, key, 2)
            return first
        }
        func claim(_ seconds: Double, limit: Int = 100, lease: Double = 30) async throws -> [String] {
            F.labels(try await store.write { tx in
                try tx.claimDueNotifications(at: F.at(seconds), limit: limit, leaseUntil: F.at(seconds + lease))
            })
        }
        func id(_ event: LifecycleEvent, _ bucket: String) async throws -> Int64 {
            try requireValue(try await store.read { tx in try tx.notification(eventID: event.id, resourceCRN: F.crn(bucket))?.id },
                             "the notification of \(event.id) to \(bucket)")
        }

        // Two claimers at once: each gets distinct notifications, together exactly what is due (e1 to every bucket;
        // e2 waits behind the pending e1 of its resource), each in due order.
        let due = F.labels(try await store.read { tx in try tx.dueNotifications(at: F.at(0), limit: 100) })
        async let first = claim(0, limit: 5)
        async let second = claim(0, limit: 5)
        let (a, b) = try await (first, second)
        try require(Set(a).isDisjoint(with: b), "two claimers got the same notifications: \(a) and \(b)")
        try requireEqual(a.count + b.count, 10, "notifications claimed by two claimers of 5 each")
        try require(Set(a + b).isSubset(of: due), "claimed \(a + b), not all of them due (\(due))")
        try requireEqual(a, due.filter(a.contains), "one claimer's notifications, in due order")
        let rest = try await claim(0)
        try requireEqual(Set(a + b + rest), Set(due), "what a third claim takes with the first two live")
        try requireEqual(try await claim(0), [], "a claim while every due notification is claimed")
        try requireEqual(try await claim(29), [], "a claim before the leases end")

        // A claim ends at its lease: at 30 every e1 is claimable again (in due order), and e2 still waits behind the
        // pending e1 of its resource, claimed or not.
        try require(!(a + b + rest).contains { $0.hasPrefix("k1-e2") }, "e2 claimed while e1 of its resource is pending: \(a + b + rest)")
        try requireEqual(try await claim(30), due, "claims once the leases ended (they fall due again, in due order)")

        // recordDelivery ends the claim: e1→b0, retried at 40, is claimable at 40 though its lease (from 30) runs to 60;
        // the others are still claimed.
        let b0 = try await id(e1, "b0"), b1 = try await id(e1, "b1")
        try await store.write { tx in
            try tx.recordDelivery(notificationID: b0, .failed(at: F.at(30), error: "refused", retryAt: F.at(40)))
        }
        try requireEqual(try await claim(39), [], "a claim before the retry, with every other e1 under a live claim")
        try requireEqual(try await claim(40), ["k1-e1→b0"], "a claim at the retry time of the notification whose claim ended")
        // Handed over (sent), e1→b1 lets e2→b1 through; it is not due again before its acknowledgement deadline.
        try await store.write { tx in
            try tx.recordDelivery(notificationID: b1, .sent(at: F.at(41), ackDeadline: F.at(100)))
        }
        try requireEqual(try await claim(41), ["k1-e2→b1"], "a claim once e1→b1 is sent")
        let late = try await claim(100)
        try require(late.contains("k1-e1→b1"), "a sent notification past its acknowledgement deadline is claimable: \(late)")
        try require(!late.contains("k1-e2→b0"), "e2→b0 claimed while e1→b0 is pending: \(late)")
    }
}
