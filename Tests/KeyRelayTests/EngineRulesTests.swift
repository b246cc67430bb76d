import Crypto
import Foundation
import Testing
import _CryptoExtras
@testable import KeyRelay

/// The rules that moved out of the HTTP layer into the engine: each is enforced for every embedder.
@Suite("Rules the engine owns")
struct EngineRulesTests {
    func scoped(_ context: RequestContext, to ring: String?) -> RequestContext {
        var copy = context
        copy.keyRingID = ring
        return copy
    }

    @Test func aKeyRingScopeConfinesEveryCommandToItsRing() async throws {
        let (engine, _) = try await makeEngine()
        try await engine.createKeyRing("ring-1", context: alice)
        let inRing = scoped(alice, to: "ring-1")
        let wrongRing = scoped(alice, to: "default")
        // A scoped context creates its keys in its ring.
        let key = try await engine.createKey(KeySpec(name: "ringed"), context: inRing)
        #expect(key.keyRingID == "ring-1")
        _ = try await engine.createKey(KeySpec(name: "elsewhere"), context: alice)
        // Reads, crypto, lifecycle and registrations in another ring's scope are refused.
        await expectError(.keyRingMismatch) { _ = try await engine.key(key.id, context: wrongRing) }
        await expectError(.keyRingMismatch) { _ = try await engine.keyWithPayload(key.id, context: wrongRing) }
        await expectError(.keyRingMismatch) { _ = try await engine.wrap(key.id, context: wrongRing) }
        await expectError(.keyRingMismatch) { try await engine.disable(key.id, context: wrongRing) }
        await expectError(.keyRingMismatch) { try await engine.sync(key.id, context: wrongRing) }
        await expectError(.keyRingMismatch) { try await engine.setPolicies(key.id, dualAuthDelete: true, context: wrongRing) }
        await expectError(.keyRingMismatch) { try await engine.createAlias("nick", for: key.id, context: wrongRing) }
        await expectError(.keyRingMismatch) {
            try await engine.register(keyID: key.id, resourceCRN: bucketCRN.description, context: wrongRing)
        }
        // The error names no header: rendering it is a front end's business.
        let refusal = await expectError(.keyRingMismatch) { _ = try await engine.key(key.id, context: wrongRing) }
        #expect(refusal?.target == nil)
        #expect(refusal.map { !$0.message.localizedCaseInsensitiveContains("header") } == true)
        // In its own scope everything works, and a list shows only the ring's keys.
        #expect(try await engine.key(key.id, context: inRing).id == key.id)
        #expect(try await engine.listKeys(context: inRing).items.map(\.id) == [key.id])
        #expect(try await engine.listKeys(context: alice).total == 2)
        // A move must be scoped to the key's current ring.
        await expectError(.keyRingMismatch) { try await engine.moveKey(key.id, toRing: "default", context: wrongRing) }
        #expect(try await engine.moveKey(key.id, toRing: "default", context: inRing).keyRingID == "default")
        // A spec naming another ring than the scope is a mismatch, not a silent choice.
        await expectError(.keyRingMismatch) { _ = try await engine.createKey(KeySpec(name: "confused", keyRingID: "ring-1"), context: wrongRing) }
    }

