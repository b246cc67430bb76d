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
    public func next() -> String { UUID().uuidString.lowercased() }
}

/// Who is asking, in which instance: every engine call carries one.
public struct RequestContext: Sendable, Equatable {
    /// The Key Protect instance (`Bluemix-Instance`). One instance never sees another's keys.
    public var instanceID: String
    /// The user or service acting (recorded as createdBy/updatedBy/deletedBy and on events).
    public var principal: String
    /// Carried into the events the call causes (`Correlation-Id`).
    public var correlationID: String?

    public init(instanceID: String, principal: String, correlationID: String? = nil) {
        self.instanceID = instanceID
        self.principal = principal
        self.correlationID = correlationID
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
    public init() {}
}
