import Foundation
import KeyRelayCore
import KeyRelayStore

extension StoreContract {

    static let incompleteActions = StoreContractCheck(
        "incompleteActions",
        "An unacknowledged sent notification becomes dead and did-not-complete 408 (a pending one is left alone); a state conflict marks the event's notification 409; both are listed newest first and counted per instance, and a late acknowledgement keeps the record."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let (e1, e2) = try await store.write { tx in
            try F.seed(tx, key, buckets: ["a", "b"])
            try F.seed(tx, F.key("k9", instance: "i2"), buckets: ["z"])
            return (try F.emit(tx, key, 1), try F.emit(tx, key, 2))
        }
        func notification(_ event: LifecycleEvent, _ bucket: String) async throws -> ResourceNotification {
            guard let n = try await store.read({ tx in try tx.notification(eventID: event.id, resourceCRN: F.crn(bucket)) }) else {
                throw ContractViolation("no notification of \(event.id) to \(bucket)")
            }
            return n
        }
        let pending = try await notification(e1, "b")
        try await store.write { tx in
            try tx.recordDelivery(notificationID: pending.id, .unacknowledged(at: F.at(1), error: "late"))
        }
        try requireEqual(try await notification(e1, "b").status, .pending, "a pending notification after .unacknowledged")
        try requireEqual(try await notification(e1, "b").incomplete, nil, "a pending notification's incomplete after .unacknowledged")

        let sent = try await notification(e1, "a")
        try await store.write { tx in
            try tx.recordDelivery(notificationID: sent.id, .sent(at: F.epoch, ackDeadline: F.at(10)))
            try tx.recordDelivery(notificationID: sent.id, .unacknowledged(at: F.at(10), error: "not acknowledged within 10s"))
        }
        let unacknowledged = try await notification(e1, "a")
        try requireEqual(unacknowledged.status, .dead, "status after .unacknowledged")
        try requireEqual(unacknowledged.incomplete, .notAcknowledged, "incomplete after .unacknowledged")
        try requireEqual(unacknowledged.lastError, "not acknowledged within 10s", "lastError after .unacknowledged")

        try await store.write { tx in
            try tx.recordStateConflict(keyID: key.id, resourceCRN: F.crn("b"), eventSequence: e2.sequence, error: "conflict")
        }
        let conflict = try await notification(e2, "b")
        try requireEqual(conflict.incomplete, .stateConflict, "incomplete after recordStateConflict")
        try requireEqual(conflict.lastError, "conflict", "lastError after recordStateConflict")
        try requireEqual(try await notification(e1, "b").incomplete, nil, "another event's notification to the same resource")

        let (listed, counts, elsewhere) = try await store.read { tx in
            (try tx.incompleteNotifications(instanceID: "i1", limit: 10), try tx.countIncompleteNotifications(instanceID: "i1"),
             try tx.countIncompleteNotifications(instanceID: "i2"))
        }
        try requireEqual(F.labels(listed), ["k1-e2→b", "k1-e1→a"], "incomplete notifications, newest first")
        try requireEqual(counts, [.notAcknowledged: 1, .stateConflict: 1], "incomplete counts")
        try requireEqual(elsewhere, [:], "another instance's incomplete counts")

        // A late acknowledgement ends the dead notification acknowledged, and the record stays.
        _ = try await store.write { tx in
            try tx.acknowledgeNotifications(keyID: key.id, resourceCRN: F.crn("a"), upToEventSequence: e1.sequence, at: F.at(20))
        }
        let late = try await notification(e1, "a")
        try requireEqual(late.status, .acknowledged, "status after a late acknowledgement")
        try requireEqual(late.incomplete, .notAcknowledged, "incomplete after a late acknowledgement")
    }
}
