import Foundation
import KeyRelayCore

/// A verified webhook whose CloudEvent is not a KeyRelay lifecycle event (a receiver answers 400).
public struct WebhookEventError: Error, Equatable, CustomStringConvertible {
    /// What is wrong with the event.
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// Where a webhook's CloudEvents `source` attribute comes from.
public enum WebhookEventSource: Sendable, Equatable {
    /// `/keyrelay/<instance id>`: the default, needing no configuration.
    case keyRelay
    /// The Key Protect instance's CRN, `crn:v1:bluemix:public:kms:<region>:a/<account>:<instance>::` — what
    /// `keyrelay events` writes (``CloudEventNames/kmsInstanceCRN(region:account:instanceID:)``).
    case kmsInstanceCRN(region: String, account: String)

    /// The `source` of `event`.
    public func source(for event: LifecycleEvent) -> String {
        switch self {
        case .keyRelay: "/keyrelay/\(event.instanceID)"
        case .kmsInstanceCRN(let region, let account):
            CloudEventNames.kmsInstanceCRN(region: region, account: account, instanceID: event.instanceID)
        }
    }
}

/// One notification as the body of a webhook: a CloudEvents 1.0 event in structured JSON mode
/// (`content-type: application/cloudevents+json`).
///
/// ```json
/// {"specversion":"1.0","id":"<event id>","source":"/keyrelay/<instance>","type":"com.ibm.kms.key.delete",
///  "subject":"<key id>","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json",
///  "resourcecrn":"crn:v1:bluemix:public:cloud-object-storage:global:a/…:bucket:photos",
///  "data":{"keyState":"destroyed","keyStateCode":5,"keyVersion":"<version id>", …}}
/// ```
///
/// `id` is the lifecycle event's id — what the adopter sends back as `eventId` in `POST /api/v2/event_ack`. It is
/// the same for every resource the event is notified to; the `webhook-id` header tells deliveries apart. Nothing
/// here is secret: no key material, no token, no signing secret.
public struct WebhookEvent: Sendable, Equatable, Codable {
    /// The event's data: the key's state after the event.
    public struct Payload: Sendable, Equatable, Codable {
        /// The key's state after the event, by name: `active`, `suspended`, `deactivated`, `destroyed`.
        public var keyState: String
        /// The same as Key Protect's integer code: 1 active, 2 suspended, 3 deactivated, 5 destroyed.
        public var keyStateCode: Int
        /// The id of the key's current version after the event.
        public var keyVersion: String
        /// When that version was created (RFC 3339).
        public var keyVersionCreationDate: String
        /// The key's own event counter (1 for its creation, then +1 per event). A receiver ignores an event whose
        /// `keySequence` is lower than the newest it has applied for the key: later events carry the full state.
        public var keySequence: Int
        /// The event's place in the instance's global event sequence (what `keyrelay events --after` counts).
        public var eventSequence: Int64
        /// The Key Protect instance the key belongs to.
        public var instanceId: String
        /// The correlation id of the request that caused the event, if any.
        public var correlationId: String?

        public init(keyState: String, keyStateCode: Int, keyVersion: String, keyVersionCreationDate: String,
                    keySequence: Int, eventSequence: Int64, instanceId: String, correlationId: String?) {
            self.keyState = keyState
            self.keyStateCode = keyStateCode
            self.keyVersion = keyVersion
            self.keyVersionCreationDate = keyVersionCreationDate
            self.keySequence = keySequence
            self.eventSequence = eventSequence
            self.instanceId = instanceId
            self.correlationId = correlationId
        }
    }

    /// The media type of a structured-mode CloudEvents JSON body.
    public static let contentType = "application/cloudevents+json"

    public var specversion: String
    public var id: String
    public var source: String
    public var type: String
    public var subject: String
    public var time: String
    public var datacontenttype: String
    /// Extension attribute: the CRN of the resource notified.
    public var resourcecrn: String
    public var data: Payload

    /// The event of `notification`, for its resource.
    public init(_ notification: ResourceNotification, source: WebhookEventSource = .keyRelay) {
        let event = notification.event
        specversion = CloudEventNames.specVersion
        id = event.id
        self.source = source.source(for: event)
        type = event.kind.cloudEventType
        subject = event.keyID
        time = Timestamp.format(event.date)
        datacontenttype = "application/json"
        resourcecrn = notification.resourceCRN
        data = Payload(keyState: event.keyState.description, keyStateCode: event.keyState.rawValue,
                       keyVersion: event.keyVersion.id, keyVersionCreationDate: Timestamp.format(event.keyVersion.creationDate),
                       keySequence: event.keySequence, eventSequence: event.sequence, instanceId: event.instanceID,
                       correlationId: event.correlationID)
    }

    /// The JSON body: keys sorted, slashes unescaped. The signature covers these exact bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Decodes a body (after its signature has been verified: ``WebhookVerifier``).
    public static func decode(_ body: some DataProtocol) throws -> WebhookEvent {
        try JSONDecoder().decode(WebhookEvent.self, from: Data(body))
    }

    /// The lifecycle event this body describes, for a receiver that applies it with the same code as an in-process
    /// subscriber. The principal is not sent, so it reads `webhook`.
    public func lifecycleEvent() throws(WebhookEventError) -> LifecycleEvent {
        func bad(_ why: String) -> WebhookEventError {
            WebhookEventError("The webhook event '\(id.prefix(64))' is not a KeyRelay lifecycle event: \(why)")
        }
        guard specversion == CloudEventNames.specVersion else { throw bad("specversion is '\(specversion.prefix(16))', not 1.0") }
        guard let kind = CloudEventNames.kind(ofType: type) else { throw bad("unknown type '\(type.prefix(64))'") }
        guard let state = KeyState(rawValue: data.keyStateCode) else { throw bad("unknown keyStateCode \(data.keyStateCode)") }
        guard let date = Timestamp.parse(time) else { throw bad("time '\(time.prefix(64))' is not RFC 3339") }
        guard let versionDate = Timestamp.parse(data.keyVersionCreationDate) else {
            throw bad("keyVersionCreationDate '\(data.keyVersionCreationDate.prefix(64))' is not RFC 3339")
        }
        return LifecycleEvent(sequence: data.eventSequence, id: id, instanceID: data.instanceId, keyID: subject,
                              keySequence: data.keySequence, kind: kind, keyState: state,
                              keyVersion: KeyVersion(id: data.keyVersion, creationDate: versionDate), date: date,
                              principal: "webhook", correlationID: data.correlationId)
    }
}
