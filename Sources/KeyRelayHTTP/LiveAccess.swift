import Foundation
import KeyRelay
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The access table the API reads on every request, swappable while it serves: `SIGHUP` re-reads the `--access`
/// file into it (``AccessReloader``). A request sees one table from start to end (it reads it once, in the
/// authentication middleware).
public final class LiveAccess: Sendable {
    private let table: Mutex<AccessControl>

    public init(_ access: AccessControl) { table = Mutex(access) }

    /// The table now.
    public var current: AccessControl { table.withLock { $0 } }

    /// Replaces the table (requests already authenticated keep the grant they were given).
    public func replace(with access: AccessControl) { table.withLock { $0 = access } }

    /// Re-reads `file` into the table. A file that does not load leaves the table as it was and throws why.
    public func reload(file: String) throws {
        replace(with: try AccessControl.load(file: file))
    }
}

/// Re-reads the access file on every `SIGHUP`, as a `Service` of the server's `ServiceGroup`. A bad file keeps the
/// table in force and logs the reason at error level; it never stops the server. Without a file (`--dev`), a
/// `SIGHUP` is logged and ignored (rather than ending the process, as its default action would).
public struct AccessReloader: Service {
    let access: LiveAccess
    let file: String?
    let logger: Logger
    let signals: UnixSignalsSequence

    /// Traps `SIGHUP` now (before the server announces that it listens, so that an early `SIGHUP` cannot end it).
    public init(access: LiveAccess, file: String?, logger: Logger) async {
        self.access = access
        self.file = file
        self.logger = logger
        signals = await UnixSignalsSequence(trapping: .sighup)
    }

    public func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            guard let file else {
                logger.notice("SIGHUP: no --access file to re-read (dev mode): nothing changed")
                continue
            }
            do {
                try access.reload(file: file)
                logger.info("SIGHUP: reloaded the access file \(file)")
            } catch {
                let reason = (error as? KeyRelayError)?.message ?? String(describing: error)
                logger.error("SIGHUP: kept the access in force: \(reason)")
            }
        }
    }
}
