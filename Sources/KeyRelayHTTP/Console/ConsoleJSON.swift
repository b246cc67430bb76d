import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay

// The untyped JSON helpers the console's endpoints (ConsoleAPI.swift) still use, moved here unchanged when the Key
// Protect API became typed (Requests.swift, Representations.swift): they serve only the console, whose owner
// replaces them with typed bodies.

extension Wire {
    static func data(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes, .sortedKeys])) ?? Data("{}".utf8)
    }

    static func response(_ status: HTTPResponse.Status, json object: Any, contentType: String = MediaTypes.json) -> Response {
        Response(status: status, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(data: data(object))))
    }

    /// `{"metadata":{collectionType, collectionTotal}, "resources":[…]}`.
    static func envelope(_ type: String, _ resources: [Any]) -> [String: Any] {
        ["metadata": ["collectionType": type, "collectionTotal": resources.count] as [String: Any], "resources": resources]
    }
}

/// The console's name space for its untyped helpers.
enum Wire {}

/// A parsed JSON request body, whose accessors throw Key Protect's errors.
struct Body {
    let object: [String: Any]
    let operation: String

    /// Reads a JSON object body. Missing → `NO_BODY_ERR`; not a JSON object → `BAD_BODY_ERR`; too large → 413.
    static func read(_ request: Request, context: some Hummingbird.RequestContext, operation: String, required: Bool = true) async throws -> Body? {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        guard buffer.readableBytes > 0 else {
            if required { throw KeyRelayError(.noBody, "Missing body in request", operation: operation) }
            return nil
        }
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] else {
            throw KeyRelayError(.badBody, "Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters: the body is not a JSON object",
                                operation: operation)
        }
        return Body(object: object, operation: operation)
    }
}

/// Typed access to a JSON object's fields.
struct Fields {
    let object: [String: Any]
    let operation: String

    private func bad(_ name: String, _ requirement: String) -> KeyRelayError {
        KeyRelayError(.invalidField, "The field '\(name)' must be: \(requirement)", operation: operation, target: ErrorTarget(.field, name))
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
        if let number = object[name] as? NSNumber, Self.isJSONBoolean(number) { return number.boolValue }
        if let text = object[name] as? String, let value = Bool(text) { return value }
        throw bad(name, "a boolean")
    }

    func int(_ name: String) throws -> Int? {
        guard has(name) else { return nil }
        if let number = object[name] as? NSNumber, !Self.isJSONBoolean(number) {
            let value = number.doubleValue
            guard value == value.rounded(), let exact = Int(exactly: value) else { throw bad(name, "an integer") }
            return exact
        }
        if let text = object[name] as? String, let value = Int(text) { return value }
        throw bad(name, "an integer")
    }

    /// Whether a decoded JSON value was `true`/`false` rather than a number (on Linux a JSON `1` also casts to
    /// `Bool`; JSONSerialization decodes booleans as `__NSCFBoolean` on every platform).
    static func isJSONBoolean(_ number: NSNumber) -> Bool {
        String(describing: type(of: number)).contains("Boolean")
    }
}

extension Representations {
    func version(_ version: KeyVersion) -> [String: Any] {
        ["id": version.id, "creationDate": Timestamp.format(version.creationDate)]
    }
}
