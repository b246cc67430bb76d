import Foundation
import HummingbirdTLS
import KeyRelay
import NIOSSL

/// The server's TLS settings, loaded from PEM files (`--tls-cert`, `--tls-key`) by swift-nio-ssl and checked before
/// anything is printed or written: an unreadable file, a file that is not PEM, or a key that does not match the
/// certificate is one line naming the flag.
public struct ServerTLS: Sendable {
    /// The configuration Hummingbird's TLS server builder takes.
    public let configuration: TLSConfiguration

    /// Loads a certificate chain (leaf first) and its private key, both PEM.
    public init(certificateFile: String, keyFile: String) throws {
        let op = "Server could not be started"
        func bad(_ flag: String, _ path: String, _ why: String) -> KeyRelayError {
            KeyRelayError(.badBody, "\(flag) \(path): \(why)", operation: op)
        }
        for (flag, path) in [("--tls-cert", certificateFile), ("--tls-key", keyFile)] where !FileManager.default.isReadableFile(atPath: path) {
            throw bad(flag, path, FileManager.default.fileExists(atPath: path) ? "the file cannot be read" : "no such file")
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificateFile) } catch {
            throw bad("--tls-cert", certificateFile, "not a PEM certificate (-----BEGIN CERTIFICATE-----)")
        }
        guard !chain.isEmpty else { throw bad("--tls-cert", certificateFile, "no certificate in the file") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
            throw bad("--tls-key", keyFile, "not a PEM private key (-----BEGIN PRIVATE KEY-----), or it is encrypted")
        }
        let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                     privateKey: .privateKey(key))
        // The context checks that the key belongs to the certificate: fail now, not at the first handshake.
        do { _ = try NIOSSLContext(configuration: configuration) } catch {
            throw bad("--tls-key", keyFile, "the key does not match the certificate in \(certificateFile), or TLS could not use them (\(error))")
        }
        self.configuration = configuration
    }
}
