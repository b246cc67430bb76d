import Foundation
import KeyRelay
import NIOCore
import Testing
@testable import KeyRelayHTTP

/// `KeyRepresentation` writes its members by hand (nested containers instead of nested encoders, for speed), while
/// decoding stays synthesized. A member the hand-written `encode(to:)` forgets, misnames or writes when it should be
/// omitted shows up here: the synthesized `init(from:)` then fails, or reads back a different value.
@Suite("Key representation encoding")
struct KeyRepresentationEncodingTests {
    static func version(_ id: String, _ creationDate: String) -> KeyVersionRepresentation {
        var version = KeyVersionRepresentation(KeyVersion(id: id, creationDate: Date(timeIntervalSince1970: 0)))
        version.creationDate = creationDate
        return version
    }

    static func json(_ buffer: ByteBuffer) -> Data { Data(buffer.readableBytesView) }

    /// Every optional member set, every list non-empty, so that every member must be written.
    static let full: KeyRepresentation = {
        var key = KeyRepresentation(
            id: "k-1", name: "name \"quoted\" / slash", aliases: ["alias-a", "alias-b"], tags: ["t1", "t2"],
            description: "a description", state: 5, extractable: true, crn: "crn:v1:bluemix:public:kms:us-south:a/acct:inst:key:k-1",
            imported: true, keyRingID: "ring", creationDate: "2026-01-02T03:04:05Z", createdBy: "alice",
            expirationDate: "2027-01-02T03:04:05Z", lastUpdateDate: "2026-02-02T03:04:05Z", lastRotateDate: "2026-03-02T03:04:05Z",
            keyVersion: version("v-1", "2026-03-02T03:04:05Z"),
            dualAuthDelete: .init(enabled: true, keySetForDeletion: true, authExpiration: "2026-04-02T03:04:05Z"),
            rotation: .init(RotationPolicy(enabled: true, intervalMonth: 3)), deleted: true, payload: "cGF5bG9hZA==")
        key.algorithmMetadata = .init(bitLength: "128", mode: "GCM")
        key.deletionDate = "2026-05-02T03:04:05Z"
        key.deletedBy = "bob"
        key.restoreExpirationDate = "2026-06-02T03:04:05Z"
        key.restoreAllowed = true
        key.purgeAllowedFrom = "2026-07-02T03:04:05Z"
        key.purgeAllowed = false
        key.purgeScheduledOn = "2026-08-02T03:04:05Z"
        return key
    }()

    /// Every optional member absent, both lists empty.
    static let bare = KeyRepresentation(
        id: "k-2", name: "bare", aliases: [], tags: [], description: nil, state: 1, extractable: false, crn: "crn:k-2",
        imported: false, keyRingID: "default", creationDate: "2026-01-02T03:04:05Z", createdBy: "alice", expirationDate: nil,
        lastUpdateDate: "2026-01-02T03:04:05Z", lastRotateDate: nil,
        keyVersion: version("v-2", "2026-01-02T03:04:05Z"),
        dualAuthDelete: .init(enabled: false), rotation: nil, deleted: false, payload: nil)

    @Test(arguments: [full, bare])
    func decodesBackToTheSameValue(_ key: KeyRepresentation) throws {
        let data = Self.json(WireJSON.encode(key))
        let decoded = try JSONDecoder().decode(KeyRepresentation.self, from: data)
        #expect(String(reflecting: decoded) == String(reflecting: key))
    }

    @Test func omitsAbsentMembersAndNestsObjects() throws {
        let object = try #require(try JSONSerialization.jsonObject(with: Self.json(WireJSON.encode(Self.bare))) as? [String: Any])
        #expect(Set(object.keys) == ["type", "id", "name", "aliases", "tags", "state", "extractable", "crn", "imported", "keyRingID",
                                     "creationDate", "createdBy", "algorithmType", "algorithmMetadata", "algorithmBitSize",
                                     "algorithmMode", "lastUpdateDate", "keyVersion", "dualAuthDelete", "deleted"])
        #expect(object["dualAuthDelete"] as? [String: Bool] == ["enabled": false])
        #expect(object["aliases"] as? [String] == [])
        let full = String(buffer: WireJSON.encode(Self.full))
        #expect(full.contains(#""rotation":{"enabled":true,"interval_month":3}"#))
        #expect(full.contains(#""algorithmMetadata":{"bitLength":"128","mode":"GCM"}"#))
        #expect(full.contains(#""aliases":["alias-a","alias-b"]"#))
    }

    /// A version on its own (`GET /keys/{id}/versions`) writes what it writes nested in a key.
    @Test func versionAloneMatchesVersionNested() throws {
        let version = Self.version("v-1", "2026-03-02T03:04:05Z")
        #expect(String(buffer: WireJSON.encode(version)) == #"{"creationDate":"2026-03-02T03:04:05Z","id":"v-1"}"#)
        #expect(String(buffer: WireJSON.encode(Self.full)).contains(#""keyVersion":{"creationDate":"2026-03-02T03:04:05Z","id":"v-1"}"#))
    }
}
