import Foundation
import KeyRelay

/// A syntax error in a scenario file: where it is and what was expected there. Nothing of a file with a syntax
/// error runs.
public struct ScenarioSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// What the parser expected at that place, e.g. "a duration such as 4h or 1h 1s, saw 'soon'".
    public var expected: String

    public init(file: String, line: Int, column: Int, expected: String) {
        self.file = file
        self.line = line
        self.column = column
        self.expected = expected
    }

    /// `file:line:column: expected …`
    public var description: String { "\(file):\(line):\(column): expected \(expected)" }
}

/// A parsed scenario: its steps, in order.
public struct Scenario: Sendable {
    /// The file name the transcript shows.
    public var file: String
    public var steps: [ScenarioStep]
}

/// One line of a scenario.
public struct ScenarioStep: Sendable {
    public var line: Int
    /// The line as written, without its comment.
    public var source: String
    var action: StepAction
}

/// Key kinds a script creates.
enum KeyKind: String, Sendable { case root, standard }

/// How a created key gets its material.
enum KeyMaterial: Sendable, Equatable {
    case generated
    /// Imported, with material derived from the run's seed.
    case importedSeeded
    /// Imported, with the given bytes.
    case imported(Data)
}

/// Options of `key create`.
struct KeyCreateOptions: Sendable {
    var kind: KeyKind = .root
    var material: KeyMaterial = .generated
    var expiresAt: Date?
    var expiresIn: TimeInterval?
    var dualAuth = false
    var rotationMonths: Int?
    var aliases: [String] = []
    var name: String?
    var description: String?
}

/// A lifecycle verb on an existing key.
enum KeyVerb: String, Sendable, CaseIterable {
    case rotate, disable, enable, delete, restore, purge, sync
    case setForDeletion = "set-for-deletion"
    case unsetForDeletion = "unset-for-deletion"
}

/// Policies `key policy` sets.
enum PolicyChange: Sendable {
    case dualAuth
    case rotation(months: Int)
}

/// Simulated resources.
enum ResourceKind: String, Sendable { case bucket, deployment }

/// Service bus faults.
enum BusFault: Sendable, Equatable {
    case drop(Int)
    case fail(Int)
    case delay(TimeInterval)
    case duplicate(Int)
    case partition(until: Date?, duration: TimeInterval?)
    case heal
}

/// Adopter/service names accepted in scripts.
enum ServiceName {
    static let cos = "cloud-object-storage"
    static let databases = "databases-for-postgresql"
    static func canonical(_ name: String) -> String? {
        switch name.lowercased() {
        case "cos", "cloud-object-storage": cos
        case "databases", "icd", "databases-for-postgresql": databases
        default: name.contains("-") && name.allSatisfy({ $0.isLowercase || $0.isNumber || $0 == "-" }) ? name : nil
        }
    }
}

/// What `expect` checks.
enum Expectation: Sendable {
    case ok
    case status(Int)
    case error(code: String, messageContains: String?)
    case keyState(key: String, state: KeyState)
    /// The key was purged: it no longer exists.
    case keyPurged(key: String)
    case keyVersion(key: String, count: Int)
    case access(resource: String, allowed: Bool)
    case resourceKeyVersion(resource: String, ordinal: Int)
    case drift(key: String?, count: Int)
    /// Counts by status for a key, a service, or (both nil) everything.
    case notifications(key: String?, service: String?, counts: [(NotificationStatus, Int)])
    case read(resource: String, object: String, text: String)
    case plaintext(String)
    case registrations(key: String, count: Int)
}

/// One step's action.
enum StepAction: Sendable {
    case clockStart(Date)
    case advance(TimeInterval)
    case createKey(name: String, options: KeyCreateOptions, principal: String?)
    case keyAction(KeyVerb, key: String, force: Bool, payload: Data?, principal: String?)
    case policy(key: String, PolicyChange, principal: String?)
    case wrap(key: String, ciphertext: String, plaintext: String?, principal: String?)
    case unwrap(key: String, ciphertext: String, principal: String?)
    case createResource(ResourceKind, name: String, key: String, retention: Bool)
    case write(resource: String, object: String, text: String)
    case read(resource: String, object: String)
    case bus(BusFault, service: String)
    case drain
    case expect(Expectation)

    /// Whether the step is an expectation about the previous step's outcome.
    var isOutcomeExpectation: Bool {
        if case .expect(let e) = self {
            switch e {
            case .ok, .status, .error: return true
            default: return false
            }
        }
        return false
    }
}
