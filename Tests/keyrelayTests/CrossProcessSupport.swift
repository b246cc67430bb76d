import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Support for tests that run the built `keyrelay` as separate processes (`serve`, `simulate cos`) and talk HTTP
/// to them. Every wait is bounded; every process started is stopped by its test.
struct CrossProcessFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The built `keyrelay` binary: in the products directory that holds the test bundle.
func builtKeyrelay() throws -> URL {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<5 {
        let candidate = directory.appendingPathComponent("keyrelay")
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return candidate
        }
        directory = directory.deletingLastPathComponent()
    }
    throw CrossProcessFailure("keyrelay binary not found near \(CommandLine.arguments[0])")
}

/// A TCP port nobody listens on right now (bound to 127.0.0.1:0, read, closed).
func freeLocalPort() throws -> Int {
    #if os(Linux)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw CrossProcessFailure("socket() failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw CrossProcessFailure("bind() failed") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw CrossProcessFailure("getsockname() failed") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls `probe` every 50 ms until it returns a value or `timeout` passes.
func eventually<T>(_ what: String, timeout: Duration = .seconds(30), _ probe: () async throws -> T?) async throws -> T {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if let value = try await probe() { return value }
        guard clock.now < deadline else { throw CrossProcessFailure("timed out after \(timeout) waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(50))
    }
}

/// Text collected from a child's pipe (written by the pipe's handler, read by the test).
final class CollectedOutput: Sendable {
    private let text = Mutex("")
    private let ended = Mutex(false)
    func append(_ data: Data) { text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
    var value: String { text.withLock { $0 } }
    /// The pipe reached its end: everything the child wrote is in ``value``.
    func markEnded() { ended.withLock { $0 = true } }
    var isEnded: Bool { ended.withLock { $0 } }
}

/// A `keyrelay` child process whose standard output and error are collected.
final class KeyrelayChild {
    let name: String
    private let process: Process
    private let output = CollectedOutput()

    init(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        self.name = name
        process = Process()
        process.executableURL = try builtKeyrelay()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for variable in ["KEYRELAY_MASTER_KEY", "KEYRELAY_WEBHOOKS", "KEYRELAY_WEBHOOK_SECRET", "KEYRELAY_TOKEN"] {
            env.removeValue(forKey: variable)
        }
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = output
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                output.markEnded()
            } else {
                output.append(data)
            }
        }
        try process.run()
    }

    /// Everything printed so far.
    var printed: String { output.value }

    /// The `http://HOST:PORT` printed after `marker` once the process listens.
    func waitForURL(after marker: String, timeout: Duration = .seconds(60)) async throws -> String {
        try await eventually("\(name) to print '\(marker)'\n\(printed)", timeout: timeout) {
            guard process.isRunning else {
                throw CrossProcessFailure("\(name) exited with status \(process.terminationStatus):\n\(printed)")
            }
            let text = printed
            guard let range = text.range(of: marker + "http://") else { return nil }
            let rest = text[range.upperBound...]
            let end = rest.firstIndex(where: { $0 == " " || $0 == "\n" }) ?? rest.endIndex
            return "http://" + rest[..<end]
        }
    }

    /// Sends `signal` (SIGHUP, SIGTERM, …) to the process.
    func send(signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits (bounded) for the process to exit; its exit status, or nil if it still runs after `timeout`.
    func waitForExit(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { return nil }
        // The exit can be seen before the pipe's last bytes are read: wait (bounded) for its end as well.
        let drained = ContinuousClock.now + .seconds(5)
        while !output.isEnded, ContinuousClock.now < drained { try await Task.sleep(for: .milliseconds(10)) }
        return process.terminationStatus
    }

    /// Sends SIGTERM, waits (bounded) for the exit, then SIGKILL if it is still running.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// One HTTP answer.
struct Answer {
    var status: Int
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any]) ?? [:] }
}

/// Sends one request with the shared client; 30 s at most.
func send(_ method: String, _ url: String, headers: [String: String] = [:], json: Any? = nil, body: Data? = nil) async throws -> Answer {
    var request = HTTPClientRequest(url: url)
    request.method = .init(rawValue: method)
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let json {
        request.headers.replaceOrAdd(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json)))
    } else if let body {
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let buffer = try await response.body.collect(upTo: 4 * 1024 * 1024)
    var answerHeaders: [String: String] = [:]
    for (name, value) in response.headers { answerHeaders[name.lowercased()] = value }
    return Answer(status: Int(response.status.code), headers: answerHeaders, body: Data(buffer.readableBytesView))
}

/// Serves `router` with Hummingbird on 127.0.0.1 and a free port (a test's webhook receiver); returns the port once
/// it listens (bounded: 60 s, a full suite on 2 cores can be slow to start it) and the task to cancel to stop it.
func startLocalReceiver(_ router: Router<BasicRequestContext>) async throws -> (port: Int, task: Task<Void, any Error>) {
    let port = Mutex<Int?>(nil)
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                          onServerRunning: { channel in port.withLock { $0 = channel.localAddress?.port } })
    let task = Task { try await app.run() }
    do {
        return (try await eventually("the receiver to listen", timeout: .seconds(60)) { port.withLock { $0 } }, task)
    } catch {
        task.cancel()
        throw error
    }
}

/// A fresh Standard Webhooks secret in its written form.
func makeWebhookSecret() -> String {
    var generator = SystemRandomNumberGenerator()
    let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    return "whsec_" + Data(bytes).base64EncodedString()
}

