import KeyRelayCore
import Testing
@testable import KeyRelayPostgres

/// PostgreSQL URLs as an operator writes them (no server needed).
@Suite("PostgreSQL URLs")
struct ConfigurationTests {
    @Test func aURLIsReadAsLibpqWritesIt() throws {
        let c = try PostgresStore.Configuration(url: "postgresql://kms:p%40ss@db.internal:6432/keyrelay?sslmode=require&pool_size=16")
        #expect(c.host == "db.internal")
        #expect(c.port == 6432)
        #expect(c.username == "kms")
        #expect(c.password == "p@ss")
        #expect(c.database == "keyrelay")
        #expect(c.tls == .require)
        #expect(c.maximumConnections == 16)
        let plain = try PostgresStore.Configuration(url: "postgres://kms@db/keyrelay")
        #expect(plain.port == 5432 && plain.password == nil && plain.tls == .prefer && plain.maximumConnections == 8)
    }

    @Test func aUnixSocketDirectoryIsTheHostParameter() throws {
        let c = try PostgresStore.Configuration(url: "postgres://kms@/keyrelay?host=/var/run/postgresql")
        #expect(c.socketPath == "/var/run/postgresql/.s.PGSQL.5432")
    }

    @Test func theDescriptionNeverShowsThePassword() throws {
        let c = try PostgresStore.Configuration(url: "postgres://kms:hunter2@db:5433/keyrelay?sslmode=disable")
        #expect(c.description == "postgres://kms:***@db:5433/keyrelay?sslmode=disable")
        #expect(!"\(c)".contains("hunter2"))
        #expect(!String(reflecting: c).contains("hunter2"))
        var dumped = ""
        dump(c, to: &dumped)
        #expect(!dumped.contains("hunter2") && dumped.contains("***"))
    }

    @Test(arguments: [
        ("postgres://db/keyrelay", "names no user"),
        ("postgres://kms@db", "names no database"),
        ("postgres://kms@db/a/b", "names no database"),
        ("postgres://kms:pw@db:99999/k", "has port 99999"),
        ("postgres//kms@db/k", "not a valid URL"),
        ("postgres://kms@db/k?sslmode=sometimes", "sslmode 'sometimes'"),
        ("postgres://kms@db/k?pool_size=0", "pool_size '0'"),
        ("postgres://kms@db/k?connect_timeout=3", "'connect_timeout'"),
        ("postgres://kms@db/k?host=relative", "absolute path"),
        ("postgres://kms@/k", "names no host"),
    ])
    func aMalformedURLIsRefusedSayingWhy(_ url: String, _ reason: String) {
        let error = #expect(throws: KeyRelayError.self) { try PostgresStore.Configuration(url: url) }
        #expect(error?.message.contains(reason) == true, "\(error?.message ?? "")")
    }

    @Test func aRefusalNeverShowsThePassword() {
        let error = #expect(throws: KeyRelayError.self) { try PostgresStore.Configuration(url: "postgres://kms:hunter2@db/k?x=1") }
        #expect(error?.message.contains("hunter2") == false)
        #expect(error?.message.contains("postgres://kms:***@db/k?x=1") == true)
    }
}
