import Crypto
import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// The result of a wrap.
public struct WrapResult: Sendable, Equatable {
    /// The generated DEK, when the caller supplied none.
    public var plaintext: Data?
    /// Opaque base64 ciphertext naming the key version that made it.
    public var ciphertext: String
    public var keyVersion: KeyVersion
}

/// The result of an unwrap.
public struct UnwrapResult: Sendable, Equatable {
    public var plaintext: Data
    /// The version that had wrapped the ciphertext.
    public var keyVersion: KeyVersion
    /// When that version is not the latest: the plaintext rewrapped under the latest version.
    public var rewrappedCiphertext: String?
    public var rewrappedKeyVersion: KeyVersion?
}

/// The result of a rewrap.
public struct RewrapResult: Sendable, Equatable {
    public var ciphertext: String
    /// The version that had wrapped the input.
    public var keyVersion: KeyVersion
    /// The latest version, which wrapped the output.
    public var rewrappedKeyVersion: KeyVersion
}

/// Key Protect's ciphertext format: base64 of `{"ciphertext","iv","version":"4.0.0","handle":"<key version id>"}`.
struct CiphertextEnvelope: Codable {
    var ciphertext: String
    var iv: String
    var version: String
    var handle: String
}

// Wrap, unwrap and rewrap only read the store and use the engine's immutable parts (store, rules, vault, clock),
// so they are `nonisolated`: concurrent callers run their reads and AES-GCM work in parallel instead of queueing on
// the actor, and a call costs no actor hop.
extension KeyRelayEngine {
    static let maxWrapPlaintext = 7168
    static let maxAADEntries = 32

    /// Wraps (encrypts) a DEK with the key's current version; generates a 32-byte DEK if `plaintext` is nil.
    /// Active root keys only.
    public nonisolated func wrap(_ reference: String, plaintext: Data? = nil, aad: [String] = [], context: RequestContext) async throws -> WrapResult {
        try context.check()
        try Self.validateAAD(aad)
        if let plaintext, !(1...Self.maxWrapPlaintext).contains(plaintext.count) {
            throw KeyRelayError(.invalidField, "The field 'plaintext' must be: a base64 encoded key material",
                                operation: "Wrap with key could not be performed", target: ErrorTarget(.field, "plaintext"),
                                hint: "the key material must be 1 to \(Self.maxWrapPlaintext) bytes")
        }
        let (key, material) = try await materialForUse(reference, action: .wrap, versionID: nil, context: context)
        let dek = plaintext ?? SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let ciphertext = try Self.seal(dek, with: material, versionID: key.currentVersion.id, aad: aad)
        return WrapResult(plaintext: plaintext == nil ? dek : nil, ciphertext: ciphertext, keyVersion: key.currentVersion)
    }

    /// Unwraps a ciphertext made by any version of the key. When that version is not the latest, the result also
    /// carries the plaintext rewrapped under the latest version. Active or deactivated root keys.
    public nonisolated func unwrap(_ reference: String, ciphertext: String, aad: [String] = [], context: RequestContext) async throws -> UnwrapResult {
        try context.check()
        try Self.validateAAD(aad)
        let envelope = try Self.decodeEnvelope(ciphertext, operation: "Unwrap with key could not be performed")
        let (key, material) = try await materialForUse(reference, action: .unwrap, versionID: envelope.handle, context: context)
        let plaintext = try Self.open(envelope, with: material, aad: aad)
        let version = try await versionRecord(key: key, versionID: envelope.handle)
        guard envelope.handle != key.currentVersion.id else {
            return UnwrapResult(plaintext: plaintext, keyVersion: version)
        }
        let (_, latest) = try await materialForUse(key.id, action: .unwrap, versionID: key.currentVersion.id, context: context)
        let rewrapped = try Self.seal(plaintext, with: latest, versionID: key.currentVersion.id, aad: aad)
        return UnwrapResult(plaintext: plaintext, keyVersion: version, rewrappedCiphertext: rewrapped,
                            rewrappedKeyVersion: key.currentVersion)
    }

    /// Rewraps a ciphertext under the key's latest version. Active or deactivated root keys.
    public nonisolated func rewrap(_ reference: String, ciphertext: String, aad: [String] = [], context: RequestContext) async throws -> RewrapResult {
        try context.check()
        try Self.validateAAD(aad)
        let envelope = try Self.decodeEnvelope(ciphertext, operation: "Rewrap with key could not be performed")
        let (key, material) = try await materialForUse(reference, action: .rewrap, versionID: envelope.handle, context: context)
        let plaintext = try Self.open(envelope, with: material, aad: aad)
        let version = try await versionRecord(key: key, versionID: envelope.handle)
        let (_, latest) = try await materialForUse(key.id, action: .rewrap, versionID: key.currentVersion.id, context: context)
        let rewrapped = try Self.seal(plaintext, with: latest, versionID: key.currentVersion.id, aad: aad)
        return RewrapResult(ciphertext: rewrapped, keyVersion: version, rewrappedKeyVersion: key.currentVersion)
    }

