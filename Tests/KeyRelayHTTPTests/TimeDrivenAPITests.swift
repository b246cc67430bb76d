import Foundation
import Testing

/// The clock drives the service over HTTP too (`--manual-clock`, `POST /api/v2/_dev/clock`): a rotation policy
/// rotates its key, a deleted key is purged after 90 days (issue #13 item 6).
@Suite struct TimeDrivenAPITests {
    @Test func theDevClockRotatesByPolicyAndPurgesAfterNinetyDays() async throws {
        try await Harness.run { h in
            let id = try #require(try await h.createKey("rotated")["id"] as? String)
            let policy = #"{"metadata":{"collectionType":"application/vnd.ibm.kms.policy+json","collectionTotal":1},"resources":[{"type":"application/vnd.ibm.kms.policy+json","rotation":{"enabled":true,"interval_month":1}}]}"#
            let set = try await h.call(.put, "/api/v2/keys/\(id)/policies?policy=rotation", raw: policy)
            #expect(set.status == .ok, "\(set.text)")
            #expect(try await h.advance("29d 23h").status == .ok)
            #expect(try await h.call(.get, "/api/v2/keys/\(id)").first["lastRotateDate"] == nil)
            #expect(try await h.advance("1h").status == .ok)
            let rotated = try await h.call(.get, "/api/v2/keys/\(id)").first
            #expect(rotated["lastRotateDate"] as? String != nil, "\(rotated)")
            let versions = try await h.call(.get, "/api/v2/keys/\(id)/versions")
            #expect(versions.metadata["collectionTotal"] as? Int == 2, "\(versions.text)")

            let doomed = try #require(try await h.createKey("doomed")["id"] as? String)
            #expect(try await h.call(.delete, "/api/v2/keys/\(doomed)").status == .ok)
            #expect(try await h.advance("89d 23h").status == .ok)
            #expect(try await h.call(.get, "/api/v2/keys/\(doomed)").status == .ok)
            #expect(try await h.advance("1h").status == .ok)
            let purged = try await h.call(.get, "/api/v2/keys/\(doomed)")
            #expect(purged.status == .notFound && purged.code == "KEY_NOT_FOUND_ERR", "\(purged.text)")
        }
    }
}
