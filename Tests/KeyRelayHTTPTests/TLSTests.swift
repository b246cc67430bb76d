import AsyncHTTPClient
import Crypto
import Foundation
import KeyRelay
import KeyRelayHTTP
import NIOCore
import NIOSSL
import Synchronization
import Testing
import X509

/// `serve --tls-cert --tls-key` (issue #14 item 4): the real server (`KeyRelayServer.run`) on port 0 with a
/// self-signed certificate made here, called by a client that trusts exactly that certificate.
@Suite struct TLSTests {
    /// A self-signed certificate for `localhost` and its key, as PEM files in a new temporary directory.
    static func selfSigned() throws -> (directory: URL, certificate: URL, key: URL, pem: String) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("localhost") }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(3600),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName("localhost")])
            },
            issuerPrivateKey: .init(key))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pem = try certificate.serializeAsPEM().pemString
        let certificateFile = directory.appendingPathComponent("cert.pem")
        let keyFile = directory.appendingPathComponent("key.pem")
        try pem.write(to: certificateFile, atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(to: keyFile, atomically: true, encoding: .utf8)
        return (directory, certificateFile, keyFile, pem)
    }

    @Test func theServerAnswersHTTPSWithItsCertificate() async throws {
        let tls = try Self.selfSigned()
        defer { try? FileManager.default.removeItem(at: tls.directory) }
        var options = ServeOptions(databasePath: tls.directory.appendingPathComponent("k.sqlite").path)
        options.port = 0
        options.dev = true
        options.devToken = "tls-test-dev-token-0123456789"
        options.importTokenKeySize = 2048
        options.tlsCertificateFile = tls.certificate.path
        options.tlsKeyFile = tls.key.path
        let printed = Mutex<[String]>([])
        let server = Task { try await KeyRelayServer.run(options, print: { line in printed.withLock { $0.append(line) } }) }
        defer { server.cancel() }

        // Bounded wait for the listening line, which says https.
        var port: Int?
        for _ in 0..<400 where port == nil {
            let lines = printed.withLock { $0 }
            if let line = lines.first(where: { $0.hasPrefix("KeyRelay listening on ") }) {
                #expect(line.hasPrefix("KeyRelay listening on https://"))
                port = line.split(separator: ":").last.flatMap { Int($0) }
            } else {
                try await Task.sleep(for: .milliseconds(25))
            }
        }
        let listening = try #require(port, "the server never printed its listening line: \(printed.withLock { $0 })")

        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(tls.pem.utf8), format: .pem)])
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                                configuration: HTTPClient.Configuration(tlsConfiguration: configuration))
        var answers: [Int] = []
        do {
            let health = try await client.execute(HTTPClientRequest(url: "https://localhost:\(listening)/health"), timeout: .seconds(10))
            answers.append(Int(health.status.code))
            var request = HTTPClientRequest(url: "https://localhost:\(listening)/api/v2/keys")
            request.headers.add(name: "authorization", value: "Bearer \(options.devToken!)")
            request.headers.add(name: "bluemix-instance", value: "tls-instance")
            let keys = try await client.execute(request, timeout: .seconds(10))
            answers.append(Int(keys.status.code))
            _ = try await keys.body.collect(upTo: 1 << 20)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        #expect(answers == [200, 200])

        // A client that does not trust the certificate is refused by its own verification.
        let untrusting = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        await #expect(throws: (any Error).self) {
            // (The client retries a failed handshake until its deadline: keep the deadline short.)
            _ = try await untrusting.execute(HTTPClientRequest(url: "https://localhost:\(listening)/health"), timeout: .seconds(2))
        }
        try await untrusting.shutdown()
        server.cancel()
        _ = await server.result
    }

    @Test func aBadPEMIsOneLineNamingItsFlagBeforeAnythingIsWritten() async throws {
        let tls = try Self.selfSigned()
        defer { try? FileManager.default.removeItem(at: tls.directory) }
        let garbage = tls.directory.appendingPathComponent("garbage.pem")
        try "not a certificate\n".write(to: garbage, atomically: true, encoding: .utf8)
        let database = tls.directory.appendingPathComponent("k.sqlite").path
        var options = ServeOptions(databasePath: database)
        options.dev = true
        options.tlsCertificateFile = garbage.path
        options.tlsKeyFile = tls.key.path
        await #expect { _ = try await KeyRelayServer.prepare(options, environment: [:]) } throws: { error in
            (error as? KeyRelayError)?.message.hasPrefix("--tls-cert \(garbage.path): not a PEM certificate") == true
        }
        options.tlsCertificateFile = tls.certificate.path
        options.tlsKeyFile = garbage.path
        await #expect { _ = try await KeyRelayServer.prepare(options, environment: [:]) } throws: { error in
            (error as? KeyRelayError)?.message.hasPrefix("--tls-key \(garbage.path):") == true
        }
        options.tlsKeyFile = nil
        await #expect { _ = try await KeyRelayServer.prepare(options, environment: [:]) } throws: { error in
            (error as? KeyRelayError)?.message.contains("--tls-cert needs --tls-key") == true
        }
        // Nothing was written: no database, no generated dev key.
        #expect(!FileManager.default.fileExists(atPath: database))
        #expect(!FileManager.default.fileExists(atPath: database + ".master-key"))
    }
}
