import Foundation
import KeyRelayCore
internal import KeyRelayStore

/// Small additions the HTTP layer needs (additive only).
extension KeyRelayEngine {
    /// The `errorMsg` operation of registration commands.
    public static var registrationOperation: String { registrationOp }

    /// A lifecycle event by id, if it belongs to the caller's instance.
    public func event(id: String, context: RequestContext) async throws -> LifecycleEvent? {
        try context.check()
        guard !StoredText.containsNUL(id) else { return nil }  // names nothing: no stored text contains U+0000
        let event = try await storage.read { tx in try tx.event(id: id) }
        guard let event, event.instanceID == context.instanceID else { return nil }
        return event
    }
}
