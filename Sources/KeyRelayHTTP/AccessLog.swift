import Foundation
import HTTPTypes
import Hummingbird
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
        return lowercased(randomUUID())
    }

    /// A random (version 4, RFC 9562 variant) UUID from the system's generator. Foundation's `UUID()` on Linux
    /// opens, reads and closes `/dev/urandom` for every id (three system calls and a file descriptor per request
    /// that brings no `Correlation-Id`); `SystemRandomNumberGenerator` is one `getrandom` call, the same source.
    static func randomUUID() -> UUID {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        var bytes = (UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0),
                     UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0), UInt8(0))
        withUnsafeMutableBytes(of: &bytes) { raw in
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            raw[6] = raw[6] & 0x0F | 0x40  // version 4
            raw[8] = raw[8] & 0x3F | 0x80  // variant 10xx
        }
        return UUID(uuid: bytes)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// `uuid.uuidString.lowercased()`, written directly (the two conversions cost more than the rest of the line's
    /// work on every request that brings no `Correlation-Id`).
    static func lowercased(_ uuid: UUID) -> String {
        withUnsafeBytes(of: uuid.uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var position = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    text[position] = hexDigits[Int(byte >> 4)]
                    text[position + 1] = hexDigits[Int(byte & 0x0F)]
                    position += 2
                }
                return position
            }
        }
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
