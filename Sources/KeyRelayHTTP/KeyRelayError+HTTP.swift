import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay

/// Key Protect's error answer, rendered by the error itself: the envelope with `errorMsg` and one reason, the
/// status, and (for a refusal that names a time) `Retry-After`.
///
/// ```json
/// {"metadata":{"collectionType":"application/vnd.ibm.kms.error+json","collectionTotal":1},
///  "resources":[{"errorMsg":"Conflict: Key could not be deleted: Please see 'reasons' for more details (PROTECTED_RESOURCE_ERR)",
///    "reasons":[{"code":"PROTECTED_RESOURCE_ERR","message":"…","status":409,"moreInfo":"https://cloud.ibm.com/apidocs/key-protect",
///                "target":{"type":"query_param","name":"force"}}]}]}
/// ```
/// A 401 carries only `errorMsg`, as Key Protect's does.
extension KeyRelayError: HTTPResponseError {
    /// The HTTP status answered (``KeyRelayError/statusCode``).
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    /// Key Protect's `errorMsg` line: "<Status phrase>: <operation>: Please see 'reasons' for more details (<CODE>)".
    public var errorMsg: String {
        "\(HTTPStatusPhrase.phrase(for: statusCode)): \(operation): Please see 'reasons' for more details (\(code.rawValue))"
    }

    /// The reason's `target`. The engine names fields and query parameters; a key-ring mismatch is about the
    /// request's scope, which on the wire is the `X-Kms-Key-Ring` header.
    var wireTarget: ErrorTarget? {
        if let target { return target }
        if code == .keyRingMismatch { return ErrorTarget(.header, HTTPField.Name.keyRing.rawName) }
        return nil
    }

    /// Renders the error with `Retry-After` counted from the wall clock.
    public func response(from request: Request, context: some Hummingbird.RequestContext) throws -> Response {
        response(now: Date())
    }

    /// Renders the error; `now` is the instant `Retry-After` counts from (the engine's clock).
    func response(now: Date) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = MediaTypes.json
        if let earliest = earliestAllowed {
            // Whole seconds, rounded up, never 0: a client that waits this long is accepted.
            let seconds = max(1.0, (earliest.timeIntervalSince(now)).rounded(.up))
            headers[.retryAfter] = String(Int(min(seconds, 1e9)))
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: wireBody))
    }

    /// The body: the envelope, or for a 401 only `errorMsg`.
    var wireBody: ByteBuffer {
        if code == .unauthorized {
            return WireJSON.encode(UnauthorizedBody())
        }
        let reason = ErrorReason(code: code.rawValue, message: message, status: statusCode, moreInfo: ErrorReason.moreInfo,
                                 target: wireTarget.map { ErrorReason.Target(type: $0.type.rawValue, name: $0.name) })
        return WireJSON.encode(WireCollection(MediaTypes.error, [ErrorResource(errorMsg: errorMsg, reasons: [reason])]))
    }
}

/// `resources[]` of an error body.
struct ErrorResource: Codable, Sendable {
    var errorMsg: String
    var reasons: [ErrorReason]
}

/// One reason of an error body.
struct ErrorReason: Codable, Sendable {
    static let moreInfo = "https://cloud.ibm.com/apidocs/key-protect"
    struct Target: Codable, Sendable {
        var type: String
        var name: String
    }
    var code: String
    var message: String
    var status: Int
    var moreInfo: String
    var target: Target?
}

/// The 401 body: Key Protect's carries only `errorMsg`.
struct UnauthorizedBody: Codable, Sendable {
    static let message = "Unauthorized: The user does not have access to the specified resource"
    var errorMsg = Self.message
}

/// Reason phrases for the statuses KeyRelay answers with (the first words of `errorMsg`, an audit line's
/// `reasonType`).
public enum HTTPStatusPhrase {
    public static func phrase(for status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 410: "Gone"
        case 413: "Content Too Large"
        case 415: "Unsupported Media Type"
        case 422: "Unprocessable Entity"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        default: "Error"
        }
    }
}

extension HTTPField.Name {
    static let bluemixInstance = HTTPField.Name("Bluemix-Instance")!
    static let keyRing = HTTPField.Name("X-Kms-Key-Ring")!
    static let correlationID = HTTPField.Name("Correlation-Id")!
    static let prefer = HTTPField.Name("Prefer")!
    static let keyTotal = HTTPField.Name("Key-Total")!
}
