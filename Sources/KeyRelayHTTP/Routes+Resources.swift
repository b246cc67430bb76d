import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay

extension KeyProtectAPI {
    // MARK: Key policies

    func getPolicies(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = "Key policies could not be retrieved"
        let only = try policyName(request, operation: op)
        let key = try await engine.key(try context.parameters.require("id"), context: try context.caller)
        return try WireResponse(.ok, WireCollection(MediaTypes.policy, wire.policies(key, only: only))).response(from: request, context: context)
    }

    func policyName(_ request: Request, operation: String) throws -> String? {
        guard let name = request.uri.queryParameters.get("policy") else { return nil }
        guard ["dualAuthDelete", "rotation"].contains(name) else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'policy' must be: dualAuthDelete or rotation", operation: operation,
                                target: ErrorTarget(.queryParam, "policy"))
        }
        return String(name)
    }

    func putPolicies(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = KeyPolicyRequest.operation
        let caller = try context.caller
        let only = try policyName(request, operation: op)
        let resources = try await request.decode(as: KeyPolicyRequest.self, context: context).envelope.resources
        guard (1...2).contains(resources.count) else {
            throw KeyRelayError(.numCollectionResource, WireFailure.singleResourceMessage, operation: op,
                                hint: "only a single policy of each type may be set per request: pass one or two resource objects")
        }
        var rotation: RotationPolicy?
        var dualAuth: Bool?
        for resource in resources {
            if let policy = resource.rotation {
                guard only == nil || only == "rotation" else {
                    throw KeyRelayError(.bodyQueryParamMismatch, "Data in body does not match data required by query parameter", operation: op)
                }
                rotation = RotationPolicy(enabled: policy.enabled?.value ?? true, intervalMonth: policy.intervalMonth?.value ?? 1)
            }
            if let policy = resource.dualAuthDelete {
                guard only == nil || only == "dualAuthDelete" else {
                    throw KeyRelayError(.bodyQueryParamMismatch, "Data in body does not match data required by query parameter", operation: op)
                }
                dualAuth = policy.enabled?.value ?? false
            }
        }
        guard rotation != nil || dualAuth != nil else {
            throw KeyRelayError(.badBody, KeyRelayEngine.badBodyMessage, operation: op,
                                hint: "a resource needs a rotation or dualAuthDelete object")
        }
        let key = try await engine.setPolicies(try context.parameters.require("id"), rotation: rotation, dualAuthDelete: dualAuth, context: caller)
        let touched = only ?? (rotation != nil && dualAuth != nil ? nil : (rotation != nil ? "rotation" : "dualAuthDelete"))
        return try WireResponse(.ok, WireCollection(MediaTypes.policy, wire.policies(key, only: touched))).response(from: request, context: context)
    }

    // MARK: Instance

    func getInstancePolicies(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        var policies = try await engine.instancePolicies(context: try context.caller)
        if let only = request.uri.queryParameters.get("policy") { policies = policies.filter { $0.policyType == only } }
        return try WireResponse(.ok, WireCollection(MediaTypes.policy, policies.map(wire.instancePolicy))).response(from: request, context: context)
    }

    func putInstancePolicies(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = InstancePolicyRequest.operation
        let caller = try context.caller
        let only = request.uri.queryParameters.get("policy")
        let envelope = try await request.decode(as: InstancePolicyRequest.self, context: context).envelope
        let resources = only != nil ? [try envelope.single(op)] : envelope.resources
        var updates: [(String, Bool, String?)] = []
        for resource in resources {
            let type = resource.policyType
            if let only, only != type {
                throw KeyRelayError(.bodyQueryParamMismatch, "Data in body does not match data required by query parameter",
                                    operation: op, hint: "policy=\(only) but policy_type is \(type)")
            }
            guard let data = resource.policyData else {
                throw KeyRelayError(.invalidField, "The field 'policy_data' must be: an object with 'enabled'", operation: op,
                                    target: ErrorTarget(.field, "policy_data"))
            }
            let attributes = data.attributes.map { String(buffer: WireJSON.encode($0)) }
            updates.append((type, data.enabled?.value ?? false, attributes))
        }
        for (type, enabled, attributes) in updates {
            try await engine.setInstancePolicy(type: type, enabled: enabled, attributesJSON: attributes, context: caller)
        }
        return emptyResponse(.noContent)
    }

    // MARK: Registrations

    func listRegistrations(_ request: Request, _ context: KeyRelayRequestContext, keyID: String?) async throws -> Response {
        let op = "Registrations could not be retrieved"
        let caller = try context.caller
        let query = Query(request: request, operation: op)
        let filter = RegistrationFilter(crnQuery: query.string("urlEncodedResourceCRNQuery"),
                                        preventKeyDeletion: try query.bool("preventKeyDeletion"))
        let page = try await engine.registrations(keyID: keyID, filter: filter, limit: try query.int("limit", default: 200),
                                                  offset: try query.int("offset", default: 0), context: caller)
        var names: [String: String] = [:]
        for id in Set(page.items.map(\.keyID)) {
            names[id] = try? await engine.key(id, context: caller).name
        }
        let total = try query.bool("totalCount") == true ? page.total : nil
        let isService = context.grant?.allows(.service) ?? false
        let resources = page.items.map { wire.registration($0, keyName: names[$0.keyID], includeMetadata: isService) }
        return try WireResponse(.ok, WireCollection(MediaTypes.registration, resources, totalCount: total)).response(from: request, context: context)
    }

    /// The resource CRN of `/keys/{id}/registrations/{urlEncodedResourceCRN}`, percent-decoded.
    func resourceCRN(_ request: Request) throws -> String {
        let raw = request.uri.path
        guard let range = raw.range(of: "/registrations/") else {
            throw KeyRelayError(.invalidField, "The path must end with the URL-encoded resource CRN", operation: KeyRelayEngine.registrationOperation)
        }
        let encoded = String(raw[range.upperBound...])
        return encoded.removingPercentEncoding ?? encoded
    }

    func saveRegistration(_ method: HTTPRequest.Method, _ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = RegistrationInputRequest.operation
        let caller = try context.caller
        let id = try context.parameters.require("id")
        let crn = try resourceCRN(request)
        if method == .delete {
            try await engine.unregister(keyID: id, resourceCRN: crn, context: caller)
            return emptyResponse(.noContent)
        }
        var input = RegistrationInput()
        let body = method == .post ? try await request.decodeIfPresent(RegistrationInputRequest.self, context: context)
                                   : try await request.decode(as: RegistrationInputRequest.self, context: context)
        if let resource = try body?.envelope.single(op) {
            input.description = resource.description
            input.registrationMetadata = resource.registrationMetadata
            input.preventKeyDeletion = resource.preventKeyDeletion?.value
            input.keyVersionID = resource.keyVersionId
        }
        let registration: Registration
        let status: HTTPResponse.Status
        switch method {
        case .post:
            registration = try await engine.register(keyID: id, resourceCRN: crn, input: input, context: caller)
            status = .created
        case .put:
            registration = try await engine.replaceRegistration(keyID: id, resourceCRN: crn, input: input, context: caller)
            status = .ok
        default:
            registration = try await engine.updateRegistration(keyID: id, resourceCRN: crn, input: input, context: caller)
            status = .ok
        }
        let name = try? await engine.key(registration.keyID, context: caller).name
        return try WireResponse(status, WireCollection(MediaTypes.registration,
                                                   [wire.registration(registration, keyName: name, includeMetadata: true)]))
            .response(from: request, context: context)
    }

    func eventAck(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = EventAcknowledgeRequest.operation
        let caller = try context.caller
        let resource = try await request.decode(as: EventAcknowledgeRequest.self, context: context).envelope.single(op)
        guard let text = resource.timestamp else {
            throw KeyRelayError(.invalidField, "The field 'timestamp' must be: an RFC 3339 date (it is required)", operation: op,
                                target: ErrorTarget(.field, "timestamp"))
        }
        let timestamp = try date(text, field: "timestamp", operation: op)
        guard let state = AdopterKeyState(rawValue: resource.adopterKeyState) else {
            throw KeyRelayError(.invalidField, "The field 'adopterKeyState' must be: one of \(AdopterKeyState.allCases.map(\.rawValue).joined(separator: ", "))",
                                operation: op, target: ErrorTarget(.field, "adopterKeyState"))
        }
        // Without `resourceCrn` (Key Protect's body has none), the engine resolves the resource from the event.
        try await engine.acknowledge(eventID: resource.eventId, resourceCRN: resource.resourceCrn, adopterKeyState: state,
                                     keyVersionID: resource.keyStateData?.rewrappedKeyVersion ?? resource.keyStateData?.keyVersion,
                                     timestamp: timestamp, deleteRegistration: resource.deleteRegistration?.value ?? false, context: caller)
        return emptyResponse(.noContent)
    }

    // MARK: Aliases

    func createAlias(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let record = try await engine.createAlias(try context.parameters.require("alias"), for: try context.parameters.require("id"),
                                                  context: try context.caller)
        return try WireResponse(.created, WireCollection(MediaTypes.alias, [
            AliasRepresentation(keyId: record.keyID, alias: record.alias, createdBy: record.createdBy,
                                creationDate: Timestamp.format(record.creationDate)),
        ])).response(from: request, context: context)
    }

    func deleteAlias(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        try await engine.deleteAlias(try context.parameters.require("alias"), from: try context.parameters.require("id"), context: try context.caller)
        return emptyResponse(.noContent)
    }

    // MARK: Key rings

    func listKeyRings(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let query = Query(request: request, operation: "Key rings could not be retrieved")
        let page = try await engine.keyRings(limit: try query.int("limit", default: 100), offset: try query.int("offset", default: 0),
                                             context: try context.caller)
        let rings = page.items.map { KeyRingRepresentation(id: $0.id, creationDate: $0.creationDate.map(Timestamp.format), createdBy: $0.createdBy) }
        let total = try query.bool("totalCount") == true ? page.total : nil
        return try WireResponse(.ok, WireCollection(MediaTypes.keyRing, rings, totalCount: total)).response(from: request, context: context)
    }

    func createKeyRing(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        try await engine.createKeyRing(try context.parameters.require("ring"), context: try context.caller)
        return emptyResponse(.created)
    }

    func deleteKeyRing(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let force = try Query(request: request, operation: "Key ring could not be deleted").bool("force") ?? false
        try await engine.deleteKeyRing(try context.parameters.require("ring"), force: force, context: try context.caller)
        return emptyResponse(.noContent)
    }

    // MARK: Import token

    func createImportToken(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let caller = try context.caller
        let body = try await request.decodeIfPresent(ImportTokenRequest.self, context: context)
        let token = try await engine.createImportToken(expiration: body?.expiration?.value ?? 600,
                                                       maxAllowedRetrievals: body?.maxAllowedRetrievals?.value ?? 1, context: caller)
        return try WireResponse(.ok, ImportTokenRepresentation(token)).response(from: request, context: context)
    }

    func getImportToken(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let retrieved = try await engine.retrieveImportToken(context: try context.caller)
        return try WireResponse(.ok, ImportTokenRepresentation(retrieved.token, retrieved: retrieved)).response(from: request, context: context)
    }

    // MARK: Dev clock (KeyRelay extension)

    func moveClock(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = ClockRequest.operation
        guard let clock = devClock else { throw KeyRelayError(.notFound, "The dev clock is off: start serve with --dev --manual-clock", operation: op) }
        let body = try await request.decode(as: ClockRequest.self, context: context)
        let interval: TimeInterval
        if let text = body.advance {
            guard let parsed = DurationText.parse(text) else {
                throw KeyRelayError(.invalidField, "The field 'advance' must be: a duration such as \"1h 1s\", \"31s\" or \"4h\"", operation: op,
                                    target: ErrorTarget(.field, "advance"))
            }
            interval = parsed
        } else if let text = body.set {
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
            throw KeyRelayError(.badBody, KeyRelayEngine.badBodyMessage, operation: op,
                                hint: "send {\"advance\": \"1h 1s\"} or {\"set\": \"<RFC 3339>\"}")
        }
        guard clock.canAdvance(by: interval) else {
            throw KeyRelayError(.invalidField, "The clock cannot move past \(Timestamp.format(Timestamp.range.upperBound)): every later date would not be RFC 3339",
                                operation: op, target: ErrorTarget(.field, body.advance != nil ? "advance" : "set"))
        }
        try await background.advance(clock, by: interval)
        return try WireResponse(.ok, ClockRepresentation(now: Timestamp.format(clock.now()))).response(from: request, context: context)
    }
}
