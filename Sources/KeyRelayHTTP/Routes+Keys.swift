import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay

extension KeyProtectAPI {
    // MARK: Collection

    func keyQuery(_ request: Request, operation: String) throws -> KeyQuery {
        let query = Query(request: request, operation: operation)
        // The grammar of filter, search and sort is the core's; this only hands the strings over.
        var keys = try KeyQuery(states: try query.states(), extractable: try query.bool("extractable"),
                                filter: query.formString("filter"), search: query.formString("search"),
                                sort: query.formString("sort"), operation: operation)
        keys.limit = try query.int("limit", default: 200)
        keys.offset = try query.int("offset", default: 0)
        return keys
    }

    func headKeys(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        var query = try keyQuery(request, operation: "Keys could not be retrieved")
        query.limit = 1
        query.offset = 0
        let listing = try await engine.searchKeys(query, context: try context.caller)
        return emptyResponse(.ok, headers: [.keyTotal: String(listing.page.total)])
    }

    func listKeys(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let query = try keyQuery(request, operation: "Keys could not be retrieved")
        let listing = try await engine.searchKeys(query, context: try context.caller)
        let now = self.now
        let body = KeyListRepresentation(resources: listing.page.items.map { wire.key($0, now: now) }, search: listing.search,
                                         incompleteSearch: listing.incompleteSearch)
        return try WireResponse(.ok, body).response(from: request, context: context)
    }

    /// A key collection answer (`application/json`, or the vendor type where the official client needs it).
    func keys(_ status: HTTPResponse.Status, _ keys: [KeyRepresentation], _ request: Request, _ context: KeyRelayRequestContext,
              contentType: String = MediaTypes.json) throws -> Response {
        try WireResponse(status, WireCollection(MediaTypes.key, keys), contentType: contentType).response(from: request, context: context)
    }

    // MARK: Create

    func createKey(_ request: Request, _ context: KeyRelayRequestContext, overrides: Bool) async throws -> Response {
        let op = KeyCreateRequest.operation
        let caller = try context.caller
        let resource = try await request.decode(as: KeyCreateRequest.self, context: context).resource()
        var spec = KeySpec(name: resource.name)
        spec.description = resource.description
        spec.tags = resource.tags ?? []
        spec.aliases = resource.aliases ?? []
        spec.extractable = resource.extractable?.value ?? false
        spec.expirationDate = try resource.expirationDate.map { try date($0, field: "expirationDate", operation: op) }
        switch try KeyMaterialFields(payload: resource.payload, encryptedNonce: resource.encryptedNonce, iv: resource.iv,
                                     encryptionAlgorithm: resource.encryptionAlgorithm).material(operation: op) {
        case .none: break
        case .plain(let payload): spec.payload = payload
        case .encrypted(let encrypted): spec.encryptedPayload = encrypted
        }
        if overrides {
            if let dual = resource.dualAuthDelete { spec.dualAuthDelete = dual.enabled?.value }
            if let rotation = resource.rotation {
                spec.rotation = RotationPolicy(enabled: rotation.enabled?.value ?? true, intervalMonth: rotation.intervalMonth?.value ?? 1)
            }
        }
        // The key ring is the caller's scope (`X-Kms-Key-Ring`), applied by the engine.
        let key = try await engine.createKey(spec, context: caller)
        context.auditNote?.keyID = key.id
        // No body, so no Content-Type either: an empty body is not JSON of any media type.
        if Self.prefersMinimal(request) { return emptyResponse(.created) }
        // The vendor type matters: the official Python client then hands the caller the raw response.
        return try keys(.created, [wire.key(key, now: now)], request, context, contentType: MediaTypes.key)
    }

    // MARK: Read

    func getKey(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let found = try await engine.keyWithPayload(try context.parameters.require("id"), context: try context.caller)
        return try keys(.ok, [wire.key(found.key, now: now, payload: found.payload)], request, context)
    }

    func getMetadata(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let key = try await engine.key(try context.parameters.require("id"), context: try context.caller)
        return try keys(.ok, [wire.key(key, now: now)], request, context)
    }

    func versions(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let query = Query(request: request, operation: "KeyVersion(s) could not be retrieved")
        let page = try await engine.versions(try context.parameters.require("id"), limit: try query.int("limit", default: 200),
                                             offset: try query.int("offset", default: 0),
                                             allKeyStates: try query.bool("allKeyStates") ?? false, context: try context.caller)
        let total = try query.bool("totalCount") == true ? page.total : nil
        return try WireResponse(.ok, WireCollection(MediaTypes.keyVersion, page.items.map(KeyVersionRepresentation.init), totalCount: total))
            .response(from: request, context: context)
    }

    // MARK: Change

    func patchKey(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let caller = try context.caller
        let patch = try await request.decode(as: KeyPatchRequest.self, context: context)
        // The scope (`X-Kms-Key-Ring`) must name the key's current ring: the engine checks it with the move.
        let key = try await engine.moveKey(try context.parameters.require("id"), toRing: patch.keyRingID, context: caller)
        return try keys(.ok, [wire.key(key, now: now)], request, context)
    }