    /// The payload of a standard key (root keys never reveal theirs).
    public func payload(_ reference: String, context: RequestContext) async throws -> Data? {
        try context.check()
        let key = try await key(reference, context: context)
        guard key.extractable else { return nil }
        let vault = vault
        let sealed = try await storage.read { tx in try tx.sealedMaterial(keyID: key.id, versionID: key.currentVersion.id) }
        guard let sealed else { return nil }
        return try vault.open(sealed, keyID: key.id, versionID: key.currentVersion.id).withUnsafeBytes { Data($0) }
    }

    // MARK: - Helpers

    /// Loads the key (state and root checks for `action`) and the opened material of `versionID` (default: current).
    private nonisolated func materialForUse(_ reference: String, action: KeyAction, versionID: String?, context: RequestContext) async throws -> (Key, SymmetricKey) {
        let now = now()
        let rules = rules
        let (key, sealed) = try await storage.read { tx -> (Key, Data?) in
            let stored = try Self.resolve(reference, in: tx, context: context, operation: action.operation)
            return (stored, try tx.sealedMaterial(keyID: stored.id, versionID: versionID ?? stored.currentVersion.id))
        }
        let current = effective(key, at: now)
        try rules.checkRoot(action, current)
        try rules.checkState(action, current)
        guard let sealed else {
            throw KeyRelayError(.unprocessableCiphertext, "The provided ciphertext is invalid or corrupted",
                                operation: action.operation, hint: "it was not made by a version of this key")
        }
        return (current, try vault.open(sealed, keyID: key.id, versionID: versionID ?? key.currentVersion.id))
    }

    private nonisolated func versionRecord(key: Key, versionID: String) async throws -> KeyVersion {
        if versionID == key.currentVersion.id { return key.currentVersion }
        let versions = try await storage.read { tx in try tx.versions(keyID: key.id, limit: Int.max, offset: 0) }
        return versions.first { $0.id == versionID } ?? KeyVersion(id: versionID, creationDate: key.creationDate)
    }

    static func validateAAD(_ aad: [String]) throws(KeyRelayError) {
        guard aad.count <= maxAADEntries, aad.allSatisfy({ $0.count <= 255 }) else {
            throw KeyRelayError(.invalidField, "The field 'aad' must be: at most \(maxAADEntries) strings of at most 255 characters",
                                operation: "Action could not be performed on key", target: ErrorTarget(.field, "aad"))
        }
    }

    /// Additional authenticated data: each entry length-prefixed, so ["ab","c"] and ["a","bc"] differ.
    static func aadData(_ aad: [String], versionID: String) -> Data {
        var data = Data("keyrelay:wrap:v1:\(versionID)".utf8)
        for entry in aad {
            let bytes = Data(entry.utf8)
            var length = UInt32(bytes.count).bigEndian
            data.append(Data(bytes: &length, count: 4))
            data.append(bytes)
        }
        return data
    }

    static func seal(_ plaintext: Data, with material: SymmetricKey, versionID: String, aad: [String]) throws -> String {
        let box = try AES.GCM.seal(plaintext, using: material, authenticating: aadData(aad, versionID: versionID))
        let envelope = CiphertextEnvelope(ciphertext: (box.ciphertext + box.tag).base64EncodedString(),
                                          iv: Data(box.nonce).base64EncodedString(), version: "4.0.0", handle: versionID)
        return try envelopeEncoder.encode(envelope).base64EncodedString()
    }

    /// One encoder and one decoder for every ciphertext envelope (configured once; both are safe to share), instead
    /// of a new one on every wrap and unwrap.
    static let envelopeEncoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()
    static let envelopeDecoder = JSONDecoder()

    static func decodeEnvelope(_ ciphertext: String, operation: String) throws(KeyRelayError) -> CiphertextEnvelope {
        guard let json = Data(base64Encoded: ciphertext) else {
            throw KeyRelayError(.invalidField, "The field 'ciphertext' must be: the original base64 encoded ciphertext from the wrap operation",
                                operation: operation, target: ErrorTarget(.field, "ciphertext"))
        }
        guard let envelope = try? envelopeDecoder.decode(CiphertextEnvelope.self, from: json) else {
            throw KeyRelayError(.unprocessableCiphertext, "The provided ciphertext is invalid or corrupted", operation: operation)
        }
        return envelope
    }

    static func open(_ envelope: CiphertextEnvelope, with material: SymmetricKey, aad: [String]) throws(KeyRelayError) -> Data {
        do {
            guard let sealed = Data(base64Encoded: envelope.ciphertext), sealed.count >= 16,
                  let iv = Data(base64Encoded: envelope.iv) else { throw CryptoKitError.incorrectParameterSize }
            let box = try AES.GCM.SealedBox(nonce: try AES.GCM.Nonce(data: iv), ciphertext: sealed.dropLast(16),
                                            tag: sealed.suffix(16))
            return try AES.GCM.open(box, using: material, authenticating: aadData(aad, versionID: envelope.handle))
        } catch {
            throw KeyRelayError(.unprocessableCiphertext, "The provided ciphertext is invalid or corrupted",
                                operation: "Unwrap with key could not be performed",
                                hint: "it does not open with this key (wrong key, wrong aad, or altered ciphertext)")
        }
    }
}
