import Foundation

/// The operations whose permission depends on a key's state (Key Protect's allowed-actions table).
public enum KeyAction: String, Sendable, CaseIterable, Codable {
    case wrap, unwrap, rewrap, rotate, disable, enable, delete, restore, purge
    case setKeyForDeletion, unsetKeyForDeletion, register, sync, listVersions

    /// The states in which the action is allowed.
    public var allowedStates: Set<KeyState> {
        switch self {
        case .wrap, .disable, .setKeyForDeletion, .unsetKeyForDeletion, .register: [.active]
        case .unwrap, .rewrap, .rotate: [.active, .deactivated]
        case .enable: [.suspended]
        case .delete: [.active, .suspended, .deactivated]
        case .restore, .purge: [.destroyed]
        case .sync: [.active, .suspended, .deactivated, .destroyed]
        case .listVersions: [.active]
        }
    }

    /// What failed, in Key Protect's `errorMsg` wording.
    public var operation: String {
        switch self {
        case .wrap, .unwrap, .rewrap, .rotate, .setKeyForDeletion, .unsetKeyForDeletion:
            "Action could not be performed on key"
        case .disable: "Key could not be disabled"
        case .enable: "Key could not be enabled"
        case .delete: "Key could not be deleted"
        case .restore: "Key could not be restored"
        case .purge: "Key could not be purged"
        case .register: "Registration could not be processed"
        case .sync: "Could not initiate sync requests to associated resources"
        case .listVersions: "Key versions could not be retrieved"
        }
    }

    /// What failed when the key's state refuses the action, in Key Protect's `errorMsg` wording: the state the
    /// action needs comes first where Key Protect names it ("Key is not in active state: Key could not be disabled").
    public var stateOperation: String {
        switch self {
        case .disable: "Key is not in active state: \(operation)"
        case .enable: "Key is not in suspended state: \(operation)"
        default: operation
        }
    }
}

/// Whether an action is accepted on a key, and from when (``LifecycleRules/availability(_:at:by:registrations:)``).
public struct ActionAvailability: Sendable, Equatable, Codable {
    public var action: KeyAction
    /// `nil` when the action is accepted now; otherwise the first instant at which it is.
    public var allowedFrom: Date?
    public init(action: KeyAction, allowedFrom: Date? = nil) {
        self.action = action
        self.allowedFrom = allowedFrom
    }
}

/// What the delete rule needs to know about a key's registrations: only those that still protect it
/// (``Registration/isProtecting``) count.
public struct RegistrationSummary: Sendable, Equatable {
    /// Registrations that protect the key.
    public var count: Int
    /// Protecting registrations with `preventKeyDeletion`.
    public var preventingDeletion: Int
    /// Every registration of the key, those whose protection ended included (what sync reaches).
    public var total: Int
    public init(count: Int, preventingDeletion: Int, total: Int? = nil) {
        self.count = count
        self.preventingDeletion = preventingDeletion
        self.total = total ?? count
    }
}

/// Key Protect's lifecycle rules as pure functions: each takes a key and the current instant and returns the key
/// after the action, or throws the error Key Protect answers with. Nothing here reads a clock or a random source.
public struct LifecycleRules: Sendable {
    public var configuration: LifecycleConfiguration

    public init(configuration: LifecycleConfiguration = LifecycleConfiguration()) {
        self.configuration = configuration
    }

    // MARK: - State table

    /// Throws unless `action` is allowed in the key's state. The message is Key Protect's ("Key is not in a valid
    /// state"); which states the action needs is KeyRelay's ``KeyRelayError/hint``.
    public func checkState(_ action: KeyAction, _ key: Key) throws(KeyRelayError) {
        guard action.allowedStates.contains(key.state) else {
            if action == .delete, key.state == .destroyed {
                throw KeyRelayError(.keyDeleted, "Key has already been deleted: Please delete references to this key",
                                    operation: action.operation)
            }
            if action == .register {
                throw KeyRelayError(.keyInvalidState, "Key is not in a valid state", operation: action.operation,
                                    hint: "a registration is created, replaced or updated only for an active root key, and this key is \(key.state)")
            }
            if action == .listVersions {
                throw KeyRelayError(.keyActionInvalidState, "Key is not in a valid state", operation: action.operation,
                                    hint: "versions of a non-active key are listed only with allKeyStates=true")
            }
            let wanted = action.allowedStates.sorted { $0.rawValue < $1.rawValue }.map(\.description).joined(separator: " or ")
            throw KeyRelayError(.keyActionInvalidState, "Key is not in a valid state", operation: action.stateOperation,
                                hint: "\(action.rawValue) needs a key that is \(wanted), and this key is \(key.state)")
        }
    }

