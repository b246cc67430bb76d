import Foundation
import Testing
@testable import KeyRelayCore

/// Key Protect's `filter`, `search` and `sort` grammar, as the core parses it (IBM's Go client's exact strings
/// included).
@Suite struct KeyQueryParsingTests {
    let op = "Keys could not be retrieved"

    func query(filter: String? = nil, search: String? = nil, sort: String? = nil, states: Set<KeyState>? = nil,
               extractable: Bool? = nil) throws -> KeyQuery {
        try KeyQuery(states: states, extractable: extractable, filter: filter, search: search, sort: sort, operation: op)
    }

    func refusal(filter: String? = nil, search: String? = nil, sort: String? = nil, states: Set<KeyState>? = nil,
                 extractable: Bool? = nil, sourceLocation: SourceLocation = #_sourceLocation) -> KeyRelayError? {
        caught({ _ = try query(filter: filter, search: search, sort: sort, states: states, extractable: extractable) },
               sourceLocation: sourceLocation)
    }

    func date(_ text: String) -> Date { Timestamp.parse(text)! }

    // MARK: filter

    @Test func theGoClientsFilterWithALeadingSpaceAndNanosecondsParses() throws {
        let parsed = try query(filter: #" creationDate=gt:"2026-01-02T03:04:05.123456789Z" state=1,2"#)
        #expect(parsed.states == [.active, .suspended])
        #expect(parsed.dates[.creationDate] == KeyQuery.DateRange(from: date("2026-01-02T03:04:06Z")))
    }

    @Test func operatorsMapToHalfOpenRangesOfWholeSeconds() throws {
        let at = "2026-03-01T10:00:00Z"
        let second = date(at), next = date("2026-03-01T10:00:01Z")
        #expect(try query(filter: #"lastRotateDate="\#(at)""#).dates[.lastRotateDate] == KeyQuery.DateRange(from: second, before: next))
        #expect(try query(filter: #"lastRotateDate=gt:"\#(at)""#).dates[.lastRotateDate] == KeyQuery.DateRange(from: next))
        #expect(try query(filter: #"lastRotateDate=gte:"\#(at)""#).dates[.lastRotateDate] == KeyQuery.DateRange(from: second))
        #expect(try query(filter: #"lastRotateDate=lt:"\#(at)""#).dates[.lastRotateDate] == KeyQuery.DateRange(before: second))
        #expect(try query(filter: #"lastRotateDate=lte:"\#(at)""#).dates[.lastRotateDate] == KeyQuery.DateRange(before: next))
        #expect(try query(filter: "lastRotateDate=NONE").dates[.lastRotateDate] == KeyQuery.DateRange(absent: true))
    }

    @Test func severalConditionsOnADateIntersect() throws {
        let parsed = try query(filter: #"lastRotateDate=gte:"2022-02-15T00:00:00Z" lastRotateDate=lt:"2022-03-15T00:00:00Z" extractable=FALSE"#)
        #expect(parsed.dates[.lastRotateDate] == KeyQuery.DateRange(from: date("2022-02-15T00:00:00Z"), before: date("2022-03-15T00:00:00Z")))
        #expect(parsed.extractable == false)
        #expect(parsed.states == KeyQuery().states)
    }

    @Test func filterStatesReplaceTheDefault() throws {
        #expect(try query(filter: "state=0,1,2,3,5").states == Set(KeyState.allCases))
    }

    @Test(arguments: [
        ("foo=1", "'foo=1' names another property"),
        ("creationDate", "'creationDate' is not one"),
        ("=1", "'=1' is not one"),
        (#"creationDate=gt:"yesterday""#, #"'creationDate=gt:"yesterday"' has none"#),
        (#"creationDate=between:"2026-01-01T00:00:00Z""#, "has none"),
        ("state=1,4", "in 'state=1,4'"),
        ("state=1,", "in 'state=1,'"),
        ("state=1 state=2", "at most one condition on 'state'"),
        ("extractable=yes", "in 'extractable=yes'"),
        ("expirationDate=none expirationDate=none expirationDate=none expirationDate=none", "at most 3 conditions on 'expirationDate'"),
    ])
    func aBadFilterIsRefusedNamingTheBadPart(filter: String, named: String) throws {
        let error = try #require(refusal(filter: filter))
        #expect(error.code == .invalidQueryParam)
        #expect(error.statusCode == 400)
        #expect(error.message.hasPrefix("The query_param 'filter' must be: "))
        #expect(error.message.contains(named), "\(error.message)")
        #expect(error.target == ErrorTarget(.queryParam, "filter"))
    }

    @Test func stateOrExtractableInBothTheFilterAndTheirParameterIsRefused() throws {
        #expect(try #require(refusal(filter: "state=1", states: [.active])).message.contains("'state' condition"))
        #expect(try #require(refusal(filter: "extractable=true", extractable: true)).message.contains("'extractable' condition"))
    }

    @Test func aLongFilterIsRefusedAndALongConditionIsQuotedShort() throws {
        let long = String(repeating: "x", count: KeyQuery.Limits.filterLength + 1)
        #expect(try #require(refusal(filter: long)).message.contains("at most \(KeyQuery.Limits.filterLength) characters"))
        let message = try #require(refusal(filter: "foo=" + String(repeating: "y", count: 500))).message
        #expect(message.count < 300)
    }

    @Test func noUserInputTraps() {
        for text in ["=", "==", "state==", "state=", "creationDate=gt:", "creationDate=\"", "creationDate=gt:\"\"", "\u{0}",
                     "creationDate=gt:\"9999-12-31T23:59:59.999999999Z\"", "creationDate=\"0000-01-01T00:00:00Z\"",
                     "state=99999999999999999999999", "creationDate=lt:\"2026-01-01T00:00:00+25:00\"", "🔑=🔑"] {
            _ = try? query(filter: text)
            _ = try? query(search: text)
            _ = try? query(sort: text)
        }
    }

    // MARK: search

    @Test func theGoClientsTrailingCommaIsDropped() throws {
        let search = try #require(try query(search: "payroll,").search)
        #expect(search == KeySearch("payroll"))
        #expect(try query(search: ",").search == nil)
    }

    @Test func optionsAndScopesParseInAnyOrder() throws {
        #expect(try query(search: "not:exact:foobar").search == KeySearch("foobar", negated: true, exact: true))
        #expect(try query(search: "exact:not:foobar").search == KeySearch("foobar", negated: true, exact: true))
        #expect(try query(search: "alias:not:foobar").search == KeySearch("foobar", scopes: [.alias], negated: true))
        #expect(try query(search: "name:exact:foobar,").search == KeySearch("foobar", scopes: [.name], exact: true))
        #expect(try query(search: "alias:name:foo").search == KeySearch("foo", scopes: [.name, .alias]))
        #expect(try query(search: "exact:escape:not:foobar").search == KeySearch("not:foobar", exact: true))
    }

    @Test func optionsWithoutTextOrALongSearchAreRefused() throws {
        let empty = try #require(refusal(search: "not:exact:"))
        #expect(empty.code == .invalidQueryParam)
        #expect(empty.target == ErrorTarget(.queryParam, "search"))
        #expect(try #require(refusal(search: String(repeating: "a", count: KeyQuery.Limits.searchLength + 1))).code == .invalidQueryParam)
    }

    @Test func aSearchMatchesNamesAliasesAndAKeyID() {
        var key = makeKey()
        key.id = "fadedbee-0000-4000-8000-1234567890ab"
        key.name = "Payroll"
        key.aliases = ["salaries"]
        #expect(KeySearch("ROLL").matches(key))
        #expect(KeySearch("salar", scopes: [.alias]).matches(key))
        #expect(!KeySearch("salar", scopes: [.name]).matches(key))
        #expect(!KeySearch("roll", exact: true).matches(key))
        #expect(KeySearch("payroll", exact: true).matches(key))
        #expect(KeySearch("FADEDBEE-0000-4000-8000-1234567890AB").matches(key))
        #expect(KeySearch("nothing", negated: true).matches(key))
        #expect(!KeySearch("pay", negated: true).matches(key))
        #expect(KeySearch("fadedbee-0000-4000-8000-1234567890ab").looksUp)
        #expect(KeySearch("x", scopes: [.alias]).looksUp)
        #expect(!KeySearch("x", scopes: [.name]).looksUp)
        #expect(!KeySearch("x", negated: true).looksUp)
    }

    // MARK: sort

    @Test func sortTakesSeveralTermsEachWithADirection() throws {
        let parsed = try query(sort: "-extractable,lastRotateDate,-id")
        #expect(parsed.order == [KeyQuery.Order(.extractable, descending: true), KeyQuery.Order(.lastRotateDate),
                                 KeyQuery.Order(.id, descending: true)])
        #expect(parsed.sort == .extractable)
        #expect(parsed.descending)
    }

    @Test func aBadOrRepeatedSortTermIsRefused() throws {
        let unknown = try #require(refusal(sort: "name"))
        #expect(unknown.message.hasPrefix("The query_param must be: a valid string from one of this [id,creationDate,deletionDate"))
        #expect(unknown.target == ErrorTarget(.queryParam, "sort"))
        #expect(try #require(refusal(sort: "id,-id")).message.contains("'id' is repeated"))
    }
}
