import Foundation
import HTTPTypes
import Hummingbird
import KeyRelay

// KMIP adapter management (reference §1.5): the eleven operations IBM's client calls (`get_kmip_adapters`,
// `create_kmip_adapter`, `get_kmip_adapter`, `delete_kmip_adapter`, `get_kmip_objects`, `get_kmip_object`,
// `delete_kmip_object`, `get_kmip_client_certificates`, `add_kmip_client_certificate`,
// `get_kmip_client_certificate`, `delete_kmip_client_certificate`). Every rule is the engine's
// (``KeyRelayEngine/createKMIPAdapter(_:allowExpiringKey:context:)`` and its neighbours).

extension MediaTypes {
    public static let kmipAdapter = "application/vnd.ibm.kms.kmip_adapter+json"
    public static let kmipClientCertificate = "application/vnd.ibm.kms.kmip_client_certificate+json"
    public static let kmipObject = "application/vnd.ibm.kms.kmip_object+json"
}

// MARK: - Request bodies

/// `POST /kmip_adapters` (the client sends `application/json`): one `CreateKMIPAdapterObject`.
struct KMIPAdapterCreateRequest: WireRequest {
    static let operation = "KMIP adapter could not be created"
    struct Resource: Decodable, Sendable {
        struct ProfileData: Decodable, Sendable {
            var crkID: String?
            enum CodingKeys: String, CodingKey { case crkID = "crk_id" }
        }
        var name: String?
        var description: String?
        var profile: String
        var profileData: ProfileData?
        enum CodingKeys: String, CodingKey {
            case name, description, profile
            case profileData = "profile_data"
        }
    }
    var envelope: WireCollection<Resource>
    init(from decoder: any Decoder) throws { envelope = try WireCollection<Resource>(from: decoder) }
}

/// `POST /kmip_adapters/{adapter_id}/certificates` (the client sends `application/json`): one
/// `CreateKMIPClientCertificateObject`.
struct KMIPClientCertificateRequest: WireRequest {
    static let operation = "KMIP client certificate could not be added"
    struct Resource: Decodable, Sendable {
        var certificate: String
        var name: String?
    }
    var envelope: WireCollection<Resource>
    init(from decoder: any Decoder) throws { envelope = try WireCollection<Resource>(from: decoder) }
}

// MARK: - Representations

/// `application/vnd.ibm.kms.kmip_adapter+json` (`KMIPAdapter`).
struct KMIPAdapterRepresentation: Codable, Sendable {
    struct ProfileData: Codable, Sendable {
        var crkID: String
        enum CodingKeys: String, CodingKey { case crkID = "crk_id" }
    }
    var id: String
    var name: String
    var description: String?
    var profile: String
    var profileData: ProfileData
    var createdAt: String
    var createdBy: String
    var updatedAt: String
    var updatedBy: String
    enum CodingKeys: String, CodingKey {
        case id, name, description, profile
        case profileData = "profile_data"
        case createdAt = "created_at"
        case createdBy = "created_by"
        case updatedAt = "updated_at"
        case updatedBy = "updated_by"
    }

    init(_ adapter: KMIPAdapter) {
        id = adapter.id
        name = adapter.name
        description = adapter.description
        profile = adapter.profile
        profileData = ProfileData(crkID: adapter.crkID)
        createdAt = Timestamp.format(adapter.createdAt)
        createdBy = adapter.createdBy
        updatedAt = Timestamp.format(adapter.updatedAt)
        updatedBy = adapter.updatedBy
    }
}

/// `application/vnd.ibm.kms.kmip_client_certificate+json`: `KMIPClientCertificate`, or without `certificate` in a
/// list (`KMIPClientPartialCertificate`).
struct KMIPClientCertificateRepresentation: Codable, Sendable {
    var id: String
    var name: String
    var certificate: String?
    var createdAt: String
    var createdBy: String
    enum CodingKeys: String, CodingKey {
        case id, name, certificate
        case createdAt = "created_at"
        case createdBy = "created_by"
    }

    init(_ certificate: KMIPClientCertificate, includePEM: Bool) {
        id = certificate.id
        name = certificate.name
        self.certificate = includePEM ? certificate.certificate : nil
        createdAt = Timestamp.format(certificate.createdAt)
        createdBy = certificate.createdBy
    }
}

