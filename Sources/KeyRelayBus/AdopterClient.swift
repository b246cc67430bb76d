import Foundation
import KeyRelayCore

/// A freshly generated data encryption key (DEK) and its wrapped form.
public struct GeneratedDEK: Sendable {
    /// The DEK in clear. Keep it in memory only; never log it.
    public var plaintext: Data
    /// The DEK wrapped by the root key (opaque; names the key version that wrapped it).
    public var ciphertext: String
    /// The key version that wrapped it.
    public var keyVersion: KeyVersion

    public init(plaintext: Data, ciphertext: String, keyVersion: KeyVersion) {
        self.plaintext = plaintext
        self.ciphertext = ciphertext
        self.keyVersion = keyVersion
    }
}

/// An unwrapped DEK.
public struct UnwrappedDEK: Sendable {
    /// The DEK in clear. Keep it in memory only; never log it.
    public var plaintext: Data
    /// The key version that had wrapped the ciphertext.
    public var keyVersion: KeyVersion
    /// When that version is not the key's latest: the DEK rewrapped under the latest version.
    public var rewrappedCiphertext: String?
    public var rewrappedKeyVersion: KeyVersion?

    public init(plaintext: Data, keyVersion: KeyVersion, rewrappedCiphertext: String? = nil, rewrappedKeyVersion: KeyVersion? = nil) {
        self.plaintext = plaintext
        self.keyVersion = keyVersion
        self.rewrappedCiphertext = rewrappedCiphertext
        self.rewrappedKeyVersion = rewrappedKeyVersion
    }
}

/// A DEK rewrapped under the key's latest version.
public struct RewrappedDEK: Sendable, Equatable {
    public var ciphertext: String
    /// The latest version, which wrapped `ciphertext`.
    public var keyVersion: KeyVersion

    public init(ciphertext: String, keyVersion: KeyVersion) {
        self.ciphertext = ciphertext
        self.keyVersion = keyVersion
    }
}

/// The calls a real adopter (an associated service) makes to Key Protect: service-to-service registration, wrap,
/// unwrap, rewrap, `event_ack`, unregistration. The simulated services depend on this protocol only, never on the
/// store or the engine; the engine provides one (`KeyRelayEngine.adopterClient(instanceID:principal:)`), and an
/// HTTP client of the Key Protect API could provide another.
///
/// Errors are `KeyRelayError`s with Key Protect's reason codes.
public protocol AdopterClient: Sendable {
    /// Registers `resourceCRN` with the root key `keyID` (S2S create registration). With `preventKeyDeletion`
    /// (a retention policy) the key cannot be deleted, even with force.
    func registerResource(keyID: String, resourceCRN: String, preventKeyDeletion: Bool, description: String?) async throws
    /// Generates a fresh 256-bit DEK and wraps it with the key's current version.
    func generateDEK(keyID: String, aad: [String]) async throws -> GeneratedDEK
    /// Unwraps a wrapped DEK.
    func unwrapDEK(keyID: String, ciphertext: String, aad: [String]) async throws -> UnwrappedDEK
    /// Rewraps a wrapped DEK under the key's latest version.
    func rewrapDEK(keyID: String, ciphertext: String, aad: [String]) async throws -> RewrappedDEK
    /// Acknowledges a lifecycle event.
    func acknowledge(_ acknowledgement: EventAcknowledgement) async throws
    /// Removes the registration of `resourceCRN` with `keyID`.
    func unregisterResource(keyID: String, resourceCRN: String) async throws
}
