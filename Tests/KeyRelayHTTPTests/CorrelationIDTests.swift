import Foundation
import Testing
@testable import KeyRelayHTTP

/// The access line's generated correlation id is written by hand: the same text as Foundation's, lower-cased.
@Suite("Generated correlation ids")
struct CorrelationIDTests {
    @Test func equalsFoundationsLowercasedUUIDString() {
        for _ in 0..<2000 {
            let uuid = UUID()
            #expect(AccessLogMiddleware.lowercased(uuid) == uuid.uuidString.lowercased())
        }
        let edges = [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
                     UUID(uuid: (255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255))]
        for uuid in edges { #expect(AccessLogMiddleware.lowercased(uuid) == uuid.uuidString.lowercased()) }
        #expect(AccessLogMiddleware.correlationID(nil).count == 36)
        #expect(AccessLogMiddleware.correlationID("caller-id") == "caller-id")
    }

    /// Generated ids are version 4 with the RFC 9562 variant, as Foundation's are, and do not repeat.
    @Test func generatedIDsAreVersion4() {
        var seen = Set<String>()
        for _ in 0..<2000 {
            let id = AccessLogMiddleware.correlationID(nil)
            let characters = Array(id)
            #expect(characters.count == 36)
            #expect(characters[14] == "4")
            #expect("89ab".contains(characters[19]))
            #expect(id == id.lowercased())
            #expect(UUID(uuidString: id) != nil)
            seen.insert(id)
        }
        #expect(seen.count == 2000)
    }
}
