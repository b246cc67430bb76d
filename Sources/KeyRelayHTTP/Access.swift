import Crypto
import Foundation
import KeyRelay

/// A role of KeyRelay's access model, named after Key Protect's IAM roles (plus `Service` for service-to-service
/// callers such as COS or Cloud Databases).
public enum AccessRole: String, Sendable, Codable, CaseIterable {
    case reader = "Reader"
    case writer = "Writer"
    case manager = "Manager"
    case keyPurge = "KeyPurge"
    case service = "Service"

    /// What the role allows.
    public var permissions: Set<AccessPermission> {
        switch self {
        case .reader: [.read]
        case .writer: [.read, .create, .use, .rotate]
        case .manager: [.read, .create, .use, .rotate, .manage]
        case .keyPurge: [.purge]
        case .service: [.read, .use, .service]
        }
    }
}

/// The kinds of action the HTTP API gates.
public enum AccessPermission: String, Sendable, CaseIterable {
    /// GET/HEAD of keys, metadata, versions, policies, registrations, key rings, instance settings.
    case read
    /// Create keys (generated or imported), create import tokens.
    case create
    /// wrap, unwrap, rewrap.
    case use
    /// rotate.
    case rotate
    /// Everything else but purge: disable, enable, delete, restore, dual-auth, sync, policies, aliases, key rings.
    case manage
    /// purge.
    case purge
    /// Service-to-service calls: registration create/replace/update/delete and event_ack.
    case service
}

/// What a bearer token grants: a principal, roles, and the instances it may act on.
public struct AccessGrant: Sendable, Equatable {
    public var principal: String
    public var roles: Set<AccessRole>
    /// Instance ids, or `nil` for every instance (`"*"`).
    public var instances: Set<String>?

    public init(principal: String, roles: Set<AccessRole>, instances: Set<String>?) {
        self.principal = principal
        self.roles = roles
        self.instances = instances
    }

    /// Whether the grant allows `permission`.
    public func allows(_ permission: AccessPermission) -> Bool {
        roles.contains { $0.permissions.contains(permission) }
    }

    /// Whether the grant covers `instanceID`.
    public func covers(instance instanceID: String) -> Bool {
        instances.map { $0.contains(instanceID) } ?? true
    }
}

/// Bearer tokens and what they grant. Tokens are compared in constant time: both sides are hashed with SHA-256 and
/// the digests compared byte by byte without an early exit, and every configured token is examined.
public struct AccessControl: Sendable {
    private struct Entry: Sendable {
        var digest: [UInt8]
        var grant: AccessGrant
    }
    private let entries: [Entry]

    /// An access table from tokens and their grants.
    public init(grants: [String: AccessGrant]) {
        entries = grants.map { Entry(digest: Array(SHA256.hash(data: Data($0.key.utf8))), grant: $0.value) }
    }

    /// The grant of a token, or `nil` for an unknown token.
    public func grant(forToken token: String) -> AccessGrant? {
        // Hashed from the string's own bytes (no copy into `Data`) and compared in place (no array of the digest).
        var token = token
        let presented = token.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        var found: AccessGrant?
        presented.withUnsafeBytes { presented in
            for entry in entries where Self.constantTimeEqual(entry.digest, presented) {
                found = entry.grant
            }
        }
        return found
    }

    /// Compares two equal-length digests without an early exit.
    static func constantTimeEqual(_ a: [UInt8], _ b: some RandomAccessCollection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for (x, y) in zip(a, b) { difference |= x ^ y }
        return difference == 0
    }

    /// The development grant: Manager, KeyPurge and Service on every instance.
    public static func development(token: String, principal: String = "dev") -> AccessControl {
        AccessControl(grants: [token: AccessGrant(principal: principal, roles: [.manager, .keyPurge, .service], instances: nil)])
    }

    /// Loads an access file:
    ///
    /// ```json
    /// {"tokens": {
    ///   "s3cr3t-token": {"principal": "alice", "role": "Manager", "instances": ["instance-a"]},
    ///   "cos-token":    {"principal": "cos", "roles": ["Service", "Reader"], "instances": "*"}}}
    /// ```
    /// `tokens` may also be an array of objects that carry their `token`.
    /// How an access-file error quotes a name from the file: cut to 40 characters, so a hostile file cannot make the
    /// error (and the log line that carries it) arbitrarily long.
    static func shown(_ text: String) -> String {
        text.count > 40 ? "'\(text.prefix(40))…' (\(text.utf8.count) bytes)" : "'\(text)'"
    }

