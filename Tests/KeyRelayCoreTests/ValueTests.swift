import Foundation
import Testing
@testable import KeyRelayCore

@Suite("CRN")
struct CRNTests {
    @Test func cosBucketAndCloudDatabasesCRNsParse() throws {
        let bucket = try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/acct123:inst-1:bucket:invoices")
        #expect(bucket.serviceName == "cloud-object-storage")
        #expect(bucket.resourceType == "bucket")
        #expect(bucket.resource == "invoices")
        let icd = try CRN(parsing: "crn:v1:bluemix:public:databases-for-postgresql:us-south:a/acct123:dep-9::/agentid=1234")
        #expect(icd.serviceName == "databases-for-postgresql")
        #expect(icd.resourceType == "")
        #expect(icd.resource == "/agentid=1234")
        #expect(icd.description == "crn:v1:bluemix:public:databases-for-postgresql:us-south:a/acct123:dep-9::/agentid=1234")
        #expect(try CRN(parsing: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b")).resource == "b")
        #expect(try CRN(parsing: CRN.deployment(account: "a", deployment: "d")).serviceInstance == "d")
    }

    @Test(arguments: [
        "crn:v1:bluemix:public:cloud-object-storage:global:a/acct",            // too few segments
        "urn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b",     // not crn
        "crn:v2:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b",     // version
        "crn:v1::public:cloud-object-storage:global:a/x:i:bucket:b",            // empty cname
        "crn:v1:bluemix::cloud-object-storage:global:a/x:i:bucket:b",           // empty ctype
        "crn:v1:bluemix:public::global:a/x:i:bucket:b",                          // empty service
        "crn:v1:bluemix:public:Cloud Object:global:a/x:i:bucket:b",             // whitespace
        "crn:v1:bluemix:public:cloud-object-storage:global:acct:i:bucket:b",    // scope without a/
        "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:",      // bucket without name
    ])
    func invalidCRNsAreRefusedWithAFieldError(text: String) {
        #expect(throws: KeyRelayError.self) { try CRN(parsing: text) }
        if let error = caught({ _ = try CRN(parsing: text) }) {
            #expect(error.code == .invalidField)
            #expect(error.target == ErrorTarget(.field, "resourceCrn"))
        }
    }

    /// ASCII CRNs are checked on their bytes, the others by Character: for every ASCII character, in the resource
    /// segment and in the service name, the answer is the one the Character rules give (whitespace refused anywhere,
    /// the service name lowercase letters, digits, '-', '_' and '.'), and a non-ASCII whitespace is still refused.
    @Test func asciiCRNsGetTheAnswersOfTheCharacterRules() throws {
        for byte in UInt8(1)..<0x80 {
            let c = Character(Unicode.Scalar(byte))
            let whitespace = c.isWhitespace || c.isNewline
            let inResource = "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b\(c)b"
            #expect((try? CRN(parsing: inResource)) == nil ? whitespace : !whitespace, "byte \(byte) in the resource")
            let serviceCharacter = c.isASCII && (c.isLowercase || c.isNumber || c == "-" || c == "_" || c == ".")
            let inService = "crn:v1:bluemix:public:svc\(c)x:global:a/x:i:thing:b"
            // ':' splits the segments (the CRN is still valid: the extra colon lands in the resource).
            guard c != ":" else { continue }
            #expect((try? CRN(parsing: inService)) != nil ? serviceCharacter && !whitespace : !serviceCharacter || whitespace,
                    "byte \(byte) in the service name")
        }
        #expect(throws: KeyRelayError.self) { try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b\u{00A0}b") }
        #expect(throws: KeyRelayError.self) { try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b\u{2028}b") }
        #expect(try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:caf\u{E9}").resource == "caf\u{E9}")
        #expect(throws: KeyRelayError.self) { try CRN(parsing: "crn:v1:bluemix:public:cloud-obj\u{E9}ct:global:a/x:i:bucket:b") }
        #expect(throws: KeyRelayError.self) { try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:" + String(repeating: "b", count: 460)) }
    }

    /// ASCII CRNs are split on their bytes: the segments are those a `Character` split gives, for segments empty,
    /// full of ':' (the resource keeps them) and scopes with several '/'. A ':' followed by a combining mark is one
    /// Character and stays unsplit (the non-ASCII path): that CRN has too few segments.
    @Test func asciiCRNsSplitAsCharactersDo() throws {
        let samples = [
            "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b",
            "crn:v1:c:t:svc:::::",
            "crn:v1:c:t:svc:loc:a/x/y/z:inst:type:res:with:colons::",
            "crn:v1:c:t:svc:loc::inst::/agentid=1234",
            "crn:v1:c:t:svc:loc:s/:inst:type:res",
            "crn:v1:c:t:svc:loc:a//:inst:type:res",
        ]
        for text in samples {
            let parts = text.split(separator: ":", maxSplits: 9, omittingEmptySubsequences: false).map(String.init)
            let crn = try? CRN(parsing: text)
            let scope = parts[6].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let scopeValid = parts[6].isEmpty || (scope.count == 2 && ["a", "o", "p", "s"].contains(scope[0]) && !scope[1].isEmpty)
            #expect((crn != nil) == scopeValid, "\(text)")
            guard let crn else { continue }
            #expect([crn.cname, crn.ctype, crn.serviceName, crn.location, crn.scope, crn.serviceInstance, crn.resourceType,
                     crn.resource] == Array(parts[2...]), "\(text)")
            #expect(crn.description == text)
        }
        #expect(throws: KeyRelayError.self) { try CRN(parsing: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:\u{301}b") }
    }

    @Test func crnQueriesMatchExactlyOrByTrailingStar() {
        let crn = "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b1"
        #expect(CRN.matches(crn, query: crn))
        #expect(CRN.matches(crn, query: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:*"))
        #expect(!CRN.matches(crn, query: "crn:v1:bluemix:public:cloud-object-storage:global:a/x:i:bucket:b2"))
    }
}

