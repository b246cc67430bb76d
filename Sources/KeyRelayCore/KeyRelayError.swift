/// Key Protect's reason codes, each with the HTTP status the real service answers it with.
///
/// The raw value is the wire spelling (`reasons[].code` in an error body). Codes and statuses come from
/// Key Protect's published error table; see `docs/api-coverage.md`.
public enum ReasonCode: String, Sendable, Codable, CaseIterable {
    // 400
    case collectionTotalMismatch = "COLLECTION_TOTAL_MISMATCH_ERR"
    case bodyQueryParamMismatch = "BODY_QUERY_PARAM_MISMATCH_ERR"
    case badBody = "BAD_BODY_ERR"
    case invalidField = "INVALID_FIELD_ERR"
    case invalidQueryParam = "INVALID_QUERY_PARAM_ERR"
    case invalidHeader = "INVALID_HEADER_ERR"
    case noBody = "NO_BODY_ERR"
    case numCollectionResource = "NUM_COLLECTION_RESOURCE_ERR"
    case keyRestoreExpired = "KEY_RESTORE_EXPIRED"
    case keyRootRequired = "KEY_ROOT_REQ_ERR"
    case keyExpired = "KEY_EXPIRED_ERR"
    case keyPayloadRequired = "KEY_PAYLOAD_REQ_ERR"
    case keySearchTooBroad = "KEY_SEARCH_TOO_BROAD"
    case incorrectNonce = "INCORRECT_NONCE_ERR"
    case incorrectNonceIV = "INCORRECT_NONCE_IV_ERR"
    // 401
    case unauthorized = "UNAUTHORIZED_ERR"
    // 403
    case serviceOnly = "SERVICE_ONLY_ERR"
    case resourceOwner = "RESOURCE_OWNER_ERR"
    case featureRestricted = "FEATURE_RESTRICTED_ERR"
    case configRuleConflict = "CONFIG_RULE_CONFLICT_ERR"
    // 404
    case keyNotFound = "KEY_NOT_FOUND_ERR"
    case keyRingNotFound = "KEY_RING_NOT_FOUND_ERR"
    case registrationNotFound = "REGISTRATION_NOT_FOUND_ERR"
    case aliasNotFound = "KEY_ALIAS_NOT_FOUND_ERR"
    case importTokenNotFound = "IMPORT_TOKEN_NOT_FOUND_ERR"
    case notFound = "NOT_FOUND_ERR"
    // 409
    case keyActionInvalidState = "KEY_ACTION_INVALID_STATE_ERR"
    case protectedResource = "PROTECTED_RESOURCE_ERR"
    case keyCreateImportAccess = "KEY_CREATE_IMPORT_ACCESS_ERR"
    case authorizationsNotMet = "AUTHORIZATIONS_NOT_MET"
    case importTokenExpired = "IMPORT_TOKEN_EXPIRED_ERR"
    case preventKeyDeletion = "PREV_KEY_DEL_ERR"
    case notDualAuth = "NOT_DUAL_AUTH_ERR"
    case requestTooEarly = "REQ_TOO_EARLY_ERR"
    case keyRotationNotPermitted = "KEY_ROTATION_NOT_PERMITTED"
    case aliasNotUnique = "KEY_ALIAS_NOT_UNIQUE_ERR"
    case aliasQuotaExceeded = "KEY_ALIAS_QUOTA_ERR"
    case keyRingExists = "KEY_RING_EXISTS_ERR"
    case keyRingNotEmpty = "KEY_RING_NOT_EMPTY_ERR"
    case keyRingQuotaExceeded = "KEY_RING_QUOTA_ERR"
    case keyRingMismatch = "KEY_RING_MISMATCH_ERR"
    case registrationExists = "REGISTRATION_EXISTS_ERR"
    // 410
    case keyDeleted = "KEY_DELETED_ERR"
    // 422
    case keyInvalidState = "KEY_INVALID_STATE_ERR"
    case keyRootRequiredForRegistration = "KEY_ROOT_REQ_REG_ERR"
    case unprocessableCiphertext = "UNPROCESSABLE_CIPHERTEXT_ERR"
    case keyVersionInvalid = "KEY_VERSION_INVALID"
    // 500
    case incompleteMetadata = "INCOMPLETE_METADATA_ERR"
    case internalError = "INTERNAL_SERVER_ERR"

