import Testing
@testable import KeyRelayPostgres

/// The two text rewrites the store makes on SQL (no server needed).
@Suite("SQL text")
struct StatementTests {
    @Test func placeholdersAreNumberedOutsideQuotesOnly() {
        #expect(numberedPlaceholders("SELECT ? WHERE a = '?' AND \"b?\" = ? AND c LIKE ? ESCAPE '\\\\'")
                == "SELECT $1 WHERE a = '?' AND \"b?\" = $2 AND c LIKE $3 ESCAPE '\\\\'")
    }

    @Test func aMigrationSplitsAtSemicolonsOutsideQuotesAndComments() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x TEXT DEFAULT ';');  -- trailing; comment
            CREATE INDEX a_x ON a (x);

            """
        #expect(statements(sql) == ["CREATE TABLE a (x TEXT DEFAULT ';')", "CREATE INDEX a_x ON a (x)"])
    }

    @Test func everyEmbeddedMigrationSplitsIntoStatements() {
        for migration in PostgresStore.migrations {
            let parts = statements(migration.sql)
            #expect(parts.count > 1, "\(migration.identifier)")
            #expect(parts.allSatisfy { !$0.contains(";") }, "\(migration.identifier)")
        }
    }
}
