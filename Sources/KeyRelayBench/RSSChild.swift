import Foundation
import KeyRelay
import KeyRelaySQLite
import KeyRelayStore

/// Peak memory of one accepted sync on a key with many registrations, in a fresh process (`--rss-child DB`), so
/// that nothing measured earlier in the benchmark run counts. Prints one JSON object on standard output.
enum RSSChild {
    static func run(path: String, registrations count: Int) async throws {
        let clock = ManualClock()
        let store = try SQLiteStore(.file(path))
        let engine = try await KeyRelayEngine(storage: store, masterKey: .generate(), clock: clock,
                                              ids: SeededIdentifiers(seed: 6))
        let context = RequestContext(instanceID: "bench-instance", principal: "bench")
        let key = try await engine.createKey(KeySpec(name: "rss-key"), context: context)
        let loadStart = Date()
        try await BulkLoad.registrations(store: store, key: key, count: count)
        let loadSeconds = Date().timeIntervalSince(loadStart)
        clock.advance(by: 7200)

        let before = Memory.current()
        let reset = Memory.resetPeak()
        let start = Date()
        let receipt = try await engine.sync(key.id, context: context)
        let seconds = Date().timeIntervalSince(start)
        let peak = Memory.peak()
        guard receipt.notifications == count else {
            throw BenchError("sync wrote \(receipt.notifications) notifications, expected \(count)")
        }
        let result: [String: Any] = [
            "peak_rss_mb": peak, "rss_before_sync_mb": before, "peak_reset": reset,
            "registrations": count, "sync_s": seconds, "load_s": loadSeconds,
        ]
        let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
        FileHandle.standardOutput.write(data + Data("\n".utf8))
        try store.close()
    }
}

/// Process memory from `/proc/self/status` (Linux).
enum Memory {
    /// `VmHWM` (peak resident set) in MiB, or -1 where not available.
    static func peak() -> Double { field("VmHWM") }
    /// `VmRSS` (current resident set) in MiB, or -1 where not available.
    static func current() -> Double { field("VmRSS") }

    /// Resets `VmHWM` to the current RSS (`echo 5 > /proc/self/clear_refs`). Returns whether it worked.
    static func resetPeak() -> Bool {
        guard let handle = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? handle.close() }
        do {
            try handle.write(contentsOf: Data("5".utf8))
            return true
        } catch {
            return false
        }
    }

    /// Bytes this process has caused to be written to storage so far (`write_bytes` of `/proc/self/io`), or -1.
    static func writtenBytes() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix("write_bytes:") {
            return Double(line.split(separator: " ").last ?? "") ?? -1
        }
        return -1
    }

    private static func field(_ name: String) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) }
            return (kilobytes ?? -1) / 1024
        }
        return -1
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The benchmark's fast bulk path: registrations written straight through the store (its one commit path, group
/// commit), in large transactions, never 100,000 engine calls.
enum BulkLoad {
    /// `count` registrations on `key`, written through the store's own `upsertRegistration` in transactions of
    /// `chunk` rows, `parallel` transactions at a time (1: one after another).
    static func registrations(store: any KeyRelayStorage, key: Key, count: Int, chunk: Int = 50_000, parallel: Int = 1) async throws {
        let crn = try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/0123456789abcdef:instance-0001:bucket:bucket-0")
        let template = Registration(keyID: key.id, instanceID: key.instanceID, resourceCRN: crn,
                                    description: "bench registration", registrationMetadata: nil,
                                    keyVersion: key.currentVersion, createdBy: "bench", creationDate: key.creationDate)
        let chunks = stride(from: 0, to: count, by: chunk).map { $0..<min(count, $0 + chunk) }
        @Sendable func load(_ range: Range<Int>) async throws {
            try await store.write { tx in
                var registration = template
                for i in range {
                    registration.resourceCRN = "crn:v1:bluemix:public:cloud-object-storage:global:a/0123456789abcdef:instance-0001:bucket:bucket-\(i)"
                    try tx.upsertRegistration(registration)
                }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, range) in chunks.enumerated() {
                if index >= parallel { try await group.next() }
                group.addTask { try await load(range) }
            }
            try await group.waitForAll()
        }
    }
}
