import Crypto
import Foundation
import KeyRelayCore

/// The key that seals every key version's material at rest (AES-256-GCM). It comes from configuration (an
/// environment variable or a key file), is never stored beside the data in clear and never logged.
public struct MasterKey: Sendable {
    let key: SymmetricKey

    /// A master key from 32 raw bytes.
    public init(rawBytes: Data) throws(KeyRelayError) {
        guard rawBytes.count == 32 else {
            throw KeyRelayError(.badBody, "The master key must be 32 bytes (256 bits); got \(rawBytes.count)",
                                operation: "Master key could not be loaded")
        }
        key = SymmetricKey(data: rawBytes)
    }

    /// A master key from base64 text (44 characters for 32 bytes); surrounding whitespace is ignored.
    public init(base64: String) throws(KeyRelayError) {
        guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw KeyRelayError(.badBody, "The master key must be base64-encoded 32 bytes (e.g. the output of `openssl rand -base64 32`)",
                                operation: "Master key could not be loaded")
        }
        try self.init(rawBytes: data)
    }

    /// A fresh random master key.
    public static func generate() -> MasterKey {
        MasterKey(symmetric: SymmetricKey(size: .bits256))
    }

    init(symmetric: SymmetricKey) { key = symmetric }

    /// The key as base64, for writing a key file. Handle with care.
    public func base64EncodedString() -> String {
        key.withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// The largest master key file read: 4 KiB (a key file is 44 characters and a newline). A bigger file, or a
    /// device such as /dev/zero, is refused after reading one byte past the bound.
    public static let maximumFileBytes = 4096

    /// Loads the master key from `KEYRELAY_MASTER_KEY` (base64) or from a file holding base64 text.
    /// - Returns: `nil` when neither is given.
    /// - Throws: ``KeyRelayError`` naming the file (never its content) when it cannot be read, is larger than
    ///   ``maximumFileBytes``, is not UTF-8 text or does not hold the base64 of 32 bytes.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment,
                            file: String? = nil) throws -> MasterKey? {
        if let file {
            let op = "Master key could not be loaded"
            guard let handle = FileHandle(forReadingAtPath: file) else {
                throw KeyRelayError(.badBody, "The master key file '\(file)' could not be opened (missing or not readable)", operation: op)
            }
            defer { try? handle.close() }
            let data: Data
            do { data = try handle.read(upToCount: maximumFileBytes + 1) ?? Data() } catch {
                throw KeyRelayError(.badBody, "The master key file '\(file)' could not be read: \(error.localizedDescription)", operation: op)
            }
            guard data.count <= maximumFileBytes else {
                throw KeyRelayError(.badBody, "The master key file '\(file)' is larger than \(maximumFileBytes) bytes; it must hold the base64 of 32 bytes", operation: op)
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw KeyRelayError(.badBody, "The master key file '\(file)' is not UTF-8 text; it must hold the base64 of 32 bytes", operation: op)
            }
            return try MasterKey(base64: text)
        }
        if let value = environment["KEYRELAY_MASTER_KEY"], !value.isEmpty {
            return try MasterKey(base64: value)
        }
        return nil
    }
}

/// Seals and opens key material under the master key, bound to the key and version it belongs to.
struct MaterialVault: Sendable {
    let master: MasterKey

    private static let checkName = "master_key_check"
    private static let checkPlaintext = Data("keyrelay master key check v1".utf8)

    func seal(_ material: Data, keyID: String, versionID: String) throws -> Data {
        let aad = Data("keyrelay:material:v1:\(keyID):\(versionID)".utf8)
        return try AES.GCM.seal(material, using: master.key, authenticating: aad).combined!
    }

    func open(_ sealed: Data, keyID: String, versionID: String) throws(KeyRelayError) -> SymmetricKey {
        let aad = Data("keyrelay:material:v1:\(keyID):\(versionID)".utf8)
        do {
            let box = try AES.GCM.SealedBox(combined: sealed)
            return SymmetricKey(data: try AES.GCM.open(box, using: master.key, authenticating: aad))
        } catch {
            throw KeyRelayError(.incompleteMetadata, "Key metadata became corrupted: Please delete this key",
                                operation: "Key could not be used", hint: "its sealed material does not open under the configured master key")
        }
    }

    /// A value sealed under the master key, stored once per database so a wrong master key is caught on open.
    func checkValue() throws -> Data {
        try AES.GCM.seal(Self.checkPlaintext, using: master.key).combined!
    }

    func verify(checkValue: Data) -> Bool {
        guard let box = try? AES.GCM.SealedBox(combined: checkValue),
              let plain = try? AES.GCM.open(box, using: master.key) else { return false }
        return plain == Self.checkPlaintext
    }

    static var checkMetaName: String { checkName }
}
