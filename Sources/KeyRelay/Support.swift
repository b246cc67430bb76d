import Foundation
import KeyRelayCore

/// The wall clock, for production use.
public struct SystemClock: KeyRelayClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// Random v4 UUIDs, for production use.
public struct RandomIdentifiers: IdentifierSource {
    public init() {}
    /// 128 bits from the system's CSPRNG (`SystemRandomNumberGenerator`: `getrandom` on Linux), formatted by
    /// ``UUIDText``. Foundation's `UUID()` on Linux opens, reads and closes `/dev/urandom` for every identifier, three
    /// system calls that were ≈ 3 % of a lifecycle command's CPU (issue #16; a command takes one to three ids).
    public func next() -> String {
        var generator = SystemRandomNumberGenerator()
        return UUIDText.format(high: generator.next(), low: generator.next())
    }
}

/// Who is asking, in which instance, and within which key ring: every engine call carries one.
///
/// Its text must not contain U+0000 (NUL), which no backend can keep: every engine call refuses such a context with
/// `INVALID_FIELD_ERR`, naming the field (`instanceID`, `principal`, `correlationID` or `keyRingID`), and changes
/// nothing.
public struct RequestContext: Sendable, Equatable {
    /// The Key Protect instance (`Bluemix-Instance`). One instance never sees another's keys.
    public var instanceID: String
    /// The user or service acting (recorded as createdBy/updatedBy/deletedBy and on events).
    public var principal: String
    /// Carried into the events the call causes (`Correlation-Id`).
    public var correlationID: String?
    /// The key ring the caller works in (Key Protect's `X-Kms-Key-Ring`), or `nil` for no scope.
    ///
    /// The engine enforces it inside each command's transaction: a command on a key of another ring fails with
    /// `KEY_RING_MISMATCH_ERR` (for a move, it must name the key's *current* ring); a new key is created in this
    /// ring; listing and counting keys is limited to it.
    public var keyRingID: String?
    /// Whether the caller is an associated service calling service-to-service (Key Protect's S2S credentials) rather
    /// than a user. A service may not delete keys (403 `RESOURCE_OWNER_ERR`).
    public var isService: Bool

    public init(instanceID: String, principal: String, correlationID: String? = nil, keyRingID: String? = nil,
                isService: Bool = false) {
        self.instanceID = instanceID
        self.principal = principal
        self.correlationID = correlationID
        self.keyRingID = keyRingID
        self.isService = isService
    }
}

/// Engine settings: the lifecycle windows and the names used in key CRNs. (Delivery policy belongs to the bus:
/// `DeliveryPolicy`, given to `makeDispatcher`.)
public struct KeyRelayConfiguration: Sendable {
    public var lifecycle = LifecycleConfiguration()
    /// The region named in key CRNs.
    public var region = "us-south"
    /// The account named in key CRNs.
    public var account = "keyrelay"
    /// RSA modulus size, in bits, of import tokens (Key Protect uses 4096; 2048 or 3072 make tests faster).
    public var importTokenKeySize = 4096
    /// The most keys a search may look through: a `search` whose other parameters (state, extractable, filter, key
    /// ring) leave more keys than this fails with `KEY_SEARCH_TOO_BROAD`, unless it looks up a key by id or alias.
    /// Key Protect: 5000.
    public var maxSearchableKeys = 5000
    public init() {}
}

extension RequestContext {
    /// Refuses a context whose text no backend can keep: U+0000 in the instance, the principal, the correlation id or
    /// the key ring (``StoredText``). HTTP cannot send one (a header cannot carry NUL); an embedder can, and every
    /// public engine call that takes a context checks it first, so such a call is answered `INVALID_FIELD_ERR` (400,
    /// naming the context's field) and changes nothing, on every backend alike, instead of a store error on
    /// PostgreSQL (whose `text` refuses U+0000) and stored text on SQLite.
    func check() throws(KeyRelayError) {
        try StoredText.check(instanceID, field: "instanceID", operation: Self.operation)
        try StoredText.check(principal, field: "principal", operation: Self.operation)
        try StoredText.check(correlationID, field: "correlationID", operation: Self.operation)
        try StoredText.check(keyRingID, field: "keyRingID", operation: Self.operation)
    }

    private static let operation = "Request could not be processed"
}
