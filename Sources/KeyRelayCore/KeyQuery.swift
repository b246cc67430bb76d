/// Which keys a listing returns, in which order, and which page of them (Key Protect's `GET /keys` parameters).
///
/// A query value of the domain: the engine validates its paging and every store backend answers it.
public struct KeyQuery: Sendable, Equatable {
    /// The orders Key Protect's `sort` parameter accepts.
    public enum SortField: String, Sendable, CaseIterable {
        case id, state, extractable, imported, creationDate, lastUpdateDate, lastRotateDate, deletionDate, expirationDate
    }
    /// States to include; Key Protect's default omits destroyed keys.
    public var states: Set<KeyState> = [.active, .suspended, .deactivated]
    /// Only root keys (`false`) or only standard keys (`true`); both when nil.
    public var extractable: Bool?
    /// Case-insensitive substring of the name or an alias.
    public var search: String?
    /// Only the keys of this key ring.
    public var keyRingID: String?
    public var sort: SortField = .creationDate
    public var descending = false
    /// Page size (the engine accepts 1–5000).
    public var limit = 200
    /// Keys to skip before the page.
    public var offset = 0
    /// Also destroyed keys (whatever ``states`` says) that have a registration whose last acknowledgement is
    /// missing or reports another adopter state than this one. The engine sets it to the state a destroyed key asks
    /// for, to keep force-deleted keys whose resources have not honoured the delete in a "not deleted" listing.
    public var alsoDestroyedWithRegistrationNotAcknowledging: AdopterKeyState?

    public init() {}
}
