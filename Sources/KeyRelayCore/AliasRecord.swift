import Foundation

/// One alias of a key, with who added it and when (Key Protect's alias resource).
public struct AliasRecord: Sendable, Equatable {
    public var alias: String
    public var keyID: String
    public var creationDate: Date
    public var createdBy: String

    public init(alias: String, keyID: String, creationDate: Date, createdBy: String) {
        self.alias = alias
        self.keyID = keyID
        self.creationDate = creationDate
        self.createdBy = createdBy
    }
}
