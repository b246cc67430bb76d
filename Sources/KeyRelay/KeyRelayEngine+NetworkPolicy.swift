import Foundation
import KeyRelayCore
internal import KeyRelayStore
import Synchronization

/// The instance policies `allowedIP` and `allowedNetwork` (issue #13 item 7): every request to an instance is
/// checked against them. The front end says where a request comes from (the client's address, the listener); the
/// engine says whether the instance admits it.
extension KeyRelayEngine {
    /// The most `allowed_ip` entries one policy may hold.
    public static let maximumAllowedIPRanges = 1000

    /// The network policy of an instance's stored policies (the attributes as `PUT /instance/policies` set them).
    static func networkPolicy(_ policies: [InstancePolicy]) -> NetworkAccessPolicy {
        var policy = NetworkAccessPolicy()
        for stored in policies where stored.enabled {
            let attributes = Self.attributes(stored.attributesJSON)
            switch stored.policyType {
            case "allowedIP":
                // Validated when set: an entry that does not parse is not admitted by anything.
                policy.allowedIP = (attributes["allowed_ip"] as? [String] ?? []).compactMap(IPAddressRange.init)
            case "allowedNetwork":
                policy.privateOnly = attributes["allowed_network"] as? String == "private-only"
            default:
                break
            }
        }
        return policy
    }

    /// An instance policy's `policy_data.attributes` as stored (a JSON object); empty when absent or not an object.
    /// Every policy's attributes are read through this one function.
    static func attributes(_ json: String?) -> [String: Any] {
        (json.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]) ?? [:]
    }

    /// Refuses an enabled `allowedIP` or `allowedNetwork` policy whose attributes would not mean what the caller
    /// thinks (`INVALID_FIELD_ERR` naming the attribute), before it is stored.
    static func validateNetworkPolicy(type: String, enabled: Bool, attributesJSON: String?, operation: String) throws(KeyRelayError) {
        guard enabled else { return }
        let attributes = Self.attributes(attributesJSON)
        switch type {
        case "allowedIP":
            guard let entries = attributes["allowed_ip"] as? [String], !entries.isEmpty,
                  entries.count <= maximumAllowedIPRanges else {
                throw KeyRelayError(.invalidField, "The field 'allowed_ip' must be: a list of 1 to \(maximumAllowedIPRanges) IPv4 or IPv6 addresses or CIDR blocks",
                                    operation: operation, target: ErrorTarget(.field, "allowed_ip"))
            }
            if let bad = entries.first(where: { IPAddressRange($0) == nil }) {
                throw KeyRelayError(.invalidField, "The field 'allowed_ip' must be: a list of IPv4 or IPv6 addresses or CIDR blocks",
                                    operation: operation, target: ErrorTarget(.field, "allowed_ip"),
                                    hint: "'\(bad.prefix(40))' is not an address or a CIDR block such as 10.0.0.0/8 or 2001:db8::/32")
            }
        case "allowedNetwork":
            guard let value = attributes["allowed_network"] as? String, ["public-and-private", "private-only"].contains(value) else {
                throw KeyRelayError(.invalidField, "The field 'allowed_network' must be: one of public-and-private, private-only",
                                    operation: operation, target: ErrorTarget(.field, "allowed_network"))
            }
        default:
            return
        }
    }

    /// The network policy in force for `instanceID`, read again only after a commit (of this process) since the
    /// last read, so a request costs a lock, not a query.
    public nonisolated func networkPolicy(instanceID: String) async throws -> NetworkAccessPolicy {
        let generation = storage.commits.generation
        if let cached = networkPolicies.cached(instanceID, generation: generation) { return cached }
        let policy = Self.networkPolicy(try await storage.read { tx in try tx.instancePolicies(instanceID: instanceID) })
        networkPolicies.store(policy, for: instanceID, generation: generation)
        return policy
    }

    /// Refuses a request the instance's `allowedIP` / `allowedNetwork` policy does not admit, as Key Protect refuses
    /// an unauthorized caller (401 `UNAUTHORIZED_ERR`, its wording; the hint says why).
    /// - Parameters:
    ///   - address: the client's address as the listener saw it (nil when unknown: refused under `allowedIP`).
    ///   - network: the listener the request arrived on.
    public nonisolated func checkNetworkAccess(instanceID: String, address: IPAddress?, network: RequestNetwork) async throws {
        let policy = try await networkPolicy(instanceID: instanceID)
        guard !policy.admits(address: address, network: network) else { return }
        let why = policy.privateOnly && network != .private
            ? "the instance's allowedNetwork policy is private-only: use the private endpoint (serve --private-port)"
            : "the instance's allowedIP policy does not admit \(address.map { "\($0)" } ?? "an unknown address")"
        logger.warning("request refused by a network policy", metadata: ["instance": "\(instanceID)", "why": "\(why)"])
        throw KeyRelayError(.unauthorized, "Unauthorized: The user does not have access to the specified resource",
                            operation: "Request could not be processed", hint: why)
    }
}

/// Network policies by instance, each valid until the store's next commit.
final class NetworkPolicyCache: Sendable {
    private let entries = Mutex<[String: (generation: UInt64, policy: NetworkAccessPolicy)]>([:])

    func cached(_ instanceID: String, generation: UInt64) -> NetworkAccessPolicy? {
        entries.withLock { entries in
            guard let entry = entries[instanceID], entry.generation == generation else { return nil }
            return entry.policy
        }
    }

    func store(_ policy: NetworkAccessPolicy, for instanceID: String, generation: UInt64) {
        entries.withLock { entries in
            if entries.count >= 10_000 { entries.removeAll(keepingCapacity: true) }
            entries[instanceID] = (generation, policy)
        }
    }
}
