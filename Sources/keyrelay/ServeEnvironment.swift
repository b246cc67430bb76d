import ArgumentParser
import Foundation

/// Every `serve` flag's environment variable, in one table: `--db` is also `KEYRELAY_DB`, `--tls-cert`
/// `KEYRELAY_TLS_CERT`, and so on (`KEYRELAY_` + the flag in upper snake case). A flag on the command line wins
/// over its variable; a variable wins over the default. Each option's help names its variable
/// (``ServeSetting/help(_:valueName:)``), and a bad value is an error naming the variable.
///
/// The webhook settings keep the variables they had before (`KEYRELAY_WEBHOOKS`, `KEYRELAY_WEBHOOK_SECRET`,
/// `KEYRELAY_WEBHOOK_TIMEOUT`: the server reads them, see `KeyRelayServer.webhookSettings`), and the master key may
/// still be given itself in `KEYRELAY_MASTER_KEY`.
enum ServeSetting: String, CaseIterable {
    case db, host, port
    case privatePort = "private-port"
    case masterKeyFile = "master-key-file"
    case access, dev
    case devToken = "dev-token"
    case manualClock = "manual-clock"
    case webhook
    case webhookSecretFile = "webhook-secret-file"
    case webhookTimeout = "webhook-timeout"
    case deliveryConcurrency = "delivery-concurrency"
    case tlsCert = "tls-cert"
    case tlsKey = "tls-key"
    case shutdownTimeout = "shutdown-timeout"
    // Logging (issue #14 item 1–2): each flag plugs in with one `@Option(help: ServeSetting.logLevel.help(…))`.
    case logLevel = "log-level"
    case logFormat = "log-format"
    case audit

    /// The flag, `--db`.
    var flag: String { "--" + rawValue }

    /// The environment variable, `KEYRELAY_DB`.
    var variable: String {
        switch self {
        case .webhook: "KEYRELAY_WEBHOOKS"   // a list of SERVICE=URL (it predates this table)
        default: "KEYRELAY_" + rawValue.uppercased().replacingOccurrences(of: "-", with: "_")
        }
    }

    /// The option's help with its variable.
    func help(_ text: String, valueName: String? = nil) -> ArgumentHelp {
        ArgumentHelp("\(text) (env: \(variable))", valueName: valueName)
    }
}

/// The environment `serve` reads its settings from (the process's, or a test's).
struct ServeEnvironment {
    var values: [String: String]

    init(_ values: [String: String] = ProcessInfo.processInfo.environment) { self.values = values }

    /// The flag's value, else its variable's (an empty variable counts as unset).
    func string(_ setting: ServeSetting, _ flag: String?) -> String? {
        flag ?? values[setting.variable].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// An integer setting within `range`, from its flag or its variable; either outside `range` is an error naming
    /// the flag or the variable it came from ("--port must be from 1 to 65535 …, not 70000").
    func integer(_ setting: ServeSetting, _ flag: Int?, in range: ClosedRange<Int>, what: String) throws -> Int? {
        if let flag {
            guard range.contains(flag) else { throw ValidationError("\(setting.flag) must be \(what), not \(flag)") }
            return flag
        }
        guard let text = string(setting, nil) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            throw ValidationError("\(setting.variable) must be \(what), not '\(text.prefix(64))'")
        }
        return value
    }

    /// A flag (`--dev`): set on the command line, or its variable is 1/true/yes (0/false/no/empty: off).
    func flag(_ setting: ServeSetting, _ flag: Bool) throws -> Bool {
        if flag { return true }
        guard let text = values[setting.variable] else { return false }
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "", "0", "false", "no", "off": return false
        default: throw ValidationError("\(setting.variable) must be 1, true, yes or on (or 0, false, no, off), not '\(text.prefix(64))'")
        }
    }
}
