import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import NIOCore

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

/// `{"metadata": {collectionType, collectionTotal, totalCount?}, "resources": [...]}`, the shape of every Key
/// Protect collection (answers, and most request bodies).
struct WireCollection<Resource: Sendable>: Sendable {
    enum CodingKeys: String, CodingKey { case metadata, resources }
    struct Metadata: Codable, Sendable {
        var collectionType: String
        var collectionTotal: Int
        var totalCount: Int?
    }
    var metadata: Metadata
    var resources: [Resource]

    init(_ type: String, _ resources: [Resource], totalCount: Int? = nil) {
        metadata = Metadata(collectionType: type, collectionTotal: resources.count, totalCount: totalCount)
        self.resources = resources
    }
}

extension WireCollection: Encodable where Resource: Encodable {}

extension WireCollection: Decodable where Resource: Decodable {
    /// Decodes a request envelope, refusing it the way Key Protect does: no metadata or incomplete metadata is
    /// `BAD_BODY_ERR`, a `collectionTotal` other than the number of resources is `COLLECTION_TOTAL_MISMATCH_ERR`.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Key Protect's wording for a missing or empty `metadata` (`"metadata": {}`).
        let empty = WireFailure(.badBody, "\(KeyRelayEngine.badBodyMessage): CollectionMetadata is empty")
        guard container.contains(.metadata) else { throw empty }
        let metadata: Metadata
        do { metadata = try container.decode(Metadata.self, forKey: .metadata) } catch {
            if case .object(let fields)? = try? container.decode(JSONValue.self, forKey: .metadata), fields.isEmpty { throw empty }
            throw WireFailure(.badBody, KeyRelayEngine.badBodyMessage, hint: "metadata needs collectionType and collectionTotal")
        }
        var list: any UnkeyedDecodingContainer
        do { list = try container.nestedUnkeyedContainer(forKey: .resources) } catch {
            throw WireFailure(.badBody, KeyRelayEngine.badBodyMessage, hint: "resources must be an array")
        }
        let count = list.count ?? 0
        guard metadata.collectionTotal == count else {
            throw WireFailure(.collectionTotalMismatch, "Collection total does not match number of resources",
                              hint: "collectionTotal is \(metadata.collectionTotal), resources has \(count)")
        }
        var resources: [Resource] = []
        resources.reserveCapacity(count)
        while !list.isAtEnd {
            do {
                resources.append(try list.decode(Resource.self))
            } catch DecodingError.typeMismatch(_, let context) where context.codingPath.count <= 2 {
                // The element itself is not an object (deeper mismatches are about one of its fields).
                throw WireFailure(.badBody, KeyRelayEngine.badBodyMessage, hint: "each resource must be an object")
            }
        }
        self.metadata = metadata
        self.resources = resources
    }
}

extension WireCollection {
    /// The only resource, or `NUM_COLLECTION_RESOURCE_ERR`.
    func single() throws(WireFailure) -> Resource {
        guard resources.count == 1, let resource = resources.first else {
            throw WireFailure(.numCollectionResource, WireFailure.singleResourceMessage, hint: "this request takes exactly one resource")
        }
        return resource
    }

    /// The only resource, or `NUM_COLLECTION_RESOURCE_ERR` naming `operation`.
    func single(_ operation: String) throws(KeyRelayError) -> Resource {
        do { return try single() } catch { throw error.error(during: operation) }
    }
}

/// A refusal found while reading a request, before the operation is known to the reader: ``WireDecoding`` gives it
/// the operation and makes it a ``KeyRelayError``.
struct WireFailure: Error {
    /// Key Protect's `NUM_COLLECTION_RESOURCE_ERR` message.
    static let singleResourceMessage = "Only a single instance policy may be created per query parameter: Please pass single resource object"

    var code: ReasonCode
    var message: String
    var target: ErrorTarget?
    var hint: String?
    init(_ code: ReasonCode, _ message: String, target: ErrorTarget? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.target = target
        self.hint = hint
    }

    func error(during operation: String) -> KeyRelayError {
        KeyRelayError(code, message, operation: operation, target: target, hint: hint)
    }

    /// `INVALID_FIELD_ERR` "The field 'name' must be: requirement", targeting the field.
    static func field(_ name: String, _ requirement: String) -> WireFailure {
        WireFailure(.invalidField, "The field '\(name)' must be: \(requirement)", target: ErrorTarget(.field, name))
    }
}

