import ArgumentParser
import Foundation
import KeyRelay

/// Options every database command shares.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "The database: an SQLite file, or a postgres://user@host/database URL.")
    var db = "keyrelay.sqlite"

    @Option(help: "A file holding the base64 master key (otherwise KEYRELAY_MASTER_KEY).")
    var masterKeyFile: String?

    @Option(help: "The Key Protect instance.")
    var instance = "default"

    @Option(name: .customLong("as"), help: "Who acts (default: $USER).")
    var principal: String?

    @Flag(help: "Machine-readable JSON output.")
    var json = false

    @Option(help: ArgumentHelp("Act as if the clock were this far ahead (e.g. 4h): rehearse a story that needs time to pass without waiting.",
                               discussion: "Times are recorded as shifted. Only on a database no server uses."))
    var clockOffset: String?

    func validate() throws { _ = try clock() }

    /// The system clock, moved `--clock-offset` ahead.
    func clock() throws -> any KeyRelayClock {
        guard let clockOffset else { return SystemClock() }
        guard let offset = DurationText.parse(clockOffset) else {
            throw ValidationError("--clock-offset must be a duration such as 4h or 1h1s, at most \(DurationText.maximumText), not '\(clockOffset.prefix(40))'")
        }
        return OffsetClock(offset: offset)
    }

    var context: RequestContext {
        RequestContext(instanceID: instance,
                       principal: principal ?? ProcessInfo.processInfo.environment["USER"] ?? "keyrelay-cli")
    }

    /// The master key, from `--master-key-file` or `KEYRELAY_MASTER_KEY`. A missing or malformed one is a usage
    /// error naming where it was read from (the flag or the variable, never an API reason code).
    func masterKey() throws -> MasterKey {
        let source = masterKeyFile.map { "--master-key-file \($0)" } ?? "KEYRELAY_MASTER_KEY"
        let masterKey: MasterKey?
        do {
            masterKey = try MasterKey.load(file: masterKeyFile)
        } catch let error as KeyRelayError {
            throw ValidationError("\(source): \(error.message)")
        } catch {
            throw ValidationError("--master-key-file: cannot read the master key file \(masterKeyFile ?? ""): \(error.localizedDescription)")
        }
        guard let masterKey else {
            throw ValidationError("no master key: set KEYRELAY_MASTER_KEY to a base64-encoded 32-byte key "
                                  + "(e.g. `export KEYRELAY_MASTER_KEY=$(openssl rand -base64 32)`) or pass --master-key-file FILE. "
                                  + "Keep it: the database cannot be opened without it.")
        }
        return masterKey
    }

    /// Opens the engine on the database file. Only commands that create keys pass `creating: true`; every other
    /// command refuses a missing file (a typo in `--db` must not leave a new, empty database behind). A missing or
    /// unreadable master key is a usage error naming the option to fix; a wrong master key is the engine's
    /// `KeyRelayError`; a database that cannot be opened (or is not there) is one too, `BAD_BODY_ERR` naming `--db`.
    func engine(creating: Bool = false) async throws -> KeyRelayEngine {
        let masterKey = try masterKey()
        let location = try StoreLocation(parsing: db)
        do {
            return try await KeyRelayEngine.open(creating ? location : location.mustExist, masterKey: masterKey, clock: try clock())
        } catch let error as KeyRelayError {
            throw error
        } catch {
            // The location as it describes itself: a PostgreSQL URL without its password.
            throw KeyRelayError.commandLine("--db \(location): \(error)")
        }
    }
}

/// The wall clock, a fixed interval ahead (`--clock-offset`).
struct OffsetClock: KeyRelayClock {
    var offset: TimeInterval
    func now() -> Date { Date().addingTimeInterval(offset) }
}

/// A key as the command line shows it (never its material).
struct KeyView: Codable {
    var id: String
    var name: String
    var type: String
    var state: String
    var stateCode: Int
    var imported: Bool
    var versions: Int
    var currentVersion: String
    var aliases: [String]
    var keyRing: String
    var creationDate: Date
    var createdBy: String
    var lastUpdateDate: Date
    var lastRotateDate: Date?
    var lastSyncDate: Date?
    var expirationDate: Date?
    var deletionDate: Date?
    var dualAuthDelete: Bool
    var rotationIntervalMonths: Int?

    init(_ key: Key) {
        id = key.id
        name = key.name
        type = key.isRoot ? "root" : "standard"
        state = key.state.description
        stateCode = key.state.rawValue
        imported = key.imported
        versions = key.versionCount
        currentVersion = key.currentVersion.id
        aliases = key.aliases
        keyRing = key.keyRingID
        creationDate = key.creationDate
        createdBy = key.createdBy
        lastUpdateDate = key.lastUpdateDate
        lastRotateDate = key.lastRotateDate
        lastSyncDate = key.lastSyncDate
        expirationDate = key.expirationDate
        deletionDate = key.deletionDate
        dualAuthDelete = key.dualAuthDelete.enabled
        rotationIntervalMonths = key.rotation?.enabled == true ? key.rotation?.intervalMonth : nil
    }

    /// `field: value` lines.
    var text: String {
        var lines = [
            "id: \(id)", "name: \(name)", "type: \(type)", "state: \(state) (\(stateCode))", "imported: \(imported)",
            "versions: \(versions)", "current version: \(currentVersion)", "key ring: \(keyRing)",
            "created: \(Timestamp.format(creationDate)) by \(createdBy)", "updated: \(Timestamp.format(lastUpdateDate))",
        ]
        if !aliases.isEmpty { lines.append("aliases: \(aliases.joined(separator: ", "))") }
        if let lastRotateDate { lines.append("last rotated: \(Timestamp.format(lastRotateDate))") }
        if let lastSyncDate { lines.append("last sync: \(Timestamp.format(lastSyncDate))") }
        if let expirationDate { lines.append("expires: \(Timestamp.format(expirationDate))") }
        if let deletionDate { lines.append("deleted: \(Timestamp.format(deletionDate))") }
        if dualAuthDelete { lines.append("dual authorization: enabled") }
        if let rotationIntervalMonths { lines.append("rotation policy: every \(rotationIntervalMonths) month(s)") }
        return lines.joined(separator: "\n")
    }
}

/// A registration as the command line shows it.
struct RegistrationView: Codable {
    var keyID: String
    var resourceCRN: String
    var service: String
    var preventKeyDeletion: Bool
    var keyVersion: String
    var creationDate: Date
    var acknowledgedState: String?

    init(_ registration: Registration) {
        keyID = registration.keyID
        resourceCRN = registration.resourceCRN
        service = registration.serviceName
        preventKeyDeletion = registration.preventKeyDeletion
        keyVersion = registration.keyVersion.id
        creationDate = registration.creationDate
        acknowledgedState = registration.acknowledgement?.adopterKeyState.rawValue
    }

    var text: String {
        "\(resourceCRN)  key \(keyID)\(preventKeyDeletion ? "  retention" : "")\(acknowledgedState.map { "  ack \($0)" } ?? "")"
    }
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        let padded = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(padded.joined(separator: "  "))
    }
}
