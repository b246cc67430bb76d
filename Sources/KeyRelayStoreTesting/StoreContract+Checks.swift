import Foundation
import KeyRelayCore
import KeyRelayStore

extension StoreContract {
    typealias F = Fixture

    // MARK: Commands

    static let commandAtomicity = StoreContractCheck(
        "commandAtomicity",
        "A command that throws writes nothing (no key, no event, no notification, no meta), its caller gets its own error, and the store accepts the next command."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        try await store.write { tx in try F.seed(tx, key, buckets: ["a", "b"]) }
        let sequenceBefore = try await store.read { tx in try tx.latestEventSequence() }
        do {
            try await store.write { tx in
                try tx.ensureInstance("i2", at: F.epoch)
                try tx.insertKey(F.key("k2", instance: "i2"))
                var changed = key
                changed.state = .suspended
                changed.eventSequence = 1
                try tx.updateKey(changed)
                let event = F.event(changed, 1, kind: .disable)
                let written = try tx.fanOut(eventSequence: try tx.appendEvent(event), keyID: key.id, dueAt: F.epoch)
                try require(written == 2, "fanOut inside the command wrote \(written) notifications, expected 2")
                try tx.setMeta("refused", Data([1]))
                throw Refusal(tag: 7)
            }
            throw ContractViolation("a command that threw was reported committed")
        } catch let refusal as Refusal {
            try requireEqual(refusal, Refusal(tag: 7), "the error the caller got")
        } catch let violation as ContractViolation {
            throw violation
        } catch {
            throw ContractViolation("the caller must get the command's own error, got \(error)")
        }
        let (stored, other, instance, sequence, notifications, counts, due, meta) = try await store.read { tx in
            (try tx.key(id: "k1", instanceID: "i1"), try tx.key(id: "k2", instanceID: "i2"), try tx.instanceExists("i2"),
             try tx.latestEventSequence(),
             try tx.notifications(keyID: "k1", eventSequence: nil, status: nil, limit: 100, offset: 0),
             try tx.deliveryCounts(instanceID: nil, keyID: nil, service: nil),
             try tx.dueNotifications(at: .distantFuture, limit: 100), try tx.meta("refused"))
        }
        try requireEqual(stored, key, "k1 after the refused command (its update must be rolled back)")
        try require(other == nil, "the key inserted by the refused command is there")
        try require(!instance, "the instance created by the refused command is there")
        try requireEqual(sequence, sequenceBefore, "latest event sequence after the refused command")
        try require(notifications.isEmpty, "the refused command left notifications: \(F.labels(notifications))")
        try requireEqual(counts, DeliveryCounts(), "delivery counts after the refused command")
        try require(due.isEmpty, "the refused command left due notifications: \(F.labels(due))")
        try require(meta == nil, "the refused command's meta row is there")
        try await store.write { tx in try tx.setMeta("after", Data([2])) }
        try requireEqual(try await store.read { tx in try tx.meta("after") }, Optional(Data([2])), "a command after the refusal")
    }