    /// Throws `KEY_ROOT_REQ_ERR` for a standard key (`KEY_ROOT_REQ_REG_ERR` for a registration).
    public func checkRoot(_ action: KeyAction, _ key: Key) throws(KeyRelayError) {
        guard key.isRoot else {
            if action == .register {
                throw KeyRelayError(.keyRootRequiredForRegistration, "Requested action can only be completed with a root key",
                                    operation: action.operation, hint: "only root keys can protect resources")
            }
            throw KeyRelayError(.keyRootRequired, "Requested action can only be completed with a root key",
                                operation: action.operation)
        }
    }

    // MARK: - Time-driven

    /// Whether the key's expiration date has passed at `now`.
    public func isExpired(_ key: Key, at now: Date) -> Bool {
        guard let expiry = key.expirationDate else { return false }
        return expiry <= now
    }

    /// The key after expiry, if an active key's expiration date has passed: deactivated. `nil` if nothing changes.
    public func expire(_ key: Key, at now: Date) -> Key? {
        guard key.state == .active, isExpired(key, at: now) else { return nil }
        var next = key
        next.state = .deactivated
        next.lastUpdateDate = now
        next.updatedBy = Self.systemPrincipal
        return next
    }

    // MARK: - Actions

    /// Rotation: root keys, active or deactivated, at most once per ``LifecycleConfiguration/rotationInterval``
    /// (the first rotation after creation is free); imported keys must supply a payload and generated keys must not.
    public func rotate(_ key: Key, at now: Date, newVersion: KeyVersion, payloadSupplied: Bool, by principal: String) throws(KeyRelayError) -> Key {
        // Key Protect's order: a standard key is refused as such (KEY_ROOT_REQ_ERR) whatever its state.
        try checkRoot(.rotate, key)
        try checkState(.rotate, key)
        if key.imported, !payloadSupplied {
            throw KeyRelayError(.keyPayloadRequired, "This root key was created with user-supplied key material: Key material is required to perform a 'rotate' action",
                                operation: KeyAction.rotate.operation, target: ErrorTarget(.field, "payload"))
        }
        if !key.imported, payloadSupplied {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'payload' must be: provided only if key is imported",
                                operation: KeyAction.rotate.operation, target: ErrorTarget(.queryParam, "payload"))
        }
        if let allowed = rotationAllowedFrom(key), now < allowed {
            throw KeyRelayError(.keyRotationNotPermitted,
                                "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted",
                                operation: KeyAction.rotate.operation)
        }
        var next = touched(key, at: now, by: principal)
        next.currentVersion = newVersion
        next.versionCount += 1
        next.lastRotateDate = now
        next.lastLifecycleActionDate = now
        return next
    }

    /// Disable: active → suspended.
    public func disable(_ key: Key, at now: Date, by principal: String) throws(KeyRelayError) -> Key {
        try checkState(.disable, key)
        var next = touched(key, at: now, by: principal)
        next.state = .suspended
        next.lastLifecycleActionDate = now
        return next
    }

    /// Enable: suspended → active; refused for an expired key and within the enable/restore cooldown.
    public func enable(_ key: Key, at now: Date, by principal: String) throws(KeyRelayError) -> Key {
        try checkState(.enable, key)
        if isExpired(key, at: now) {
            throw KeyRelayError(.keyActionInvalidState, "Key is not in a valid state", operation: KeyAction.enable.stateOperation,
                                hint: "the key expired on \(Timestamp.format(key.expirationDate!)) and cannot be enabled")
        }
        try checkRecentAction(key, at: now, action: .enable)
        var next = touched(key, at: now, by: principal)
        next.state = .active
        next.lastLifecycleActionDate = now
        return next
    }

    /// Delete: active, suspended or deactivated → destroyed, subject to dual authorization and registrations.
    ///
    /// The refusals come in Key Protect's order: dual authorization (`AUTHORIZATIONS_NOT_MET`), a protecting
    /// registration without `force` (`PROTECTED_RESOURCE_ERR`), a protecting registration with `preventKeyDeletion`
    /// even with `force` (`PREV_KEY_DEL_ERR`), and only then an already deleted key (410 `KEY_DELETED_ERR`).
    /// `registrations` counts only the registrations that still protect the key (a forced delete ends protection).
    public func delete(_ key: Key, at now: Date, by principal: String, force: Bool,
                       registrations: RegistrationSummary) throws(KeyRelayError) -> Key {
        let op = KeyAction.delete.operation
        if key.dualAuthDelete.enabled {
            let authorizationsOp = "1 prior authorization(s) are required for deletion: Key could not be deleted"
            guard key.dualAuthDelete.isSetForDeletion(at: now) else {
                throw KeyRelayError(.authorizationsNotMet, "Number of authorizations required to delete is not met",
                                    operation: authorizationsOp,
                                    hint: "another user must first set the key for deletion (setKeyForDeletion), which stays valid for \(DurationText.goStyle(configuration.dualAuthValidity))")
            }
            guard key.dualAuthDelete.authorizedBy != principal else {
                throw KeyRelayError(.authorizationsNotMet, "Number of authorizations required to delete is not met",
                                    operation: authorizationsOp,
                                    hint: "the key was set for deletion by '\(principal)', and a different user must delete it")
            }
        }
        if registrations.count > 0, !force {
            throw KeyRelayError(.protectedResource, "Key is protecting one or more cloud resources",
                                operation: op, target: ErrorTarget(.queryParam, "force"),
                                hint: "\(registrations.count) registered resource(s); delete with force=true to delete it anyway")
        }
        if registrations.preventingDeletion > 0 {
            throw KeyRelayError(.preventKeyDeletion,
                                "The key cannot be deleted because it's protecting a cloud resource that has a retention policy: Before you delete this key, contact an account owner to remove the retention policy on each resource that is associated with the key",
                                operation: op,
                                hint: "\(registrations.preventingDeletion) registration(s) have preventKeyDeletion set; force does not override it")
        }
        try checkState(.delete, key)
        var next = touched(key, at: now, by: principal)
        next.state = .destroyed
        next.deletionDate = now
        next.deletedBy = principal
        next.lastLifecycleActionDate = now
        next.dualAuthDelete.authorizedBy = nil
        next.dualAuthDelete.authExpiration = nil
        return next
    }

    /// Restore: destroyed → active, within the restore window, not for an expired key, not within the cooldown.
    public func restore(_ key: Key, at now: Date, by principal: String) throws(KeyRelayError) -> Key {
        try checkState(.restore, key)
        let op = KeyAction.restore.operation
        if let deletion = key.deletionDate, now >= deletion.addingTimeInterval(configuration.restoreWindow) {
            throw KeyRelayError(.keyRestoreExpired, "Key restoration has expired", operation: op,
                                hint: "keys can be restored only within \(Int(configuration.restoreWindow / 86400)) days of deletion, and this key was deleted on \(Timestamp.format(deletion))")
        }
        if isExpired(key, at: now) {
            // Key Protect names the expiry in errorMsg: "The key expired on 2020-08-14 19:33:47 +0000 UTC: Key could not be restored".
            throw KeyRelayError(.keyExpired, "The action could not be performed on the key because the key is expired",
                                operation: "The key expired on \(Timestamp.goStyle(key.expirationDate!)): \(op)")
        }
        try checkRecentAction(key, at: now, action: .restore)
        var next = touched(key, at: now, by: principal)
        next.state = .active
        next.deletionDate = nil
        next.deletedBy = nil
        next.lastLifecycleActionDate = now
        return next
    }

    /// Purge: destroyed keys only, no earlier than ``LifecycleConfiguration/purgeDelay`` after deletion.
    public func checkPurge(_ key: Key, at now: Date) throws(KeyRelayError) {
        try checkState(.purge, key)
        if let deletion = key.deletionDate {
            let allowed = deletion.addingTimeInterval(configuration.purgeDelay)
            if now < allowed {
                throw KeyRelayError(.requestTooEarly,
                                    "The key was updated recently: Please wait and try again: Purge operation is allowed \(DurationText.goStyle(configuration.purgeDelay)) after key is deleted",
                                    operation: op(.purge), earliestAllowed: allowed, hint: "a purge is accepted from \(Timestamp.format(allowed))")
            }
        }
    }

    /// The instant from which a purge is accepted, for a destroyed key.
    public func purgeAllowedFrom(_ key: Key) -> Date? {
        key.deletionDate?.addingTimeInterval(configuration.purgeDelay)
    }

    /// The instant at which a restore stops being possible, for a destroyed key.
    public func restoreExpirationDate(_ key: Key) -> Date? {
        guard let deletion = key.deletionDate else { return nil }
        let window = deletion.addingTimeInterval(configuration.restoreWindow)
        if let expiry = key.expirationDate { return min(window, expiry) }
        return window
    }

    /// Dual authorization, first step: an active dual-auth key is set for deletion by `principal`.
    public func setForDeletion(_ key: Key, at now: Date, by principal: String) throws(KeyRelayError) -> Key {
        try checkState(.setKeyForDeletion, key)
        guard key.dualAuthDelete.enabled else {
            throw KeyRelayError(.notDualAuth, "The key is not dual auth enabled and cannot be set for deletion",
                                operation: op(.setKeyForDeletion))
        }
        var next = touched(key, at: now, by: principal)
        next.dualAuthDelete.authorizedBy = principal
        next.dualAuthDelete.authExpiration = now.addingTimeInterval(configuration.dualAuthValidity)
        return next
    }

    /// Dual authorization: cancel a pending authorization.
    public func unsetForDeletion(_ key: Key, at now: Date, by principal: String) throws(KeyRelayError) -> Key {
        try checkState(.unsetKeyForDeletion, key)
        guard key.dualAuthDelete.enabled else {
            throw KeyRelayError(.notDualAuth, "The key is not dual auth enabled and cannot be set for deletion",
                                operation: op(.unsetKeyForDeletion))
        }
        var next = touched(key, at: now, by: principal)
        next.dualAuthDelete.authorizedBy = nil
        next.dualAuthDelete.authExpiration = nil
        return next
    }

    // MARK: - Sync

    /// The instant the sync cooldown runs from: the later of the last lifecycle action and the last accepted sync.
    public func syncAnchor(_ key: Key) -> Date? {
        switch (key.lastLifecycleActionDate, key.lastSyncDate) {
        case let (a?, s?): max(a, s)
        case let (a?, nil): a
        case let (nil, s?): s
        case (nil, nil): nil
        }
    }

    /// The first whole second at which a sync is accepted, or `nil` if one is accepted at any time.
    /// A sync is accepted only **strictly after** anchor + cooldown.
    public func earliestSync(_ key: Key) -> Date? {
        guard let anchor = syncAnchor(key) else { return nil }
        let boundary = anchor.addingTimeInterval(configuration.syncCooldown).timeIntervalSince1970
        return Date(timeIntervalSince1970: boundary.rounded(.down) + 1)
    }

    /// Sync: accepted only when strictly more than the cooldown has passed since the anchor. A refused sync
    /// changes nothing (it does not restart the cooldown). Works in every state, destroyed included.
    public func sync(_ key: Key, at now: Date, by principal: String) throws(KeyRelayError) -> Key {
        try checkState(.sync, key)
        if let anchor = syncAnchor(key), now <= anchor.addingTimeInterval(configuration.syncCooldown) {
            let earliest = earliestSync(key)!
            throw KeyRelayError(.requestTooEarly,
                                "The key was updated recently: Please wait and try again: Sync cannot be performed until at least \(Timestamp.format(earliest))",
                                operation: op(.sync), earliestAllowed: earliest)
        }
        var next = key
        next.lastSyncDate = now
        return next
    }

    // MARK: - What is allowed, as data

    /// The instant from which a rotation is accepted again (``LifecycleConfiguration/rotationInterval`` after the
    /// last rotation), or `nil` if the key was never rotated (the first rotation after creation is free).
    public func rotationAllowedFrom(_ key: Key) -> Date? {
        key.lastRotateDate?.addingTimeInterval(configuration.rotationInterval)
    }

    /// The instant from which enable and restore are accepted again (``LifecycleConfiguration/enableRestoreCooldown``
    /// after the key's last lifecycle action), or `nil` if the key has had none.
    public func enableOrRestoreAllowedFrom(_ key: Key) -> Date? {
        key.lastLifecycleActionDate?.addingTimeInterval(configuration.enableRestoreCooldown)
    }

    /// The lifecycle actions a front end offers on a key (its Actions menu): every one of them is answered by
    /// ``availability(_:at:by:registrations:)``.
    public static let offeredActions: [KeyAction] = [.rotate, .disable, .enable, .delete, .restore, .purge, .sync]

    /// Which of ``offeredActions`` the key accepts now or later, and from when: an action refused by a time window
    /// alone (rotation once an hour, enable/restore 30 s after the last action, purge 4 h after deletion, the sync
    /// cooldown) is listed with the instant it becomes accepted; an action the key's state, type or policy refuses
    /// is left out. The answer is found by running the rules themselves at the instant in question, so it cannot
    /// disagree with them.
    ///
    /// - Parameters:
    ///   - principal: who would act (dual authorization needs a principal other than the one who set the key for
    ///     deletion).
    ///   - registrations: the key's registrations; delete is judged **with** force, which only a registration with
    ///     `preventKeyDeletion` refuses.
    public func availability(_ key: Key, at now: Date, by principal: String,
                             registrations: RegistrationSummary) -> [ActionAvailability] {
        Self.offeredActions.compactMap { action in
            let from: Date? = switch action {
            case .rotate: rotationAllowedFrom(key)
            case .enable, .restore: enableOrRestoreAllowedFrom(key)
            case .purge: purgeAllowedFrom(key)
            case .sync: earliestSync(key)
            default: nil
            }
            let at = max(now, from ?? now)
            guard accepts(action, key, at: at, by: principal, registrations: registrations) else { return nil }
            return ActionAvailability(action: action, allowedFrom: at > now ? at : nil)
        }
    }

    /// Whether the rule of `action` accepts it on `key` at `instant` (``availability(_:at:by:registrations:)``).
    private func accepts(_ action: KeyAction, _ key: Key, at instant: Date, by principal: String,
                         registrations: RegistrationSummary) -> Bool {
        do {
            switch action {
            case .rotate:
                _ = try rotate(key, at: instant, newVersion: key.currentVersion, payloadSupplied: key.imported, by: principal)
            case .disable: _ = try disable(key, at: instant, by: principal)
            case .enable: _ = try enable(key, at: instant, by: principal)
            case .delete: _ = try delete(key, at: instant, by: principal, force: true, registrations: registrations)
            case .restore: _ = try restore(key, at: instant, by: principal)
            case .purge: try checkPurge(key, at: instant)
            case .sync: _ = try sync(key, at: instant, by: principal)
            default: try checkState(action, key)
            }
            return true
        } catch {
            return false
        }
    }

    // MARK: - Registrations

    /// Registrations are created, replaced and updated only for an active root key.
    public func checkRegistrable(_ key: Key) throws(KeyRelayError) {
        try checkRoot(.register, key)
        try checkState(.register, key)
    }

    /// The key states in which a service may delete a registration (Key Protect: active or suspended).
    public static let registrationRemovalStates: Set<KeyState> = [.active, .suspended]

    /// A service deletes a registration only while its key is active or suspended (422 `KEY_INVALID_STATE_ERR`
    /// otherwise). Reading registrations stays possible in every state: they are the key's history.
    public func checkRegistrationRemovable(_ key: Key) throws(KeyRelayError) {
        guard Self.registrationRemovalStates.contains(key.state) else {
            throw KeyRelayError(.keyInvalidState, "Key is not in a valid state", operation: KeyAction.register.operation,
                                hint: "a registration is deleted only while its key is active or suspended, and this key is \(key.state)")
        }
    }

    // MARK: - Helpers

    private func checkRecentAction(_ key: Key, at now: Date, action: KeyAction) throws(KeyRelayError) {
        if let allowed = enableOrRestoreAllowedFrom(key), now < allowed {
            throw KeyRelayError(.requestTooEarly, "The key was updated recently: Please wait and try again",
                                operation: action.operation, earliestAllowed: allowed,
                                hint: "\(action.rawValue) is allowed \(DurationText.goStyle(configuration.enableRestoreCooldown)) after the key's last action, at \(Timestamp.format(allowed))")
        }
    }

    private func touched(_ key: Key, at now: Date, by principal: String) -> Key {
        var next = key
        next.lastUpdateDate = now
        next.updatedBy = principal
        return next
    }

    private func op(_ action: KeyAction) -> String { action.operation }
}

extension Key {
    /// Records a new event of `kind` on the key (advancing its per-key sequence) and returns it.
    public mutating func recordEvent(_ kind: LifecycleEventKind, id: String, at date: Date, by principal: String,
                                     correlationID: String?) -> LifecycleEvent {
        eventSequence += 1
        return LifecycleEvent(id: id, instanceID: instanceID, keyID: self.id, keySequence: eventSequence, kind: kind,
                              keyState: state, keyVersion: currentVersion, date: date, principal: principal,
                              correlationID: correlationID)
    }
}
