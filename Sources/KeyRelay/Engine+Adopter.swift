import Foundation
import KeyRelayBus
import KeyRelayCore

/// The engine as an associated service sees it: the calls a real adopter makes to Key Protect, on behalf of one
/// service principal in one instance.
public struct EngineAdopterClient: AdopterClient {
    public let engine: KeyRelayEngine
    /// The instance the keys live in and the service principal acting.
    public let context: RequestContext

    public init(engine: KeyRelayEngine, context: RequestContext) {
        self.engine = engine
        self.context = context
    }

    public func registerResource(keyID: String, resourceCRN: String, preventKeyDeletion: Bool, description: String?) async throws {
        try await engine.register(keyID: keyID, resourceCRN: resourceCRN,
                                  input: RegistrationInput(description: description, preventKeyDeletion: preventKeyDeletion),
                                  context: context)
    }

    public func generateDEK(keyID: String, aad: [String]) async throws -> GeneratedDEK {
        let result = try await engine.wrap(keyID, plaintext: nil, aad: aad, context: context)
        guard let plaintext = result.plaintext else {
            throw KeyRelayError(.internalError, "Wrap did not return the generated data key", operation: "Wrap with key could not be performed")
        }
        return GeneratedDEK(plaintext: plaintext, ciphertext: result.ciphertext, keyVersion: result.keyVersion)
    }

    public func unwrapDEK(keyID: String, ciphertext: String, aad: [String]) async throws -> UnwrappedDEK {
        let result = try await engine.unwrap(keyID, ciphertext: ciphertext, aad: aad, context: context)
        return UnwrappedDEK(plaintext: result.plaintext, keyVersion: result.keyVersion,
                            rewrappedCiphertext: result.rewrappedCiphertext, rewrappedKeyVersion: result.rewrappedKeyVersion)
    }

    public func rewrapDEK(keyID: String, ciphertext: String, aad: [String]) async throws -> RewrappedDEK {
        let result = try await engine.rewrap(keyID, ciphertext: ciphertext, aad: aad, context: context)
        return RewrappedDEK(ciphertext: result.ciphertext, keyVersion: result.rewrappedKeyVersion)
    }

    public func acknowledge(_ ack: EventAcknowledgement) async throws {
        try await engine.acknowledge(ack, context: context)
    }

    public func unregisterResource(keyID: String, resourceCRN: String) async throws {
        try await engine.unregister(keyID: keyID, resourceCRN: resourceCRN, context: context)
    }
}

extension KeyRelayEngine {
    /// An ``AdopterClient`` acting as `principal` (a service id) in `instanceID`.
    public nonisolated func adopterClient(instanceID: String, principal: String = "iam-ServiceId-simulated-service") -> EngineAdopterClient {
        EngineAdopterClient(engine: self, context: RequestContext(instanceID: instanceID, principal: principal))
    }
}
