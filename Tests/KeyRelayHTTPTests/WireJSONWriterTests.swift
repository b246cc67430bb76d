import Foundation
import KeyRelay
import Testing
@testable import KeyRelayHTTP

/// A ``JSONWritable`` answer must write what Foundation's `JSONEncoder` (sorted keys, unescaped slashes) writes for
/// it, byte for byte. (Debug builds also compare both on every answer the API gives, in `WireJSON.encode`.)
@Suite("Wire JSON writer")
struct WireJSONWriterTests {
    static func foundation(_ value: some Encodable) throws -> [UInt8] {
        Array(try WireJSON.encoder.encode(value))
    }

    static func expectSameBytes(_ value: some Encodable & JSONWritable, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let written = WireJSONWriter.encode(value)
        let expected = try foundation(value)
        #expect(String(decoding: written, as: UTF8.self) == String(decoding: expected, as: UTF8.self), sourceLocation: sourceLocation)
        #expect(written == expected, sourceLocation: sourceLocation)
    }

    /// Strings that need every kind of escape, and those that need none although they look as if they might.
    static let awkward = ["", "plain", "quote \" and backslash \\", "slash / and </script>", "tab\tnewline\ncr\r",
                          "\u{8}\u{c}\u{0}\u{1}\u{1f}\u{7f}", "é, 日本, 😀, e\u{301}", "\u{2028}\u{2029}\u{feff}",
                          String((0..<0x80).map { Character(UnicodeScalar(UInt8($0))) })]

    @Test func keyAnswersAsFoundationWritesThem() async throws {
        let engine = try await KeyRelayEngine.inMemory()
        let context = RequestContext(instanceID: "instance-a", principal: "alice")
        var spec = KeySpec(name: "wire-key")
        spec.description = "a description"
        spec.tags = ["tag-1", "tag-2"]
        spec.aliases = ["alias-1", "alias-2"]
        spec.expirationDate = Date(timeIntervalSince1970: 4_102_444_800)
        spec.dualAuthDelete = true
        spec.rotation = RotationPolicy(enabled: true, intervalMonth: 3)
        let key = try await engine.createKey(spec, context: context)
        var standard = KeySpec(name: "standard-key")
        standard.extractable = true
        let plain = try await engine.createKey(standard, context: context)
        let wire = Representations(region: "us-south", account: "acct", rules: engine.lifecycleRules)
        let now = engine.clock.now()
        let found = try await engine.keyWithPayload(plain.id, context: context)
        #expect(found.payload != nil)
        try Self.expectSameBytes(WireCollection(MediaTypes.key, [wire.key(found.key, now: now, payload: found.payload)]))
        var shown = wire.key(key, now: now)
        try Self.expectSameBytes(WireCollection(MediaTypes.key, [shown]))
        // Every field that carries text a caller chose, with text that needs escapes.
        shown.name = Self.awkward[2]
        shown.description = Self.awkward.joined(separator: "|")
        shown.tags = Self.awkward
        shown.aliases = Self.awkward.reversed()
        try Self.expectSameBytes(WireCollection(MediaTypes.key, [shown]))
        let deleted = try await engine.delete(plain.id, force: true, context: context)
        try Self.expectSameBytes(WireCollection(MediaTypes.key, [wire.key(deleted, now: now), wire.key(key, now: now)]))
        // Every combination of the optional members a key's answer leaves out or writes.
        for mask in 0..<(1 << 12) {
            func maybe(_ bit: Int, _ text: String) -> String? { mask & (1 << bit) != 0 ? text : nil }
            var variant = shown
            variant.description = maybe(0, "d")
            variant.expirationDate = maybe(1, "e")
            variant.lastRotateDate = maybe(2, "r")
            variant.rotation = mask & (1 << 3) != 0 ? shown.rotation : nil
            variant.deletionDate = maybe(4, "x")
            variant.deletedBy = maybe(5, "b")
            variant.restoreExpirationDate = maybe(6, "re")
            variant.restoreAllowed = mask & (1 << 7) != 0 ? mask & 1 == 0 : nil
            variant.purgeAllowedFrom = maybe(8, "pf")
            variant.purgeAllowed = mask & (1 << 9) != 0 ? true : nil
            variant.purgeScheduledOn = maybe(10, "ps")
            variant.payload = maybe(11, "cGF5bG9hZA==")
            variant.dualAuthDelete = .init(enabled: mask & 1 != 0, keySetForDeletion: mask & 2 != 0 ? false : nil,
                                           authExpiration: maybe(2, "ae"))
            try Self.expectSameBytes(variant)
        }
    }

    @Test func smallAnswersAndErrorsAsFoundationWritesThem() throws {
        let version = KeyVersionReference(id: "v-1")
        try Self.expectSameBytes(WrapResponse(plaintext: nil, ciphertext: "abc/def+==", keyVersion: version))
        try Self.expectSameBytes(WrapResponse(plaintext: "cGxhaW4=", ciphertext: "x", keyVersion: version))
        try Self.expectSameBytes(UnwrapResponse(plaintext: "p", keyVersion: version, ciphertext: "c", rewrappedKeyVersion: version))
        try Self.expectSameBytes(UnauthorizedBody())
        try Self.expectSameBytes(WireCollection(MediaTypes.key, [KeyVersionReference(id: "v")], totalCount: 1))
        try Self.expectSameBytes(WireCollection(MediaTypes.key, [KeyVersionReference](), totalCount: nil))
        for text in Self.awkward {
            let reason = ErrorReason(code: "BAD_BODY_ERR", message: text, status: 400, moreInfo: ErrorReason.moreInfo,
                                     target: ErrorReason.Target(type: "field", name: text))
            try Self.expectSameBytes(WireCollection(MediaTypes.error, [ErrorResource(errorMsg: text, reasons: [reason])]))
            try Self.expectSameBytes(UnwrapResponse(plaintext: text, keyVersion: KeyVersionReference(id: text)))
        }
    }

    @Test func otherAnswersStillGoThroughFoundation() throws {
        let attributes = JSONValue.object(["allowed_ip": .array([.string("10.0.0.0/8")]), "x": .double(0.1), "n": .null])
        #expect(Array(WireJSON.encode(attributes).readableBytesView) == (try Self.foundation(attributes)))
        let listing = KeyListRepresentation(resources: [], search: nil, incompleteSearch: false)
        #expect(Array(WireJSON.encode(listing).readableBytesView) == (try Self.foundation(listing)))
    }

    @Test func pseudoRandomStringsAsFoundationWritesThem() throws {
        var rng = SplitMix(seed: 0x5eed_1234)
        let alphabet: [UnicodeScalar] = (0..<0x80).compactMap(UnicodeScalar.init) + ["é", "ß", "日", "😀", "\u{301}", "\u{2028}"]
        for _ in 0..<500 {
            let length = rng.below(24)
            let text = String(String.UnicodeScalarView((0..<length).map { _ in alphabet[rng.below(alphabet.count)] }))
            try Self.expectSameBytes(ErrorReason(code: text, message: "k" + text, status: length, moreInfo: text,
                                                 target: ErrorReason.Target(type: text, name: text)))
        }
    }
}