/// `serve --dev --manual-clock` with COS webhooks to a simulated COS at a free port, and `simulate cos` there;
/// both stopped by ``stop()``.
struct CrossProcessStack {
    static let token = "cross-process-dev-token"
    static let instance = "cross-process-instance"

    let directory: URL
    let serve: KeyrelayChild
    let cos: KeyrelayChild?
    let kms: String
    let cosURL: String

    /// - Parameters:
    ///   - cosSecret: the secret `simulate cos` verifies with (default: the one serve signs with).
    ///   - startCOS: whether to start `simulate cos` (a receiver that is down: false).
    ///   - serveArguments: more `serve` flags.
    static func start(cosSecret: String? = nil, startCOS: Bool = true, serveArguments: [String] = []) async throws -> CrossProcessStack {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-xproc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let secret = makeWebhookSecret()
        let secretFile = directory.appendingPathComponent("webhook-secret")
        try (secret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        let cosSecretFile = directory.appendingPathComponent("cos-webhook-secret")
        try ((cosSecret ?? secret) + "\n").write(to: cosSecretFile, atomically: true, encoding: .utf8)
        let cosPort = try freeLocalPort()
        let cosURL = "http://127.0.0.1:\(cosPort)"
        let serve = try KeyrelayChild("serve", [
            "serve", "--dev", "--manual-clock", "--dev-token", token, "--db", directory.appendingPathComponent("keyrelay.sqlite").path,
            "--port", "0", "--webhook", "cloud-object-storage=\(cosURL)/webhooks", "--webhook-secret-file", secretFile.path,
        ] + serveArguments)
        let kms: String
        do {
            kms = try await serve.waitForURL(after: "KeyRelay listening on ")
        } catch {
            serve.stop()
            throw error
        }
        var cos: KeyrelayChild?
        if startCOS {
            do {
                let child = try KeyrelayChild("simulate cos", [
                    "simulate", "cos", "--listen", "127.0.0.1:\(cosPort)", "--kms", kms, "--token", token, "--instance", instance,
                    "--webhook-secret-file", cosSecretFile.path,
                ])
                cos = child
                _ = try await child.waitForURL(after: "listening on ")
            } catch {
                cos?.stop()
                serve.stop()
                throw error
            }
        }
        return CrossProcessStack(directory: directory, serve: serve, cos: cos, kms: kms, cosURL: cosURL)
    }

    func stop() {
        cos?.stop()
        serve.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    var apiHeaders: [String: String] { ["authorization": "Bearer \(Self.token)", "bluemix-instance": Self.instance] }

    /// Calls the Key Protect API of `serve`.
    func api(_ method: String, _ path: String, json: Any? = nil) async throws -> Answer {
        try await send(method, kms + path, headers: apiHeaders, json: json)
    }

    /// Creates a root key; returns its id.
    func createRootKey(_ name: String) async throws -> String {
        let answer = try await api("POST", "/api/v2/keys", json: [
            "metadata": ["collectionType": "application/vnd.ibm.kms.key+json", "collectionTotal": 1],
            "resources": [["type": "application/vnd.ibm.kms.key+json", "name": name, "extractable": false]],
        ])
        guard answer.status == 201, let id = (answer.json["resources"] as? [[String: Any]])?.first?["id"] as? String else {
            throw CrossProcessFailure("key creation answered \(answer.status): \(answer.text)")
        }
        return id
    }

    /// The key's associations page (registrations with drift, delivery counts).
    func associations(_ keyID: String) async throws -> [String: Any] {
        let answer = try await api("GET", "/api/v2/_keyrelay/keys/\(keyID)/associations")
        guard answer.status == 200 else { throw CrossProcessFailure("associations answered \(answer.status): \(answer.text)") }
        return answer.json
    }

    /// Whether the first registration of the key drifts.
    func drifted(_ keyID: String) async throws -> Bool {
        let page = try await associations(keyID)
        return ((page["resources"] as? [[String: Any]])?.first?["drifted"] as? NSNumber)?.boolValue ?? false
    }

    /// The key's delivery counts (`pending`, `sent`, `acknowledged`, `dead`).
    func deliveries(_ keyID: String) async throws -> [String: Int] {
        let page = try await associations(keyID)
        return (page["deliveries"] as? [String: Any])?.compactMapValues { ($0 as? NSNumber)?.intValue } ?? [:]
    }

    /// Moves the dev clock.
    func advance(_ duration: String) async throws {
        let answer = try await api("POST", "/api/v2/_dev/clock", json: ["advance": duration])
        guard answer.status == 200 else { throw CrossProcessFailure("dev clock answered \(answer.status): \(answer.text)") }
    }
}

extension CrossProcessStack {
    /// Registers `crn` with the key directly through the service-to-service API (no simulated service holds it).
    func register(_ crn: String, with keyID: String) async throws {
        let encoded = crn.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? crn
        let answer = try await api("POST", "/api/v2/keys/\(keyID)/registrations/\(encoded)", json: [
            "metadata": ["collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1],
            "resources": [["preventKeyDeletion": false]],
        ])
        guard answer.status == 201 else { throw CrossProcessFailure("registration answered \(answer.status): \(answer.text)") }
    }

    /// The deliveries of the key's newest event (`status`, `attempts`, `lastError`, …).
    func newestEventDeliveries(_ keyID: String) async throws -> [[String: Any]] {
        let answer = try await api("GET", "/api/v2/_keyrelay/keys/\(keyID)/events")
        guard answer.status == 200 else { throw CrossProcessFailure("events answered \(answer.status): \(answer.text)") }
        return ((answer.json["resources"] as? [[String: Any]])?.first?["deliveries"] as? [[String: Any]]) ?? []
    }
}
