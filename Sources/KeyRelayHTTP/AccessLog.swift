import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import Logging

/// One access line per request, and the request's correlation id.
///
/// The correlation id is the caller's `Correlation-Id` (Key Protect's clients send one; the Go client always does)
/// or, without one, a new v4 UUID. It goes into the engine's context (so the events the request causes carry it),
/// into the audit event, into the access line, and back to the caller in the answer's `Correlation-Id` header.
///
/// It runs after ``AuthenticationMiddleware`` (which only reads the credentials, it refuses nothing) and before
/// ``ErrorRenderingMiddleware``, so it sees who called and the status actually answered. The line carries the
/// route template (`/api/v2/keys/{id}/actions/sync`, Hummingbird's `endpointPath`), never the path itself, a
/// header, a query or a body: no key id in a cardinality-sensitive field, and no token or key material anywhere.
struct AccessLogMiddleware: RouterMiddleware {
    let logger: Logger

    /// The longest caller correlation id kept; a longer one is replaced by a generated id.
    static let maxCorrelationIDLength = 128

    func handle(_ request: Request, context: KeyRelayRequestContext,
                next: (Request, KeyRelayRequestContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        let correlationID = Self.correlationID(context.credentials.correlationID)
        context.credentials.correlationID = correlationID
        do {
            var response = try await next(request, context)
            response.headers[.correlationID] = correlationID
            log(request, context, status: response.status.code, since: start)
            return response
        } catch {
            // The error renderer sits inside this middleware; a thrown error here is one it did not turn into an
            // answer. Log the status Hummingbird will answer with.
            log(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, since: start)
            throw error
        }
    }

    /// The caller's id when it is usable, else a new one.
    static func correlationID(_ given: String?) -> String {
        if let given, !given.isEmpty, given.count <= maxCorrelationIDLength, given.allSatisfy({ $0.isASCII && !$0.isWhitespace }) {
            return given
        }
        // A v4 UUID from the system CSPRNG, as the engine draws its identifiers (Foundation's `UUID()` on Linux opens,
        // reads and closes /dev/urandom each time).
        return RandomIdentifiers().next()
    }

    private func log(_ request: Request, _ context: KeyRelayRequestContext, status: Int, since start: ContinuousClock.Instant) {
        // A 5xx is the server's failure, except 501: KMIP's deliberate "not implemented" answer.
        let level: Logger.Level = status >= 500 && status != 501 ? .error : .info
        // Below the configured level, build nothing.
        guard logger.logLevel <= level else { return }
        let route = context.endpointPath ?? "NotFound"
        let metadata: Logger.Metadata = [
            "correlation_id": .string(context.credentials.correlationID ?? "-"),
            "method": .string(request.method.rawValue),
            "route": .string(route),
            "status": .stringConvertible(status),
            "duration_ms": .string(Self.milliseconds(ContinuousClock.now - start)),
            "principal": .string(context.credentials.grant?.principal ?? "-"),
            "instance": .string(context.credentials.instance ?? "-"),
        ]
        logger.log(level: level, "\(request.method.rawValue) \(route) \(status)", metadata: metadata)
    }

    /// A duration in milliseconds with three decimals ("12.034"), from whole microseconds (no `String(format:)`,
    /// which is slow on Linux, on every request).
    static func milliseconds(_ duration: Duration) -> String {
        let micros = max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000)
        let fraction = String(micros % 1000)
        return "\(micros / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}
