import Foundation

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
    /// A KMIP adapter (in the instance) or client certificate (in the adapter) already has this name.
    case kmipNameNotUnique = "KMIP_NAME_NOT_UNIQUE_ERR"
    /// An adapter already holds the most client certificates it may.
    case kmipCertificateQuotaExceeded = "KMIP_CERTIFICATE_QUOTA_ERR"
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
             .keyRingMismatch, .registrationExists, .kmipNameNotUnique, .kmipCertificateQuotaExceeded:
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

/// What a reason points at: a body field, a query parameter or a header (Key Protect's `target`). The engine names
/// fields and query parameters only; headers are named by the HTTP layer, which knows them.
public struct ErrorTarget: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case field, queryParam = "query_param", header }
    public var type: Kind
    public var name: String
    public init(_ type: Kind, _ name: String) {
        self.type = type
        self.name = name
    }
}

/// The one error type of KeyRelay: Key Protect's reason code, the status it is answered with, the message a
/// person can act on, and the summary line of the operation that failed. Rendering it (Key Protect's `errorMsg`,
/// the error envelope, headers) belongs to the front ends: `KeyRelayHTTP` and the CLI.
///
/// An error never carries key material. A refusal that names a time (sync within its cooldown, purge before its
/// delay) carries that time as data in ``earliestAllowed``, so a front end never recomputes or parses it.
///
/// Errors match their reason code in a `catch` clause, like GRDB's `DatabaseError` result codes:
///
/// ```swift
/// do { try await engine.sync(keyID, context: ctx) }
/// catch KeyRelayError.requestTooEarly { … }
/// ```
public struct KeyRelayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Key Protect's reason code.
    public var code: ReasonCode
    /// The reason's message, e.g. "Key is not in a valid state": Key Protect's own wording wherever Key Protect
    /// publishes one, so that clients that match on it keep working. KeyRelay's explanation goes in ``hint``.
    public var message: String
    /// What failed, e.g. "Key could not be deleted" (the domain's name for the failed operation).
    public var operation: String
    /// The field or query parameter the reason is about, when there is one.
    public var target: ErrorTarget?
    /// The status this reason is answered with: ``ReasonCode/status`` unless the error says otherwise (an
    /// unsupported feature answers 501 with `FEATURE_RESTRICTED_ERR`, a too-large body 413 with `BAD_BODY_ERR`).
    public var statusCode: Int
    /// For a refusal that is only about timing (`REQ_TOO_EARLY_ERR`): the earliest instant the same request is
    /// accepted, set by the rule that refused it.
    public var earliestAllowed: Date?
    /// KeyRelay's own explanation of the refusal (what to do, the numbers involved), for a person: the CLI and the
    /// console show it on a line of their own. It is never part of Key Protect's wire answer, whose `message` and
    /// `errorMsg` stay exactly the real service's.
    public var hint: String?

    public init(_ code: ReasonCode, _ message: String, operation: String = "Request could not be processed",
                target: ErrorTarget? = nil, status: Int? = nil, earliestAllowed: Date? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.operation = operation
        self.target = target
        self.statusCode = status ?? code.status
        self.earliestAllowed = earliestAllowed
        self.hint = hint
    }

    /// The status of this error (``statusCode``).
    public var status: Int { statusCode }

    public var description: String { "\(code.rawValue) (\(statusCode)): \(message)" }

    /// A copy that names a different failing operation.
    public func during(_ operation: String) -> KeyRelayError {
        var copy = self
        copy.operation = operation
        return copy
    }

}

extension KeyRelayError: LocalizedError {
    /// The message a person can act on (``message``): what `localizedDescription` shows.
    public var errorDescription: String? { message }
    /// The operation that failed with Key Protect's reason code and status, e.g.
    /// "Key could not be deleted (PROTECTED_RESOURCE_ERR, 409)".
    public var failureReason: String? { "\(operation) (\(code.rawValue), \(statusCode))" }
}