/// `application/vnd.ibm.kms.kmip_object+json` (`KMIPObject`).
struct KMIPObjectRepresentation: Codable, Sendable {
    var id: String
    var kmipObjectType: Int
    var state: Int
    var createdAt: String
    var createdBy: String?
    var createdByKMIPClientCertID: String?
    var updatedAt: String?
    var updatedBy: String?
    var updatedByKMIPClientCertID: String?
    var destroyedAt: String?
    var destroyedBy: String?
    var destroyedByKMIPClientCertID: String?
    enum CodingKeys: String, CodingKey {
        case id, state
        case kmipObjectType = "kmip_object_type"
        case createdAt = "created_at"
        case createdBy = "created_by"
        case createdByKMIPClientCertID = "created_by_kmip_client_cert_id"
        case updatedAt = "updated_at"
        case updatedBy = "updated_by"
        case updatedByKMIPClientCertID = "updated_by_kmip_client_cert_id"
        case destroyedAt = "destroyed_at"
        case destroyedBy = "destroyed_by"
        case destroyedByKMIPClientCertID = "destroyed_by_kmip_client_cert_id"
    }

    init(_ object: KMIPObject) {
        id = object.id
        kmipObjectType = object.objectType
        state = object.state.rawValue
        createdAt = Timestamp.format(object.createdAt)
        createdBy = object.createdBy
        createdByKMIPClientCertID = object.createdByCertificateID
        updatedAt = object.updatedAt.map(Timestamp.format)
        updatedBy = object.updatedBy
        updatedByKMIPClientCertID = object.updatedByCertificateID
        destroyedAt = object.destroyedAt.map(Timestamp.format)
        destroyedBy = object.destroyedBy
        destroyedByKMIPClientCertID = object.destroyedByCertificateID
    }
}

// MARK: - Routes

extension KeyProtectAPI {
    func addKMIPRoutes(read: RouterGroup<KeyRelayRequestContext>, manage: RouterGroup<KeyRelayRequestContext>) {
        let api = self
        read.get("/api/v2/kmip_adapters") { request, context in try await api.listKMIPAdapters(request, context) }
        manage.post("/api/v2/kmip_adapters") { request, context in try await api.createKMIPAdapter(request, context) }
        read.get("/api/v2/kmip_adapters/{adapter}") { request, context in try await api.getKMIPAdapter(request, context) }
        manage.delete("/api/v2/kmip_adapters/{adapter}") { request, context in try await api.deleteKMIPAdapter(request, context) }
        read.get("/api/v2/kmip_adapters/{adapter}/kmip_objects") { request, context in try await api.listKMIPObjects(request, context) }
        read.get("/api/v2/kmip_adapters/{adapter}/kmip_objects/{id}") { request, context in try await api.getKMIPObject(request, context) }
        manage.delete("/api/v2/kmip_adapters/{adapter}/kmip_objects/{id}") { request, context in try await api.deleteKMIPObject(request, context) }
        read.get("/api/v2/kmip_adapters/{adapter}/certificates") { request, context in try await api.listKMIPCertificates(request, context) }
        manage.post("/api/v2/kmip_adapters/{adapter}/certificates") { request, context in try await api.addKMIPCertificate(request, context) }
        read.get("/api/v2/kmip_adapters/{adapter}/certificates/{id}") { request, context in try await api.getKMIPCertificate(request, context) }
        manage.delete("/api/v2/kmip_adapters/{adapter}/certificates/{id}") { request, context in
            try await api.deleteKMIPCertificate(request, context)
        }
    }

    // MARK: Adapters

    func listKMIPAdapters(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let query = Query(request: request, operation: "KMIP adapters could not be retrieved")
        let crkID = query.string("crk_id").flatMap { $0.isEmpty ? nil : $0 }
        let page = try await engine.kmipAdapters(crkID: crkID, limit: try query.int("limit", default: 100), offset: try query.int("offset", default: 0),
                                                 context: try context.caller)
        let total = try query.bool("totalCount") == true ? page.total : nil
        return try WireResponse(.ok, WireCollection(MediaTypes.kmipAdapter, page.items.map(KMIPAdapterRepresentation.init), totalCount: total))
            .response(from: request, context: context)
    }

    func createKMIPAdapter(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = KMIPAdapterCreateRequest.operation
        let caller = try context.caller
        let allowExpiring = try Query(request: request, operation: op).bool("allowExpiringKey") ?? false
        let resource = try await request.decode(as: KMIPAdapterCreateRequest.self, context: context).envelope.single(op)
        let spec = KMIPAdapterSpec(name: resource.name, description: resource.description, profile: resource.profile,
                                   crkID: resource.profileData?.crkID)
        let adapter = try await engine.createKMIPAdapter(spec, allowExpiringKey: allowExpiring, context: caller)
        return try WireResponse(.created, WireCollection(MediaTypes.kmipAdapter, [KMIPAdapterRepresentation(adapter)]))
            .response(from: request, context: context)
    }