/// A request body type: the operation its refusals name (Key Protect's `errorMsg` wording).
protocol WireRequest: Decodable, Sendable {
    static var operation: String { get }
}

/// JSON in and out of KeyRelay's wire types.
enum WireJSON {
    /// Encodes a response body. Sorted keys and unescaped slashes, as KeyRelay always answered.
    static func encode(_ value: some Encodable) -> ByteBuffer {
        // Every wire type is plain strings, numbers and booleans: encoding cannot fail.
        guard let data = try? encoder.encode(value) else { return ByteBuffer(string: "{}") }
        return ByteBuffer(bytes: data)
    }

    /// One encoder and one decoder for every request (configured once; both are safe to share).
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
    static let decoder = JSONDecoder()

    /// Decodes a request body, turning every decoding problem into Key Protect's refusal (`BAD_BODY_ERR` for a body
    /// that is not a JSON object, `INVALID_FIELD_ERR` naming the field otherwise).
    static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer, operation: String) throws(KeyRelayError) -> T {
        do {
            return try decoder.decode(T.self, from: Data(buffer: buffer))
        } catch let failure as WireFailure {
            throw failure.error(during: operation)
        } catch let error as DecodingError {
            throw failure(error).error(during: operation)
        } catch {
            throw notAnObject.error(during: operation)
        }
    }

    static let notAnObject = WireFailure(.badBody, KeyRelayEngine.badBodyMessage, hint: "the body is not a JSON object")

    static func failure(_ error: DecodingError) -> WireFailure {
        switch error {
        case .typeMismatch(let type, let context):
            let name = fieldName(context.codingPath)
            if name.isEmpty { return notAnObject }
            return .field(name, requirement(type, path: context.codingPath))
        case .valueNotFound(let type, let context):
            let name = fieldName(context.codingPath)
            if name.isEmpty { return notAnObject }
            return .field(name, requirement(type, path: context.codingPath) + " (it is required)")
        case .keyNotFound(let key, let context):
            return .field(fieldName(context.codingPath + [key]), "a string (it is required)")
        case .dataCorrupted(let context):
            let name = fieldName(context.codingPath)
            if name.isEmpty { return notAnObject }
            return .field(name, "a valid value")
        @unknown default:
            return notAnObject
        }
    }

    /// `rotation.interval_month` for `resources[0].rotation.interval_month`: the envelope and array indices are not
    /// part of a field's name.
    static func fieldName(_ path: [any CodingKey]) -> String {
        var keys = path.filter { $0.intValue == nil }.map(\.stringValue)
        if keys.first == "resources" { keys.removeFirst() }
        return keys.joined(separator: ".")
    }

    static func requirement(_ type: Any.Type, path: [any CodingKey]) -> String {
        if path.last?.intValue != nil { return "an array of strings" }
        if type == String.self { return "a string" }
        if type == Bool.self { return "a boolean" }
        if type == Int.self { return "an integer" }
        let name = String(describing: type)
        if name.hasPrefix("Array") || name.hasPrefix("[") { return "an array of strings" }
        return "an object"
    }
}

/// A boolean field: JSON `true`/`false`, or the strings `"true"`/`"false"` (some clients send those). A JSON
/// number is not a boolean.
struct WireBool: Codable, Sendable {
    var value: Bool
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self.value = value
        } else if let text = try? container.decode(String.self), let value = Bool(text) {
            self.value = value
        } else {
            throw DecodingError.typeMismatch(Bool.self, .init(codingPath: decoder.codingPath, debugDescription: "not a boolean"))
        }
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// An integer field: a JSON integer that fits an `Int`, or a string of digits. A JSON boolean is not an integer,
/// and no value traps (out-of-range numbers are refused).
struct WireInt: Codable, Sendable {
    var value: Int
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if (try? container.decode(Bool.self)) != nil {
            throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "a boolean"))
        }
        if let value = try? container.decode(Int.self) {
            self.value = value
        } else if let text = try? container.decode(String.self), let value = Int(text) {
            self.value = value
        } else {
            throw DecodingError.typeMismatch(Int.self, .init(codingPath: decoder.codingPath, debugDescription: "not an integer"))
        }
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// Any JSON value, for the one place Key Protect's body is open-ended: an instance policy's `attributes`.
enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// Reads request bodies into wire types, for ``KeyRelayRequestContext``: Hummingbird's `request.decode(as:context:)`
/// comes here.
public struct KeyProtectRequestDecoder: RequestDecoder {
    public init() {}

