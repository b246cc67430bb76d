import Foundation
internal import KeyRelayStore

extension KeyRelayEngine {
    /// Writes a consistent copy of the database to a new file at `path` while the engine (and other processes on
    /// the same database, such as `keyrelay serve`) go on writing: every command is in the copy entirely or not at
    /// all. The copy is sealed under the same master key, which is *not* in it: keep the master key separately.
    ///
    /// To restore, stop the engine's processes, put the copy in place of the database file (removing any `-wal`
    /// and `-shm` files beside it), and open it with the same master key.
    /// - Throws: an error naming `path` when it already exists (a backup never overwrites), or when the store
    ///   cannot copy itself.
    public func backup(to path: String) async throws {
        try await storage.backup(to: path)
    }
}