    func getKMIPAdapter(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let adapter = try await engine.kmipAdapter(try context.parameters.require("adapter"), context: try context.caller)
        return try WireResponse(.ok, WireCollection(MediaTypes.kmipAdapter, [KMIPAdapterRepresentation(adapter)]))
            .response(from: request, context: context)
    }

    func deleteKMIPAdapter(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        try await engine.deleteKMIPAdapter(try context.parameters.require("adapter"), context: try context.caller)
        return emptyResponse(.noContent)
    }

    // MARK: Objects

    func listKMIPObjects(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let query = Query(request: request, operation: "KMIP objects could not be retrieved")
        let page = try await engine.kmipObjects(adapter: try context.parameters.require("adapter"), states: try kmipStates(query),
                                                limit: try query.int("limit", default: 100), offset: try query.int("offset", default: 0),
                                                context: try context.caller)
        let total = try query.bool("totalCount") == true ? page.total : nil
        return try WireResponse(.ok, WireCollection(MediaTypes.kmipObject, page.items.map(KMIPObjectRepresentation.init), totalCount: total))
            .response(from: request, context: context)
    }

    /// `state=2,3`: KMIP states 1–6; absent or empty means the default.
    func kmipStates(_ query: Query) throws -> Set<KMIPObjectState>? {
        try query.codes("state", as: KMIPObjectState.self, expected: "a comma-separated list of KMIP object states (1 to 6)")
    }

    func getKMIPObject(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let object = try await engine.kmipObject(try context.parameters.require("id"), adapter: try context.parameters.require("adapter"),
                                                 context: try context.caller)
        return try WireResponse(.ok, WireCollection(MediaTypes.kmipObject, [KMIPObjectRepresentation(object)]))
            .response(from: request, context: context)
    }

    func deleteKMIPObject(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let force = try Query(request: request, operation: "KMIP object could not be deleted").bool("force") ?? false
        try await engine.deleteKMIPObject(try context.parameters.require("id"), adapter: try context.parameters.require("adapter"), force: force,
                                          context: try context.caller)
        return emptyResponse(.noContent)
    }

    // MARK: Client certificates

    func listKMIPCertificates(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let query = Query(request: request, operation: "KMIP client certificates could not be retrieved")
        let page = try await engine.kmipClientCertificates(adapter: try context.parameters.require("adapter"),
                                                           limit: try query.int("limit", default: 100),
                                                           offset: try query.int("offset", default: 0), context: try context.caller)
        let total = try query.bool("totalCount") == true ? page.total : nil
        let resources = page.items.map { KMIPClientCertificateRepresentation($0, includePEM: false) }
        return try WireResponse(.ok, WireCollection(MediaTypes.kmipClientCertificate, resources, totalCount: total))
            .response(from: request, context: context)
    }

    func addKMIPCertificate(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let op = KMIPClientCertificateRequest.operation
        let caller = try context.caller
        let resource = try await request.decode(as: KMIPClientCertificateRequest.self, context: context).envelope.single(op)
        let certificate = try await engine.addKMIPClientCertificate(resource.certificate, name: resource.name,
                                                                    adapter: try context.parameters.require("adapter"), context: caller)
        // A vendor media type, as the real service answers: the client's callers call `.json()` on this result (§0).
        return try WireResponse(.created, WireCollection(MediaTypes.kmipClientCertificate,
                                                         [KMIPClientCertificateRepresentation(certificate, includePEM: true)]),
                                contentType: MediaTypes.kmipClientCertificate).response(from: request, context: context)
    }

    func getKMIPCertificate(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        let certificate = try await engine.kmipClientCertificate(try context.parameters.require("id"),
                                                                 adapter: try context.parameters.require("adapter"), context: try context.caller)
        return try WireResponse(.ok, WireCollection(MediaTypes.kmipClientCertificate,
                                                    [KMIPClientCertificateRepresentation(certificate, includePEM: true)]))
            .response(from: request, context: context)
    }

    func deleteKMIPCertificate(_ request: Request, _ context: KeyRelayRequestContext) async throws -> Response {
        try await engine.deleteKMIPClientCertificate(try context.parameters.require("id"), adapter: try context.parameters.require("adapter"),
                                                     context: try context.caller)
        return emptyResponse(.noContent)
    }
}