    func deleteKey(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let force = try Query(request: request, operation: KeyAction.delete.operation).bool("force") ?? false
        let key = try await engine.delete(try context.parameters.require("id"), force: force, context: try context.caller)
        if Self.prefersMinimal(request) { return emptyResponse(.noContent) }
        return try keys(.ok, [wire.key(key, now: now)], request, context)
    }

    func purge(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let key = try await engine.purge(try context.parameters.require("id"), context: try context.caller)
        if Self.prefersMinimal(request) { return emptyResponse(.noContent) }
        return try keys(.ok, [wire.key(key, now: now)], request, context)
    }

    func restore(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let key = try await engine.restore(try context.parameters.require("id"), context: try context.caller)
        if Self.prefersMinimal(request) { return emptyResponse(.created) }
        return try keys(.created, [wire.key(key, now: now)], request, context)
    }

    // MARK: Actions

    func wrap(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let caller = try context.caller
        let body = try await request.decodeIfPresent(WrapRequest.self, context: context)
        let plaintext = try body?.plaintext.map { try base64($0, field: "plaintext", operation: WrapRequest.operation) }
        let result = try await engine.wrap(try context.parameters.require("id"), plaintext: plaintext, aad: body?.aad ?? [], context: caller)
        return try WireResponse(.ok, WrapResponse(plaintext: result.plaintext?.base64EncodedString(), ciphertext: result.ciphertext,
                                                  keyVersion: KeyVersionReference(id: result.keyVersion.id)),
                                contentType: MediaTypes.key).response(from: request, context: context)
    }

    func unwrap(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let caller = try context.caller
        let body = try await request.decode(as: UnwrapRequest.self, context: context)
        let result = try await engine.unwrap(try context.parameters.require("id"), ciphertext: body.ciphertext, aad: body.aad ?? [], context: caller)
        var answer = UnwrapResponse(plaintext: result.plaintext.base64EncodedString(), keyVersion: KeyVersionReference(id: result.keyVersion.id))
        // Made by an older version: the answer also carries the ciphertext rewrapped under the latest one.
        if let rewrapped = result.rewrappedCiphertext, let version = result.rewrappedKeyVersion {
            answer.ciphertext = rewrapped
            answer.rewrappedKeyVersion = KeyVersionReference(id: version.id)
        }
        return try WireResponse(.ok, answer).response(from: request, context: context)
    }

    func rewrap(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let caller = try context.caller
        let body = try await request.decode(as: RewrapRequest.self, context: context)
        let result = try await engine.rewrap(try context.parameters.require("id"), ciphertext: body.ciphertext, aad: body.aad ?? [], context: caller)
        return try WireResponse(.ok, RewrapResponse(ciphertext: result.ciphertext, keyVersion: KeyVersionReference(id: result.keyVersion.id),
                                                    rewrappedKeyVersion: KeyVersionReference(id: result.rewrappedKeyVersion.id)))
            .response(from: request, context: context)
    }

    func rotate(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let caller = try context.caller
        let body = try await request.decodeIfPresent(RotateRequest.self, context: context)
        var payload: Data?
        var encrypted: EncryptedKeyMaterial?
        switch try body?.material.material(operation: RotateRequest.operation) ?? .none {
        case .none: break
        case .plain(let data): payload = data
        case .encrypted(let material): encrypted = material
        }
        try await engine.rotate(try context.parameters.require("id"), payload: payload, encryptedPayload: encrypted, context: caller)
        return emptyResponse(.noContent)
    }

    func manageAction(_ name: String, _ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let caller = try context.caller
        switch name {
        case "enable": try await engine.enable(id, context: caller)
        case "disable": try await engine.disable(id, context: caller)
        case "setKeyForDeletion", "setKeyDeletion": try await engine.setKeyForDeletion(id, context: caller)
        case "unsetKeyForDeletion", "unsetKeyDeletion": try await engine.unsetKeyForDeletion(id, context: caller)
        default:
            // Sync. A refusal inside the cooldown carries its earliest time, which becomes `Retry-After`.
            try await engine.sync(id, context: caller)
        }
        return emptyResponse(.noContent)
    }

    /// `POST /keys/{id}?action=…` (deprecated): the action's own permission, then its handler.
    func deprecatedAction(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = "Action could not be performed on key"
        guard let action = request.uri.queryParameters.get("action"), Self.deprecatedActions.contains(action) else {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'action' must be: one of \(Self.deprecatedActions.joined(separator: ", "))",
                                operation: op, target: ErrorTarget(.queryParam, "action"))
        }
        let permission: AccessPermission = switch action {
        case "wrap", "unwrap", "rewrap": .use
        case "rotate": .rotate
        default: .manage
        }
        var context = context
        context.authorized = try PermissionMiddleware.authorize(context.credentials, permission)
        switch action {
        case "wrap": return try await wrap(request, context)
        case "unwrap": return try await unwrap(request, context)
        case "rewrap": return try await rewrap(request, context)
        case "rotate": return try await rotate(request, context)
        case "restore": return try await restore(request, context)
        default: return try await manageAction(action, request, context)
        }
    }
}