    @Test func secureImportOpensMaterialEncryptedToTheImportToken() async throws {
        var configuration = KeyRelayConfiguration()
        configuration.importTokenKeySize = 2048
        let (engine, clock) = try await makeEngine(configuration: configuration)
        await expectError(.importTokenNotFound) { _ = try await engine.retrieveImportToken(context: alice) }
        await expectError(.invalidField) { _ = try await engine.createImportToken(expiration: 10, context: alice) }
        let token = try await engine.createImportToken(expiration: 600, maxAllowedRetrievals: 2, context: alice)
        #expect(token.remainingRetrievals == 2)
        let retrieved = try await engine.retrieveImportToken(context: alice)
        #expect(retrieved.token.remainingRetrievals == 1)
        // Another instance has no token.
        await expectError(.importTokenNotFound) { _ = try await engine.retrieveImportToken(context: mallory) }

        func encrypt(_ material: SymmetricKey, nonce: Data) throws -> EncryptedKeyMaterial {
            let publicKey = try _RSA.Encryption.PublicKey(pemRepresentation: retrieved.publicKeyPEM)
            let payload = try publicKey.encrypt(material.withUnsafeBytes { Data($0) }, padding: .PKCS1_OAEP_SHA256)
            let iv = AES.GCM.Nonce()
            let sealed = try AES.GCM.seal(nonce, using: material, nonce: iv)
            return EncryptedKeyMaterial(payload: payload, encryptedNonce: sealed.ciphertext + sealed.tag, iv: Data(iv))
        }
        let material = SymmetricKey(size: .bits256)
        var spec = KeySpec(name: "imported-securely")
        spec.encryptedPayload = try encrypt(material, nonce: retrieved.nonce)
        let key = try await engine.createKey(spec, context: alice)
        #expect(key.imported)
        // The material is really the one sent: a DEK wrapped by the engine opens under it.
        let wrapped = try await engine.wrap(key.id, plaintext: Data("dek".utf8), context: alice)
        let envelope = try JSONDecoder().decode([String: String].self, from: try #require(Data(base64Encoded: wrapped.ciphertext)))
        let sealed = try #require(Data(base64Encoded: envelope["ciphertext"] ?? ""))
        let iv = try #require(Data(base64Encoded: envelope["iv"] ?? ""))
        let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: iv), ciphertext: sealed.dropLast(16), tag: sealed.suffix(16))
        let aad = KeyRelayEngine.aadData([], versionID: key.currentVersion.id)
        #expect(try AES.GCM.open(box, using: material, authenticating: aad) == Data("dek".utf8))

        // A nonce other than the token's, and a proof sealed under other material, are refused.
        var wrongNonce = KeySpec(name: "wrong-nonce")
        wrongNonce.encryptedPayload = try encrypt(material, nonce: Data(repeating: 1, count: retrieved.nonce.count))
        await expectError(.incorrectNonce) { _ = try await engine.createKey(wrongNonce, context: alice) }
        var wrongIV = KeySpec(name: "wrong-iv")
        var tampered = try encrypt(material, nonce: retrieved.nonce)
        tampered.iv = Data(AES.GCM.Nonce())
        wrongIV.encryptedPayload = tampered
        await expectError(.incorrectNonceIV) { _ = try await engine.createKey(wrongIV, context: alice) }

        // Rotating an imported key takes new material the same way (the first rotation is not rate-limited).
        let next = SymmetricKey(size: .bits256)
        let rotated = try await engine.rotate(key.id, encryptedPayload: try encrypt(next, nonce: retrieved.nonce), context: alice)
        #expect(rotated.currentVersion != key.currentVersion)

