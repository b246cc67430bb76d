import Foundation

/// A key ring as listed: the `default` ring has no creation record, every other ring does.
public struct KeyRingRecord: Sendable, Equatable {
    public var id: String
    /// When the ring was created; nil for `default`.
    public var creationDate: Date?
    /// Who created the ring; nil for `default`.
    public var createdBy: String?

    public init(id: String, creationDate: Date?, createdBy: String?) {
        self.id = id
        self.creationDate = creationDate
        self.createdBy = createdBy
    }
}
