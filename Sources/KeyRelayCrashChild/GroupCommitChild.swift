import Foundation
import KeyRelay
import KeyRelaySQLite
import KeyRelayStore

/// `groupcommit DB SEED` mode: the process the group-commit crash test (KeyRelaySQLiteTests) SIGKILLs while batches
/// are in flight.
///
/// Sixteen concurrent writers loop forever through `SQLiteStore.write` (group commit). Each command writes one
/// `meta` row named `r<SEED>-t<task>-n<n>`; every ninth command writes its row and then throws (a domain refusal),
/// so its row must never be found. The child prints `ok NAME` only after `write` returned (its commit is durable),
/// and `refused NAME` after a refusal, each line in one `write(2)` (``emit(_:)``) so that a line is whole or absent.
/// The master key is not used (the store is opened directly), but `main.swift` requires `KEYRELAY_MASTER_KEY`.
func runGroupCommitChild(dbPath: String, seed: UInt64) async {
    let store: SQLiteStore
    do {
        store = try SQLiteStore(.file(dbPath))
    } catch {
        FileHandle.standardError.write(Data("group-commit child could not open \(dbPath): \(error)\n".utf8))
        exit(2)
    }
    let payload = Data(repeating: 0xA5, count: 256)
    await withTaskGroup(of: Void.self) { group in
        for task in 0..<16 {
            group.addTask {
                var n = 0
                while true {
                    let name = "r\(seed)-t\(task)-n\(n)"
                    let refuse = n % 9 == 4
                    do {
                        try await store.write { tx in
                            try tx.setMeta(name, payload)
                            if refuse {
                                throw KeyRelayError(.keyNotFound, "Key does not exist: refused on purpose by the crash child",
                                                    operation: "Key could not be retrieved")
                            }
                        }
                        emit("ok \(name)")
                    } catch is KeyRelayError {
                        emit("refused \(name)")
                    } catch {
                        FileHandle.standardError.write(Data("group-commit child write failed: \(error)\n".utf8))
                        exit(3)
                    }
                    n += 1
                }
            }
        }
    }
}
