import Crypto
import Foundation
import KeyRelayCore
import _CryptoExtras

/// What an import token is, as its creator and retrievers see it (never its private key).
public struct ImportToken: Sendable, Equatable {
    /// Lifetime in seconds (300–86,400).
    public var expiration: Int
    /// How many retrievals the token allows in all.
    public var maxAllowedRetrievals: Int
    /// How many retrievals are left.
    public var remainingRetrievals: Int
    /// When the token was created, on the engine's clock.
    public var creationDate: Date
    /// When it stops being usable (creation + `expiration`).
    public var expirationDate: Date
}

/// A retrieved import token: what a client encrypts key material to.
public struct RetrievedImportToken: Sendable, Equatable {
    /// The token's metadata, this retrieval counted.
    public var token: ImportToken
    /// The token's RSA public key, PEM.
    public var publicKeyPEM: String
    /// The nonce the client seals with the key material (AES-GCM) to prove it holds that material.
    public var nonce: Data
}

/// The RSA-OAEP variant key material is encrypted with (Key Protect's `encryptionAlgorithm`).
public enum ImportEncryptionAlgorithm: String, Sendable, CaseIterable {
    /// RSA-OAEP with SHA-256 (Key Protect's default).
    case rsaOAEPSHA256 = "RSAES_OAEP_SHA_256"
    /// RSA-OAEP with SHA-1, for older clients.
    case rsaOAEPSHA1 = "RSAES_OAEP_SHA_1"
}

/// Key material imported securely: encrypted to the instance's import token, with the token's nonce sealed under
/// the material as proof of possession (Key Protect's `payload`, `encryptedNonce`, `iv`, `encryptionAlgorithm`).
public struct EncryptedKeyMaterial: Sendable, Equatable {
    /// The key material, RSA-OAEP-encrypted to the import token's public key.
    public var payload: Data
    /// The token's nonce sealed with AES-GCM under the key material: ciphertext followed by the 16-byte tag.
    public var encryptedNonce: Data
    /// The 12-byte AES-GCM nonce used to seal `encryptedNonce`.
    public var iv: Data
    public var algorithm: ImportEncryptionAlgorithm

    /// Material as a client prepares it from a ``RetrievedImportToken``.
    public init(payload: Data, encryptedNonce: Data, iv: Data, algorithm: ImportEncryptionAlgorithm = .rsaOAEPSHA256) {
        self.payload = payload
        self.encryptedNonce = encryptedNonce
        self.iv = iv
        self.algorithm = algorithm
    }
}

/// An import token as the engine keeps it.
struct ImportTokenState: Sendable {
    var privateKeyPEM: String
    var publicKeyPEM: String
    var nonce: Data
    var token: ImportToken
}

/// Import tokens and secure import (Key Protect's `POST/GET /api/v2/import_token` and imported keys created or
/// rotated with `encryptedNonce`/`iv`).
///
/// Each instance has at most one token: an RSA key pair whose public key clients encrypt key material to
/// (RSA-OAEP), and a nonce they seal with that material (AES-GCM) to prove they hold it. Creating a token replaces
/// the previous one. Tokens live **in the engine's memory**, not in the store: they are short-lived (at most a day)
/// and a restarted engine has none, so clients create a new one — as they must after expiry anyway.
///
/// ```swift
/// _ = try await engine.createImportToken(expiration: 600, maxAllowedRetrievals: 1, context: ctx)
/// let retrieved = try await engine.retrieveImportToken(context: ctx)
/// // … encrypt material to retrieved.publicKeyPEM, seal retrieved.nonce under it …
/// var spec = KeySpec(name: "imported")
/// spec.encryptedPayload = EncryptedKeyMaterial(payload: …, encryptedNonce: …, iv: …)
/// let key = try await engine.createKey(spec, context: ctx)
/// ```
extension KeyRelayEngine {
    static let importTokenCreateOp = "Import Token could not be created"
    static let importTokenGetOp = "Import Token could not be retrieved"

