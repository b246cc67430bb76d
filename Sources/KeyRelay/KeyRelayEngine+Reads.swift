import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// A key as Key Protect's `GET /keys/{id}` shows it: with its payload when it is a standard key that is not
/// destroyed (root keys never reveal theirs).
public struct KeyWithPayload: Sendable, Equatable {
    /// The key as it reads now (an expired active key reads as deactivated).
    public var key: Key
    /// The current version's material of a standard key that is not destroyed; `nil` otherwise.
    public var payload: Data?
}

extension KeyRelayEngine {
    /// A key by id or alias and, for a standard key that is not destroyed, its current payload — in one read, off
    /// the actor (it only reads).
    public nonisolated func keyWithPayload(_ reference: String, context: RequestContext) async throws -> KeyWithPayload {
        try context.check()
        let (stored, sealed) = try await storage.read { tx -> (Key, Data?) in
            let key = try Self.resolve(reference, in: tx, context: context)
            guard key.extractable, key.state != .destroyed else { return (key, nil) }
            return (key, try tx.sealedMaterial(keyID: key.id, versionID: key.currentVersion.id))
        }
        let key = effective(stored, at: now())
        let payload = try sealed.map { sealed in
            try vault.open(sealed, keyID: stored.id, versionID: stored.currentVersion.id).withUnsafeBytes { Data($0) }
        }
        return KeyWithPayload(key: key, payload: payload)
    }
}
