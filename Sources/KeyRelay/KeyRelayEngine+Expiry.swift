import Foundation
import KeyRelayCore

extension KeyRelayEngine {
    /// The longest expiry duration accepted: `DurationText.maximum`, a hundred years (a longer one is a typo, and
    /// would leave the timestamps Key Protect can write).
    public static let maximumExpiryDuration: TimeInterval = DurationText.maximum

    /// Creates a key that expires `duration` after now, on the engine's injected clock: a front end that says
    /// "in 30 days" must not read a clock of its own (under a scenario's manual clock or a dev clock they differ).
    ///
    /// - Parameter duration: more than 0 s and at most ``maximumExpiryDuration``.
    /// - Throws: `INVALID_FIELD_ERR` naming `expirationDate` for a duration out of bounds; any error of
    ///   ``createKey(_:context:)``.
    public func createKey(_ spec: KeySpec, expiringAfter duration: TimeInterval, context: RequestContext) async throws -> Key {
        try context.check()
        guard duration.isFinite, duration > 0, duration <= Self.maximumExpiryDuration else {
            throw KeyRelayError(.invalidField, "The field 'expirationDate' must be: a time in the future, at most 100 years from now",
                                operation: "Key could not be created", target: ErrorTarget(.field, "expirationDate"))
        }
        var spec = spec
        spec.expirationDate = now().addingTimeInterval(duration)
        return try await createKey(spec, context: context)
    }
}
