import Foundation

/// Which keys a listing returns, in which order, and which page of them (Key Protect's `GET /keys` parameters).
///
/// A query value of the domain: the engine validates its paging and every store backend answers it. The grammar of
/// the `filter`, `search` and `sort` parameters is parsed here (``init(states:extractable:filter:search:sort:operation:)``),
/// so that a front end only hands over the strings; ``matches(_:)`` is the meaning every backend must agree with.
public struct KeyQuery: Sendable, Equatable {
    /// The orders Key Protect's `sort` parameter accepts.
    public enum SortField: String, Sendable, CaseIterable {
        case id, state, extractable, imported, creationDate, lastUpdateDate, lastRotateDate, deletionDate, expirationDate
    }

    /// One term of the order: a field, ascending unless `descending`.
    public struct Order: Sendable, Equatable {
        public var field: SortField
        public var descending: Bool
        public init(_ field: SortField, descending: Bool = false) {
            self.field = field
            self.descending = descending
        }
    }

    /// The dates a `filter` condition can compare.
    public enum DateField: String, Sendable, CaseIterable {
        case creationDate, deletionDate, expirationDate, lastRotateDate, lastUpdateDate

        public func value(of key: Key) -> Date? {
            switch self {
            case .creationDate: key.creationDate
            case .deletionDate: key.deletionDate
            case .expirationDate: key.expirationDate
            case .lastRotateDate: key.lastRotateDate
            case .lastUpdateDate: key.lastUpdateDate
            }
        }
    }

    /// What the `filter` conditions on one date ask for, combined: a half-open range of instants, or (`absent`)
    /// keys without the date. Conditions are conjunctive, so two that cannot both hold select no key.
    public struct DateRange: Sendable, Equatable {
        /// Only keys that do not have the date (`none`).
        public var absent = false
        /// Inclusive lower bound.
        public var from: Date?
        /// Exclusive upper bound.
        public var before: Date?

        public init(absent: Bool = false, from: Date? = nil, before: Date? = nil) {
            self.absent = absent
            self.from = from
            self.before = before
        }

        public func contains(_ date: Date?) -> Bool {
            guard let date else { return from == nil && before == nil }
            if absent { return false }
            if let from, date < from { return false }
            if let before, date >= before { return false }
            return true
        }

        /// Both this range's and the other's keys.
        public func intersection(_ other: DateRange) -> DateRange {
            DateRange(absent: absent || other.absent,
                      from: [from, other.from].compactMap { $0 }.max(),
                      before: [before, other.before].compactMap { $0 }.min())
        }
    }

    /// States to include; Key Protect's default omits destroyed keys.
    public var states: Set<KeyState> = [.active, .suspended, .deactivated]
    /// Only root keys (`false`) or only standard keys (`true`); both when nil.
    public var extractable: Bool?
    /// The `filter` conditions on dates, one combined range per date.
    public var dates: [DateField: DateRange] = [:]
    /// Names, aliases (and a key id) to match.
    public var search: KeySearch?
    /// Only the keys of this key ring.
    public var keyRingID: String?
    /// Leave out this key (the engine lists a search's looked-up key first, and then the others).
    public var excludedKeyID: String?
    /// The order, first term first; ties are broken by id, in the first term's direction.
    public var order: [Order] = [Order(.creationDate)]
    /// Page size (the engine accepts 1–5000).
    public var limit = 200
    /// Keys to skip before the page.
    public var offset = 0
    /// Also destroyed keys (whatever ``states`` says) that have a registration whose last acknowledgement is
    /// missing or reports another adopter state than this one. The engine sets it to the state a destroyed key asks
    /// for, to keep force-deleted keys whose resources have not honoured the delete in a "not deleted" listing.
    public var alsoDestroyedWithRegistrationNotAcknowledging: AdopterKeyState?

    public init() {}

    /// The first term of the order; setting it orders by that field alone.
    public var sort: SortField {
        get { order.first?.field ?? .creationDate }
        set { order = [Order(newValue, descending: descending)] }
    }

    /// The direction of the first term; setting it orders by the first field alone, in that direction.
    public var descending: Bool {
        get { order.first?.descending ?? false }
        set { order = [Order(sort, descending: newValue)] }
    }

    /// The query without its search: the "searchable space" whose size Key Protect bounds.
    public var withoutSearch: KeyQuery {
        var query = self
        query.search = nil
        query.excludedKeyID = nil
        return query
    }