    public static func load(file path: String) throws -> AccessControl {
        let op = "Access file could not be loaded"
        func bad(_ why: String) -> KeyRelayError {
            KeyRelayError(.badBody, "The access file '\(path)' is not valid: \(why)", operation: op)
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw KeyRelayError(.badBody, "The access file '\(path)' could not be read: \(error.localizedDescription)", operation: op)
        }
        guard let root = try? JSONDecoder().decode(AccessFile.self, from: data) else {
            throw bad("it must be a JSON object with a \"tokens\" member")
        }
        var items: [(String, AccessFile.Grant)] = []
        switch root.tokens {
        case .map(let map):
            for (token, value) in map {
                guard case .object(let grant) = value else { throw bad("the grant of a token must be an object") }
                items.append((token, grant))
            }
        case .list(let list):
            for value in list {
                guard case .object(let grant) = value, let token = grant.token else {
                    throw bad("each entry of \"tokens\" must be an object with a \"token\" string")
                }
                items.append((token, grant))
            }
        case .missing:
            throw bad("it must have a \"tokens\" object (token → grant) or array")
        }
        var grants: [String: AccessGrant] = [:]
        for (token, object) in items {
            guard token.count >= 16 else { throw bad("a token must be at least 16 characters long") }
            guard let principal = object.principal, !principal.isEmpty else {
                throw bad("every grant needs a \"principal\" string")
            }
            let names = (object.role.map { [$0] } ?? []) + (object.roles ?? [])
            guard !names.isEmpty else { throw bad("the grant of \(Self.shown(principal)) needs a \"role\" or \"roles\"") }
            var roles = Set<AccessRole>()
            for name in names {
                guard let role = AccessRole(rawValue: name) else {
                    throw bad("unknown role \(Self.shown(name)) for \(Self.shown(principal)) (roles: \(AccessRole.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                roles.insert(role)
            }
            let instances: Set<String>?
            switch object.instances {
            case .all: instances = nil
            case .some(let list): instances = list.contains("*") ? nil : Set(list)
            case .missing:
                throw bad("the grant of '\(principal)' needs \"instances\": a list of instance ids or \"*\"")
            }
            grants[token] = AccessGrant(principal: principal, roles: roles, instances: instances)
        }
        return AccessControl(grants: grants)
    }
}

/// The access file's shape. Every member is read leniently here and checked by ``AccessControl/load(file:)``,
/// which names what is wrong.
struct AccessFile: Decodable {
    /// One grant. Fields of the wrong type read as absent, so that the loader's message names them.
    struct Grant: Decodable {
        enum Instances { case all, some([String]), missing }
        var token: String?
        var principal: String?
        var role: String?
        var roles: [String]?
        var instances: Instances

        enum CodingKeys: String, CodingKey { case token, principal, role, roles, instances }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            token = try? container.decodeIfPresent(String.self, forKey: .token)
            principal = try? container.decodeIfPresent(String.self, forKey: .principal)
            role = try? container.decodeIfPresent(String.self, forKey: .role)
            roles = try? container.decodeIfPresent([String].self, forKey: .roles)
            if let star = try? container.decode(String.self, forKey: .instances), star == "*" {
                instances = .all
            } else if let list = try? container.decode([String].self, forKey: .instances) {
                instances = .some(list)
            } else {
                instances = .missing
            }
        }
    }
    /// A `tokens` entry: a grant object, or anything else (refused by the loader).
    enum Entry: Decodable {
        case object(Grant)
        case other
        init(from decoder: any Decoder) throws {
            if let grant = try? Grant(from: decoder), (try? decoder.container(keyedBy: Grant.CodingKeys.self)) != nil {
                self = .object(grant)
            } else {
                self = .other
            }
        }
    }
    enum Tokens { case map([String: Entry]), list([Entry]), missing }
    var tokens: Tokens

    enum CodingKeys: String, CodingKey { case tokens }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let map = try? container.decode([String: Entry].self, forKey: .tokens) {
            tokens = .map(map)
        } else if let list = try? container.decode([Entry].self, forKey: .tokens) {
            tokens = .list(list)
        } else {
            tokens = .missing
        }
    }
}
