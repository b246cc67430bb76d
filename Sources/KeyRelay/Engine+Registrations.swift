import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// The fields of a registration a service sets (Key Protect's `registration_input`).
public struct RegistrationInput: Sendable, Equatable {
    public var description: String?
    public var registrationMetadata: String?
    public var preventKeyDeletion: Bool?
    /// The key version protecting the resource; defaults to the key's current version.
    public var keyVersionID: String?
    public init(description: String? = nil, registrationMetadata: String? = nil, preventKeyDeletion: Bool? = nil,
                keyVersionID: String? = nil) {
        self.description = description
        self.registrationMetadata = registrationMetadata
        self.preventKeyDeletion = preventKeyDeletion
        self.keyVersionID = keyVersionID
    }
}

extension KeyRelayEngine {
    static let registrationOp = "Registration could not be processed"

    /// Registers a resource with a key (service-to-service create). The key must be an active root key. A
    /// registration whose protection a forced delete ended is registered again: it protects the key once more.
    @discardableResult
    public func register(keyID reference: String, resourceCRN: String, input: RegistrationInput = RegistrationInput(),
                         context: RequestContext) async throws -> Registration {
        try context.check()
        return try await saveRegistration(reference, resourceCRN: resourceCRN, input: input, context: context, mode: .create) { existing, key, now in
            if let existing, existing.isProtecting {
                throw KeyRelayError(.registrationExists, "A registration between this key and resource '\(resourceCRN)' already exists: replace (PUT) or update (PATCH) it instead",
                                    operation: Self.registrationOp)
            }
            var next = try Self.newRegistration(key: key, crn: resourceCRN, input: input, context: context, now: now)
            if let existing {
                next.createdBy = existing.createdBy
                next.creationDate = existing.creationDate
                next.acknowledgement = existing.acknowledgement
            }
            return next
        }
    }

    /// Replaces a registration (PUT): creates it, or overwrites every field. A replaced registration protects the
    /// key again if a forced delete had ended its protection.
    @discardableResult
    public func replaceRegistration(keyID reference: String, resourceCRN: String, input: RegistrationInput,
                                    context: RequestContext) async throws -> Registration {
        try context.check()
        return try await saveRegistration(reference, resourceCRN: resourceCRN, input: input, context: context, mode: .replace) { existing, key, now in
            var next = try Self.newRegistration(key: key, crn: resourceCRN, input: input, context: context, now: now)
            if let existing {
                next.createdBy = existing.createdBy
                next.creationDate = existing.creationDate
                next.acknowledgement = existing.acknowledgement
            }
            return next
        }
    }

    /// Updates some fields of a registration (PATCH). An update does not register again: a registration whose
    /// protection ended stays ended.
    @discardableResult
    public func updateRegistration(keyID reference: String, resourceCRN: String, input: RegistrationInput,
                                   context: RequestContext) async throws -> Registration {
        try context.check()
        return try await saveRegistration(reference, resourceCRN: resourceCRN, input: input, context: context, mode: .update) { existing, key, now in
            guard var next = existing else {
                throw KeyRelayError(.registrationNotFound, "No registration between this key and resource '\(resourceCRN)' exists: create it first",
                                    operation: Self.registrationOp)
            }
            if let description = input.description { next.description = description }
            if let metadata = input.registrationMetadata { next.registrationMetadata = metadata }
            if let prevent = input.preventKeyDeletion { next.preventKeyDeletion = prevent }
            if input.keyVersionID != nil { next.keyVersion = try Self.version(for: input, key: key) }
            next.updatedBy = context.principal
            next.lastUpdated = now
            return next
        }
    }

    /// Removes a registration: only while the key is active or suspended (422 `KEY_INVALID_STATE_ERR` otherwise,
    /// as Key Protect). An adopter that acknowledges an event with `deleteRegistration` removes its registration in
    /// any state.
    public func unregister(keyID reference: String, resourceCRN: String, context: RequestContext) async throws {
        try context.check()
        let now = now()
        let rules = rules
        let ids = ids
        try await storage.write { tx in
            var key = try Self.resolve(reference, in: tx, context: context, operation: Self.registrationOp)
            key = try Self.applyExpiry(key, rules: rules, ids: ids, in: tx, at: now)
            try rules.checkRegistrationRemovable(key)
            // A CRN containing U+0000 names no registration (no stored text can contain it, see StoredText).
            guard !StoredText.containsNUL(resourceCRN), try tx.deleteRegistration(keyID: key.id, resourceCRN: resourceCRN) else {
                throw KeyRelayError(.registrationNotFound, "No registration between this key and resource '\(resourceCRN)' exists",
                                    operation: Self.registrationOp)
            }
        }
    }