    /// Whether the key is selected by states, type, ring, date conditions, search and exclusion (not by
    /// ``alsoDestroyedWithRegistrationNotAcknowledging``, which needs registrations). Every store answers this.
    public func matches(_ key: Key) -> Bool {
        guard states.contains(key.state), extractable.map({ $0 == key.extractable }) ?? true,
              keyRingID.map({ $0 == key.keyRingID }) ?? true, key.id != excludedKeyID else { return false }
        for (field, range) in dates where !range.contains(field.value(of: key)) { return false }
        return search?.matches(key) ?? true
    }
}

// MARK: - Parsing Key Protect's parameters

extension KeyQuery {
    /// Limits on what a caller can send.
    public enum Limits {
        /// Characters of `filter`.
        public static let filterLength = 2048
        /// Conditions on one date (Key Protect: "up to three of the same property").
        public static let conditionsPerDate = 3
        /// Characters of `search`.
        public static let searchLength = 512
        /// Characters of `sort`.
        public static let sortLength = 512
    }

    /// A listing as Key Protect's `GET /keys` parameters ask for it.
    /// - Parameters:
    ///   - states: the `state` parameter (nil: not given).
    ///   - extractable: the `extractable` parameter.
    ///   - filter: `filter`, conditions `property=[operator:]value` separated by spaces (see ``KeyFilter``).
    ///   - search: `search`, with its options and scopes (see ``KeySearch/init(parsing:operation:)``).
    ///   - sort: `sort`, comma-separated fields, each prefixed with `-` for descending.
    /// - Throws: `INVALID_QUERY_PARAM_ERR` naming the parameter and the part of it that is wrong, also when `state` or
    ///   `extractable` is given both as a parameter and as a `filter` condition.
    public init(states: Set<KeyState>?, extractable: Bool?, filter: String?, search: String?, sort: String?,
                operation: String) throws(KeyRelayError) {
        self.init()
        let conditions = try filter.map { text throws(KeyRelayError) in try KeyFilter(parsing: text, operation: operation) } ?? KeyFilter()
        for (name, given, inFilter) in [("state", states != nil, conditions.states != nil),
                                        ("extractable", extractable != nil, conditions.extractable != nil)] where given && inFilter {
            throw KeyFilter.bad("filter", "without a '\(name)' condition when the query_param '\(name)' is given", operation: operation)
        }
        if let states = states ?? conditions.states { self.states = states }
        self.extractable = extractable ?? conditions.extractable
        dates = conditions.dates
        self.search = try search.flatMap { text throws(KeyRelayError) in try KeySearch(parsing: text, operation: operation) }
        if let sort { order = try Self.order(parsing: sort, operation: operation) ?? order }
    }

    /// The `sort` parameter: `field[,field…]`, `-field` for descending; nil when it names no field.
    public static func order(parsing text: String, operation: String) throws(KeyRelayError) -> [Order]? {
        // Key Protect's own wording (sic).
        let requirement = "a valid string from one of this [id,creationDate,deletionDate,expirationDate,extractable,imported,"
            + "lastRotateDate,lastUpdateDate,state] for descending add '-' in the begining of the string"
        let invalid = KeyFilter.bad("sort", requirement, operation: operation, named: false)
        guard text.count <= Limits.sortLength else { throw invalid }
        var order: [Order] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let term = part.trimmingCharacters(in: .whitespaces)
            let descending = term.hasPrefix("-")
            guard let field = SortField(rawValue: descending ? String(term.dropFirst()) : term) else { throw invalid }
            guard !order.contains(where: { $0.field == field }) else {
                throw KeyFilter.bad("sort", "each property at most once; '\(field.rawValue)' is repeated", operation: operation)
            }
            order.append(Order(field, descending: descending))
        }
        return order.isEmpty ? nil : order
    }
}