    static let concurrentCommandsStayIndependent = StoreContractCheck(
        "concurrentCommandsStayIndependent",
        "Concurrent commands each get their own outcome: those that throw leave nothing, every other one is committed."
    ) { backend in
        let store = try await backend.makeStore()
        let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for i in 0..<24 {
                group.addTask {
                    do {
                        try await store.write { tx in
                            try tx.setMeta("c\(i)", Data("\(i)".utf8))
                            if i % 3 == 1 { throw Refusal(tag: i) }
                        }
                        return (i, true)
                    } catch let refusal as Refusal {
                        try requireEqual(refusal.tag, i, "refusal received by caller \(i)")
                        return (i, false)
                    }
                }
            }
            var outcomes: [Int: Bool] = [:]
            for try await (i, committed) in group { outcomes[i] = committed }
            return outcomes
        }
        for i in 0..<24 {
            try requireEqual(outcomes[i], i % 3 != 1, "command \(i) reported committed")
        }
        let stored = try await store.read { tx in try (0..<24).map { try tx.meta("c\($0)") } }
        for (i, value) in stored.enumerated() {
            try requireEqual(value, i % 3 == 1 ? nil : Data("\(i)".utf8), "meta c\(i) after the concurrent commands")
        }
    }

    static let roundTrip = StoreContractCheck(
        "roundTrip",
        "Keys (every field, aliases in creation order), versions, key rings, registrations with their acknowledgement and instance policies read back exactly as written."
    ) { backend in
        let store = try await backend.makeStore()
        var key = F.key("k1")
        key.description = "a description"
        key.tags = ["t1", "t2"]
        key.keyRingID = "ring-1"
        key.expirationDate = F.at(86_400)
        key.dualAuthDelete = DualAuthDelete(enabled: true, authorizedBy: "bob", authExpiration: F.at(3600))
        key.dualAuthStamp = PolicyStamp(createdBy: "alice", creationDate: F.epoch, updatedBy: "bob", lastUpdateDate: F.at(1))
        key.rotation = RotationPolicy(enabled: true, intervalMonth: 3)
        key.rotationStamp = PolicyStamp(createdBy: "alice", creationDate: F.at(2), updatedBy: "alice", lastUpdateDate: F.at(2))
        let policy = InstancePolicy(policyType: "dualAuthDelete", enabled: true, attributesJSON: #"{"a":1}"#,
                                    stamp: PolicyStamp(createdBy: "op", creationDate: F.epoch, updatedBy: "op", lastUpdateDate: F.epoch))
        let ack = Acknowledgement(eventID: "k1-e1", adopterKeyState: .disabled, keyVersionID: "k1-v1",
                                  processedAt: F.at(10), receivedAt: F.at(11))
        let written = key
        try await store.write { [key] tx in
            try tx.ensureInstance("i1", at: F.epoch)
            try tx.insertKeyRing(instanceID: "i1", id: "ring-1", at: F.at(1), by: "alice")
            try tx.insertKey(key)
            try tx.insertVersion(keyID: key.id, version: key.currentVersion, ordinal: 1, sealedMaterial: Data([9, 9, 9]))
            try tx.insertAlias(AliasRecord(alias: "zeta", keyID: key.id, creationDate: F.at(1), createdBy: "alice"), instanceID: "i1")
            try tx.insertAlias(AliasRecord(alias: "alpha", keyID: key.id, creationDate: F.at(2), createdBy: "alice"), instanceID: "i1")
            var registration = try F.registration(key, "a", prevent: true)
            registration.description = "bucket a"
            registration.registrationMetadata = "meta"
            try tx.upsertRegistration(registration)
            try tx.recordAcknowledgement(keyID: key.id, resourceCRN: registration.resourceCRN, ack)
            try tx.putInstancePolicy(policy, instanceID: "i1")
        }
        key.aliases = ["zeta", "alpha"]
        let (stored, byAlias, aliases, rings, registration, policies, material) = try await store.read { tx in
            (try tx.key(id: "k1", instanceID: "i1"), try tx.keyID(alias: "alpha", instanceID: "i1"), try tx.aliases(keyID: "k1"),
             try tx.keyRings(instanceID: "i1"), try tx.registration(keyID: "k1", resourceCRN: F.crn("a")),
             try tx.instancePolicies(instanceID: "i1"), try tx.sealedMaterial(keyID: "k1", versionID: "k1-v1"))
        }
        try requireEqual(stored, key, "the key as read back")
        try requireEqual(byAlias, "k1", "the key id of alias 'alpha'")
        try requireEqual(aliases.map(\.alias), ["zeta", "alpha"], "aliases in creation order")
        try requireEqual(rings.map(\.id), [KeyRing.defaultID, "ring-1"], "key rings, default first")
        try requireEqual(rings.last?.createdBy, "alice", "the key ring's creator")
        var expected = try F.registration(written, "a", prevent: true)
        expected.description = "bucket a"
        expected.registrationMetadata = "meta"
        expected.acknowledgement = ack
        try requireEqual(registration, expected, "the registration with its acknowledgement")
        try requireEqual(policies, [policy], "instance policies")
        try requireEqual(material, Data([9, 9, 9]), "sealed material")

        // An update replaces every field; an upsert of an existing registration replaces it.
        var updated = key
        updated.state = .destroyed
        updated.deletionDate = F.at(60)
        updated.deletedBy = "carol"
        updated.lastLifecycleActionDate = F.at(60)
        updated.lastSyncDate = F.at(30)
        updated.eventSequence = 4
        updated.rotation = nil
        updated.rotationStamp = nil
        let change = updated
        try await store.write { tx in
            try tx.updateKey(change)
            var registration = try F.registration(written, "a")
            registration.description = "replaced"
            try tx.upsertRegistration(registration)
        }
        let (afterUpdate, afterUpsert) = try await store.read { tx in
            (try tx.key(id: "k1", instanceID: "i1"), try tx.registration(keyID: "k1", resourceCRN: F.crn("a")))
        }
        try requireEqual(afterUpdate, updated, "the key after updateKey")
        try requireEqual(afterUpsert?.description, "replaced", "the registration's description after an upsert")
        try requireEqual(afterUpsert?.preventKeyDeletion, false, "preventKeyDeletion after an upsert")
    }

    // MARK: Notifications

    static let fanOut = StoreContractCheck(
        "fanOut",
        "fanOut writes one pending notification per registration of the key, in the command's own transaction, and none for other keys."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let other = F.key("k2")
        let buckets = (0..<25).map { "b\($0)" }
        let (count, seenInside, sequence) = try await store.write { tx in
            try F.seed(tx, key, buckets: buckets)
            try F.seed(tx, other, buckets: ["other"])
            let sequence = try tx.appendEvent(F.event(key, 1))
            let count = try tx.fanOut(eventSequence: sequence, keyID: key.id, dueAt: F.at(5))
            let inside = try tx.notifications(keyID: key.id, eventSequence: sequence, status: nil, limit: 100, offset: 0)
            return (count, inside.count, sequence)
        }
        try requireEqual(count, 25, "the count fanOut returned")
        try requireEqual(seenInside, 25, "notifications visible inside the transaction that wrote them")
        let (notifications, counts, otherCounts, empty) = try await store.read { tx in
            (try tx.notifications(keyID: key.id, eventSequence: sequence, status: nil, limit: 100, offset: 0),
             try tx.deliveryCounts(instanceID: nil, keyID: key.id, service: nil),
             try tx.deliveryCounts(instanceID: nil, keyID: other.id, service: nil),
             try tx.deliveryCounts(instanceID: "i1", keyID: nil, service: "databases-for-postgresql"))
        }
        try requireEqual(counts, DeliveryCounts(pending: 25), "delivery counts of the key")
        try requireEqual(otherCounts, DeliveryCounts(), "delivery counts of another key")
        try requireEqual(empty, DeliveryCounts(), "delivery counts of a service with no registration")
        try requireEqual(Set(notifications.map(\.resourceCRN)), Set(buckets.map(F.crn)), "the notified resources")
        for notification in notifications {
            try requireEqual(notification.status, .pending, "status of a new notification")
            try requireEqual(notification.attempts, 0, "attempts of a new notification")
            try requireEqual(notification.nextAttemptDate, F.at(5), "due date of a new notification")
            try requireEqual(notification.serviceName, "cloud-object-storage", "service of a new notification")
            try requireEqual(notification.event.id, "k1-e1", "event of a new notification")
            try requireEqual(notification.event.sequence, sequence, "event sequence of a new notification")
        }
        let none = try await store.write { tx in
            try tx.fanOut(eventSequence: try tx.appendEvent(F.event(F.key("k3"), 1)), keyID: "k3", dueAt: F.epoch)
        }
        try requireEqual(none, 0, "fanOut of a key without registrations")
    }

    static let protectionEnded = StoreContractCheck(
        "protectionEnded",
        "endRegistrationProtection ends the protection of a key's protecting registrations only (once, keeping the first date), without removing them: the summary stops counting them for the delete rule, listings and fanOut still see them, and an upsert that clears the date makes them protect again."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let other = F.key("k2")
        let (ended, again, summary, otherSummary) = try await store.write { tx in
            try F.seed(tx, key)
            try F.seed(tx, other, buckets: ["other"])
            try tx.upsertRegistration(try F.registration(key, "plain"))
            try tx.upsertRegistration(try F.registration(key, "retained", prevent: true))
            let ended = try tx.endRegistrationProtection(keyID: key.id, at: F.at(10))
            let again = try tx.endRegistrationProtection(keyID: key.id, at: F.at(20))
            return (ended, again, try tx.registrationSummary(keyID: key.id), try tx.registrationSummary(keyID: other.id))
        }
        try requireEqual(ended, 2, "registrations whose protection ended")
        try requireEqual(again, 0, "registrations ended a second time")
        try requireEqual(summary, RegistrationSummary(count: 0, preventingDeletion: 0, total: 2), "the summary after the protection ended")
        try requireEqual(otherSummary, RegistrationSummary(count: 1, preventingDeletion: 0, total: 1), "another key's summary")
        let (listed, summaries, notified) = try await store.write { tx in
            (try tx.registrations(instanceID: "i1", keyID: key.id, filter: RegistrationFilter(), limit: 10, offset: 0),
             try tx.registrationSummaries(keyIDs: [key.id]),
             try tx.fanOut(eventSequence: try tx.appendEvent(F.event(key, 1)), keyID: key.id, dueAt: F.at(30)))
        }
        try requireEqual(listed.map(\.protectionEndedAt), [F.at(10), F.at(10)], "the ended registrations, still listed, with the first date")
        try requireEqual(listed.map(\.isProtecting), [false, false], "isProtecting of ended registrations")
        try requireEqual(summaries[key.id], RegistrationSummary(count: 0, preventingDeletion: 0, total: 2), "registrationSummaries")
        try requireEqual(notified, 2, "fanOut reaches registrations whose protection ended")
        var retained = try requireValue(listed.first { $0.preventKeyDeletion }, "the retained registration")
        retained.protectionEndedAt = nil
        let renewed = retained
        let after = try await store.write { tx in
            try tx.upsertRegistration(renewed)
            return (try tx.registrationSummary(keyID: key.id), try tx.registration(keyID: key.id, resourceCRN: renewed.resourceCRN))
        }
        try requireEqual(after.0, RegistrationSummary(count: 1, preventingDeletion: 1, total: 2), "the summary after registering again")
        try requireEqual(after.1?.protectionEndedAt, nil, "protectionEndedAt after registering again")
    }

    static let dueNotificationOrder = StoreContractCheck(
        "dueNotificationOrder",
        "dueNotifications returns pending notifications whose time has come and sent ones past their deadline, by due time then id, holding each back only behind an earlier pending one to the same resource."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let e1 = try await store.write { tx in
            try F.seed(tx, key, buckets: ["a", "b"])
            let first = try F.emit(tx, key, 1)
            try F.emit(tx, key, 2)
            return first
        }
        func due(_ seconds: Double, limit: Int = 10) async throws -> [String] {
            F.labels(try await store.read { tx in try tx.dueNotifications(at: F.at(seconds), limit: limit) })
        }
        func record(_ event: LifecycleEvent, _ bucket: String, _ outcome: DeliveryOutcome) async throws {
            guard let id = try await store.read({ tx in try tx.notification(eventID: event.id, resourceCRN: F.crn(bucket))?.id }) else {
                throw ContractViolation("no notification of \(event.id) to \(bucket)")
            }
            try await store.write { tx in try tx.recordDelivery(notificationID: id, outcome) }
        }
        try requireEqual(try await due(-1), [], "due before the notifications' time")
        try requireEqual(try await due(0), ["k1-e1→a", "k1-e1→b"], "due at first (e2 waits behind the pending e1 of each resource)")
        try requireEqual(try await due(0, limit: 1), ["k1-e1→a"], "due with limit 1")
        try await record(e1, "a", .sent(at: F.epoch, ackDeadline: F.at(3600)))
        try requireEqual(try await due(0), ["k1-e1→b", "k1-e2→a"], "due once e1→a is sent (a sent one does not hold e2 back)")
        try requireEqual(try await due(3600), ["k1-e1→b", "k1-e2→a", "k1-e1→a"], "due after e1→a's acknowledgement deadline")
        try await record(e1, "b", .failed(at: F.epoch, error: "refused", retryAt: F.at(60)))
        try requireEqual(try await due(30), ["k1-e2→a"], "due while e1→b waits for its retry (it still holds e2→b back)")
        try requireEqual(try await due(60), ["k1-e2→a", "k1-e1→b"], "due at e1→b's retry time")
        try await record(e1, "b", .dead(at: F.at(60), error: "gave up"))
        try requireEqual(try await due(60), ["k1-e2→a", "k1-e2→b"], "due once e1→b is dead (a dead one does not hold e2 back)")
    }

    static let deliveryOutcomes = StoreContractCheck(
        "deliveryOutcomes",
        "recordDelivery moves a pending or sent notification to sent, back to pending for a retry, or to dead (each counting its attempt), and leaves a finished (acknowledged or dead) notification alone."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let event = try await store.write { tx in
            try F.seed(tx, key, buckets: ["a", "b"])
            return try F.emit(tx, key, 1)
        }
        func read(_ bucket: String) async throws -> ResourceNotification {
            guard let n = try await store.read({ tx in try tx.notification(eventID: event.id, resourceCRN: F.crn(bucket)) }) else {
                throw ContractViolation("no notification to \(bucket)")
            }
            return n
        }
        let a = try await read("a").id
        let b = try await read("b").id
        try await store.write { tx in try tx.recordDelivery(notificationID: a, .sent(at: F.at(1), ackDeadline: F.at(3601))) }
        var n = try await read("a")
        try requireEqual(n.status, .sent, "status after sent")
        try requireEqual(n.attempts, 1, "attempts after sent")
        try requireEqual(n.sentDate, F.at(1), "sent date")
        try requireEqual(n.nextAttemptDate, F.at(3601), "next attempt (the acknowledgement deadline) after sent")
        try await store.write { tx in try tx.recordDelivery(notificationID: a, .failed(at: F.at(2), error: "timeout", retryAt: F.at(62))) }
        n = try await read("a")
        try requireEqual(n.status, .pending, "status after a failed attempt")
        try requireEqual(n.attempts, 2, "attempts after a failed attempt")
        try requireEqual(n.lastError, "timeout", "last error after a failed attempt")
        try requireEqual(n.nextAttemptDate, F.at(62), "next attempt after a failed attempt")
        try await store.write { tx in try tx.recordDelivery(notificationID: a, .dead(at: F.at(3), error: "gave up")) }
        n = try await read("a")
        try requireEqual(n.status, .dead, "status after dead")
        try requireEqual(n.attempts, 3, "attempts after dead (the last attempt counts)")
        try requireEqual(n.nextAttemptDate, nil, "next attempt after dead")
        try requireEqual(n.lastError, "gave up", "last error after dead")
        let dead = n
        try await store.write { tx in try tx.recordDelivery(notificationID: a, .sent(at: F.at(4), ackDeadline: F.at(99))) }
        try requireEqual(try await read("a"), dead, "a dead notification after another outcome (must be left alone)")

        let acknowledged = try await store.write { tx in
            try tx.acknowledgeNotifications(keyID: key.id, resourceCRN: F.crn("b"), upToEventSequence: event.sequence, at: F.at(5))
        }
        try requireEqual(acknowledged, 1, "notifications acknowledged")
        let acked = try await read("b")
        try requireEqual(acked.status, .acknowledged, "status after acknowledgement")
        try requireEqual(acked.acknowledgedDate, F.at(5), "acknowledgement date")
        try requireEqual(acked.nextAttemptDate, nil, "next attempt after acknowledgement")
        try await store.write { tx in try tx.recordDelivery(notificationID: b, .failed(at: F.at(6), error: "late", retryAt: F.at(66))) }
        try requireEqual(try await read("b"), acked, "an acknowledged notification after a late outcome (must be left alone)")
        try requireEqual(try await store.read { tx in try tx.dueNotifications(at: .distantFuture, limit: 10) }, [],
                         "due notifications once all are finished")
    }

    static let acknowledgementSupersedes = StoreContractCheck(
        "acknowledgementSupersedes",
        "Acknowledging an event also acknowledges the earlier unfinished notifications of the same key to the same resource, never later ones, never other resources, and a dead one only when it is the one acknowledged."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let events = try await store.write { tx in
            try F.seed(tx, key, buckets: ["a", "b"])
            return try (1...4).map { try F.emit(tx, key, $0) }
        }
        func status(_ event: LifecycleEvent, _ bucket: String) async throws -> NotificationStatus? {
            try await store.read { tx in try tx.notification(eventID: event.id, resourceCRN: F.crn(bucket))?.status }
        }
        func id(_ event: LifecycleEvent, _ bucket: String) async throws -> Int64 {
            guard let id = try await store.read({ tx in try tx.notification(eventID: event.id, resourceCRN: F.crn(bucket))?.id }) else {
                throw ContractViolation("no notification of \(event.id) to \(bucket)")
            }
            return id
        }
        let deadID = try await id(events[0], "a")
        let sentID = try await id(events[1], "a")
        try await store.write { tx in
            try tx.recordDelivery(notificationID: deadID, .dead(at: F.epoch, error: "gave up"))
            try tx.recordDelivery(notificationID: sentID, .sent(at: F.epoch, ackDeadline: F.at(3600)))
        }
        func acknowledge(_ event: LifecycleEvent) async throws -> Int {
            try await store.write { tx in
                try tx.acknowledgeNotifications(keyID: key.id, resourceCRN: F.crn("a"), upToEventSequence: event.sequence, at: F.at(9))
            }
        }
        try requireEqual(try await acknowledge(events[2]), 2, "notifications acknowledged up to e3 (the sent e2 and the pending e3)")
        try requireEqual(try await status(events[0], "a"), .dead, "the dead e1→a after acknowledging e3")
        try requireEqual(try await status(events[1], "a"), .acknowledged, "e2→a after acknowledging e3")
        try requireEqual(try await status(events[2], "a"), .acknowledged, "e3→a after acknowledging e3")
        try requireEqual(try await status(events[3], "a"), .pending, "the later e4→a after acknowledging e3")
        for event in events {
            try requireEqual(try await status(event, "b"), .pending, "\(event.id)→b after acknowledging resource a")
        }
        try requireEqual(try await acknowledge(events[2]), 0, "acknowledging e3 again")
        try requireEqual(try await acknowledge(events[0]), 1, "acknowledging the dead e1 itself")
        try requireEqual(try await status(events[0], "a"), .acknowledged, "e1→a once its service acknowledged it")
    }

    static let acknowledgementState = StoreContractCheck(
        "acknowledgementState",
        "What an acknowledgement reads of a registration: none for a resource not registered with the key, otherwise the sequence of the event its latest recorded acknowledgement names (none before any, or when that event is not stored)."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let events = try await store.write { tx in
            try F.seed(tx, key, buckets: ["a"])
            return try (1...2).map { try F.emit(tx, key, $0) }
        }
        func state(_ bucket: String) async throws -> RegistrationAcknowledgementState? {
            try await store.write { tx in try tx.acknowledgementState(keyID: key.id, resourceCRN: F.crn(bucket)) }
        }
        func acknowledge(_ eventID: String) async throws {
            try await store.write { tx in
                try tx.recordAcknowledgement(keyID: key.id, resourceCRN: F.crn("a"),
                                             Acknowledgement(eventID: eventID, adopterKeyState: .enabled, keyVersionID: "k1-v1",
                                                             processedAt: F.at(1), receivedAt: F.at(2)))
            }
        }
        try requireEqual(try await state("b"), nil, "the state of a resource not registered with the key")
        try requireEqual(try await state("a"), RegistrationAcknowledgementState(acknowledgedEventSequence: nil),
                         "the state of a registration never acknowledged")
        try await acknowledge(events[1].id)
        try requireEqual(try await state("a"), RegistrationAcknowledgementState(acknowledgedEventSequence: events[1].sequence),
                         "the state after an acknowledgement of e2")
        try await acknowledge("no-such-event")
        try requireEqual(try await state("a"), RegistrationAcknowledgementState(acknowledgedEventSequence: nil),
                         "the state when the acknowledged event is not stored")
    }

    // MARK: Queries

    static let paging = StoreContractCheck(
        "paging",
        "Listings honour limit and offset in a stable order, and counts give the total regardless of the page."
    ) { backend in
        let store = try await backend.makeStore()
        let keys = (0..<7).map { F.key("k\($0)", created: Double($0)) }
        try await store.write { tx in
            for var key in keys {
                if key.id == "k6" { key.state = .destroyed }
                let buckets = switch key.id {
                case "k0": ["r4", "r2", "r0", "r3", "r1"]
                case "k1": ["n"]
                default: [String]()
                }
                try F.seed(tx, key, buckets: buckets)
            }
            try F.seed(tx, F.key("x0", instance: "i2"))
            for ordinal in 2...4 {
                try tx.insertVersion(keyID: "k0", version: KeyVersion(id: "k0-v\(ordinal)", creationDate: F.at(Double(ordinal))),
                                     ordinal: ordinal, sealedMaterial: Data([UInt8(ordinal)]))
            }
            try tx.insertVersion(keyID: "k0", version: keys[0].currentVersion, ordinal: 1, sealedMaterial: Data([1]))
            for n in 1...5 { try F.emit(tx, keys[1], n) }
        }
        func page(_ limit: Int, _ offset: Int, descending: Bool = false, all: Bool = false) async throws -> ([String], Int) {
            var query = KeyQuery()
            query.limit = limit
            query.offset = offset
            query.descending = descending
            if all { query.states = Set(KeyState.allCases) }
            let q = query
            return try await store.read { tx in
                (try tx.keys(instanceID: "i1", query: q).map(\.id), try tx.countKeys(instanceID: "i1", query: q))
            }
        }
        try requireEqual(try await page(3, 0).0, ["k0", "k1", "k2"], "keys page 1")
        try requireEqual(try await page(3, 3).0, ["k3", "k4", "k5"], "keys page 2 (the destroyed k6 is not listed by default)")
        try requireEqual(try await page(3, 6).0, [], "keys page 3")
        try requireEqual(try await page(3, 3).1, 6, "key total by default")
        try requireEqual(try await page(3, 6, all: true).0, ["k6"], "keys page 3 with every state")
        try requireEqual(try await page(1, 0, all: true).1, 7, "key total with every state, whatever the page")
        try requireEqual(try await page(2, 1, descending: true).0, ["k4", "k3"], "keys descending, offset 1")

        let (registrations, registrationTotal, versions, notifications) = try await store.read { tx in
            (try tx.registrations(instanceID: "i1", keyID: "k0", filter: RegistrationFilter(), limit: 2, offset: 2).map(\.resourceCRN),
             try tx.countRegistrations(instanceID: "i1", keyID: "k0", filter: RegistrationFilter()),
             try tx.versions(keyID: "k0", limit: 2, offset: 1).map(\.id),
             try tx.notifications(keyID: "k1", eventSequence: nil, status: nil, limit: 2, offset: 1).map(\.event.id))
        }
        try requireEqual(registrations, [F.crn("r2"), F.crn("r3")], "registrations page (by CRN)")
        try requireEqual(registrationTotal, 5, "registration total")
        try requireEqual(versions, ["k0-v3", "k0-v2"], "versions page (newest first)")
        try requireEqual(notifications, ["k1-e4", "k1-e3"], "notifications page (newest first)")
        let filtered = try await store.read { tx in
            try tx.countRegistrations(instanceID: "i1", keyID: nil, filter: RegistrationFilter(crnQuery: F.crn("r3")))
        }
        try requireEqual(filtered, 1, "registrations matching one CRN")
    }

    static let filters = StoreContractCheck(
        "filters",
        "Key and registration filters select exactly: root or standard keys, a key ring, a case-insensitive search of names and aliases in which % and _ are plain characters, CRN prefixes, preventKeyDeletion; and the writes that move, count or remove rows report what they did."
    ) { backend in
        let store = try await backend.makeStore()
        var payroll = F.key("k1", created: 1)
        payroll.name = "Payroll-Root"
        var standard = F.key("k2", created: 2)
        standard.name = "50%_discount"
        standard.extractable = true
        standard.keyRingID = "ring-a"
        var other = F.key("k3", created: 3)
        other.name = "500 discount"
        other.keyRingID = "ring-a"
        other.state = .destroyed
        var expiring = F.key("k4", created: 4)
        expiring.expirationDate = F.at(100)
        var expiringFirst = F.key("k5", created: 5)
        expiringFirst.expirationDate = F.at(50)
        var expiredButSuspended = F.key("k6", created: 6)
        expiredButSuspended.expirationDate = F.at(10)
        expiredButSuspended.state = .suspended
        let keys = [payroll, standard, other, expiring, expiringFirst, expiredButSuspended]
        try await store.write { [payroll, standard] tx in
            try tx.ensureInstance("i1", at: F.epoch)
            try tx.insertKeyRing(instanceID: "i1", id: "ring-a", at: F.epoch, by: "alice")
            for key in keys { try tx.insertKey(key) }
            try tx.insertAlias(AliasRecord(alias: "salaries", keyID: "k1", creationDate: F.epoch, createdBy: "alice"), instanceID: "i1")
            try tx.upsertRegistration(try F.registration(payroll, "bucket-1"))
            try tx.upsertRegistration(try F.registration(payroll, "bucket-2", prevent: true))
            try tx.upsertRegistration(try F.registration(standard, "other-1"))
        }
        func ids(_ configure: @Sendable (inout KeyQuery) -> Void) async throws -> [String] {
            var query = KeyQuery()
            query.states = Set(KeyState.allCases)
            configure(&query)
            let q = query
            return try await store.read { tx in try tx.keys(instanceID: "i1", query: q).map(\.id) }
        }
        try requireEqual(try await ids { $0.extractable = true }, ["k2"], "standard keys")
        try requireEqual(try await ids { $0.extractable = false }, ["k1", "k3", "k4", "k5", "k6"], "root keys")
        try requireEqual(try await ids { $0.keyRingID = "ring-a" }, ["k2", "k3"], "keys of ring-a")
        try requireEqual(try await ids { $0.search = KeySearch("PAYROLL") }, ["k1"], "search by name, any case")
        try requireEqual(try await ids { $0.search = KeySearch("salar") }, ["k1"], "search by alias")
        try requireEqual(try await ids { $0.search = KeySearch("50%") }, ["k2"], "search with % (a plain character, not a wildcard)")
        try requireEqual(try await ids { $0.search = KeySearch("0_d") }, [], "search with _ (a plain character, not a wildcard)")

        let (due, live, all) = try await store.read { tx in
            (try tx.keysDueForExpiry(at: F.at(100), limit: 10).map(\.id),
             try tx.countKeys(instanceID: "i1", keyRingID: "ring-a", excludingDestroyed: true),
             try tx.countKeys(instanceID: "i1", keyRingID: "ring-a", excludingDestroyed: false))
        }
        try requireEqual(due, ["k5", "k4"], "active keys due for expiry, earliest first (a suspended one is not)")
        try requireEqual(live, 1, "keys of ring-a that are not destroyed")
        try requireEqual(all, 2, "keys of ring-a")

        let (prefix, exact, preventing, everyKey) = try await store.read { tx in
            (try tx.countRegistrations(instanceID: "i1", keyID: nil, filter: RegistrationFilter(crnQuery: F.crn("bucket-") + "*")),
             try tx.registrations(instanceID: "i1", keyID: nil, filter: RegistrationFilter(crnQuery: F.crn("bucket-2")), limit: 10, offset: 0)
                .map(\.resourceCRN),
             try tx.countRegistrations(instanceID: "i1", keyID: "k1", filter: RegistrationFilter(preventKeyDeletion: true)),
             try tx.registrations(instanceID: "i1", keyID: nil, filter: RegistrationFilter(), limit: 10, offset: 0).map(\.keyID))
        }
        try requireEqual(prefix, 2, "registrations whose CRN starts with the prefix before '*'")
        try requireEqual(exact, [F.crn("bucket-2")], "registrations of one exact CRN")
        try requireEqual(preventing, 1, "registrations preventing deletion")
        try requireEqual(everyKey, ["k1", "k1", "k2"], "registrations of every key, by key then CRN")

        let (moved, aliasRemoved, aliasAgain, registrationRemoved, registrationAgain) = try await store.write { tx in
            try tx.moveKeys(instanceID: "i1", fromRing: "ring-a", toRing: KeyRing.defaultID)
            try tx.deleteKeyRing(instanceID: "i1", id: "ring-a")
            return (try tx.countKeys(instanceID: "i1", keyRingID: KeyRing.defaultID, excludingDestroyed: false),
                    try tx.deleteAlias("salaries", instanceID: "i1"), try tx.deleteAlias("salaries", instanceID: "i1"),
                    try tx.deleteRegistration(keyID: "k1", resourceCRN: F.crn("bucket-1")),
                    try tx.deleteRegistration(keyID: "k1", resourceCRN: F.crn("bucket-1")))
        }
        try requireEqual(moved, 6, "keys of the default ring after moving ring-a's keys there")
        try require(aliasRemoved && !aliasAgain, "deleteAlias must report true once, then false (got \(aliasRemoved), \(aliasAgain))")
        try require(registrationRemoved && !registrationAgain,
                    "deleteRegistration must report true once, then false (got \(registrationRemoved), \(registrationAgain))")
        let (rings, alias, key) = try await store.read { tx in
            (try tx.keyRings(instanceID: "i1").map(\.id), try tx.keyID(alias: "salaries", instanceID: "i1"), try tx.key(id: "k1", instanceID: "i1"))
        }
        try requireEqual(rings, [KeyRing.defaultID], "key rings after deleting ring-a")
        try requireEqual(alias, nil, "the deleted alias")
        try requireEqual(key?.aliases, [], "the key's aliases after deleting its alias")
    }

    static let eventSequence = StoreContractCheck(
        "eventSequence",
        "Event sequences grow strictly with every append, within and across commands; events read back in sequence order after any point."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let other = F.key("k2")
        var sequences: [Int64] = []
        try await store.write { tx in
            try F.seed(tx, key)
            try F.seed(tx, other)
        }
        for n in 1...3 {
            sequences.append(try await store.write { tx in try tx.appendEvent(F.event(key, n)) })
        }
        sequences += try await store.write { tx in
            try (4...6).map { n in try tx.appendEvent(n == 5 ? F.event(other, 1) : F.event(key, n)) }
        }
        try require(zip(sequences, sequences.dropFirst()).allSatisfy { $0 < $1 }, "sequences are not strictly increasing: \(sequences)")
        let third = sequences[2]
        let (latest, after, ofKey, limited, byID) = try await store.read { tx in
            (try tx.latestEventSequence(), try tx.events(instanceID: nil, keyID: nil, after: third, limit: 100),
             try tx.events(instanceID: "i1", keyID: "k1", after: 0, limit: 100),
             try tx.events(instanceID: nil, keyID: nil, after: 0, limit: 2), try tx.event(id: "k2-e1"))
        }
        try requireEqual(latest, sequences.last ?? 0, "latest event sequence")
        try requireEqual(after.map(\.sequence), Array(sequences.dropFirst(3)), "events after the third")
        try requireEqual(ofKey.map(\.id), ["k1-e1", "k1-e2", "k1-e3", "k1-e4", "k1-e6"], "events of one key")
        try requireEqual(limited.map(\.sequence), Array(sequences.prefix(2)), "events with limit 2")
        var expected = F.event(other, 1)
        expected.sequence = sequences[4]
        try requireEqual(byID, expected, "an event read by id (with its sequence)")
    }

    static let purge = StoreContractCheck(
        "purge",
        "purgeKey erases the key, its material, aliases and registrations, ends its unfinished notifications dead, and keeps its events."
    ) { backend in
        let store = try await backend.makeStore()
        let key = F.key("k1")
        try await store.write { tx in
            try F.seed(tx, key, buckets: ["a", "b"])
            try tx.insertVersion(keyID: key.id, version: key.currentVersion, ordinal: 1, sealedMaterial: Data(repeating: 7, count: 32))
            try tx.insertAlias(AliasRecord(alias: "gone", keyID: key.id, creationDate: F.epoch, createdBy: "alice"), instanceID: "i1")
            for n in 1...2 { try F.emit(tx, key, n) }
        }
        try await store.write { tx in try tx.purgeKey(id: key.id) }
        let (stored, alias, material, registrations, events, counts) = try await store.read { tx in
            (try tx.key(id: key.id, instanceID: "i1"), try tx.keyID(alias: "gone", instanceID: "i1"),
             try tx.sealedMaterial(keyID: key.id, versionID: key.currentVersion.id),
             try tx.countRegistrations(instanceID: "i1", keyID: key.id, filter: RegistrationFilter()),
             try tx.events(instanceID: nil, keyID: key.id, after: 0, limit: 10),
             try tx.deliveryCounts(instanceID: nil, keyID: key.id, service: nil))
        }
        try require(stored == nil, "the purged key is still there")
        try require(alias == nil, "the purged key's alias still resolves")
        try require(material == nil, "the purged key's material is still there")
        try requireEqual(registrations, 0, "registrations of the purged key")
        try requireEqual(events.map(\.id), ["k1-e1", "k1-e2"], "events of the purged key")
        try requireEqual(counts, DeliveryCounts(dead: 4), "notifications of the purged key")
    }

    // MARK: Persistence

    static let meta = StoreContractCheck(
        "meta",
        "Meta values read back byte for byte, an overwrite replaces them, and an unknown name reads as nil."
    ) { backend in
        let store = try await backend.makeStore()
        let bytes = Data([0, 1, 2, 0, 255, 128])
        try await store.write { tx in
            try tx.setMeta("check", bytes)
            try tx.setMeta("other", Data("x".utf8))
        }
        try requireEqual(try await store.read { tx in try tx.meta("check") }, Optional(bytes), "meta as written")
        try await store.write { tx in try tx.setMeta("check", Data("replaced".utf8)) }
        let (check, other, missing) = try await store.read { tx in (try tx.meta("check"), try tx.meta("other"), try tx.meta("missing")) }
        try requireEqual(check, Data("replaced".utf8), "meta after an overwrite")
        try requireEqual(other, Data("x".utf8), "another meta value after the overwrite")
        try requireEqual(missing, nil, "an unknown meta name")
    }

    static let durableAcrossReopen = StoreContractCheck(
        "durableAcrossReopen",
        "What a command committed is there after the database is closed and opened again.", needsReopening: true
    ) { backend in
        guard let reopening = backend.reopening else { return }
        let store = try await backend.makeStore()
        let key = F.key("k1")
        let event = try await store.write { tx in
            try F.seed(tx, key, buckets: ["a"])
            try tx.setMeta("check", Data([4, 2]))
            return try F.emit(tx, key, 1)
        }
        let reopened = try await reopening.reopen(store)
        let (stored, meta, notification, latest) = try await reopened.read { tx in
            (try tx.key(id: "k1", instanceID: "i1"), try tx.meta("check"),
             try tx.notification(eventID: event.id, resourceCRN: F.crn("a")), try tx.latestEventSequence())
        }
        try requireEqual(stored, key, "the key after reopening")
        try requireEqual(meta, Data([4, 2]), "meta after reopening")
        try requireEqual(notification?.status, .pending, "the notification after reopening")
        try requireEqual(latest, event.sequence, "latest event sequence after reopening")
        let next = try await reopened.write { tx in try tx.appendEvent(F.event(key, 2)) }
        try require(next > event.sequence, "an event appended after reopening got sequence \(next), not above \(event.sequence)")
    }

    static let newerSchemaRefused = StoreContractCheck(
        "newerSchemaRefused",
        "A database that a newer KeyRelay migrated (a schema migration this build does not know) is refused on open with StoreError.newerSchema naming it.",
        needsReopening: true
    ) { backend in
        guard let reopening = backend.reopening else { return }
        let store = try await backend.makeStore()
        try await store.write { tx in try tx.setMeta("check", Data([1])) }
        try await reopening.recordUnknownMigration(store, "9999_from_the_future")
        try await requireThrows("opening a database from a newer KeyRelay", { try await reopening.reopen(store) }) { error in
            error as? StoreError == .newerSchema(unknown: ["9999_from_the_future"])
        }
    }

    static let commitsSignalled = StoreContractCheck(
        "commitsSignalled",
        "Every committed write moves the store's commit feed and wakes a reader waiting on it; a refused command does not count as a commit a reader can see."
    ) { backend in
        let store = try await backend.makeStore()
        let before = store.commits.generation
        // A reader that started waiting before the write: the write must wake it (no timeout, so a store that
        // never signals hangs here; the contract runner bounds the wait).
        let woken = Task { await store.commits.wait(after: before, timeout: .seconds(2)); return store.commits.generation }
        try await store.write { tx in try F.seed(tx, F.key("k1")) }
        let after = await woken.value
        try require(after != before, "a reader waiting on the commit feed was not woken by a committed write")
        try require(store.commits.generation != before, "the commit feed did not move after a committed write")
        // Waiting after an already-seen generation returns at once when a commit happened since.
        let seen = store.commits.generation
        _ = try await store.write { tx in try tx.appendEvent(F.event(F.key("k1"), 1)) }
        await store.commits.wait(after: seen, timeout: .seconds(2))
        try require(store.commits.generation != seen, "a commit made before the wait was missed")
    }
}
