import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// Key-ring scoping (Key Protect's `X-Kms-Key-Ring`), enforced by the engine inside each command's transaction
/// from ``RequestContext/keyRingID`` — so the check and the command see the same key, and a front end only passes
/// the scope along.
extension KeyRelayEngine {
    /// Resolves an id or alias to a key of the caller's instance and checks that it lies in the caller's key ring,
    /// when the context names one.
    static func resolve(_ reference: String, in tx: any StorageReader, context: RequestContext,
                        operation: String = "Key could not be retrieved") throws -> Key {
        let key = try resolve(reference, in: tx, instanceID: context.instanceID, operation: operation)
        try checkScope(key, context: context, operation: operation)
        return key
    }

    /// `KEY_RING_MISMATCH_ERR` when the context is scoped to a ring other than the key's.
    static func checkScope(_ key: Key, context: RequestContext, operation: String) throws(KeyRelayError) {
        guard let ring = context.keyRingID, ring != key.keyRingID else { return }
        throw KeyRelayError(.keyRingMismatch, "The request is scoped to key ring '\(ring)', but the key is in ring '\(key.keyRingID)'",
                            operation: operation)
    }

    /// The ring a new key goes to: the context's scope, or the spec's. Both given and different is a mismatch.
    static func ringForNewKey(_ spec: KeySpec, context: RequestContext) throws(KeyRelayError) -> String {
        guard let scope = context.keyRingID else { return spec.keyRingID }
        guard spec.keyRingID == KeyRing.defaultID || spec.keyRingID == scope else {
            throw KeyRelayError(.keyRingMismatch, "The request is scoped to key ring '\(scope)', but the key spec names ring '\(spec.keyRingID)'",
                                operation: "Key could not be created")
        }
        return scope
    }
}
