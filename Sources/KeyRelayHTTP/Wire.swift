import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay

/// Key Protect's media types.
public enum MediaTypes {
    public static let json = "application/json"
    public static let key = "application/vnd.ibm.kms.key+json"
    public static let error = "application/vnd.ibm.kms.error+json"
    public static let keyVersion = "application/vnd.ibm.kms.key.version+json"
    public static let policy = "application/vnd.ibm.kms.policy+json"
    public static let registration = "application/vnd.ibm.kms.registration+json"
    public static let registrationInput = "application/vnd.ibm.kms.registration_input+json"
    public static let alias = "application/vnd.ibm.kms.alias+json"
    public static let keyRing = "application/vnd.ibm.kms.key_ring+json"
    public static let importToken = "application/vnd.ibm.kms.import_token+json"
    public static let allowedIP = "application/vnd.ibm.kms.allowed_ip_metadata+json"
    public static let eventAcknowledge = "application/vnd.ibm.kms.event_acknowledge+json"
}

/// An error answer: a KeyRelayError, optionally with a status other than its code's (KMIP's 501) and extra headers
/// (sync's `Retry-After`).
struct HTTPFailure: Error {
    var error: KeyRelayError
    var status: Int?
    var headers: [(String, String)] = []
}

/// The 401 answer: Key Protect's body carries only `errorMsg`.
struct Unauthorized: Error {}


enum Wire {
    static let moreInfo = "https://cloud.ibm.com/apidocs/key-protect"
    static let unauthorizedMessage = "Unauthorized: The user does not have access to the specified resource"

    static func data(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes, .sortedKeys])) ?? Data("{}".utf8)
    }

    static func response(_ status: HTTPResponse.Status, json object: Any, contentType: String = MediaTypes.json,
                         headers extra: [(String, String)] = []) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        for (name, value) in extra {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: data(object))))
    }

    static func empty(_ status: HTTPResponse.Status, headers extra: [(String, String)] = []) -> Response {
        var headers = HTTPFields()
        for (name, value) in extra {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(status: status, headers: headers)
    }

    /// `{"metadata":{collectionType, collectionTotal, …extra}, "resources":[…]}`.
    static func envelope(_ type: String, _ resources: [Any], extra: [String: Any] = [:]) -> [String: Any] {
        var metadata: [String: Any] = ["collectionType": type, "collectionTotal": resources.count]
        for (k, v) in extra { metadata[k] = v }
        return ["metadata": metadata, "resources": resources]
    }

    /// Key Protect's error body for `error`.
    static func errorBody(_ error: KeyRelayError, status: Int? = nil) -> [String: Any] {
        let status = status ?? error.status
        var reason: [String: Any] = ["code": error.code.rawValue, "message": error.message, "status": status, "moreInfo": moreInfo]
        if let target = error.target { reason["target"] = ["type": target.type.rawValue, "name": target.name] }
        let errorMsg = status == error.status
            ? error.errorMsg
            : "\(HTTPStatusPhrase.phrase(for: status)): \(error.operation): Please see 'reasons' for more details (\(error.code.rawValue))"
        return envelope(MediaTypes.error, [["errorMsg": errorMsg, "reasons": [reason]]])
    }

    static func errorResponse(_ error: KeyRelayError, status: Int? = nil, headers: [(String, String)] = []) -> Response {
        let code = status ?? error.status
        return response(HTTPResponse.Status(code: code), json: errorBody(error, status: status), headers: headers)
    }

    static func unauthorizedResponse() -> Response {
        response(.unauthorized, json: ["errorMsg": unauthorizedMessage])
    }

    static func date(_ date: Date?) -> Any? { date.map(Timestamp.format) }
}

/// A parsed JSON request body and its accessors, which throw Key Protect's errors.
struct Body {
    let object: [String: Any]
    let operation: String

    /// Reads a JSON object body. Missing → `NO_BODY_ERR`; not a JSON object → `BAD_BODY_ERR`.
    static func read(_ request: Request, context: some Hummingbird.RequestContext, operation: String, required: Bool = true) async throws -> Body? {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            if required { throw KeyRelayError(.noBody, "Missing body in request", operation: operation) }
            return nil
        }
        let data = Data(buffer: buffer)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: the body is not a JSON object",
                                operation: operation)
        }
        return Body(object: object, operation: operation)
    }

    /// Validates the collection envelope and returns its resources. `collectionTotal` must equal the number of
    /// resources (`COLLECTION_TOTAL_MISMATCH_ERR`).
    func resources(single: Bool = true) throws -> [[String: Any]] {
        guard let metadata = object["metadata"] as? [String: Any] else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: CollectionMetadata is empty",
                                operation: operation)
        }
        guard metadata["collectionType"] is String, let total = (metadata["collectionTotal"] as? NSNumber)?.intValue else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: metadata needs collectionType and collectionTotal",
                                operation: operation)
        }
        guard let list = object["resources"] as? [Any] else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: resources must be an array",
                                operation: operation)
        }
        guard total == list.count else {
            throw KeyRelayError(.collectionTotalMismatch, "Collection total does not match number of resources: collectionTotal is \(total), resources has \(list.count)",
                                operation: operation)
        }
        let resources = try list.map { item -> [String: Any] in
            guard let resource = item as? [String: Any] else {
                throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: each resource must be an object",
                                    operation: operation)
            }
            return resource
        }
        if single, resources.count != 1 {
            throw KeyRelayError(.numCollectionResource, "Only a single resource may be passed per request: Please pass single resource object",
                                operation: operation)
        }
        return resources
    }
}

