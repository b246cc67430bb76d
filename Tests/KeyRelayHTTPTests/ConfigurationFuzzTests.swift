import Foundation
import KeyRelay
import KeyRelayHTTP
import Testing

/// Seeded fuzzing of the two configuration inputs an operator hands the server: the access file
/// (`AccessControl.load(file:)`) and the master key (`MasterKey(base64:)`, `MasterKey.load(environment:file:)`).
/// Every input either loads or is refused with a ``KeyRelayError`` that names the file and is bounded in length; the
/// master key's errors never echo the key text. A trap would kill the test process.
///
/// The corpus is `Tests/fuzz/access-corpus/*.json` (valid files of both shapes, and hostile ones). Bounded by
/// `KEYRELAY_FUZZ_ITERATIONS` (default 3000 per input kind) and `KEYRELAY_FUZZ_SECONDS` (default 10 per input kind).
/// Prints `fuzz access: …` and `fuzz master-key: …` figure lines.
@Suite("configuration input fuzzing")
struct ConfigurationFuzzTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let corpusDirectory = root.appendingPathComponent("Tests/fuzz/access-corpus")

    static func setting(_ name: String, _ value: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap { Int($0) } ?? value
    }

    static func corpus() throws -> [[UInt8]] {
        try FileManager.default.contentsOfDirectory(atPath: corpusDirectory.path).filter { $0.hasSuffix(".json") }.sorted()
            .map { [UInt8](try Data(contentsOf: corpusDirectory.appendingPathComponent($0))) }
    }

    /// The longest error an access file may give. Errors quote the path, a principal or a role name; the fuzzer keeps
    /// those short (see ``longNamesAreEchoed()`` for long ones).
    static let maximumAccessError = 1200

    @Test("mutated access files load or fail with a bounded KeyRelayError naming the file")
    func accessFiles() async throws {
        let corpus = try Self.corpus()
        try #require(corpus.count >= 5)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-access-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("access.json").path

        var rng = SplitMix(seed: UInt64(Self.setting("KEYRELAY_FUZZ_SEED", 20_261_201)))
        let iterations = Self.setting("KEYRELAY_FUZZ_ITERATIONS", 3000)
        let seconds = Double(Self.setting("KEYRELAY_FUZZ_SECONDS", 10))
        let started = Date()
        var inputs = 0, rejected = 0, loaded = 0, problems = 0
        while inputs < iterations, Date().timeIntervalSince(started) < seconds {
            await Task.yield()  // a synchronous loop would hold a cooperative thread other tests need
            let bytes = inputs % 4 == 0 ? Self.generatedAccessFile(&rng)
                                        : Self.mutate(corpus[rng.below(corpus.count)], &rng)
            inputs += 1
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do {
                let access = try AccessControl.load(file: path)
                loaded += 1
                _ = access.grant(forToken: "x")
            } catch let error as KeyRelayError {
                rejected += 1
                let text = error.message
                if !text.contains(path) || text.count > Self.maximumAccessError {
                    problems += 1
                    Issue.record("access input \(inputs): unclear error (\(text.count) characters): \(text.prefix(300))\n\(String(decoding: bytes.prefix(500), as: UTF8.self))")
                }
            } catch {
                problems += 1
                Issue.record("access input \(inputs): not a KeyRelayError: \(error)")
            }
        }
        print("fuzz access: \(inputs) inputs, \(rejected) rejected, 0 crashes, \(String(format: "%.1f", Date().timeIntervalSince(started))) s (\(loaded) loaded, \(problems) problems)")
        #expect(problems == 0)
        // The generator's mix must both load and refuse; judged only on enough inputs (a sanitizer build gets few).
        if inputs >= 200 { #expect(loaded > 0 && rejected > 0) }
    }

    @Test("an access file that is not there, a directory, or deeply nested JSON is refused clearly")
    func hostileAccessPaths() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-access-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for path in ["/nonexistent/access.json", directory.path] {
            #expect(throws: KeyRelayError.self) { try AccessControl.load(file: path) }
        }
        let deep = directory.appendingPathComponent("deep.json").path
        for depth in [1000, 100_000] {
            let text = "{\"tokens\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
            _ = FileManager.default.createFile(atPath: deep, contents: Data(text.utf8))
            #expect(throws: KeyRelayError.self) { try AccessControl.load(file: deep) }
        }
    }

    @Test("a long role or principal name is echoed cut to 40 characters in the access file's error")
    func longNamesAreEchoed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-access-long-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("access.json").path
        let name = String(repeating: "R", count: 100_000)
        _ = FileManager.default.createFile(atPath: path, contents: Data("{\"tokens\":{\"0123456789abcdef0\":{\"principal\":\"p\",\"role\":\"\(name)\",\"instances\":\"*\"}}}".utf8))
        do {
            _ = try AccessControl.load(file: path)
            Issue.record("loaded an unknown role")
        } catch let error as KeyRelayError {
            #expect(error.message.count < Self.maximumAccessError)
            #expect(error.message.contains("100000 bytes"))
        }
    }

    @Test("mutated master keys are accepted only as 32 bytes of base64 and refused without echoing the key")
    func masterKeys() async throws {
        var rng = SplitMix(seed: UInt64(Self.setting("KEYRELAY_FUZZ_SEED", 20_261_201)) &+ 1)
        let iterations = Self.setting("KEYRELAY_FUZZ_ITERATIONS", 3000)
        let seconds = Double(Self.setting("KEYRELAY_FUZZ_SECONDS", 10))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-master-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("master.key").path
        let valid = Array(MasterKey.generate().base64EncodedString().utf8)
        let started = Date()
        var inputs = 0, rejected = 0, accepted = 0, problems = 0
        while inputs < iterations, Date().timeIntervalSince(started) < seconds {
            await Task.yield()
            let bytes = Self.mutate(valid + (rng.below(2) == 0 ? [0x0A] : []), &rng)
            inputs += 1
            // The same bytes three ways: base64 text, the environment variable, a key file.
            let text = String(decoding: bytes, as: UTF8.self)
            _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
            let outcomes: [(String, () throws -> MasterKey?)] = [
                ("base64", { try MasterKey(base64: text) }),
                ("environment", { try MasterKey.load(environment: ["KEYRELAY_MASTER_KEY": text]) }),
                ("file", { try MasterKey.load(environment: [:], file: file) }),
            ]
            for (how, load) in outcomes {
                do {
                    let key = try load()
                    accepted += 1
                    if let key, Data(base64Encoded: key.base64EncodedString())?.count != 32 {
                        problems += 1
                        Issue.record("master key input \(inputs) (\(how)): a key that is not 32 bytes")
                    }
                } catch let error as KeyRelayError {
                    rejected += 1
                    let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                    if trimmed.count >= 8, error.message.contains(trimmed) {
                        problems += 1
                        Issue.record("master key input \(inputs) (\(how)): the error echoes the key text")
                    }
                    if error.message.count > 400 {
                        problems += 1
                        Issue.record("master key input \(inputs) (\(how)): an error of \(error.message.count) characters")
                    }
                } catch {
                    problems += 1
                    Issue.record("master key input \(inputs) (\(how)): not a KeyRelayError: \(error)")
                }
            }
        }
        print("fuzz master-key: \(inputs) inputs (each as base64, environment and file), \(rejected) rejected, 0 crashes, \(String(format: "%.1f", Date().timeIntervalSince(started))) s (\(accepted) accepted, \(problems) problems)")
        #expect(problems == 0)
        if inputs >= 200 { #expect(accepted > 0 && rejected > 0) }
    }

    @Test("a master key file that is missing, a directory, huge, endless or not UTF-8 is a clear KeyRelayError")
    func hostileMasterKeyFiles() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("keyrelay-master-hostile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let huge = directory.appendingPathComponent("huge.key").path
        _ = FileManager.default.createFile(atPath: huge, contents: Data(repeating: 0x41, count: 1 << 20))
        let binary = directory.appendingPathComponent("binary.key").path
        _ = FileManager.default.createFile(atPath: binary, contents: Data([0xFF, 0xFE, 0x00, 0x41]))
        let cases: [(String, String)] = [
            ("/nonexistent/master.key", "could not be opened"), (directory.path, "could not be read"),
            (huge, "larger than"), ("/dev/zero", "larger than"), (binary, "not UTF-8"),
        ]
        for (path, expected) in cases {
            do {
                _ = try MasterKey.load(environment: [:], file: path)
                Issue.record("\(path) loaded")
            } catch let error as KeyRelayError {
                #expect(error.message.contains(path) && error.message.contains(expected), "\(error.message)")
            } catch {
                Issue.record("\(path): not a KeyRelayError: \(error)")
            }
        }
    }

    // MARK: - Generators

    static let strings = ["", "*", "Manager", "Reader", "Writer", "KeyPurge", "Service", "manager", "Admin", "0123456789abcdef",
                          "short", "instance-a", "é", "\u{0}", "\\ud800", "0123456789abcdef0123", "alice", "cos"]

    /// A random access file close to the format: the right members with wrong or random values.
    static func generatedAccessFile(_ rng: inout SplitMix) -> [UInt8] {
        func value(_ depth: Int) -> Any {
            switch rng.below(depth > 2 ? 4 : 7) {
            case 0: return strings[rng.below(strings.count)]
            case 1: return [1, -1, 0, Int.max, Int.min][rng.below(5)]
            case 2: return rng.below(2) == 0
            case 3: return NSNull()
            case 4: return (0..<rng.below(4)).map { _ in value(depth + 1) }
            case 5: return grant(depth + 1)
            default: return Double.greatestFiniteMagnitude
            }
        }
        func grant(_ depth: Int) -> [String: Any] {
            var object: [String: Any] = [:]
            for field in ["principal", "role", "roles", "instances", "token"] where rng.below(3) != 0 {
                object[field] = rng.below(3) == 0 ? value(depth + 1)
                    : field == "roles" ? [strings[2 + rng.below(6)]] : field == "instances" ? (rng.below(2) == 0 ? "*" : ["instance-a"])
                    : field == "token" ? "0123456789abcdef\(rng.below(1000))" : strings[2 + rng.below(12)]
            }
            return object
        }
        let tokens: Any
        if rng.below(2) == 0 {
            var map: [String: Any] = [:]
            for _ in 0..<rng.below(4) { map[strings[rng.below(strings.count)] + "\(rng.below(1_000_000))"] = rng.below(4) == 0 ? value(1) : grant(1) }
            tokens = map
        } else {
            tokens = (0..<rng.below(4)).map { _ in rng.below(4) == 0 ? value(1) : grant(1) }
        }
        let root: Any = rng.below(10) == 0 ? value(0) : ["tokens": rng.below(10) == 0 ? value(1) : tokens]
        guard JSONSerialization.isValidJSONObject(root), let data = try? JSONSerialization.data(withJSONObject: root) else {
            return Array("\(root)".utf8)
        }
        return [UInt8](data)
    }

    static let fragments: [[UInt8]] = [
        Array("\"".utf8), Array("{".utf8), Array("}".utf8), Array("[".utf8), Array("]".utf8), Array(",".utf8), Array(":".utf8),
        Array("null".utf8), Array("\"*\"".utf8), Array("1e999".utf8), Array("-0".utf8), Array("\\u0000".utf8), Array("\\ud800".utf8),
        [0xFF], [0xC0, 0x80], [0x00], [0xEF, 0xBB, 0xBF], Array("=".utf8), Array("+/".utf8), Array("====".utf8),
        Array(" ".utf8), Array("\n".utf8), Array("\r\n".utf8), Array("\t".utf8), Array("A".utf8), Array("-_".utf8),
    ]

    /// Byte-level mutations: flips, insertions of fragments, deletions, duplications, truncation.
    static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = input
        for _ in 0..<(1 + rng.below(6)) {
            let position = rng.below(bytes.count + 1)
            switch rng.below(7) {
            case 0 where !bytes.isEmpty: bytes[rng.below(bytes.count)] ^= UInt8(1 << rng.below(8))
            case 1 where !bytes.isEmpty: bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
            case 2: bytes.insert(contentsOf: fragments[rng.below(fragments.count)], at: position)
            case 3 where !bytes.isEmpty:
                let start = rng.below(bytes.count)
                bytes.removeSubrange(start..<min(bytes.count, start + 1 + rng.below(8)))
            case 4 where !bytes.isEmpty:
                let start = rng.below(bytes.count)
                let piece = bytes[start..<min(bytes.count, start + 1 + rng.below(64))]
                bytes.insert(contentsOf: Array(piece), at: position)
            case 5: bytes = Array(bytes.prefix(position))
            default: bytes.insert(contentsOf: Array(repeating: UInt8(ascii: "A"), count: rng.below(100)), at: position)
            }
        }
        return bytes
    }
}

/// SplitMix64: a small seedable generator, so a seed gives the same inputs everywhere.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}