    /// The HTTP status Key Protect answers this reason with.
    public var status: Int {
        switch self {
        case .collectionTotalMismatch, .bodyQueryParamMismatch, .badBody, .invalidField, .invalidQueryParam,
             .invalidHeader, .noBody, .numCollectionResource, .keyRestoreExpired, .keyRootRequired, .keyExpired,
             .keyPayloadRequired, .keySearchTooBroad, .incorrectNonce, .incorrectNonceIV:
            return 400
        case .unauthorized:
            return 401
        case .serviceOnly, .resourceOwner, .featureRestricted, .configRuleConflict:
            return 403
        case .keyNotFound, .keyRingNotFound, .registrationNotFound, .aliasNotFound, .importTokenNotFound, .notFound:
            return 404
        case .keyActionInvalidState, .protectedResource, .keyCreateImportAccess, .authorizationsNotMet,
             .importTokenExpired, .preventKeyDeletion, .notDualAuth, .requestTooEarly, .keyRotationNotPermitted,
             .aliasNotUnique, .aliasQuotaExceeded, .keyRingExists, .keyRingNotEmpty, .keyRingQuotaExceeded,
             .keyRingMismatch, .registrationExists:
            return 409
        case .keyDeleted:
            return 410
        case .keyInvalidState, .keyRootRequiredForRegistration, .unprocessableCiphertext, .keyVersionInvalid:
            return 422
        case .incompleteMetadata, .internalError:
            return 500
        }
    }
}

/// What a reason points at: a body field, a query parameter or a header (Key Protect's `target`).
public struct ErrorTarget: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case field, queryParam = "query_param", header }
    public var type: Kind
    public var name: String
    public init(_ type: Kind, _ name: String) {
        self.type = type
        self.name = name
    }
}

/// The one error type of KeyRelay: Key Protect's reason code, its HTTP status, the message a person can act on,
/// and the summary line of the operation that failed.
///
/// The CLI and the HTTP layer render this error; they never invent their own. An error never carries key
/// material.
public struct KeyRelayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Key Protect's reason code.
    public var code: ReasonCode
    /// The reason's message, e.g. "Key is not in a valid state".
    public var message: String
    /// What failed, e.g. "Key could not be deleted"; it forms the `errorMsg` line of the wire body.
    public var operation: String
    /// The field, query parameter or header the reason is about, when there is one.
    public var target: ErrorTarget?

    public init(_ code: ReasonCode, _ message: String, operation: String = "Request could not be processed",
                target: ErrorTarget? = nil) {
        self.code = code
        self.message = message
        self.operation = operation
        self.target = target
    }

    /// The HTTP status of ``code``.
    public var status: Int { code.status }

    /// Key Protect's `errorMsg` line: "<Status phrase>: <operation>: Please see 'reasons' for more details (<CODE>)".
    public var errorMsg: String {
        "\(HTTPStatusPhrase.phrase(for: status)): \(operation): Please see 'reasons' for more details (\(code.rawValue))"
    }

    public var description: String { "\(code.rawValue) (\(status)): \(message)" }

    /// A copy that names a different failing operation.
    public func during(_ operation: String) -> KeyRelayError {
        var copy = self
        copy.operation = operation
        return copy
    }
}

/// Reason phrases for the statuses KeyRelay answers with.
public enum HTTPStatusPhrase {
    public static func phrase(for status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 409: "Conflict"
        case 410: "Gone"
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
