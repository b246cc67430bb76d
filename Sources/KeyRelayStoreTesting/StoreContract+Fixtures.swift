import Foundation
import KeyRelayCore
import KeyRelayStore

/// Values the checks write. Dates are whole seconds so that every backend keeps them exactly (the port stores
/// milliseconds).
enum Fixture {
    static let epoch = Date(timeIntervalSince1970: 1_767_225_600)

    static func at(_ seconds: Double) -> Date { epoch.addingTimeInterval(seconds) }

    static func key(_ id: String, instance: String = "i1", created: Double = 0) -> Key {
        Key(id: id, instanceID: instance, name: "name-\(id)", extractable: false, imported: false, creationDate: at(created),
            createdBy: "alice", currentVersion: KeyVersion(id: "\(id)-v1", creationDate: at(created)))
    }

    static func crn(_ bucket: String) -> String {
        CRN.bucket(account: "acct", serviceInstance: "cos", bucket: bucket)
    }

    static func registration(_ key: Key, _ bucket: String, prevent: Bool = false) throws -> Registration {
        Registration(keyID: key.id, instanceID: key.instanceID, resourceCRN: try CRN(parsing: crn(bucket)),
                     preventKeyDeletion: prevent, keyVersion: key.currentVersion, createdBy: "cos", creationDate: epoch)
    }

    /// The `n`th event of `key` (per-key sequence `n`).
    static func event(_ key: Key, _ n: Int, kind: LifecycleEventKind = .sync, at seconds: Double = 0) -> LifecycleEvent {
        LifecycleEvent(id: "\(key.id)-e\(n)", instanceID: key.instanceID, keyID: key.id, keySequence: n, kind: kind,
                       keyState: key.state, keyVersion: key.currentVersion, date: at(seconds), principal: "op",
                       correlationID: nil)
    }

    /// Creates the key's instance, the key and one registration per bucket.
    static func seed(_ tx: any StorageTransaction, _ key: Key, buckets: [String] = []) throws {
        try tx.ensureInstance(key.instanceID, at: epoch)
        try tx.insertKey(key)
        for bucket in buckets { try tx.upsertRegistration(try registration(key, bucket)) }
    }

    /// Appends `key`'s `n`th event and fans it out, due at `epoch`; returns the event with its sequence.
    @discardableResult
    static func emit(_ tx: any StorageTransaction, _ key: Key, _ n: Int, due seconds: Double = 0) throws -> LifecycleEvent {
        var event = event(key, n)
        event.sequence = try tx.appendEvent(event)
        _ = try tx.fanOut(eventSequence: event.sequence, keyID: key.id, dueAt: at(seconds))
        return event
    }

    /// "eventID→bucket" labels of notifications, for readable violations.
    static func labels(_ notifications: [ResourceNotification]) -> [String] {
        notifications.map { "\($0.event.id)→\($0.resourceCRN.split(separator: ":").last ?? "")" }
    }
}

/// A refusal thrown on purpose inside a command.
struct Refusal: Error, Equatable {
    var tag = 0
}