/// Key Protect's `filter` parameter, parsed: `property=[operator:]value` conditions separated by spaces, all of
/// which a key must meet.
///
/// - Dates (`creationDate`, `deletionDate`, `expirationDate`, `lastRotateDate`, `lastUpdateDate`): an RFC 3339
///   date in double quotes, after an optional operator `lt:`, `lte:`, `gt:`, `gte:`; or `none` (any case) for keys
///   without the date. Up to three conditions per date. Dates compare as KeyRelay writes them, to the second: a
///   condition without operator selects the second its date falls in.
/// - `state`: comma-separated states (0, 1, 2, 3, 5), as the `state` parameter.
/// - `extractable`: `true` or `false`, any case.
///
/// Empty conditions are skipped, so the leading space IBM's Go client writes (` creationDate=gt:"…"`) is fine.
public struct KeyFilter: Sendable, Equatable {
    public var states: Set<KeyState>?
    public var extractable: Bool?
    public var dates: [KeyQuery.DateField: KeyQuery.DateRange] = [:]

    public init() {}

    public init(parsing text: String, operation: String) throws(KeyRelayError) {
        guard text.count <= KeyQuery.Limits.filterLength else {
            throw Self.bad("filter", "at most \(KeyQuery.Limits.filterLength) characters", operation: operation)
        }
        var dateCounts: [KeyQuery.DateField: Int] = [:]
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let shown = Self.shown(token)
            guard let equals = token.firstIndex(of: "="), equals != token.startIndex else {
                throw Self.bad("filter", "conditions '<property>=[<operator>:]<value>' separated by spaces; '\(shown)' is not one",
                               operation: operation)
            }
            let property = String(token[..<equals])
            let value = token[token.index(after: equals)...]
            if let field = KeyQuery.DateField(rawValue: property) {
                dateCounts[field, default: 0] += 1
                guard dateCounts[field, default: 0] <= KeyQuery.Limits.conditionsPerDate else {
                    throw Self.bad("filter", "at most \(KeyQuery.Limits.conditionsPerDate) conditions on '\(property)'", operation: operation)
                }
                let range = try Self.dateRange(value, condition: shown, operation: operation)
                dates[field] = dates[field].map { $0.intersection(range) } ?? range
            } else if property == "state" {
                guard states == nil else { throw Self.bad("filter", "at most one condition on 'state'", operation: operation) }
                states = try Self.states(value, condition: shown, operation: operation)
            } else if property == "extractable" {
                guard extractable == nil else { throw Self.bad("filter", "at most one condition on 'extractable'", operation: operation) }
                guard let flag = Bool(value.lowercased()) else {
                    throw Self.bad("filter", "true or false for 'extractable', in '\(shown)'", operation: operation)
                }
                extractable = flag
            } else {
                let names = (KeyQuery.DateField.allCases.map(\.rawValue) + ["extractable", "state"]).sorted().joined(separator: ", ")
                throw Self.bad("filter", "conditions on one of \(names); '\(shown)' names another property", operation: operation)
            }
        }
    }

    private enum Operator: String, CaseIterable { case lt, lte, gt, gte }

    private static func dateRange(_ value: Substring, condition: String, operation: String) throws(KeyRelayError) -> KeyQuery.DateRange {
        if value.lowercased() == "none" { return KeyQuery.DateRange(absent: true) }
        var text = value
        var op: Operator?
        if let colon = text.firstIndex(of: ":"), let parsed = Operator(rawValue: text[..<colon].lowercased()) {
            op = parsed
            text = text[text.index(after: colon)...]
        }
        if text.count >= 2, text.first == "\"", text.last == "\"" { text = text.dropFirst().dropLast() }
        guard let date = Timestamp.parse(String(text)) else {
            throw bad("filter", "an RFC 3339 date in double quotes after lt:, lte:, gt: or gte: (or none); '\(condition)' has none",
                      operation: operation)
        }
        // Stored dates carry milliseconds, written dates whole seconds: compare the second a key's date reads as.
        let second = Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
        let nextSecond = second.addingTimeInterval(1)
        let ceiling = second == date ? second : nextSecond
        switch op {
        case nil: return KeyQuery.DateRange(from: second, before: nextSecond)
        case .gt: return KeyQuery.DateRange(from: nextSecond)
        case .gte: return KeyQuery.DateRange(from: ceiling)
        case .lt: return KeyQuery.DateRange(before: ceiling)
        case .lte: return KeyQuery.DateRange(before: nextSecond)
        }
    }

    private static func states(_ value: Substring, condition: String, operation: String) throws(KeyRelayError) -> Set<KeyState> {
        var states = Set<KeyState>()
        for part in value.split(separator: ",", omittingEmptySubsequences: false) {
            guard let code = Int(part), code != 4, let state = KeyState(rawValue: code) else {
                throw bad("filter", "comma-separated key states (0, 1, 2, 3, 5) for 'state', in '\(condition)'", operation: operation)
            }
            states.insert(state)
        }
        return states
    }

    /// A condition as an error message quotes it: at most 64 characters of it.
    private static func shown(_ token: Substring) -> String {
        token.count <= 64 ? String(token) : String(token.prefix(61)) + "..."
    }

    static func bad(_ parameter: String, _ requirement: String, operation: String, named: Bool = true) -> KeyRelayError {
        KeyRelayError(.invalidQueryParam, "The query_param \(named ? "'\(parameter)' " : "")must be: \(requirement)", operation: operation,
                      target: ErrorTarget(.queryParam, parameter))
    }
}