    /// Registrations of one key (by id or alias) or, with `keyID` nil, of every key of the instance.
    public func registrations(keyID reference: String? = nil, filter: RegistrationFilter = RegistrationFilter(),
                              limit: Int = 200, offset: Int = 0, context: RequestContext) async throws -> Page<Registration> {
        try context.check()
        try Self.validatePaging(limit: limit, offset: offset, operation: "Registrations could not be retrieved")
        if let query = filter.crnQuery, StoredText.containsNUL(query) {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'urlEncodedResourceCRNQuery' must be: text without the character U+0000 (NUL)",
                                operation: "Registrations could not be retrieved", target: ErrorTarget(.queryParam, "urlEncodedResourceCRNQuery"))
        }
        if let query = filter.crnQuery, reference == nil, let star = query.firstIndex(of: "*") {
            let segmentsBefore = query[..<star].filter { $0 == ":" }.count
            guard segmentsBefore >= 8 else {
                throw KeyRelayError(.invalidQueryParam, "The query_param 'urlEncodedResourceCRNQuery' must be: a CRN whose first 8 segments contain no '*'",
                                    operation: "Registrations could not be retrieved", target: ErrorTarget(.queryParam, "urlEncodedResourceCRNQuery"))
            }
        }
        return try await storage.read { tx in
            let keyID = try reference.map { try Self.resolve($0, in: tx, context: context, operation: "Registrations could not be retrieved").id }
            return Page(items: try tx.registrations(instanceID: context.instanceID, keyID: keyID, filter: filter, limit: limit, offset: offset),
                        total: try tx.countRegistrations(instanceID: context.instanceID, keyID: keyID, filter: filter))
        }
    }

    /// Records an adopter's acknowledgement: the notification (and any earlier unfinished one to the same resource)
    /// becomes acknowledged and the registration remembers the reported state and version. Idempotent. An
    /// acknowledgement of another state than the event's (``AdopterKeyState/expected(for:)``) is recorded on the
    /// notification as an action that did not complete (``IncompleteReason/stateConflict``).
    public nonisolated func acknowledge(_ ack: EventAcknowledgement, context: RequestContext) async throws {
        try context.check()
        try await acknowledge(eventID: ack.eventID, resourceCRN: ack.resourceCRN, adopterKeyState: ack.adopterKeyState,
                              keyVersionID: ack.keyVersionID, timestamp: ack.timestamp,
                              deleteRegistration: ack.deleteRegistration, context: context)
    }

    /// Records an acknowledgement of the event `eventID`, as ``acknowledge(_:context:)`` does, resolving the
    /// acknowledging resource in the same transaction when `resourceCRN` is `nil`: Key Protect's `event_ack` body does
    /// not name the resource, so the event's key must then have exactly one registration.
    /// - Throws: `INVALID_FIELD_ERR` (field `resourceCrn`) when the resource is not named and the key has no or
    ///   several registrations; `NOT_FOUND_ERR` (field `eventId`) for an event of another instance or none.
    public nonisolated func acknowledge(eventID: String, resourceCRN: String?, adopterKeyState: AdopterKeyState, keyVersionID: String?,
                            timestamp: Date, deleteRegistration: Bool = false, context: RequestContext) async throws {
        try context.check()
        let now = now()
        let op = "Event could not be acknowledged"
        if adopterKeyState == .enabled, keyVersionID == nil {
            throw KeyRelayError(.invalidField, "The field 'keyStateData.rewrappedKeyVersion' must be: present when adopterKeyState is DEK_ENABLED",
                                operation: op, target: ErrorTarget(.field, "keyStateData.rewrappedKeyVersion"))
        }
        if let resourceCRN { _ = try CRN(parsing: resourceCRN) }
        try StoredText.check(keyVersionID, field: "keyStateData.rewrappedKeyVersion", operation: op)
        try await storage.write { tx in
            // An id containing U+0000 names no event (no stored text can contain it).
            guard !StoredText.containsNUL(eventID), let event = try tx.event(id: eventID), event.instanceID == context.instanceID else {
                throw KeyRelayError(.notFound, "No event with id '\(eventID)' exists in this instance", operation: op,
                                    target: ErrorTarget(.field, "eventId"))
            }
            let crn: String
            if let resourceCRN {
                crn = resourceCRN
            } else {
                let candidates = try tx.registrations(instanceID: context.instanceID, keyID: event.keyID, filter: RegistrationFilter(),
                                                      limit: 2, offset: 0)
                guard candidates.count == 1 else {
                    let total = try tx.countRegistrations(instanceID: context.instanceID, keyID: event.keyID, filter: RegistrationFilter())
                    throw KeyRelayError(.invalidField, "The field 'resourceCrn' must be: the CRN of the acknowledging resource (a KeyRelay extension); it may be omitted only when the event's key has exactly one registration, and this key has \(total)",
                                        operation: op, target: ErrorTarget(.field, "resourceCrn"))
                }
                crn = candidates[0].resourceCRN
            }
            guard let registered = try tx.acknowledgementState(keyID: event.keyID, resourceCRN: crn) else {
                throw KeyRelayError(.registrationNotFound, "Resource '\(crn)' is not registered with key \(event.keyID)",
                                    operation: op)
            }
            _ = try tx.acknowledgeNotifications(keyID: event.keyID, resourceCRN: crn,
                                                upToEventSequence: event.sequence, at: now)
            // The resource reached another state than the event put the key in: the action did not complete there
            // (Key Protect's "did not complete", reason 409).
            let expected = AdopterKeyState.expected(for: event.keyState)
            if adopterKeyState != expected {
                try tx.recordStateConflict(keyID: event.keyID, resourceCRN: crn, eventSequence: event.sequence,
                                           error: "\(IncompleteReason.summary): the resource acknowledged \(adopterKeyState.rawValue), the key is \(event.keyState) after the event (\(expected.rawValue) expected) (409)")
            }
            // Only a newer event than the last acknowledged one moves the registration's reported state.
            if registered.acknowledgedEventSequence.map({ $0 <= event.sequence }) ?? true {
                let acknowledgement = Acknowledgement(eventID: eventID, adopterKeyState: adopterKeyState,
                                                      keyVersionID: keyVersionID, processedAt: timestamp, receivedAt: now)
                try tx.recordAcknowledgement(keyID: event.keyID, resourceCRN: crn, acknowledgement)
            }
            if deleteRegistration {
                _ = try tx.deleteRegistration(keyID: event.keyID, resourceCRN: crn)
            }
        }
    }

    // MARK: - Helpers

    enum SaveMode { case create, replace, update }

    private func saveRegistration(_ reference: String, resourceCRN: String, input: RegistrationInput, context: RequestContext, mode: SaveMode,
                                  _ build: @escaping @Sendable (Registration?, Key, Date) throws -> Registration) async throws -> Registration {
        _ = try CRN(parsing: resourceCRN)
        try StoredText.check(input.description, field: "description", operation: Self.registrationOp)
        try StoredText.check(input.registrationMetadata, field: "registrationMetadata", operation: Self.registrationOp)
        try StoredText.check(input.keyVersionID, field: "keyVersionId", operation: Self.registrationOp)
        let now = now()
        let rules = rules
        let ids = ids
        return try await storage.write { tx in
            var key = try Self.resolve(reference, in: tx, context: context, operation: Self.registrationOp)
            key = try Self.applyExpiry(key, rules: rules, ids: ids, in: tx, at: now)
            try rules.checkRegistrable(key)
            let existing = try tx.registration(keyID: key.id, resourceCRN: resourceCRN)
            var next = try build(existing, key, now)
            if next.keyVersion.id != key.currentVersion.id {
                guard let known = try tx.versions(keyID: key.id, limit: Int.max, offset: 0).first(where: { $0.id == next.keyVersion.id }) else {
                    throw KeyRelayError(.invalidField, "The field 'keyVersionId' must be: the id of a version of this key",
                                        operation: Self.registrationOp, target: ErrorTarget(.field, "keyVersionId"))
                }
                next.keyVersion = known
            }
            if let existing, next.keyVersion.id != existing.keyVersion.id,
               try Self.ordinal(of: next.keyVersion.id, key: key, tx: tx) < Self.ordinal(of: existing.keyVersion.id, key: key, tx: tx) {
                throw KeyRelayError(.keyVersionInvalid, "This request requires that the key version is later than current registration key version",
                                    operation: Self.registrationOp, target: ErrorTarget(.field, "keyVersionId"))
            }
            try tx.upsertRegistration(next)
            return next
        }
    }

    private static func ordinal(of versionID: String, key: Key, tx: any StorageReader) throws -> Int {
        let all = try tx.versions(keyID: key.id, limit: Int.max, offset: 0)
        guard let index = all.firstIndex(where: { $0.id == versionID }) else { return -1 }
        return all.count - index
    }

    private static func newRegistration(key: Key, crn: String, input: RegistrationInput, context: RequestContext,
                                        now: Date) throws -> Registration {
        Registration(keyID: key.id, instanceID: key.instanceID, resourceCRN: try CRN(parsing: crn), description: input.description,
                     registrationMetadata: input.registrationMetadata, preventKeyDeletion: input.preventKeyDeletion ?? false,
                     keyVersion: try version(for: input, key: key), createdBy: context.principal, creationDate: now)
    }

    private static func version(for input: RegistrationInput, key: Key) throws(KeyRelayError) -> KeyVersion {
        guard let id = input.keyVersionID, id != key.currentVersion.id else { return key.currentVersion }
        // An older version: checked and completed from the store by saveRegistration.
        return KeyVersion(id: id, creationDate: key.creationDate)
    }
}
