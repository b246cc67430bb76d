import Foundation
import KeyRelaySQLite
import KeyRelayStore
import Testing
@testable import KeyRelay

@Suite("Envelope encryption")
struct CryptoTests {
    @Test func wrapUnwrapRoundTripsAnyLengthTheServiceAccepts() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "wrapper"), context: alice)
        for length in [1, 16, 18, 32, 64, 7168] {
            let dek = Data((0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            let wrapped = try await engine.wrap(key.id, plaintext: dek, aad: ["bucket:invoices"], context: alice)
            #expect(wrapped.plaintext == nil)
            #expect(wrapped.keyVersion == key.currentVersion)
            let unwrapped = try await engine.unwrap(key.id, ciphertext: wrapped.ciphertext, aad: ["bucket:invoices"], context: alice)
            #expect(unwrapped.plaintext == dek)
            #expect(unwrapped.rewrappedCiphertext == nil)
        }
        await expectError(.invalidField) { _ = try await engine.wrap(key.id, plaintext: Data(count: 7169), context: alice) }
    }

    @Test func wrapWithoutPlaintextGeneratesA32ByteDEK() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "generator"), context: alice)
        let wrapped = try await engine.wrap(key.id, context: alice)
        #expect(wrapped.plaintext?.count == 32)
        #expect(try await engine.unwrap(key.id, ciphertext: wrapped.ciphertext, context: alice).plaintext == wrapped.plaintext)
    }

    @Test func theCiphertextNamesItsVersionAndOldVersionsStillUnwrapWithARewrap() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "rotating"), context: alice)
        let old = try await engine.wrap(key.id, plaintext: Data("eighteen-byte-dek!".utf8), context: alice)
        let envelope = try JSONSerialization.jsonObject(with: try #require(Data(base64Encoded: old.ciphertext))) as? [String: String]
        #expect(envelope?["handle"] == key.currentVersion.id)
        #expect(envelope?["version"] == "4.0.0")
        let rotated = try await engine.rotate(key.id, context: alice)
        let unwrapped = try await engine.unwrap(key.id, ciphertext: old.ciphertext, context: alice)
        #expect(unwrapped.plaintext == Data("eighteen-byte-dek!".utf8))
        #expect(unwrapped.keyVersion.id == key.currentVersion.id)
        #expect(unwrapped.rewrappedKeyVersion == rotated.currentVersion)
        let fresh = try await engine.unwrap(key.id, ciphertext: try #require(unwrapped.rewrappedCiphertext), context: alice)
        #expect(fresh.plaintext == unwrapped.plaintext)
        #expect(fresh.rewrappedCiphertext == nil)
        let rewrapped = try await engine.rewrap(key.id, ciphertext: old.ciphertext, context: alice)
        #expect(rewrapped.keyVersion.id == key.currentVersion.id)
        #expect(rewrapped.rewrappedKeyVersion == rotated.currentVersion)
    }

    @Test func wrongAADAlteredCiphertextOrAnotherKeyAreRefused() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "strict"), context: alice)
        let other = try await engine.createKey(KeySpec(name: "other"), context: alice)
        let wrapped = try await engine.wrap(key.id, plaintext: Data(count: 32), aad: ["a", "bc"], context: alice)
        await expectError(.unprocessableCiphertext) { _ = try await engine.unwrap(key.id, ciphertext: wrapped.ciphertext, aad: ["ab", "c"], context: alice) }
        await expectError(.unprocessableCiphertext) { _ = try await engine.unwrap(other.id, ciphertext: wrapped.ciphertext, aad: ["a", "bc"], context: alice) }
        await expectError(.invalidField) { _ = try await engine.unwrap(key.id, ciphertext: "%%%not base64", context: alice) }
        var bytes = try #require(Data(base64Encoded: wrapped.ciphertext))
        bytes[bytes.count / 2] ^= 0x01
        await expectError(.unprocessableCiphertext) { _ = try await engine.unwrap(key.id, ciphertext: bytes.base64EncodedString(), aad: ["a", "bc"], context: alice) }
    }

    @Test func stateAndKeyTypeGateTheOperations() async throws {
        let (engine, _) = try await makeEngine()
        let standard = try await engine.createKey(KeySpec(name: "standard", extractable: true), context: alice)
        await expectError(.keyRootRequired) { _ = try await engine.wrap(standard.id, context: alice) }
        await expectError(.keyRootRequired) { try await engine.rotate(standard.id, context: alice) }
        #expect(try await engine.payload(standard.id, context: alice)?.count == 32)
        let root = try await engine.createKey(KeySpec(name: "root"), context: alice)
        #expect(try await engine.payload(root.id, context: alice) == nil)
        let wrapped = try await engine.wrap(root.id, context: alice)
        try await engine.disable(root.id, context: alice)
        await expectError(.keyActionInvalidState) { _ = try await engine.wrap(root.id, context: alice) }
        await expectError(.keyActionInvalidState) { _ = try await engine.unwrap(root.id, ciphertext: wrapped.ciphertext, context: alice) }
    }

    @Test func importedRootKeysUseTheirPayloadAndNeedOneToRotate() async throws {
        let (engine, _) = try await makeEngine()
        let material = Data((0..<32).map { UInt8($0) })
        let key = try await engine.createKey(KeySpec(name: "byok", payload: material), context: alice)
        #expect(key.imported)
        await expectError(.keyPayloadRequired) { try await engine.rotate(key.id, context: alice) }
        let rotated = try await engine.rotate(key.id, payload: Data((0..<16).map { UInt8($0 + 100) }), context: alice)
        #expect(rotated.versionCount == 2)
        let generated = try await engine.createKey(KeySpec(name: "generated"), context: alice)
        await expectError(.invalidQueryParam) { try await engine.rotate(generated.id, payload: material, context: alice) }
    }

    @Test func materialIsSealedAtRestAndTheMasterKeyIsChecked() async throws {
        let path = try temporaryPath()
        let (engine, _) = try await makeEngine(path: path)
        let material = Data("THIS-IS-A-VERY-RECOGNISABLE-KEY!".utf8)
        let key = try await engine.createKey(KeySpec(name: "sealed", extractable: true, payload: material), context: alice)
        #expect(try await engine.payload(key.id, context: alice) == material)
        for file in [path, path + "-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            #expect(bytes.range(of: material) == nil, "key material found in clear in \(file)")
        }
        await #expect(throws: KeyRelayError.self) {
            _ = try await KeyRelayEngine.open(path: path, masterKey: .generate(), clock: ManualClock(start: start))
        }
        // The right master key opens it and the material is intact.
        let reopened = try await KeyRelayEngine.open(path: path, masterKey: testMaster, clock: ManualClock(start: start))
        #expect(try await reopened.payload(key.id, context: alice) == material)
    }

    @Test func purgeErasesTheSealedMaterialFromTheFile() async throws {
        let path = try temporaryPath()
        let (engine, clock) = try await makeEngine(path: path)
        let key = try await engine.createKey(KeySpec(name: "to-erase"), context: alice)
        let store = try #require(engine.storage as? SQLiteStore)
        let sealed = try #require(try await store.read { tx in try tx.sealedMaterial(keyID: key.id, versionID: key.currentVersion.id) })
        try await engine.delete(key.id, context: alice)
        clock.advance(by: 4 * 3600)
        try await engine.purge(key.id, context: alice)
        #expect(try await store.read { tx in try tx.sealedMaterial(keyID: key.id, versionID: key.currentVersion.id) } == nil)
        try store.checkpoint()
        for file in [path, path + "-wal"] {
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            #expect(bytes.range(of: sealed) == nil, "purged material still in \(file)")
        }
    }

    @Test func masterKeyLoadingIsStrict() throws {
        #expect(try MasterKey.load(environment: [:]) == nil)
        #expect(throws: KeyRelayError.self) { try MasterKey.load(environment: ["KEYRELAY_MASTER_KEY": "c2hvcnQ="]) }
        let text = MasterKey.generate().base64EncodedString()
        #expect(try MasterKey.load(environment: ["KEYRELAY_MASTER_KEY": text + "\n"])?.base64EncodedString() == text)
    }
}

