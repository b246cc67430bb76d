import Foundation
import Hummingbird
import KeyRelay

extension KeyProtectAPI {
    // MARK: Collection

    func keyQuery(_ request: Request, operation: String) throws -> KeyQuery {
        let query = Query(request: request, operation: operation)
        var keys = KeyQuery()
        if let states = try query.states() { keys.states = states }
        keys.extractable = try query.bool("extractable")
        keys.limit = try query.int("limit", default: 200)
        keys.offset = try query.int("offset", default: 0)
        if let sort = query.string("sort"), !sort.isEmpty {
            let descending = sort.hasPrefix("-")
            let name = descending ? String(sort.dropFirst()) : sort
            guard let field = KeyQuery.SortField(rawValue: name) else {
                throw KeyRelayError(.invalidQueryParam, "The query_param must be: a valid string from one of this [id,creationDate,deletionDate,expirationDate,extractable,imported,lastRotateDate,lastUpdateDate,state] for descending add '-' in the begining of the string",
                                    operation: operation, target: ErrorTarget(.queryParam, "sort"))
            }
            keys.sort = field
            keys.descending = descending
        }
        if let search = query.string("search"), !search.isEmpty {
            // Key Protect's search syntax: optional `not:`, `escape:`, `exact:`, `name:`/`alias:` prefixes. KeyRelay
            // supports a case-insensitive substring of the name or an alias; the prefixes are accepted and dropped.
            var text = Substring(search)
            for prefix in ["not:", "escape:", "exact:", "name:", "alias:"] where text.hasPrefix(prefix) {
                text = text.dropFirst(prefix.count)
            }
            keys.search = String(text)
        }
        if query.string("filter") != nil {
            throw KeyRelayError(.invalidQueryParam, "The query_param 'filter' must be: absent (KeyRelay does not support filter expressions yet; use state, extractable and search)",
                                operation: operation, target: ErrorTarget(.queryParam, "filter"))
        }
        return keys
    }

    func headKeys(_ request: Request) async throws -> Response {
        let caller = try authorize(request, .read)
        var query = try keyQuery(request, operation: "Keys could not be retrieved")
        query.limit = 1
        query.offset = 0
        if let ring = caller.keyRing { query.keyRingID = ring }
        let page = try await engine.listKeys(query, context: caller.context)
        return Wire.empty(.ok, headers: [("Key-Total", String(page.total))])
    }

