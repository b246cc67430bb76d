import Foundation
import Testing
@testable import KeyRelayHTTP

/// `GET /keys` and `HEAD /keys` with `filter`, `search` and `sort`, sent byte for byte as IBM's Go client
/// (`keyprotect-go-client`, listkeys.go) sends them: `url.Values.Encode`, so keys in order, a space as `+`, and every
/// byte but letters, digits and `-_.~` percent-encoded.
@Suite struct ListKeysQueryTests {
    /// Go's `url.Values{…}.Encode()`.
    static func goEncoded(_ values: [String: String]) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~ ")
        return values.keys.sorted().map { key in
            let value = values[key]!.addingPercentEncoding(withAllowedCharacters: unreserved)!.replacingOccurrences(of: " ", with: "+")
            return "\(key)=\(value)"
        }.joined(separator: "&")
    }

    static func ids(_ reply: Reply) -> [String] { reply.resources.compactMap { $0["id"] as? String } }

    @Test func theGoClientsFilterBytesSelectByDateAndState() async throws {
        try await Harness.run { h in
            let first = try await h.createKey("first")
            _ = try await h.advance("1h")
            let second = try await h.createKey("second")
            let secondID = try #require(second["id"] as? String)
            #expect(try await h.call(.post, "/api/v2/keys/\(secondID)/actions/disable").status == .noContent)
            _ = try await h.advance("1h")
            let third = try await h.createKey("third")
            let since = try #require(first["creationDate"] as? String)
            // FilterQueryBuilder().CreationDate().GreaterThan(t).State([Active, Suspended]).Build()
            let filter = #" creationDate=gt:"\#(since)" state=1,2"#
            let query = Self.goEncoded(["filter": filter, "limit": "200", "offset": "0"])
            #expect(query.hasPrefix("filter=+creationDate%3Dgt%3A%22"))
            let listed = try await h.call(.get, "/api/v2/keys?\(query)")
            #expect(listed.status == .ok, "\(listed.text)")
            #expect(Self.ids(listed) == [secondID, try #require(third["id"] as? String)])
            #expect(listed.metadata["searchQuery"] == nil && listed.metadata["incompleteSearch"] == nil)
            let head = try await h.call(.head, "/api/v2/keys?\(Self.goEncoded(["filter": filter]))")
            #expect(head.status == .ok && head.header("Key-Total") == "2")
            let onlyActive = try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["filter": #" creationDate=gt:"\#(since)" state=1"#]))")
            #expect(Self.ids(onlyActive) == [try #require(third["id"] as? String)])
            let neverRotated = try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["filter": " lastRotateDate=none extractable=false"]))")
            #expect(Self.ids(neverRotated).count == 3, "no key was rotated; the default states include suspended keys")
        }
    }

    @Test func theGoClientsSearchWithItsTrailingCommaMatchesAndReportsTheParsedQuery() async throws {
        try await Harness.run { h in
            let payroll = try await h.createKey("Payroll-root")
            _ = try await h.createKey("other")
            let listed = try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["search": "payroll,"]))")
            #expect(listed.status == .ok)
            #expect(Self.ids(listed) == [try #require(payroll["id"] as? String)])
            let searchQuery = try #require(listed.metadata["searchQuery"] as? [String: Any])
            #expect(searchQuery["query"] as? String == "payroll")
            #expect(searchQuery["scopes"] as? [String] == ["name", "alias"])
            #expect(searchQuery["not"] as? Bool == false && searchQuery["exact"] as? Bool == false)
            #expect(listed.metadata["incompleteSearch"] as? Bool == false)
            #expect(listed.metadata["collectionTotal"] as? Int == 1)
        }
    }

    @Test func notExactAndScopesChangeWhatASearchMatches() async throws {
        try await Harness.run { h in
            let exact = try #require(try await h.createKey("payroll")["id"] as? String)
            _ = try await h.advance("1s")
            let longer = try #require(try await h.createKey("payroll-backup", extra: ["aliases": ["payroll"]])["id"] as? String)
            _ = try await h.advance("1s")
            let aliased = try #require(try await h.createKey("archive", extra: ["aliases": ["payroll-2020"]])["id"] as? String)
            func search(_ text: String) async throws -> Reply {
                try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["search": text + ","]))")
            }
            // The alias scope (a default one) looks up the key whose alias is the text, and lists it first.
            #expect(Self.ids(try await search("payroll")) == [longer, exact, aliased])
            #expect(Self.ids(try await search("exact:payroll")) == [longer, exact])
            #expect(Self.ids(try await search("not:exact:payroll")) == [aliased])
            #expect(Self.ids(try await search("not:payroll")) == [])
            #expect(Self.ids(try await search("name:payroll")) == [exact, longer])
            let notAlias = try await search("alias:not:payroll")
            #expect(Self.ids(notAlias) == [exact])
            let parsed = try #require(notAlias.metadata["searchQuery"] as? [String: Any])
            #expect(parsed["scopes"] as? [String] == ["alias"] && parsed["not"] as? Bool == true)
            #expect(Self.ids(try await search("exact:escape:not:payroll")) == [])
            // A key id finds its key; an alias in the alias scope lists its key first.
            #expect(Self.ids(try await search(aliased)) == [aliased])
            #expect(Self.ids(try await search("alias:exact:payroll-2020")) == [aliased])
            let newestFirst = try await h.call(.get, "/api/v2/keys?search=name%3Apayroll&sort=-creationDate")
            #expect(Self.ids(newestFirst) == [longer, exact])
            let lookedUpFirst = try await h.call(.get, "/api/v2/keys?search=alias%3Apayroll&sort=-creationDate")
            #expect(Self.ids(lookedUpFirst) == [longer, aliased], "the key whose alias is the text comes first")
            let secondPage = try await h.call(.get, "/api/v2/keys?search=alias%3Apayroll&sort=creationDate&offset=1&limit=1")
            #expect(Self.ids(secondPage) == [aliased])
            let empty = try await h.call(.get, "/api/v2/keys?search=not%3A")
            #expect(empty.status == .badRequest && empty.code == "INVALID_QUERY_PARAM_ERR")
        }
    }

    @Test func aSearchOverTooManyKeysIsRefusedUnlessItNamesAKey() async throws {
        try await Harness.run(configure: { $0.maxSearchableKeys = 2 }) { h in
            let root = try #require(try await h.createKey("root-one", extra: ["aliases": ["first-root"]])["id"] as? String)
            _ = try await h.createKey("root-two")
            let standard = try #require(try await h.createKey("standard", extractable: true)["id"] as? String)
            let broad = try await h.call(.get, "/api/v2/keys?search=root")
            #expect(broad.status == .badRequest && broad.code == "KEY_SEARCH_TOO_BROAD", "\(broad.text)")
            #expect(try await h.call(.head, "/api/v2/keys?search=root").status == .badRequest)
            let narrowed = try await h.call(.get, "/api/v2/keys?search=root&extractable=false")
            #expect(narrowed.status == .ok && narrowed.resources.count == 2)
            #expect(narrowed.metadata["incompleteSearch"] as? Bool == false)
            let byFilter = try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["search": "standard,", "filter": " extractable=true"]))")
            #expect(Self.ids(byFilter) == [standard])
            let byAlias = try await h.call(.get, "/api/v2/keys?search=alias%3Afirst-root")
            #expect(byAlias.status == .ok && Self.ids(byAlias) == [root])
            #expect(byAlias.metadata["incompleteSearch"] as? Bool == true)
            let byID = try await h.call(.get, "/api/v2/keys?search=\(standard)")
            #expect(byID.status == .ok && Self.ids(byID) == [standard] && byID.metadata["incompleteSearch"] as? Bool == true)
        }
    }

    @Test func aLookedUpKeyMustMeetTheRestOfTheQuery() async throws {
        try await Harness.run(configure: { $0.maxSearchableKeys = 1 }) { h in
            let deleted = try #require(try await h.createKey("deleted-key", extra: ["aliases": ["gone-alias"]])["id"] as? String)
            _ = try await h.createKey("kept-key")
            #expect(try await h.call(.delete, "/api/v2/keys/\(deleted)").status == .ok)
            // One key is searchable; the destroyed one is not among the default states, so it is not looked up.
            let byID = try await h.call(.get, "/api/v2/keys?search=\(deleted)")
            #expect(byID.status == .ok && Self.ids(byID) == [] && byID.metadata["incompleteSearch"] as? Bool == false)
            let withDestroyed = try await h.call(.get, "/api/v2/keys?search=\(deleted)&state=5")
            #expect(Self.ids(withDestroyed) == [deleted])
            // Two keys are searchable with every state: too many, but the alias names the destroyed key.
            let tooMany = try await h.call(.get, "/api/v2/keys?search=alias%3Agone-alias&state=1,5")
            #expect(tooMany.status == .ok && Self.ids(tooMany) == [deleted] && tooMany.metadata["incompleteSearch"] as? Bool == true)
            let unnamed = try await h.call(.get, "/api/v2/keys?search=name%3Akey&state=1,5")
            #expect(unnamed.status == .badRequest && unnamed.code == "KEY_SEARCH_TOO_BROAD")
        }
    }

    @Test func sortTakesSeveralTerms() async throws {
        try await Harness.run { h in
            let rootA = try #require(try await h.createKey("root-a")["id"] as? String)
            _ = try await h.advance("1s")
            let standard = try #require(try await h.createKey("standard", extractable: true)["id"] as? String)
            _ = try await h.advance("1s")
            let rootB = try #require(try await h.createKey("root-b")["id"] as? String)
            let sorted = try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["sort": "-extractable,-creationDate"]))")
            #expect(sorted.status == .ok, "\(sorted.text)")
            #expect(Self.ids(sorted) == [standard, rootB, rootA])
            let repeated = try await h.call(.get, "/api/v2/keys?sort=id,-id")
            #expect(repeated.status == .badRequest && repeated.code == "INVALID_QUERY_PARAM_ERR")
        }
    }

    @Test func aBadFilterIs400NamingTheBadCondition() async throws {
        try await Harness.run { h in
            let unknown = try await h.call(.get, "/api/v2/keys?\(Self.goEncoded(["filter": " color=red"]))")
            #expect(unknown.status == .badRequest && unknown.code == "INVALID_QUERY_PARAM_ERR")
            #expect((unknown.reason["message"] as? String)?.contains("'color=red' names another property") == true)
            #expect((unknown.reason["target"] as? [String: Any])?["name"] as? String == "filter")
            let badDate = try await h.call(.head, "/api/v2/keys?\(Self.goEncoded(["filter": #" creationDate=gt:"soon""#]))")
            #expect(badDate.status == .badRequest)
            let both = try await h.call(.get, "/api/v2/keys?state=1&\(Self.goEncoded(["filter": " state=1,2"]))")
            #expect(both.status == .badRequest && (both.reason["message"] as? String)?.contains("'state' condition") == true)
        }
    }
}