extension ReasonCode {
    /// Matches an error against a reason code: `catch KeyRelayError.requestTooEarly` (or `catch ReasonCode.…`).
    public static func ~= (code: ReasonCode, error: any Error) -> Bool {
        (error as? KeyRelayError)?.code == code
    }
}

/// The reason codes as members of ``KeyRelayError``, for `catch KeyRelayError.keyNotFound` clauses.
extension KeyRelayError {
    public static var collectionTotalMismatch: ReasonCode { .collectionTotalMismatch }
    public static var bodyQueryParamMismatch: ReasonCode { .bodyQueryParamMismatch }
    public static var badBody: ReasonCode { .badBody }
    public static var invalidField: ReasonCode { .invalidField }
    public static var invalidQueryParam: ReasonCode { .invalidQueryParam }
    public static var invalidHeader: ReasonCode { .invalidHeader }
    public static var noBody: ReasonCode { .noBody }
    public static var numCollectionResource: ReasonCode { .numCollectionResource }
    public static var keyRestoreExpired: ReasonCode { .keyRestoreExpired }
    public static var keyRootRequired: ReasonCode { .keyRootRequired }
    public static var keyExpired: ReasonCode { .keyExpired }
    public static var keyPayloadRequired: ReasonCode { .keyPayloadRequired }
    public static var keySearchTooBroad: ReasonCode { .keySearchTooBroad }
    public static var incorrectNonce: ReasonCode { .incorrectNonce }
    public static var incorrectNonceIV: ReasonCode { .incorrectNonceIV }
    public static var unauthorized: ReasonCode { .unauthorized }
    public static var serviceOnly: ReasonCode { .serviceOnly }
    public static var resourceOwner: ReasonCode { .resourceOwner }
    public static var featureRestricted: ReasonCode { .featureRestricted }
    public static var configRuleConflict: ReasonCode { .configRuleConflict }
    public static var keyNotFound: ReasonCode { .keyNotFound }
    public static var keyRingNotFound: ReasonCode { .keyRingNotFound }
    public static var registrationNotFound: ReasonCode { .registrationNotFound }
    public static var aliasNotFound: ReasonCode { .aliasNotFound }
    public static var importTokenNotFound: ReasonCode { .importTokenNotFound }
    public static var notFound: ReasonCode { .notFound }
    public static var keyActionInvalidState: ReasonCode { .keyActionInvalidState }
    public static var protectedResource: ReasonCode { .protectedResource }
    public static var keyCreateImportAccess: ReasonCode { .keyCreateImportAccess }
    public static var authorizationsNotMet: ReasonCode { .authorizationsNotMet }
    public static var importTokenExpired: ReasonCode { .importTokenExpired }
    public static var preventKeyDeletion: ReasonCode { .preventKeyDeletion }
    public static var notDualAuth: ReasonCode { .notDualAuth }
    public static var requestTooEarly: ReasonCode { .requestTooEarly }
    public static var keyRotationNotPermitted: ReasonCode { .keyRotationNotPermitted }
    public static var aliasNotUnique: ReasonCode { .aliasNotUnique }
    public static var aliasQuotaExceeded: ReasonCode { .aliasQuotaExceeded }
    public static var keyRingExists: ReasonCode { .keyRingExists }
    public static var keyRingNotEmpty: ReasonCode { .keyRingNotEmpty }
    public static var keyRingQuotaExceeded: ReasonCode { .keyRingQuotaExceeded }
    public static var keyRingMismatch: ReasonCode { .keyRingMismatch }
    public static var registrationExists: ReasonCode { .registrationExists }
    public static var keyDeleted: ReasonCode { .keyDeleted }
    public static var keyInvalidState: ReasonCode { .keyInvalidState }
    public static var keyRootRequiredForRegistration: ReasonCode { .keyRootRequiredForRegistration }
    public static var unprocessableCiphertext: ReasonCode { .unprocessableCiphertext }
    public static var keyVersionInvalid: ReasonCode { .keyVersionInvalid }
    public static var incompleteMetadata: ReasonCode { .incompleteMetadata }
    public static var internalError: ReasonCode { .internalError }
}
