import Crypto
import Foundation
import KeyRelay
import _CryptoExtras

/// Key Protect's import tokens: one per instance, an RSA key pair whose public key clients encrypt key material to
/// (RSA-OAEP), plus a nonce they encrypt with that material (AES-GCM) to prove possession. Tokens live in memory:
/// a restarted server has none.
actor ImportTokenStore {
    struct Token {
        var privateKeyPEM: String
        var publicKeyPEM: String
        var nonce: Data
        var expiration: Int
        var maxAllowedRetrievals: Int
        var remainingRetrievals: Int
        var creationDate: Date
        var expirationDate: Date
    }

    private var tokens: [String: Token] = [:]
    private let keySize: Int

    /// - Parameter keySize: RSA modulus size in bits (Key Protect uses 4096).
    init(keySize: Int) { self.keySize = keySize }

    static let createOp = "Import Token could not be created"
    static let getOp = "Import Token could not be retrieved"

    func create(instanceID: String, expiration: Int, maxAllowedRetrievals: Int, now: Date) throws -> Token {
        guard (300...86400).contains(expiration) else {
            throw KeyRelayError(.invalidField, "The field 'expiration' must be: an integer from 300 to 86400 (seconds)",
                                operation: Self.createOp, target: ErrorTarget(.field, "expiration"))
        }
        guard (1...500).contains(maxAllowedRetrievals) else {
            throw KeyRelayError(.invalidField, "The field 'maxAllowedRetrievals' must be: an integer from 1 to 500",
                                operation: Self.createOp, target: ErrorTarget(.field, "maxAllowedRetrievals"))
        }
        let size: _RSA.Signing.KeySize = keySize >= 4096 ? .bits4096 : (keySize >= 3072 ? .bits3072 : .bits2048)
        let key = try _RSA.Encryption.PrivateKey(keySize: size)
        let token = Token(privateKeyPEM: key.pemRepresentation, publicKeyPEM: key.publicKey.pemRepresentation,
                          nonce: Data(SymmetricKey(size: .bits128).withUnsafeBytes { Array($0) }.prefix(12)),
                          expiration: expiration, maxAllowedRetrievals: maxAllowedRetrievals,
                          remainingRetrievals: maxAllowedRetrievals, creationDate: now,
                          expirationDate: now.addingTimeInterval(TimeInterval(expiration)))
        tokens[instanceID] = token
        return token
    }

    /// Retrieves the token (public key and nonce), counting the retrieval.
    func retrieve(instanceID: String, now: Date) throws -> Token {
        var token = try live(instanceID: instanceID, now: now, operation: Self.getOp)
        guard token.remainingRetrievals > 0 else {
            throw KeyRelayError(.importTokenExpired, "The import token has expired: its \(token.maxAllowedRetrievals) allowed retrieval(s) are used up; create a new one",
                                operation: Self.getOp)
        }
        token.remainingRetrievals -= 1
        tokens[instanceID] = token
        return token
    }

    private func live(instanceID: String, now: Date, operation: String) throws -> Token {
        guard let token = tokens[instanceID] else {
            throw KeyRelayError(.importTokenNotFound, "No import token exists for this instance: create one with POST /api/v2/import_token",
                                operation: operation)
        }
        guard now < token.expirationDate else {
            throw KeyRelayError(.importTokenExpired, "The import token has expired: it expired at \(Timestamp.format(token.expirationDate)); create a new one",
                                operation: operation)
        }
        return token
    }

    /// Secure import: decrypts `encryptedPayload` (RSA-OAEP to the token's public key) and checks that
    /// `encryptedNonce` is the token's nonce sealed with AES-GCM under the decrypted material and `iv`.
    func openPayload(instanceID: String, encryptedPayload: Data, encryptedNonce: Data, iv: Data, algorithm: String,
                     now: Date, operation: String) throws -> Data {
        let token = try live(instanceID: instanceID, now: now, operation: operation)
        let padding: _RSA.Encryption.Padding
        switch algorithm {
        case "RSAES_OAEP_SHA_256": padding = .PKCS1_OAEP_SHA256
        case "RSAES_OAEP_SHA_1": padding = .PKCS1_OAEP
        default:
            throw KeyRelayError(.invalidField, "The field 'encryptionAlgorithm' must be: RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1",
                                operation: operation, target: ErrorTarget(.field, "encryptionAlgorithm"))
        }
        let material: Data
        do {
            let key = try _RSA.Encryption.PrivateKey(pemRepresentation: token.privateKeyPEM)
            material = try key.decrypt(encryptedPayload, padding: padding)
        } catch {
            throw KeyRelayError(.invalidField, "The field 'payload' must be: key material encrypted with RSA-OAEP (\(algorithm)) to the public key of this instance's current import token",
                                operation: operation, target: ErrorTarget(.field, "payload"))
        }
        guard iv.count == 12, encryptedNonce.count > 16 else {
            throw KeyRelayError(.incorrectNonceIV, "The provided encrypted nonce was not encrypted with the key material given OR the provided IV does not match the encrypted nonce",
                                operation: operation)
        }
        let opened: Data
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: iv), ciphertext: encryptedNonce.dropLast(16),
                                            tag: encryptedNonce.suffix(16))
            opened = try AES.GCM.open(box, using: SymmetricKey(data: material))
        } catch {
            throw KeyRelayError(.incorrectNonceIV, "The provided encrypted nonce was not encrypted with the key material given OR the provided IV does not match the encrypted nonce",
                                operation: operation)
        }
        guard opened == token.nonce else {
            throw KeyRelayError(.incorrectNonce, "The encrypted nonce given does not match existing record: Please ensure the correct nonce was given in the request",
                                operation: operation)
        }
        return material
    }
}
