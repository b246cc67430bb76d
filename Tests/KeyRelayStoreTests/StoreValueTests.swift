import Foundation
import KeyRelayStore
import Testing

/// The port's own values: its errors and the time precision every backend keeps.
@Suite("Store port values")
struct StoreValueTests {
    @Test func storedTimesAreWholeMillisecondsTruncatedNotRounded() {
        let date = Date(timeIntervalSince1970: 1_767_225_600.123_9)
        #expect(date.storageMilliseconds == 1_767_225_600_123)
        #expect(Date(storageMilliseconds: date.storageMilliseconds) == Date(timeIntervalSince1970: 1_767_225_600.123))
        #expect(Date(timeIntervalSince1970: -0.000_5).storageMilliseconds == -1)
    }

    @Test func aNewerSchemaErrorNamesTheUnknownMigrationsAndWhatToDo() {
        let error = StoreError.newerSchema(unknown: ["0003_a", "0004_b"])
        #expect(error.description.contains("newer version of KeyRelay"))
        #expect(error.description.contains("0003_a, 0004_b"))
        #expect(error.description.contains("open it with that version or newer"))
    }

    @Test func aCorruptRowErrorNamesTheTableTheColumnAndTheValue() {
        let error = StoreError.corruptRow(table: "events", column: "kind", value: #""bogus""#)
        #expect(error.description.contains("table 'events', column 'kind': \"bogus\""))
        #expect(error.description.contains("restore it from a backup"))
        #expect(error != StoreError.corruptRow(table: "events", column: "kind", value: "NULL"))
    }
}