    /// Creates the instance's import token (replacing any previous one).
    /// - Parameters:
    ///   - expiration: lifetime in seconds, 300–86,400 (Key Protect's default 600).
    ///   - maxAllowedRetrievals: how many times ``retrieveImportToken(context:)`` may return it, 1–500.
    public nonisolated func createImportToken(expiration: Int = 600, maxAllowedRetrievals: Int = 1,
                                              context: RequestContext) async throws -> ImportToken {
        try context.check()
        guard (300...86400).contains(expiration) else {
            throw KeyRelayError(.invalidField, "The field 'expiration' must be: an integer from 300 to 86400 (seconds)",
                                operation: Self.importTokenCreateOp, target: ErrorTarget(.field, "expiration"))
        }
        guard (1...500).contains(maxAllowedRetrievals) else {
            throw KeyRelayError(.invalidField, "The field 'maxAllowedRetrievals' must be: an integer from 1 to 500",
                                operation: Self.importTokenCreateOp, target: ErrorTarget(.field, "maxAllowedRetrievals"))
        }
        // Generating an RSA key takes long (a second or more at 4096 bits): it happens here, off the actor, so other
        // commands are not held up.
        let bits = configuration.importTokenKeySize
        let size: _RSA.Signing.KeySize = bits >= 4096 ? .bits4096 : (bits >= 3072 ? .bits3072 : .bits2048)
        let key = try _RSA.Encryption.PrivateKey(keySize: size)
        let now = now()
        let state = ImportTokenState(
            privateKeyPEM: key.pemRepresentation, publicKeyPEM: key.publicKey.pemRepresentation,
            nonce: SymmetricKey(size: .bits128).withUnsafeBytes { Data($0.prefix(12)) },
            token: ImportToken(expiration: expiration, maxAllowedRetrievals: maxAllowedRetrievals,
                               remainingRetrievals: maxAllowedRetrievals, creationDate: now,
                               expirationDate: now.addingTimeInterval(TimeInterval(expiration))))
        await installImportToken(state, instanceID: context.instanceID)
        return state.token
    }

    private func installImportToken(_ state: ImportTokenState, instanceID: String) {
        importTokens[instanceID] = state
    }

    /// Returns the instance's import token with its public key and nonce, counting the retrieval.
    /// - Throws: `IMPORT_TOKEN_NOT_FOUND_ERR` without a token; `IMPORT_TOKEN_EXPIRED_ERR` once it expired or its
    ///   retrievals are used up.
    public func retrieveImportToken(context: RequestContext) throws -> RetrievedImportToken {
        try context.check()
        var state = try liveImportToken(instanceID: context.instanceID, operation: Self.importTokenGetOp)
        guard state.token.remainingRetrievals > 0 else {
            throw KeyRelayError(.importTokenExpired, "The import token has expired", operation: Self.importTokenGetOp,
                                hint: "its \(state.token.maxAllowedRetrievals) allowed retrieval(s) are used up; create a new one")
        }
        state.token.remainingRetrievals -= 1
        importTokens[context.instanceID] = state
        return RetrievedImportToken(token: state.token, publicKeyPEM: state.publicKeyPEM, nonce: state.nonce)
    }

    private func liveImportToken(instanceID: String, operation: String) throws -> ImportTokenState {
        guard let state = importTokens[instanceID] else {
            throw KeyRelayError(.importTokenNotFound, "No import token exists for this instance: create one first",
                                operation: operation)
        }
        guard now() < state.token.expirationDate else {
            throw KeyRelayError(.importTokenExpired, "The import token has expired", operation: operation,
                                hint: "it expired at \(Timestamp.format(state.token.expirationDate)); create a new one")
        }
        return state
    }

    /// Secure import: decrypts the material with the instance's import token and checks the nonce proof.
    /// - Throws: `INVALID_FIELD_ERR` (payload) when it does not decrypt; `INCORRECT_NONCE_IV_ERR` when the nonce was
    ///   not sealed with this material and IV; `INCORRECT_NONCE_ERR` when it is not the token's nonce.
    func openImportedMaterial(_ encrypted: EncryptedKeyMaterial, instanceID: String, operation: String) throws -> Data {
        let state = try liveImportToken(instanceID: instanceID, operation: operation)
        let padding: _RSA.Encryption.Padding = switch encrypted.algorithm {
        case .rsaOAEPSHA256: .PKCS1_OAEP_SHA256
        case .rsaOAEPSHA1: .PKCS1_OAEP
        }
        let material: Data
        do {
            let key = try _RSA.Encryption.PrivateKey(pemRepresentation: state.privateKeyPEM)
            material = try key.decrypt(encrypted.payload, padding: padding)
        } catch {
            throw KeyRelayError(.invalidField, "The field 'payload' must be: key material encrypted with RSA-OAEP (\(encrypted.algorithm.rawValue)) to the public key of this instance's current import token",
                                operation: operation, target: ErrorTarget(.field, "payload"))
        }
        let refusal = KeyRelayError(.incorrectNonceIV, "The provided encrypted nonce was not encrypted with the key material given OR the provided IV does not match the encrypted nonce",
                                    operation: operation)
        guard encrypted.iv.count == 12, encrypted.encryptedNonce.count > 16 else { throw refusal }
        let opened: Data
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: encrypted.iv), ciphertext: encrypted.encryptedNonce.dropLast(16),
                                            tag: encrypted.encryptedNonce.suffix(16))
            opened = try AES.GCM.open(box, using: SymmetricKey(data: material))
        } catch {
            throw refusal
        }
        guard opened == state.nonce else {
            throw KeyRelayError(.incorrectNonce, "The encrypted nonce given does not match existing record: Please ensure the correct nonce was given in the request",
                                operation: operation)
        }
        return material
    }
}
