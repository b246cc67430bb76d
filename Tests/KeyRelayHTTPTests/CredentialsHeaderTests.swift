import HTTPTypes
import Testing
@testable import KeyRelayHTTP

/// Credentials read their four headers in one pass over the fields: each must equal what `HTTPFields`' subscript
/// answers (absent, one value, or a repeated field's values joined with ", "), whatever the names' case.
@Suite("Credential headers in one pass")
struct CredentialsHeaderTests {
    static let names: [HTTPField.Name] = [.authorization, .bluemixInstance, .keyRing, .correlationID]

    static func check(_ fields: HTTPFields) {
        let read = Credentials.headers(fields)
        #expect(read.authorization == fields[.authorization])
        #expect(read.instance == fields[.bluemixInstance])
        #expect(read.keyRing == fields[.keyRing])
        #expect(read.correlationID == fields[.correlationID])
    }

    @Test func equalsTheSubscript() {
        Self.check([:])
        Self.check([.contentType: "application/json", .accept: "*/*"])
        Self.check([.authorization: "Bearer t", .bluemixInstance: "instance-a", .keyRing: "ring", .correlationID: "c-1"])
        var fields = HTTPFields()
        fields.append(HTTPField(name: HTTPField.Name("AUTHORIZATION")!, value: "Bearer one"))
        fields.append(HTTPField(name: .contentType, value: "application/json"))
        fields.append(HTTPField(name: HTTPField.Name("bluemix-instance")!, value: " instance-b "))
        fields.append(HTTPField(name: .authorization, value: "Bearer two"))
        fields.append(HTTPField(name: HTTPField.Name("X-KMS-KEY-RING")!, value: ""))
        fields.append(HTTPField(name: .correlationID, value: "a"))
        fields.append(HTTPField(name: HTTPField.Name("correlation-id")!, value: "b"))
        fields.append(HTTPField(name: .correlationID, value: "c"))
        Self.check(fields)
        #expect(Credentials.headers(fields).authorization == "Bearer one, Bearer two")
        // Every subset of the four names, each present once.
        for mask in 0..<16 {
            var subset = HTTPFields()
            for (index, name) in Self.names.enumerated() where mask & (1 << index) != 0 {
                subset.append(HTTPField(name: name, value: "value-\(index)"))
            }
            Self.check(subset)
        }
    }

    /// The bearer token is what splitting the header at its first space (after leading spaces) gave before.
    @Test func bearerTokenEqualsTheSplit() {
        func split(_ header: String) -> Substring? {
            let parts = header.split(separator: " ", maxSplits: 1)
            return parts.count == 2 && parts[0].lowercased() == "bearer" ? parts[1] : nil
        }
        let headers = ["Bearer abc", "bearer abc", "BEARER abc", "Bearer  abc", "  Bearer abc", "Bearer abc def", "Bearer ",
                       "Bearer", "", " ", "   ", "Basic abc", "Bearerabc", "Bearer\tabc", "Bearer abc ", "Bé abc",
                       "Bearer \u{301}x", " Bearer  ", "x Bearer abc"]
        for header in headers {
            #expect(Credentials.bearerToken(header) == split(header), "\(header.debugDescription)")
        }
    }
}