@Suite("Aliases and key rings")
struct AliasTests {
    @Test(arguments: ["ab", "my-alias_1", String(repeating: "a", count: 90)])
    func validAliases(alias: String) throws { try Alias.validate(alias) }

    @Test(arguments: ["a", String(repeating: "a", count: 91), "has space", "dot.ted", "keys", "Versions",
                      "01234567-89ab-4cde-8f01-23456789abcd"])
    func invalidAliases(alias: String) {
        #expect(throws: KeyRelayError.self) { try Alias.validate(alias) }
    }

    @Test func keyRingIDs() throws {
        try KeyRing.validate("ring-1")
        #expect(throws: KeyRelayError.self) { try KeyRing.validate("r") }
        #expect(throws: KeyRelayError.self) { try KeyRing.validate("ring_1") }
    }
}

@Suite("Durations, timestamps, ids, errors")
struct MiscTests {
    @Test func durationsParse() {
        #expect(DurationText.parse("4h") == 14400)
        #expect(DurationText.parse("1h 1s") == 3601)
        #expect(DurationText.parse("1h1s") == 3601)
        #expect(DurationText.parse("30d") == Double(30 * 86400))
        #expect(DurationText.parse("90m") == 5400)
        #expect(DurationText.parse("500ms") == 0.5)
        #expect(DurationText.parse("") == nil)
        #expect(DurationText.parse("4 h") == nil)
        #expect(DurationText.parse("4x") == nil)
        #expect(DurationText.parse("h") == nil)
        #expect(DurationText.goStyle(4 * 3600) == "4h0m0s")
        #expect(DurationText.goStyle(30) == "30s")
    }

    @Test func timestampsAreRFC3339InUTC() {
        #expect(Timestamp.format(t0) == "2026-01-01T00:00:00Z")
        #expect(Timestamp.parse("2026-01-01T00:00:00Z") == t0)
        #expect(Timestamp.parse("2026-01-01T00:00:00.500Z") == t0.addingTimeInterval(0.5))
        #expect(Timestamp.parse("yesterday") == nil)
    }

    @Test func seededIdentifiersAreReproducibleV4UUIDs() {
        let a = SeededIdentifiers(seed: 42), b = SeededIdentifiers(seed: 42), c = SeededIdentifiers(seed: 43)
        let first = a.next()
        #expect(first == b.next())
        #expect(first != c.next())
        #expect(Alias.isUUID(first))
        #expect(Array(first)[14] == "4")
    }

    @Test func manualClockOnlyMovesWhenTold() {
        let clock = ManualClock(start: t0)
        #expect(clock.now() == t0)
        clock.advance(by: 3601)
        #expect(clock.now() == t0.addingTimeInterval(3601))
        clock.set(to: t0.addingTimeInterval(7200))
        #expect(clock.now() == t0.addingTimeInterval(7200))
    }

    @Test func everyReasonCodeHasKeyProtectsStatus() {
        #expect(ReasonCode.keyNotFound.status == 404)
        #expect(ReasonCode.keyDeleted.status == 410)
        #expect(ReasonCode.requestTooEarly.status == 409)
        #expect(ReasonCode.protectedResource.status == 409)
        #expect(ReasonCode.preventKeyDeletion.status == 409)
        #expect(ReasonCode.keyRestoreExpired.status == 400)
        #expect(ReasonCode.unprocessableCiphertext.status == 422)
        #expect(ReasonCode.serviceOnly.status == 403)
        #expect(ReasonCode.unauthorized.status == 401)
    }

    @Test func errorsMatchTheirReasonCodeInACatchClause() {
        func refuse() throws { throw KeyRelayError(.requestTooEarly, "later") }
        var matched = false
        do { try refuse() } catch KeyRelayError.keyNotFound {
            Issue.record("matched another reason code")
        } catch KeyRelayError.requestTooEarly {
            matched = true
        } catch {
            Issue.record("did not match its reason code")
        }
        #expect(matched)
    }

    @Test func driftComparesAcknowledgedStateAndVersionWithTheKey() throws {
        var key = makeKey()
        var registration = Registration(keyID: key.id, instanceID: key.instanceID,
                                        resourceCRN: try CRN(parsing: CRN.bucket(account: "a", serviceInstance: "s", bucket: "b")),
                                        keyVersion: key.currentVersion, createdBy: "cos", creationDate: t0)
        #expect(!registration.isDrifted(from: key))
        key.state = .destroyed
        #expect(registration.isDrifted(from: key))
        registration.acknowledgement = Acknowledgement(eventID: "e", adopterKeyState: .deleted, keyVersionID: nil, processedAt: t0, receivedAt: t0)
        #expect(!registration.isDrifted(from: key))
        key.state = .active
        key.currentVersion = KeyVersion(id: "v2", creationDate: t0)
        registration.acknowledgement = Acknowledgement(eventID: "e2", adopterKeyState: .enabled, keyVersionID: "v1", processedAt: t0, receivedAt: t0)
        #expect(registration.isDrifted(from: key))
    }
}
