import Foundation
import Testing
@testable import KeyRelayHTTP

/// The access line's correlation id: the caller's when usable, else a generated one (``RandomIdentifiers``, whose
/// text KeyRelayCore's tests compare with Foundation's).
@Suite("Generated correlation ids")
struct CorrelationIDTests {
    @Test func theCallersIDIsKeptElseOneIsGenerated() {
        #expect(AccessLogMiddleware.correlationID(nil).count == 36)
        #expect(AccessLogMiddleware.correlationID("caller-id") == "caller-id")
        #expect(AccessLogMiddleware.correlationID("has space") != "has space")
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