    /// The body as `T`: `NO_BODY_ERR` without one, 413 over the size limit, `BAD_BODY_ERR`/`INVALID_FIELD_ERR`
    /// naming the operation of `T` (a `WireRequest`) when it does not decode.
    public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some Hummingbird.RequestContext) async throws -> T {
        let operation = (T.self as? any WireRequest.Type)?.operation ?? "Request could not be processed"
        guard let value = try await Self.decodeIfPresent(type, from: request, maxSize: context.maxUploadSize, operation: operation) else {
            throw KeyRelayError(.noBody, "Missing body in request", operation: operation)
        }
        return value
    }

    /// The body as `T`, or `nil` when there is none (an empty body, or JSON `null` as IBM's Go client sends).
    /// A body over `maxSize` is answered 413 with Key Protect's envelope.
    static func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request, maxSize: Int, operation: String) async throws -> T? {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: maxSize)
        } catch is NIOTooManyBytesError {
            throw KeyProtectAPI.tooLarge(maxSize: maxSize, operation: operation)
        }
        guard buffer.readableBytes > 0 else { return nil }
        if buffer.readableBytes <= 8, String(buffer: buffer).trimmingCharacters(in: .whitespacesAndNewlines) == "null" { return nil }
        return try WireJSON.decode(T.self, from: buffer, operation: operation)
    }
}

extension Request {
    /// The body as the wire type `T` (``WireRequest``), or `nil` when the request has none.
    func decodeIfPresent<T: WireRequest>(_ type: T.Type, context: some Hummingbird.RequestContext) async throws -> T? {
        try await KeyProtectRequestDecoder.decodeIfPresent(type, from: self, maxSize: context.maxUploadSize, operation: T.operation)
    }
}

/// Query parameter helpers that throw `INVALID_QUERY_PARAM_ERR`.
struct Query {
    let request: Request
    let operation: String

    func string(_ name: String) -> String? {
        request.uri.queryParameters.get(name)
    }

    /// A parameter decoded as HTML forms encode it, `+` for a space: Go's `url.Values.Encode` and Python's
    /// `requests` write spaces so (IBM's Go client sends `filter=+creationDate%3D…`). The first occurrence; nil when
    /// absent, the raw text when its percent-encoding is broken.
    func formString(_ name: String) -> String? {
        guard let query = request.uri.query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0].removingPercentEncoding == name else { continue }
            let value = parts.count > 1 ? parts[1].replacingOccurrences(of: "+", with: " ") : ""
            return value.removingPercentEncoding ?? value
        }
        return nil
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

    /// An integer parameter; digits that do not fit an `Int` are refused, never trapped on.
    func int(_ name: String, default value: Int) throws -> Int {
        guard let text = string(name) else { return value }
        guard let parsed = Int(text) else { throw bad(name, "an integer") }
        return parsed
    }

    func states(_ name: String = "state") throws -> Set<KeyState>? {
        try codes(name, as: KeyState.self, expected: "a comma-separated list of key states (0, 1, 2, 3, 5)")
    }

    /// `state=2,3`: a comma-separated list of numeric codes, each one a `T`. Absent or empty (the
    /// official client sends `state=` when none is asked for) means the default (nil).
    func codes<T: RawRepresentable & Hashable>(_ name: String, as type: T.Type, expected: String) throws -> Set<T>?
    where T.RawValue == Int {
        guard let text = string(name), !text.isEmpty else { return nil }
        var codes = Set<T>()
        for part in text.split(separator: ",") {
            guard let code = Int(part.trimmingCharacters(in: .whitespaces)), let value = T(rawValue: code) else {
                throw bad(name, expected)
            }
            codes.insert(value)
        }
        return codes
    }
}

/// A typed JSON answer with Key Protect's status and media type.
struct WireResponse<Body: Encodable & Sendable>: ResponseGenerator {
    var status: HTTPResponse.Status = .ok
    var body: Body
    var contentType: String = MediaTypes.json

    init(_ status: HTTPResponse.Status = .ok, _ body: Body, contentType: String = MediaTypes.json) {
        self.status = status
        self.body = body
        self.contentType = contentType
    }

    func response(from request: Request, context: some Hummingbird.RequestContext) throws -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: WireJSON.encode(body)))
    }
}

/// An answer without a body.
func emptyResponse(_ status: HTTPResponse.Status, headers: HTTPFields = [:]) -> Response {
    Response(status: status, headers: headers)
}
