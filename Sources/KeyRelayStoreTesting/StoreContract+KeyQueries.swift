import Foundation
import KeyRelayCore
import KeyRelayStore

extension StoreContract {
    static let keyQueries = StoreContractCheck(
        "keyQueries",
        "Key listings answer Key Protect's filter, search and sort as KeyQuery.matches defines them: date ranges and none, search options (not, exact, scopes, a key id), an excluded key, orders of several terms with ties broken by id, and the count agrees with the listing."
    ) { backend in
        let store = try await backend.makeStore()
        let ids = ["00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
                   "00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004"]
        var payroll = F.key(ids[0], created: 10)
        payroll.name = "Payroll"
        payroll.aliases = ["salaries"]
        payroll.lastRotateDate = F.at(100.25)
        var backup = F.key(ids[1], created: 20)
        backup.name = "backup-payroll"
        backup.extractable = true
        backup.expirationDate = F.at(1000)
        var archive = F.key(ids[2], created: 20.5)
        archive.name = "archive"
        archive.aliases = ["old-payroll", "PAYROLL"]
        archive.state = .suspended
        archive.lastRotateDate = F.at(200)
        var gone = F.key(ids[3], created: 30)
        gone.name = "gone"
        gone.state = .destroyed
        gone.deletionDate = F.at(40)
        let keys = [payroll, backup, archive, gone]
        try await store.write { tx in
            try tx.ensureInstance("i1", at: F.epoch)
            for key in keys {
                try tx.insertKey(key)
                for alias in key.aliases {
                    try tx.insertAlias(AliasRecord(alias: alias, keyID: key.id, creationDate: F.epoch, createdBy: "alice"), instanceID: "i1")
                }
            }
        }
        func listed(_ configure: @Sendable (inout KeyQuery) -> Void) async throws -> (ids: [String], count: Int, query: KeyQuery) {
            var query = KeyQuery()
            query.states = Set(KeyState.allCases)
            configure(&query)
            let q = query
            return try await store.read { tx in
                (try tx.keys(instanceID: "i1", query: q).map(\.id), try tx.countKeys(instanceID: "i1", query: q), q)
            }
        }
        func expect(_ configure: @Sendable (inout KeyQuery) -> Void, _ expected: [Int], _ what: String) async throws {
            let (got, count, query) = try await listed(configure)
            try requireEqual(got, expected.map { ids[$0] }, what)
            try requireEqual(count, expected.count, "\(what): count")
            try requireEqual(Set(got), Set(keys.filter(query.matches).map(\.id)), "\(what): as KeyQuery.matches selects")
        }
        @Sendable func range(from: Double? = nil, before: Double? = nil, absent: Bool = false) -> KeyQuery.DateRange {
            KeyQuery.DateRange(absent: absent, from: from.map(F.at), before: before.map(F.at))
        }
        try await expect({ $0.dates[.creationDate] = range(from: 20) }, [1, 2, 3], "created at or after 20 s")
        try await expect({ $0.dates[.creationDate] = range(from: 20, before: 20.5) }, [1], "created in [20 s, 20.5 s)")
        try await expect({ $0.dates[.lastRotateDate] = range(absent: true) }, [1, 3], "never rotated (none)")
        try await expect({ $0.dates[.lastRotateDate] = range(from: 100, before: 101) }, [0], "rotated in the second 100 s")
        try await expect({ $0.dates[.lastRotateDate] = range(from: 0, absent: true) }, [], "none and a bound: no key")
        try await expect({ $0.dates[.deletionDate] = range(before: 41) }, [3], "deleted before 41 s")
        try await expect({ $0.dates[.expirationDate] = range(from: 0); $0.dates[.creationDate] = range(before: 25) }, [1],
                         "conditions on two dates are conjunctive")
        try await expect({ $0.search = KeySearch("payroll") }, [0, 1, 2], "search names and aliases, any case")
        try await expect({ $0.search = KeySearch("payroll", scopes: [.name]) }, [0, 1], "search in names only")
        try await expect({ $0.search = KeySearch("payroll", scopes: [.alias]) }, [2], "search in aliases only")
        try await expect({ $0.search = KeySearch("payroll", exact: true) }, [0, 2], "exact: a whole name or alias, any case")
        try await expect({ $0.search = KeySearch("payroll", negated: true) }, [3], "not: keys that do not match")
        try await expect({ $0.search = KeySearch("payroll", negated: true, exact: true) }, [1, 3], "not:exact:")
        try await expect({ $0.search = KeySearch(ids[3].uppercased()) }, [3], "a key id matches its key")
        try await expect({ $0.search = KeySearch("payroll"); $0.excludedKeyID = ids[0] }, [1, 2], "an excluded key")
        try await expect({ $0.sort = .id; $0.descending = true }, [3, 2, 1, 0], "sort by id, descending")
        try await expect({ $0.order = [KeyQuery.Order(.extractable, descending: true), KeyQuery.Order(.lastRotateDate, descending: true)] },
                         [1, 2, 0, 3], "two terms: standard keys first, then the latest rotated, never rotated last")
        try await expect({ $0.order = [KeyQuery.Order(.state), KeyQuery.Order(.creationDate, descending: true)] }, [1, 0, 2, 3],
                         "state, then newest first")
    }
}