@Suite("Registrations and acknowledgements")
struct RegistrationTests {
    @Test func registrationsNeedAnActiveRootKeyAndAreUniquePerResource() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "protector"), context: alice)
        let registration = try await engine.register(keyID: key.id, resourceCRN: bucketCRN,
                                                     input: RegistrationInput(description: "invoices bucket"), context: alice)
        #expect(registration.serviceName == "cloud-object-storage")
        #expect(registration.keyVersion == key.currentVersion)
        await expectError(.registrationExists) { try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice) }
        let standard = try await engine.createKey(KeySpec(name: "standard", extractable: true), context: alice)
        await expectError(.keyRootRequiredForRegistration) { try await engine.register(keyID: standard.id, resourceCRN: bucketCRN, context: alice) }
        try await engine.disable(key.id, context: alice)
        await expectError(.keyInvalidState) {
            try await engine.register(keyID: key.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "s", bucket: "other"), context: alice)
        }
        try await engine.unregister(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        await expectError(.registrationNotFound) { try await engine.unregister(keyID: key.id, resourceCRN: bucketCRN, context: alice) }
    }

    @Test func registrationVersionsCannotGoBackwards() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "versions"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        let rotated = try await engine.rotate(key.id, context: alice)
        try await engine.updateRegistration(keyID: key.id, resourceCRN: bucketCRN, input: RegistrationInput(keyVersionID: rotated.currentVersion.id), context: alice)
        await expectError(.keyVersionInvalid) {
            try await engine.updateRegistration(keyID: key.id, resourceCRN: bucketCRN, input: RegistrationInput(keyVersionID: key.currentVersion.id), context: alice)
        }
        await expectError(.invalidField) {
            try await engine.updateRegistration(keyID: key.id, resourceCRN: bucketCRN, input: RegistrationInput(keyVersionID: "no-such-version"), context: alice)
        }
    }

    @Test func listingAcrossKeysFiltersByCRNPrefixAndRetention() async throws {
        let (engine, _) = try await makeEngine()
        let k1 = try await engine.createKey(KeySpec(name: "one"), context: alice)
        let k2 = try await engine.createKey(KeySpec(name: "two"), context: alice)
        try await engine.register(keyID: k1.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b1"), context: alice)
        try await engine.register(keyID: k2.id, resourceCRN: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b2"),
                                  input: RegistrationInput(preventKeyDeletion: true), context: alice)
        try await engine.register(keyID: k2.id, resourceCRN: CRN.deployment(account: "a", deployment: "pg"), context: alice)
        #expect(try await engine.registrations(context: alice).total == 3)
        let buckets = try await engine.registrations(filter: RegistrationFilter(crnQuery: "crn:v1:bluemix:public:cloud-object-storage:global:a/a:s:bucket:*"), context: alice)
        #expect(buckets.total == 2)
        #expect(try await engine.registrations(filter: RegistrationFilter(preventKeyDeletion: true), context: alice).items.map(\.keyID) == [k2.id])
        #expect(try await engine.registrations(keyID: k2.id, context: alice).total == 2)
        await expectError(.invalidQueryParam) { _ = try await engine.registrations(filter: RegistrationFilter(crnQuery: "crn:v1:*"), context: alice) }
        #expect(try await engine.registrations(context: mallory).total == 0)
    }

    @Test func acknowledgementsEndNotificationsAndDriftAppearsAndDisappears() async throws {
        let (engine, clock) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "acked"), context: alice)
        try await engine.register(keyID: key.id, resourceCRN: bucketCRN, context: alice)
        #expect(try await engine.drift(context: alice).isEmpty)
        try await engine.delete(key.id, force: true, context: alice)
        let drift = try await engine.drift(context: alice)
        #expect(drift.count == 1)
        #expect(drift.first?.expected == .deleted)
        let deleteEvent = try #require(try await engine.events(keyID: key.id).last)
        clock.advance(by: 3601)
        let receipt = try await engine.sync(key.id, context: alice)
        // The service acknowledges the newer sync event: both notifications end acknowledged.
        try await engine.acknowledge(EventAcknowledgement(eventID: receipt.event.id, resourceCRN: bucketCRN, adopterKeyState: .deleted,
                                                          keyVersionID: nil, timestamp: clock.now()), context: alice)
        #expect(try await engine.deliveryCounts(keyID: key.id) == DeliveryCounts(acknowledged: 2))
        #expect(try await engine.drift(context: alice).isEmpty)
        // A late acknowledgement of the older event does not move the reported state back.
        try await engine.acknowledge(EventAcknowledgement(eventID: deleteEvent.id, resourceCRN: bucketCRN, adopterKeyState: .enabled,
                                                          keyVersionID: key.currentVersion.id, timestamp: clock.now()), context: alice)
        #expect(try await engine.drift(context: alice).isEmpty)
        await expectError(.invalidField) {
            try await engine.acknowledge(EventAcknowledgement(eventID: receipt.event.id, resourceCRN: bucketCRN, adopterKeyState: .enabled,
                                                              keyVersionID: nil, timestamp: clock.now()), context: alice)
        }
        await expectError(.notFound) {
            try await engine.acknowledge(EventAcknowledgement(eventID: receipt.event.id, resourceCRN: bucketCRN, adopterKeyState: .deleted,
                                                              keyVersionID: nil, timestamp: clock.now()), context: mallory)
        }
    }

    @Test func aliasesAndKeyRings() async throws {
        let (engine, _) = try await makeEngine()
        let key = try await engine.createKey(KeySpec(name: "aliased", aliases: ["first"]), context: alice)
        try await engine.createAlias("second", for: "first", context: alice)
        #expect(try await engine.key("second", context: alice).id == key.id)
        let other = try await engine.createKey(KeySpec(name: "other"), context: alice)
        await expectError(.aliasNotUnique) { try await engine.createAlias("second", for: other.id, context: alice) }
        for alias in ["a3", "a4", "a5"] { try await engine.createAlias(alias, for: key.id, context: alice) }
        await expectError(.aliasQuotaExceeded) { try await engine.createAlias("a6", for: key.id, context: alice) }
        try await engine.deleteAlias("second", from: key.id, context: alice)
        await expectError(.aliasNotFound) { try await engine.deleteAlias("second", from: key.id, context: alice) }

        try await engine.createKeyRing("ring-1", context: alice)
        await expectError(.keyRingExists) { try await engine.createKeyRing("ring-1", context: alice) }
        let ringed = try await engine.createKey(KeySpec(name: "in-ring", keyRingID: "ring-1"), context: alice)
        await expectError(.keyRingNotEmpty) { try await engine.deleteKeyRing("ring-1", context: alice) }
        var otherRing = alice
        otherRing.keyRingID = "other-ring"
        await expectError(.keyRingMismatch) { try await engine.moveKey(ringed.id, toRing: "default", context: otherRing) }
        await expectError(.keyRingNotFound) { try await engine.moveKey(ringed.id, toRing: "no-such-ring", context: alice) }
        var ringOne = alice
        ringOne.keyRingID = "ring-1"
        try await engine.moveKey(ringed.id, toRing: "default", context: ringOne)
        try await engine.deleteKeyRing("ring-1", context: alice)
        #expect(try await engine.keyRings(context: alice).map(\.id) == ["default"])
    }
}