        // Tokens expire.
        clock.advance(by: 601)
        await expectError(.importTokenExpired) { _ = try await engine.retrieveImportToken(context: alice) }
    }

    @Test func anAcknowledgementWithoutAResourceNamesTheKeysOnlyRegistration() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "acked"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN.description, context: alice)
        let deleted = try await engine.delete(key.id, force: true, context: alice)
        let event = try #require(try await engine.events(keyID: deleted.id, context: alice).last)
        try await engine.acknowledge(eventID: event.id, resourceCRN: nil, adopterKeyState: .deleted, keyVersionID: nil,
                                     timestamp: start, context: alice)
        let registration = try #require(try await engine.registrations(keyID: key.id, context: alice).items.first)
        #expect(registration.acknowledgement?.eventID == event.id)
        #expect(try await engine.notifications(keyID: key.id).allSatisfy { $0.status != .pending })

        // With two registrations the resource must be named.
        let other = try await engine.createKey(KeySpec(name: "shared"), context: alice)
        try await engine.register(keyID: other.id, resourceCRN: bucketCRN.description, context: alice)
        try await engine.register(keyID: other.id, resourceCRN: CRN.bucket(account: "acct", serviceInstance: "cos-1", bucket: "b2").description,
                                  context: alice)
        try await engine.disable(other.id, context: alice)
        let disable = try #require(try await engine.events(keyID: other.id, context: alice).last)
        let ambiguous = await expectError(.invalidField) {
            try await engine.acknowledge(eventID: disable.id, resourceCRN: nil, adopterKeyState: .disabled, keyVersionID: nil,
                                         timestamp: start, context: alice)
        }
        #expect(ambiguous?.target == ErrorTarget(.field, "resourceCrn"))
        // Another instance's event is not found.
        await expectError(.notFound) {
            try await engine.acknowledge(eventID: disable.id, resourceCRN: nil, adopterKeyState: .disabled, keyVersionID: nil,
                                         timestamp: start, context: mallory)
        }
    }

    @Test func aRefusedSyncCarriesTheEarliestAllowedTimeAsData() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "synced"), context: alice)
        try await engine.sync(key.id, context: alice)
        clock.advance(by: 600)
        do {
            try await engine.sync(key.id, context: alice)
            Issue.record("a second sync within the hour was accepted")
        } catch KeyRelayError.requestTooEarly {
            // Matched by reason code, as a caller would.
        }
        let refusal = await expectError(.requestTooEarly) { try await engine.sync(key.id, context: alice) }
        #expect(refusal?.earliestAllowed == start.addingTimeInterval(3601))
        clock.advance(by: 3001)
        try await engine.sync(key.id, context: alice)
        // Purge's delay is data too.
        let deleted = try await engine.delete(key.id, context: alice)
        let early = await expectError(.requestTooEarly) { try await engine.purge(key.id, context: alice) }
        #expect(early?.earliestAllowed == deleted.deletionDate?.addingTimeInterval(4 * 3600))
    }

    @Test func keyRingsArePagedWithKeyProtectsBounds() async throws {
        let (engine, _) = try await makeEngine()
        for ring in ["ring-a", "ring-b", "ring-c"] { try await engine.createKeyRing(ring, context: alice) }
        let page = try await engine.keyRings(limit: 2, offset: 1, context: alice)
        #expect(page.total == 4)
        #expect(page.items.map(\.id) == ["ring-a", "ring-b"])
        let zero = await expectError(.invalidQueryParam) { _ = try await engine.keyRings(limit: 0, offset: 0, context: alice) }
        #expect(zero?.target == ErrorTarget(.queryParam, "limit"))
        await expectError(.invalidQueryParam) { _ = try await engine.keyRings(limit: 5001, offset: 0, context: alice) }
        await expectError(.invalidQueryParam) { _ = try await engine.keyRings(limit: 10, offset: -1, context: alice) }
        // Huge offsets are an empty page, never a trap.
        #expect(try await engine.keyRings(limit: 10, offset: Int.max, context: alice).items.isEmpty)
    }

    @Test func aKeyAndItsPayloadAreReadTogether() async throws {
        let (engine, _) = try await makeEngine()
        let root = try await engine.createKey(KeySpec(name: "root-key"), context: alice)
        #expect(try await engine.keyWithPayload(root.id, context: alice).payload == nil)
        let material = Data((0..<48).map { UInt8($0) })
        let standard = try await engine.createKey(KeySpec(name: "standard-key", extractable: true, payload: material), context: alice)
        let read = try await engine.keyWithPayload(standard.id, context: alice)
        #expect(read.key.id == standard.id)
        #expect(read.payload == material)
        try await engine.delete(standard.id, context: alice)
        #expect(try await engine.keyWithPayload(standard.id, context: alice).payload == nil)
    }
}