/// Key Protect's `search` parameter, parsed: text to find in key names and aliases (and a key id), with options.
public struct KeySearch: Sendable, Equatable {
    /// Where the text is looked for; scopes are disjunctive.
    public enum Scope: String, Sendable, CaseIterable { case name, alias }

    /// The text, after the options.
    public var query: String
    /// Name, alias or both (the default), in that order.
    public var scopes: [Scope]
    /// `not:`: keys that do not match.
    public var negated: Bool
    /// `exact:`: the whole name or alias, not a part of it.
    public var exact: Bool

    public init(_ query: String, scopes: [Scope] = Scope.allCases, negated: Bool = false, exact: Bool = false) {
        self.query = query
        self.scopes = scopes
        self.negated = negated
        self.exact = exact
    }

    /// Parses `[option:]…text`: options `not:`, `exact:`, `escape:` (the rest is the text, options included) and
    /// scopes `name:`, `alias:`, in any order. One trailing comma is dropped: IBM's Go client appends one to every
    /// search. Nil when nothing is left to search for (the Go client's `,` for an empty search).
    /// - Throws: `INVALID_QUERY_PARAM_ERR` for options without text, or a search longer than its limit.
    public init?(parsing text: String, operation: String) throws(KeyRelayError) {
        guard text.count <= KeyQuery.Limits.searchLength else {
            throw KeyFilter.bad("search", "at most \(KeyQuery.Limits.searchLength) characters", operation: operation)
        }
        var rest = Substring(text)
        if rest.hasSuffix(",") { rest = rest.dropLast() }
        guard !rest.isEmpty else { return nil }
        var scopes: Set<Scope> = []
        var negated = false
        var exact = false
        options: while true {
            switch rest {
            case let r where r.hasPrefix("escape:"): rest = r.dropFirst(7); break options
            case let r where r.hasPrefix("not:"): negated = true; rest = r.dropFirst(4)
            case let r where r.hasPrefix("exact:"): exact = true; rest = r.dropFirst(6)
            case let r where r.hasPrefix("name:"): scopes.insert(.name); rest = r.dropFirst(5)
            case let r where r.hasPrefix("alias:"): scopes.insert(.alias); rest = r.dropFirst(6)
            default: break options
            }
        }
        guard !rest.isEmpty else {
            throw KeyFilter.bad("search", "a text to search for after the options (not:, exact:, escape:, name:, alias:)", operation: operation)
        }
        self.init(String(rest), scopes: scopes.isEmpty ? Scope.allCases : Scope.allCases.filter(scopes.contains),
                  negated: negated, exact: exact)
    }

    /// The key id the text names, lowercased, when it is a UUID: that key matches too.
    public var keyID: String? {
        UUID(uuidString: query) == nil ? nil : query.lowercased()
    }

    /// Whether a single key is looked up besides the search (Key Protect: for a key id, or in the alias scope) and
    /// listed first. Not for `not:`, which asks for the keys that do not match.
    public var looksUp: Bool { !negated && (keyID != nil || scopes.contains(.alias)) }

    /// Whether the key matches: case-insensitively (ASCII letters, as SQLite's `LIKE` and `NOCASE` fold them).
    public func matches(_ key: Key) -> Bool {
        let needle = Self.folded(query)
        func hit(_ text: String) -> Bool { exact ? Self.folded(text) == needle : Self.folded(text).contains(needle) }
        let found = keyID == key.id.lowercased()
            || (scopes.contains(.name) && hit(key.name))
            || (scopes.contains(.alias) && key.aliases.contains(where: hit))
        return found != negated
    }

    private static func folded(_ text: String) -> String {
        String(decoding: text.utf8.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
