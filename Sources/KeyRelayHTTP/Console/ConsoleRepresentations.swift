import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay
import KeyRelayBus

/// The JSON shapes of the console's endpoints (`/api/v2/_keyrelay/…`, `/api/v2/_dev/bus`), one `Codable` type per
/// answer. Dates travel as Key Protect's RFC 3339 timestamps; an absent optional is an absent field.
enum ConsoleJSON {
    static let mediaType = "application/vnd.keyrelay.console+json"

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }()

    /// `value` as a JSON response.
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(data: try encoder.encode(value))))
    }

    struct Metadata: Codable, Equatable {
        var collectionType = ConsoleJSON.mediaType
        var collectionTotal: Int
        var totalCount: Int
        /// The server's clock (a dev server may run on a manual clock): the console counts down against it.
        var now: Date
        var drifted: Int?
    }

    struct Version: Codable, Equatable {
        var id: String
        var creationDate: Date
        init(_ version: KeyVersion) {
            id = version.id
            creationDate = version.creationDate
        }
    }

    struct Counts: Codable, Equatable {
        var pending: Int
        var sent: Int
        var acknowledged: Int
        var dead: Int
        init(_ counts: DeliveryCounts) {
            pending = counts.pending
            sent = counts.sent
            acknowledged = counts.acknowledged
            dead = counts.dead
        }
    }

    /// What the key accepts: an action name and, when it is accepted only later, from when.
    struct Action: Codable, Equatable {
        var action: String
        var allowedFrom: Date?
        init(_ availability: ActionAvailability) {
            action = availability.action.rawValue
            allowedFrom = availability.allowedFrom
        }
    }

    /// A key as the console shows it, with what it accepts now (the console holds no copy of the rules).
    struct KeySummary: Codable, Equatable {
        var id: String
        var name: String
        var description: String?
        var state: Int
        var stateName: String
        var extractable: Bool
        var keyVersion: Version
        var lastRotateDate: Date?
        var lastLifecycleActionDate: Date?
        var lastSyncDate: Date?
        var deletionDate: Date?
        var expectedAdopterKeyState: String
        var actions: [Action]
        /// The first instant a sync is accepted; absent when it is accepted now.
        var syncAllowedFrom: Date?

        init(_ overview: KeyOverview) {
            let key = overview.key
            id = key.id
            name = key.name
            description = key.description
            state = key.state.rawValue
            stateName = key.state.description
            extractable = key.extractable
            keyVersion = Version(key.currentVersion)
            lastRotateDate = key.lastRotateDate
            lastLifecycleActionDate = key.lastLifecycleActionDate
            lastSyncDate = key.lastSyncDate
            deletionDate = key.deletionDate
            expectedAdopterKeyState = AdopterKeyState.expected(for: key.state).rawValue
            actions = overview.actions.map(Action.init)
            syncAllowedFrom = overview.syncAllowedFrom
        }
    }

    /// One row of the keys page.
    struct Overview: Codable, Equatable {
        var keyId: String
        var key: KeySummary
        /// Every registration of the key, those whose protection a forced delete ended included.
        var registrations: Int
        /// The registrations that protect the key: a delete needs force while there are any.
        var protectingRegistrations: Int
        var preventingDeletion: Int
        var drifted: Int
        var driftSince: Date?
        var deliveries: Counts
        init(_ overview: KeyOverview) {
            keyId = overview.key.id
            key = KeySummary(overview)
            registrations = overview.registrations.total
            protectingRegistrations = overview.registrations.count
            preventingDeletion = overview.registrations.preventingDeletion
            drifted = overview.drifted
            driftSince = overview.driftSince
            deliveries = Counts(overview.deliveries)
        }
    }

    struct OverviewPage: Codable, Equatable {
        var metadata: Metadata
        var resources: [Overview]
    }

    struct AcknowledgementView: Codable, Equatable {
        var eventId: String
        var adopterKeyState: String
        var keyVersionId: String?
        var processedAt: Date
        var receivedAt: Date
    }

    struct Association: Codable, Equatable {
        var resourceCrn: String
        var service: String
        var preventKeyDeletion: Bool
        var keyVersion: Version
        var creationDate: Date
        var drifted: Bool
        var driftSince: Date?
        var expectedAdopterKeyState: String?
        var acknowledgement: AcknowledgementView?
        init(_ status: RegistrationStatus) {
            let registration = status.registration
            resourceCrn = registration.resourceCRN
            service = registration.serviceName
            preventKeyDeletion = registration.preventKeyDeletion
            keyVersion = Version(registration.keyVersion)
            creationDate = registration.creationDate
            drifted = status.drift != nil
            driftSince = status.drift?.since
            expectedAdopterKeyState = status.drift?.expected.rawValue
            acknowledgement = registration.acknowledgement.map {
                AcknowledgementView(eventId: $0.eventID, adopterKeyState: $0.adopterKeyState.rawValue, keyVersionId: $0.keyVersionID,
                                    processedAt: $0.processedAt, receivedAt: $0.receivedAt)
            }
        }
    }

    struct AssociationsPage: Codable, Equatable {
        var metadata: Metadata
        var key: KeySummary
        var deliveries: Counts
        var resources: [Association]
    }

    struct Delivery: Codable, Equatable {
        var resourceCrn: String
        var service: String
        var status: String
        var attempts: Int
        var lastError: String?
        var sentDate: Date?
        var acknowledgedDate: Date?
        var nextAttemptDate: Date?
        init(_ notification: ResourceNotification) {
            resourceCrn = notification.resourceCRN
            service = notification.serviceName
            status = notification.status.rawValue
            attempts = notification.attempts
            lastError = notification.lastError
            sentDate = notification.sentDate
            acknowledgedDate = notification.acknowledgedDate
            nextAttemptDate = notification.nextAttemptDate
        }
    }

    struct Event: Codable, Equatable {
        var id: String
        var sequence: Int64
        var kind: String
        var date: Date
        var keyState: Int
        var keyStateName: String
        var keyVersion: Version
        var principal: String
        var correlationId: String?
        var counts: Counts
        var deliveries: [Delivery]
        init(_ item: EventDeliveries) {
            let event = item.event
            id = event.id
            sequence = event.sequence
            kind = event.kind.rawValue
            date = event.date
            keyState = event.keyState.rawValue
            keyStateName = event.keyState.description
            keyVersion = Version(event.keyVersion)
            principal = event.principal
            correlationId = event.correlationID
            counts = Counts(item.counts)
            deliveries = item.deliveries.map(Delivery.init)
        }
    }

    struct EventKey: Codable, Equatable {
        var id: String
        var name: String
        var state: Int
        var stateName: String
    }

    struct EventsPage: Codable, Equatable {
        var metadata: Metadata
        var key: EventKey
        var resources: [Event]
    }

    /// `POST /api/v2/_dev/bus`: every field optional but `service`.
    struct BusFaultsChange: Codable, Equatable {
        var service: String?
        var dropNext: Int?
        var failNext: Int?
        var duplicateNext: Int?
        /// A duration such as "30s"; "0s" removes the delay.
        var delay: String?
        var partition: Bool?
        /// Remove every fault of the service first.
        var clear: Bool?
    }

    struct BusFaults: Codable, Equatable {
        var service: String
        var dropNext: Int
        var failNext: Int
        var duplicateNext: Int
        var partitioned: Bool
        var delay: String?
        init(service: String, _ faults: FaultInjector) {
            self.service = service
            dropNext = faults.dropNext
            failNext = faults.failNext
            duplicateNext = faults.duplicateNext
            partitioned = faults.partitioned
            delay = faults.delay.map(DurationText.goStyle)
        }
    }
}