/// Typed access to a JSON object's fields.
struct Fields {
    let object: [String: Any]
    let operation: String
    var prefix = ""

    private func bad(_ name: String, _ requirement: String) -> KeyRelayError {
        KeyRelayError(.invalidField, "The field '\(prefix)\(name)' must be: \(requirement)", operation: operation,
                      target: ErrorTarget(.field, prefix + name))
    }

    func has(_ name: String) -> Bool { object[name] != nil && !(object[name] is NSNull) }

    func string(_ name: String, required: Bool = false) throws -> String? {
        guard has(name) else {
            if required { throw bad(name, "a string (it is required)") }
            return nil
        }
        guard let value = object[name] as? String else { throw bad(name, "a string") }
        return value
    }

    func bool(_ name: String) throws -> Bool? {
        guard has(name) else { return nil }
        if let value = object[name] as? Bool { return value }
        if let text = object[name] as? String, let value = Bool(text) { return value }
        throw bad(name, "a boolean")
    }

    func int(_ name: String) throws -> Int? {
        guard has(name) else { return nil }
        if let number = object[name] as? NSNumber, !Self.isJSONBoolean(number) {
            let value = number.doubleValue
            guard value == value.rounded() else { throw bad(name, "an integer") }
            return number.intValue
        }
        if let text = object[name] as? String, let value = Int(text) { return value }
        throw bad(name, "an integer")
    }

    /// Whether a decoded JSON value was `true`/`false` rather than a number. (`is Bool` cannot tell: on Linux a
    /// JSON `1` or `0` also casts to `Bool`. JSONSerialization decodes booleans as `__NSCFBoolean` on every platform.)
    static func isJSONBoolean(_ number: NSNumber) -> Bool {
        String(describing: type(of: number)).contains("Boolean")
    }

    func strings(_ name: String) throws -> [String]? {
        guard has(name) else { return nil }
        guard let value = object[name] as? [Any], value.allSatisfy({ $0 is String }) else { throw bad(name, "an array of strings") }
        return value.compactMap { $0 as? String }
    }

    func date(_ name: String) throws -> Date? {
        guard let text = try string(name) else { return nil }
        guard let date = Timestamp.parse(text) else { throw bad(name, "an RFC 3339 date, e.g. 2030-01-01T00:00:00Z") }
        return date
    }

    func base64(_ name: String, required: Bool = false, requirement: String = "a base64 encoded key material") throws -> Data? {
        guard let text = try string(name, required: required) else { return nil }
        guard let data = Data(base64Encoded: text) else { throw bad(name, requirement) }
        return data
    }

    func object(_ name: String) throws -> Fields? {
        guard has(name) else { return nil }
        guard let value = object[name] as? [String: Any] else { throw bad(name, "an object") }
        return Fields(object: value, operation: operation, prefix: prefix + name + ".")
    }
}

/// Query parameter helpers that throw `INVALID_QUERY_PARAM_ERR`.
struct Query {
    let request: Request
    let operation: String

    func string(_ name: String) -> String? {
        request.uri.queryParameters.get(name)
    }

    private func bad(_ name: String, _ requirement: String) -> KeyRelayError {
        KeyRelayError(.invalidQueryParam, "The query_param '\(name)' must be: \(requirement)", operation: operation,
                      target: ErrorTarget(.queryParam, name))
    }

    func bool(_ name: String) throws -> Bool? {
        guard let text = string(name) else { return nil }
        guard let value = Bool(text.lowercased()) else { throw bad(name, "true or false") }
        return value
    }

    func int(_ name: String, default value: Int) throws -> Int {
        guard let text = string(name) else { return value }
        guard let parsed = Int(text) else { throw bad(name, "an integer") }
        return parsed
    }

    func states(_ name: String = "state") throws -> Set<KeyState>? {
        // The official client sends `state=` (empty) when no state is asked for: that means the default.
        guard let text = string(name), !text.isEmpty else { return nil }
        var states = Set<KeyState>()
        for part in text.split(separator: ",") {
            guard let code = Int(part.trimmingCharacters(in: .whitespaces)), let state = KeyState(rawValue: code), code != 4 else {
                throw bad(name, "a comma-separated list of key states (0, 1, 2, 3, 5)")
            }
            states.insert(state)
        }
        return states
    }
}
