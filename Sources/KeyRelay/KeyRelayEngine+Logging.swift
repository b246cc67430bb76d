import Foundation
import KeyRelayCore
import Logging

extension KeyRelayEngine {
    /// Runs a command and logs how it ended on the engine's logger: accepted at info, refused (a `KeyRelayError`)
    /// at warning with its reason code, anything else at error. The line names the action, the key, the instance,
    /// the principal and the correlation id, never a payload, key material, a wrapped key or a token.
    func logged<T: Sendable>(_ action: String, _ reference: String?, context: RequestContext,
                             keyID: (T) -> String? = { _ in nil }, _ body: () async throws -> T) async throws -> T {
        // The lines below are at info, warning and error: a logger above error (the default one, which logs nothing,
        // is at critical) writes none of them, so their metadata is not built (issue #16: a dictionary per command).
        guard logger.logLevel <= .error else { return try await body() }
        var metadata: Logger.Metadata = [
            "action": .string(action),
            "instance": .string(context.instanceID),
            "principal": .string(context.principal),
        ]
        if let reference { metadata["key_id"] = .string(reference) }
        if let correlationID = context.correlationID { metadata["correlation_id"] = .string(correlationID) }
        do {
            let result = try await body()
            if let id = keyID(result) { metadata["key_id"] = .string(id) }
            metadata["outcome"] = "success"
            logger.info("Key \(action) accepted", metadata: metadata)
            return result
        } catch let error as KeyRelayError {
            metadata["outcome"] = "refused"
            metadata["code"] = .string(error.code.rawValue)
            metadata["status"] = .stringConvertible(error.statusCode)
            logger.warning("Key \(action) refused: \(error.code.rawValue)", metadata: metadata)
            throw error
        } catch {
            metadata["outcome"] = "failed"
            metadata["error"] = .string(String(describing: type(of: error)))
            logger.error("Key \(action) failed", metadata: metadata)
            throw error
        }
    }
}
