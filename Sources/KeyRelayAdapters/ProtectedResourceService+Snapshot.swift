import Crypto
import Foundation
import KeyRelayCore

extension ProtectedResourceService {
    /// A simulated service's resources as data, so that a service whose "memory" must outlive a process (the
    /// `keyrelay` command line, where every command is a new process) can be saved and restored.
    ///
    /// It holds each resource's *cached, unwrapped* data key, as the service's memory does: that cache is what
    /// keeps a bucket readable after its root key was deleted until a notification reaches it. Seal it before
    /// writing it anywhere.
    public struct Snapshot: Sendable, Codable, Equatable {
        public struct Resource: Sendable, Codable, Equatable {
            public var name: String
            public var resourceCRN: String
            public var keyID: String
            public var wrappedDEK: String
            public var keyVersion: KeyVersion
            /// The cached DEK (raw bytes), nil once shredded or dropped.
            public var cachedDEK: Data?
            /// nil when access is allowed, else the denial's reason (``AccessDenial`` raw value).
            public var denial: String?
            public var adopterKeyState: AdopterKeyState
            public var appliedEventIDs: [String]
            public var lastAppliedEventID: String?
            public var newestKeySequence: Int
            /// Item name → AES-GCM combined box under the DEK.
            public var items: [String: Data]
        }

        public var resources: [Resource]

        public init(resources: [Resource] = []) { self.resources = resources }
    }

    /// Every resource, as data (sorted by name).
    public func snapshot() -> Snapshot {
        Snapshot(resources: resources.values.sorted { $0.name < $1.name }.map { r in
            let denial: String? = if case .denied(let reason) = r.access { reason.rawValue } else { nil }
            return Snapshot.Resource(name: r.name, resourceCRN: r.crn, keyID: r.keyID, wrappedDEK: r.wrappedDEK, keyVersion: r.keyVersion,
                                     cachedDEK: r.cachedDEK?.withUnsafeBytes { Data($0) }, denial: denial,
                                     adopterKeyState: r.adopterState, appliedEventIDs: r.appliedEvents.sorted(),
                                     lastAppliedEventID: r.lastApplied, newestKeySequence: r.newestKeySequence, items: r.items)
        })
    }

    /// Replaces every resource with those of `snapshot`. A denial this build does not know reads as
    /// ``AccessDenial/unwrapFailed`` (closed: never as allowed).
    public func restore(_ snapshot: Snapshot) {
        resources = [:]
        crnByName = [:]
        for r in snapshot.resources {
            let access: ResourceAccess = r.denial.map { .denied(AccessDenial(rawValue: $0) ?? .unwrapFailed) } ?? .allowed
            resources[r.resourceCRN] = Resource(name: r.name, crn: r.resourceCRN, keyID: r.keyID, wrappedDEK: r.wrappedDEK,
                                                keyVersion: r.keyVersion, cachedDEK: r.cachedDEK.map { SymmetricKey(data: $0) },
                                                access: access, adopterState: r.adopterKeyState, appliedEvents: Set(r.appliedEventIDs),
                                                lastApplied: r.lastAppliedEventID, newestKeySequence: r.newestKeySequence, items: r.items)
            crnByName[r.name] = r.resourceCRN
        }
    }
}