    func listKeys(_ request: Request) async throws -> Response {
        let caller = try authorize(request, .read)
        var query = try keyQuery(request, operation: "Keys could not be retrieved")
        if let ring = caller.keyRing { query.keyRingID = ring }
        let page = try await engine.listKeys(query, context: caller.context)
        let now = self.now
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.key, page.items.map { wire.key($0, now: now) }))
    }

    // MARK: Create

    func createKey(_ request: Request, _ context: BasicRequestContext, overrides: Bool) async throws -> Response {
        let op = "Key could not be created"
        let caller = try authorize(request, .create)
        guard let body = try await Body.read(request, context: context, operation: op) else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        let resources = try body.resources(single: false)
        guard resources.count == 1 else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: Only creation of one key per request is supported",
                                operation: op)
        }
        let fields = Fields(object: resources[0], operation: op)
        guard let name = try fields.string("name", required: true) else { throw KeyRelayError(.badBody, "name", operation: op) }
        var spec = KeySpec(name: name)
        spec.description = try fields.string("description")
        spec.tags = try fields.strings("tags") ?? []
        spec.aliases = try fields.strings("aliases") ?? []
        spec.extractable = try fields.bool("extractable") ?? false
        spec.expirationDate = try fields.date("expirationDate")
        spec.keyRingID = caller.keyRing ?? KeyRing.defaultID
        spec.payload = try await importedMaterial(fields, caller: caller, operation: op)
        if overrides {
            if let dual = try fields.object("dualAuthDelete") { spec.dualAuthDelete = try dual.bool("enabled") }
            if let rotation = try fields.object("rotation") {
                spec.rotation = RotationPolicy(enabled: try rotation.bool("enabled") ?? true,
                                               intervalMonth: try rotation.int("interval_month") ?? 1)
            }
        }
        let key = try await engine.createKey(spec, context: caller.context)
        if prefersMinimal(request) { return Wire.empty(.created, headers: [("Content-Type", MediaTypes.key)]) }
        // The vendor type matters: the official Python client then hands the caller the raw response.
        return Wire.response(.created, json: Wire.envelope(MediaTypes.key, [wire.key(key, now: now)]), contentType: MediaTypes.key)
    }

    /// The key material of a create or rotate body: plain `payload`, or (with `encryptedNonce` and `iv`) a payload
    /// encrypted to the instance's import token.
    func importedMaterial(_ fields: Fields, caller: Caller, operation: String) async throws -> Data? {
        guard let payload = try fields.base64("payload", requirement: "a base64 encoded key material") else { return nil }
        guard fields.has("encryptedNonce") || fields.has("iv") else { return payload }
        guard let nonce = try fields.base64("encryptedNonce", required: true, requirement: "the base64 encoded nonce encrypted with the key material (AES-GCM)"),
              let iv = try fields.base64("iv", required: true, requirement: "the base64 encoded initialization vector used to encrypt the nonce") else {
            throw KeyRelayError(.badBody, "encryptedNonce and iv are required together", operation: operation)
        }
        let algorithm = try fields.string("encryptionAlgorithm") ?? "RSAES_OAEP_SHA_256"
        return try await importTokens.openPayload(instanceID: caller.context.instanceID, encryptedPayload: payload,
                                                  encryptedNonce: nonce, iv: iv, algorithm: algorithm, now: now, operation: operation)
    }

    // MARK: Read

    func getKey(_ request: Request, id: String) async throws -> Response {
        let caller = try authorize(request, .read)
        try await checkRing(caller, key: id, operation: "Key could not be retrieved")
        let key = try await engine.key(id, context: caller.context)
        var object = wire.key(key, now: now)
        if key.extractable, key.state != .destroyed, let payload = try await engine.payload(key.id, context: caller.context) {
            object["payload"] = payload.base64EncodedString()
        }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.key, [object]))
    }

    func getMetadata(_ request: Request, id: String) async throws -> Response {
        let caller = try authorize(request, .read)
        try await checkRing(caller, key: id, operation: "Key metadata could not be retrieved")
        let key = try await engine.key(id, context: caller.context)
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.key, [wire.key(key, now: now)]))
    }

    func versions(_ request: Request, id: String) async throws -> Response {
        let op = "KeyVersion(s) could not be retrieved"
        let caller = try authorize(request, .read)
        let query = Query(request: request, operation: op)
        try await checkRing(caller, key: id, operation: op)
        let page = try await engine.versions(id, limit: try query.int("limit", default: 200), offset: try query.int("offset", default: 0),
                                             allKeyStates: try query.bool("allKeyStates") ?? false, context: caller.context)
        var extra: [String: Any] = [:]
        if try query.bool("totalCount") == true { extra["totalCount"] = page.total }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.keyVersion, page.items.map(wire.version), extra: extra))
    }

    // MARK: Change

    func patchKey(_ request: Request, _ context: BasicRequestContext, id: String) async throws -> Response {
        let op = "Key could not be patched"
        let caller = try authorize(request, .manage)
        guard let body = try await Body.read(request, context: context, operation: op) else { throw KeyRelayError(.noBody, "Missing body in request", operation: op) }
        // The client sends a plain object; accept an envelope too.
        let object = body.object["resources"] != nil ? try body.resources()[0] : body.object
        guard let target = try Fields(object: object, operation: op).string("keyRingID", required: true) else {
            throw KeyRelayError(.badBody, "keyRingID", operation: op)
        }
        if target != KeyRing.defaultID {
            let rings = try await engine.keyRings(context: caller.context)
            guard rings.contains(where: { $0.id == target }) else {
                throw KeyRelayError(.keyRingNotFound, "The key ring '\(target)' does not exist in this instance: create it first",
                                    operation: op, target: ErrorTarget(.field, "keyRingID"))
            }
        }
        let key = try await engine.moveKey(id, toRing: target, currentRing: caller.keyRing, context: caller.context)
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.key, [wire.key(key, now: now)]))
    }

    func deleteKey(_ request: Request, id: String) async throws -> Response {
        let caller = try authorize(request, .manage)
        try await checkRing(caller, key: id, operation: KeyAction.delete.operation)
        let force = try Query(request: request, operation: KeyAction.delete.operation).bool("force") ?? false
        let key = try await engine.delete(id, force: force, context: caller.context)
        if prefersMinimal(request) { return Wire.empty(.noContent) }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.key, [wire.key(key, now: now)]))
    }

    func purge(_ request: Request, id: String) async throws -> Response {
        let caller = try authorize(request, .purge)
        try await checkRing(caller, key: id, operation: KeyAction.purge.operation)
        let key = try await engine.purge(id, context: caller.context)
        if prefersMinimal(request) { return Wire.empty(.noContent) }
        return Wire.response(.ok, json: Wire.envelope(MediaTypes.key, [wire.key(key, now: now)]))
    }

    func restore(_ request: Request, id: String) async throws -> Response {
        let caller = try authorize(request, .manage)
        try await checkRing(caller, key: id, operation: KeyAction.restore.operation)
        let key = try await engine.restore(id, context: caller.context)
        if prefersMinimal(request) { return Wire.empty(.created) }
        return Wire.response(.created, json: Wire.envelope(MediaTypes.key, [wire.key(key, now: now)]))
    }

    // MARK: Actions

    func action(_ name: String, id: String, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        switch name {
        case "wrap":
            let op = "Wrap with key could not be performed"
            let caller = try authorize(request, .use)
            try await checkRing(caller, key: id, operation: op)
            let fields = try await Body.read(request, context: context, operation: op, required: false)
                .map { Fields(object: $0.object, operation: op) }
            let plaintext = try fields?.base64("plaintext")
            let aad = try fields?.strings("aad") ?? []
            let result = try await engine.wrap(id, plaintext: plaintext, aad: aad, context: caller.context)
            var object: [String: Any] = ["ciphertext": result.ciphertext, "keyVersion": ["id": result.keyVersion.id]]
            if let generated = result.plaintext { object["plaintext"] = generated.base64EncodedString() }
            return Wire.response(.ok, json: object, contentType: MediaTypes.key)
        case "unwrap":
            let op = "Unwrap with key could not be performed"
            let caller = try authorize(request, .use)
            try await checkRing(caller, key: id, operation: op)
            let fields = try await cipherFields(request, context, operation: op)
            let result = try await engine.unwrap(id, ciphertext: try fields.ciphertext, aad: fields.aad, context: caller.context)
            var object: [String: Any] = ["plaintext": result.plaintext.base64EncodedString(), "keyVersion": ["id": result.keyVersion.id]]
            if let rewrapped = result.rewrappedCiphertext, let version = result.rewrappedKeyVersion {
                object["ciphertext"] = rewrapped
                object["rewrappedKeyVersion"] = ["id": version.id]
            }
            return Wire.response(.ok, json: object)
        case "rewrap":
            let op = "Rewrap with key could not be performed"
            let caller = try authorize(request, .use)
            try await checkRing(caller, key: id, operation: op)
            let fields = try await cipherFields(request, context, operation: op)
            let result = try await engine.rewrap(id, ciphertext: try fields.ciphertext, aad: fields.aad, context: caller.context)
            return Wire.response(.ok, json: ["ciphertext": result.ciphertext, "keyVersion": ["id": result.keyVersion.id],
                                             "rewrappedKeyVersion": ["id": result.rewrappedKeyVersion.id]])
        case "rotate":
            let op = KeyAction.rotate.operation
            let caller = try authorize(request, .rotate)
            try await checkRing(caller, key: id, operation: op)
            let body = try await Body.read(request, context: context, operation: op, required: false)
            var payload: Data?
            if let body { payload = try await importedMaterial(Fields(object: body.object, operation: op), caller: caller, operation: op) }
            try await engine.rotate(id, payload: payload, context: caller.context)
            return Wire.empty(.noContent)
        case "enable", "disable", "setKeyForDeletion", "unsetKeyForDeletion", "setKeyDeletion", "unsetKeyDeletion":
            let caller = try authorize(request, .manage)
            try await checkRing(caller, key: id, operation: "Action could not be performed on key")
            switch name {
            case "enable": try await engine.enable(id, context: caller.context)
            case "disable": try await engine.disable(id, context: caller.context)
            case "setKeyForDeletion", "setKeyDeletion": try await engine.setKeyForDeletion(id, context: caller.context)
            default: try await engine.unsetKeyForDeletion(id, context: caller.context)
            }
            return Wire.empty(.noContent)
        case "sync":
            let caller = try authorize(request, .manage)
            try await checkRing(caller, key: id, operation: KeyAction.sync.operation)
            do {
                try await engine.sync(id, context: caller.context)
            } catch let error as KeyRelayError where error.code == .requestTooEarly {
                // Retry-After: whole seconds until the earliest accepted sync.
                let key = try await engine.key(id, context: caller.context)
                let earliest = engine.lifecycleRules.earliestSync(key) ?? now
                let seconds = max(1, Int(earliest.timeIntervalSince(now).rounded(.up)))
                throw HTTPFailure(error: error, status: nil, headers: [("Retry-After", String(seconds))])
            }
            return Wire.empty(.noContent)
        default:
            throw KeyRelayError(.notFound, "Unknown key action '\(name)': use wrap, unwrap, rewrap, rotate, enable, disable, setKeyForDeletion, unsetKeyForDeletion or sync",
                                operation: "Action could not be performed on key")
        }
    }

    struct CipherFields {
        var fields: Fields
        var aad: [String]
        var ciphertext: String {
            get throws {
                guard let text = try fields.string("ciphertext", required: true) else { return "" }
                return text
            }
        }
    }

    func cipherFields(_ request: Request, _ context: BasicRequestContext, operation: String) async throws -> CipherFields {
        guard let body = try await Body.read(request, context: context, operation: operation) else {
            throw KeyRelayError(.noBody, "Missing body in request", operation: operation)
        }
        let fields = Fields(object: body.object, operation: operation)
        return CipherFields(fields: fields, aad: try fields.strings("aad") ?? [])
    }
}
