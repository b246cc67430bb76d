import Foundation
import Hummingbird
import KeyRelay

extension KeyProtectAPI {
    // MARK: Key policies

    func getPolicies(_ request: Request, id: String) async throws -> Response {
        let op = "Key policies could not be retrieved"
        let caller = try authorize(request, .read)
        try await checkRing(caller, key: id, operation: op)
        let only = try policyName(request, operation: op)
        let key = try await engine.key(id, context: caller.context)
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.policy, wire.policies(key, only: only)))
    }

    func policyName(_ request: Request, operation: String) throws -> String? {
        guard let name = request.uri.queryParameters.get("policy") else { return nil }
        guard ["dualAuthDelete", "rotation"].contains(name) else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'policy' must be: dualAuthDelete or rotation", operation: operation,
                                target: ErrorTarget(.queryParam, "policy"))
        }
        return name
    }

    func putPolicies(_ request: Request, _ context: BasicRequestContext, id: String) async throws -> Response {
        let op = "Key policies could not be set"
        let caller = try authorize(request, .manage)
        try await checkRing(caller, key: id, operation: op)
        let only = try policyName(request, operation: op)
        guard let body = try await Body.read(request, context: context, operation: op) else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        let resources = try body.resources(single: false)
        guard (1...2).contains(resources.count) else {
            throw KeyRelayError(.numCollectionResource, "Only a single policy of each type may be set per request: Please pass one or two resource objects", operation: op)
        }
        var rotation: RotationPolicy?
        var dualAuth: Bool?
        for resource in resources {
            let fields = Fields(object: resource, operation: op)
            if let policy = try fields.object("rotation") {
                guard only == nil || only == "rotation" else {
                    throw KeyRelayError(.bodyQueryParamMismatch, "Data in body does not match data required by query parameter", operation: op)
                }
                rotation = RotationPolicy(enabled: try policy.bool("enabled") ?? true, intervalMonth: try policy.int("interval_month") ?? 1)
            }
            if let policy = try fields.object("dualAuthDelete") {
                guard only == nil || only == "dualAuthDelete" else {
                    throw KeyRelayError(.bodyQueryParamMismatch, "Data in body does not match data required by query parameter", operation: op)
                }
                dualAuth = try policy.bool("enabled") ?? false
            }
        }
        guard rotation != nil || dualAuth != nil else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: a resource needs a rotation or dualAuthDelete object",
                                operation: op)
        }
        let key = try await engine.setPolicies(id, rotation: rotation, dualAuthDelete: dualAuth, context: caller.context)
        let touched = only ?? (rotation != nil && dualAuth != nil ? nil : (rotation != nil ? "rotation" : "dualAuthDelete"))
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.policy, wire.policies(key, only: touched)))
    }

    // MARK: Instance

    func getInstancePolicies(_ request: Request) async throws -> Response {
        let caller = try authorize(request, .read)
        var policies = try await engine.instancePolicies(context: caller.context)
        if let only = request.uri.queryParameters.get("policy") { policies = policies.filter { $0.policyType == only } }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.policy, policies.map(wire.instancePolicy)))
    }

    func putInstancePolicies(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let op = "Instance policy could not be created"
        let caller = try authorize(request, .manage)
        let only = request.uri.queryParameters.get("policy")
        guard let body = try await Body.read(request, context: context, operation: op) else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        let resources = try body.resources(single: only != nil)
        var updates: [(String, Bool, String?)] = []
        for resource in resources {
            let fields = Fields(object: resource, operation: op)
            guard let type = try fields.string("policy_type", required: true) else { continue }
            if let only, only != type {
                throw KeyRelayError(.bodyQueryParamMismatch, "Data in body does not match data required by query parameter: policy=\(only) but policy_type is \(type)",
                                    operation: op)
            }
            guard let data = try fields.object("policy_data") else {
                throw KeyRelayError(.invalidField, "The field 'policy_data' must be: an object with 'enabled'", operation: op,
                                    target: ErrorTarget(.field, "policy_data"))
            }
            let enabled = try data.bool("enabled") ?? false
            var attributesJSON: String?
            if let attributes = data.object["attributes"] {
                attributesJSON = String(decoding: Wire.data(attributes), as: UTF8.self)
            }
            updates.append((type, enabled, attributesJSON))
        }
        for (type, enabled, attributes) in updates {
            try await engine.setInstancePolicy(type: type, enabled: enabled, attributesJSON: attributes, context: caller.context)
        }
        return Wire.empty(.noContent)
    }

    func allowedIPPort(_ request: Request) async throws -> Response {
        _ = try authorize(request, .read)
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.allowedIP, [["private_endpoint_port": privateEndpointPort]]))
    }

    // MARK: Registrations

    func listRegistrations(_ request: Request, keyID: String?) async throws -> Response {
        let op = "Registrations could not be retrieved"
        let caller = try authorize(request, .read)
        if let keyID { try await checkRing(caller, key: keyID, operation: op) }
        let query = Query(request: request, operation: op)
        let filter = RegistrationFilter(crnQuery: query.string("urlEncodedResourceCRNQuery"),
                                        preventKeyDeletion: try query.bool("preventKeyDeletion"))
        let page = try await engine.registrations(keyID: keyID, filter: filter, limit: try query.int("limit", default: 200),
                                                  offset: try query.int("offset", default: 0), context: caller.context)
        var names: [String: String] = [:]
        for id in Set(page.items.map(\.keyID)) {
            names[id] = try? await engine.key(id, context: caller.context).name
        }
        var extra: [String: Any] = [:]
        if try query.bool("totalCount") == true { extra["totalCount"] = page.total }
        let isService = caller.grant.allows(.service)
        let resources = page.items.map { wire.registration($0, keyName: names[$0.keyID], includeMetadata: isService) }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.registration, resources, extra: extra))
    }

    /// The resource CRN of `/keys/{id}/registrations/{urlEncodedResourceCRN}`, percent-decoded.
    func resourceCRN(_ request: Request, keyID: String) throws -> String {
        let raw = request.uri.path
        guard let range = raw.range(of: "/registrations/") else {
            throw KeyRelayError(.invalidField, "The path must end with the URL-encoded resource CRN", operation: KeyRelayEngine.registrationOperation)
        }
        let encoded = String(raw[range.upperBound...])
        return encoded.removingPercentEncoding ?? encoded
    }

    func saveRegistration(_ method: HTTPRequest.Method, _ request: Request, _ context: BasicRequestContext, id: String) async throws -> Response {
        let op = KeyRelayEngine.registrationOperation
        let caller = try authorize(request, .service)
        try await checkRing(caller, key: id, operation: op)
        let crn = try resourceCRN(request, keyID: id)
        if method == .delete {
            try await engine.unregister(keyID: id, resourceCRN: crn, context: caller.context)
            return Wire.empty(.noContent)
        }
        var input = RegistrationInput()
        if let body = try await Body.read(request, context: context, operation: op, required: method != .post) {
            let fields = Fields(object: try body.resources()[0], operation: op)
            input.description = try fields.string("description")
            input.registrationMetadata = try fields.string("registrationMetadata")
            input.preventKeyDeletion = try fields.bool("preventKeyDeletion")
            input.keyVersionID = try fields.string("keyVersionId")
        }
        let registration: Registration
        let status: HTTPResponse.Status
        switch method {
        case .post:
            registration = try await engine.register(keyID: id, resourceCRN: crn, input: input, context: caller.context)
            status = .created
        case .put:
            registration = try await engine.replaceRegistration(keyID: id, resourceCRN: crn, input: input, context: caller.context)
            status = .ok
        default:
            registration = try await engine.updateRegistration(keyID: id, resourceCRN: crn, input: input, context: caller.context)
            status = .ok
        }
        let name = try? await engine.key(registration.keyID, context: caller.context).name
        return Wire.response(status, json: Wire.envelope(MediaTypes.registration,
                                                         [wire.registration(registration, keyName: name, includeMetadata: true)]))
    }

    func eventAck(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let op = "Event could not be acknowledged"
        let caller = try authorize(request, .service)
        guard let body = try await Body.read(request, context: context, operation: op) else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        let fields = Fields(object: try body.resources()[0], operation: op)
        guard let eventID = try fields.string("eventId", required: true),
              let stateText = try fields.string("adopterKeyState", required: true),
              let timestamp = try fields.date("timestamp") else {
            throw KeyRelayError(.invalidField, "The field 'timestamp' must be: an RFC 3339 date (it is required)", operation: op,
                                target: ErrorTarget(.field, "timestamp"))
        }
        guard let state = AdopterKeyState(rawValue: stateText) else {
            throw KeyRelayError(.invalidField, "The field 'adopterKeyState' must be: one of \(AdopterKeyState.allCases.map(\.rawValue).joined(separator: ", "))",
                                operation: op, target: ErrorTarget(.field, "adopterKeyState"))
        }
        let keyStateData = try fields.object("keyStateData")
        let version = try keyStateData?.string("rewrappedKeyVersion") ?? keyStateData?.string("keyVersion")
        var crn = try fields.string("resourceCrn")
        if crn == nil {
            // KeyRelay extension: the resource is named by `resourceCrn`; without it, the event's key must have
            // exactly one registration.
            guard let event = try await engine.event(id: eventID, context: caller.context) else {
                throw KeyRelayError(.notFound, "No event with id '\(eventID)' exists in this instance", operation: op,
                                    target: ErrorTarget(.field, "eventId"))
            }
            let registrations = try await engine.registrations(keyID: event.keyID, limit: 2, context: caller.context)
            guard registrations.items.count == 1 else {
                throw KeyRelayError(.invalidField, "The field 'resourceCrn' must be: the CRN of the acknowledging resource (a KeyRelay extension); it may be omitted only when the event's key has exactly one registration, and this key has \(registrations.total)",
                                    operation: op, target: ErrorTarget(.field, "resourceCrn"))
            }
            crn = registrations.items[0].resourceCRN
        }
        try await engine.acknowledge(EventAcknowledgement(eventID: eventID, resourceCRN: crn!, adopterKeyState: state, keyVersionID: version,
                                                          timestamp: timestamp, deleteRegistration: try fields.bool("deleteRegistration") ?? false),
                                     context: caller.context)
        return Wire.empty(.noContent)
    }

    // MARK: Aliases

    func createAlias(_ request: Request, id: String, alias: String) async throws -> Response {
        let caller = try authorize(request, .manage)
        try await checkRing(caller, key: id, operation: "Key alias could not be created")
        let record = try await engine.createAlias(alias, for: id, context: caller.context)
        return Wire.response(.created, json: Wire.envelope(MediaTypes.alias, [[
            "keyId": record.keyID, "alias": record.alias, "createdBy": record.createdBy,
            "creationDate": Timestamp.format(record.creationDate),
        ]]))
    }

    func deleteAlias(_ request: Request, id: String, alias: String) async throws -> Response {
        let caller = try authorize(request, .manage)
        try await checkRing(caller, key: id, operation: "Key alias could not be deleted")
        try await engine.deleteAlias(alias, from: id, context: caller.context)
        return Wire.empty(.noContent)
    }

    // MARK: Key rings

    func listKeyRings(_ request: Request) async throws -> Response {
        let op = "Key rings could not be retrieved"
        let caller = try authorize(request, .read)
        let query = Query(request: request, operation: op)
        let limit = try query.int("limit", default: 100)
        let offset = try query.int("offset", default: 0)
        try KeyRelayEngine.validatePaging(limit: limit, offset: offset, operation: op)
        let rings = try await engine.keyRings(context: caller.context)
        let page = rings.dropFirst(offset).prefix(limit).map { ring -> [String: Any] in
            var object: [String: Any] = ["id": ring.id]
            if let date = ring.creationDate { object["creationDate"] = Timestamp.format(date) }
            if let by = ring.createdBy { object["createdBy"] = by }
            return object
        }
        var extra: [String: Any] = [:]
        if try query.bool("totalCount") == true { extra["totalCount"] = rings.count }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.keyRing, Array(page), extra: extra))
    }

    func createKeyRing(_ request: Request, ring: String) async throws -> Response {
        let caller = try authorize(request, .manage)
        try await engine.createKeyRing(ring, context: caller.context)
        return Wire.empty(.created)
    }

    func deleteKeyRing(_ request: Request, ring: String) async throws -> Response {
        let caller = try authorize(request, .manage)
        let force = try Query(request: request, operation: "Key ring could not be deleted").bool("force") ?? false
        try await engine.deleteKeyRing(ring, force: force, context: caller.context)
        return Wire.empty(.noContent)
    }

    // MARK: Import token

    func createImportToken(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let op = ImportTokenStore.createOp
        let caller = try authorize(request, .create)
        let fields = try await Body.read(request, context: context, operation: op, required: false).map { Fields(object: $0.object, operation: op) }
        let token = try await importTokens.create(instanceID: caller.context.instanceID, expiration: try fields?.int("expiration") ?? 600,
                                                  maxAllowedRetrievals: try fields?.int("maxAllowedRetrievals") ?? 1, now: now)
        return Wire.response(.ok, json: [
            "expiration": token.expiration, "maxAllowedRetrievals": token.maxAllowedRetrievals,
            "remainingRetrievals": token.remainingRetrievals, "creationDate": Timestamp.format(token.creationDate),
            "expirationDate": Timestamp.format(token.expirationDate),
        ])
    }

    func getImportToken(_ request: Request) async throws -> Response {
        let caller = try authorize(request, .create)
        let token = try await importTokens.retrieve(instanceID: caller.context.instanceID, now: now)
        return Wire.response(.ok, json: [
            "expiration": token.expiration, "maxAllowedRetrievals": token.maxAllowedRetrievals,
            "remainingRetrievals": token.remainingRetrievals, "creationDate": Timestamp.format(token.creationDate),
            "expirationDate": Timestamp.format(token.expirationDate),
            "payload": Data(token.publicKeyPEM.utf8).base64EncodedString(), "nonce": token.nonce.base64EncodedString(),
        ])
    }

    // MARK: Dev clock (KeyRelay extension)

    func readClock(_ request: Request) async throws -> Response {
        _ = try authorize(request, .read, instance: false)
        return Wire.response(.ok, json: ["now": Timestamp.format(now)])
    }

    func moveClock(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let op = "Clock could not be moved"
        _ = try authorize(request, .manage, instance: false)
        guard let clock = devClock else { throw KeyRelayError(.notFound, "The dev clock is off: start serve with --dev --manual-clock", operation: op) }
        guard let body = try await Body.read(request, context: context, operation: op) else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        let fields = Fields(object: body.object, operation: op)
        let interval: TimeInterval
        if let text = try fields.string("advance") {
            guard let parsed = DurationText.parse(text) else {
                throw KeyRelayError(.invalidField, "The field 'advance' must be: a duration such as \"1h 1s\", \"31s\" or \"4h\"", operation: op,
                                    target: ErrorTarget(.field, "advance"))
            }
            interval = parsed
        } else if let text = try fields.string("set") {
            guard let date = Timestamp.parse(text) else {
                throw KeyRelayError(.invalidField, "The field 'set' must be: an RFC 3339 date, e.g. 2026-01-01T00:00:00Z", operation: op,
                                    target: ErrorTarget(.field, "set"))
            }
            interval = date.timeIntervalSince(clock.now())
            guard interval >= 0 else {
                throw KeyRelayError(.invalidField, "The field 'set' must be: not earlier than the clock's current time \(Timestamp.format(clock.now())) (the clock only moves forward)",
                                    operation: op, target: ErrorTarget(.field, "set"))
            }
        } else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: send {\"advance\": \"1h 1s\"} or {\"set\": \"<RFC 3339>\"}", operation: op)
        }
        try await background.advance(clock, by: interval)
        return Wire.response(.ok, json: ["now": Timestamp.format(clock.now())])
    }
}
