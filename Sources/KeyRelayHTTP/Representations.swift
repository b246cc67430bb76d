import Crypto
import Foundation
import KeyRelay

/// How KeyRelay's values appear on the wire (Key Protect's JSON shapes).
struct Representations: Sendable {
    let region: String
    let account: String
    let rules: LifecycleRules

    /// `KeyFullRepresentation` (reference §2.1); `payload` is added by the caller for GET of a standard key.
    func key(_ key: Key, now: Date) -> [String: Any] {
        var object: [String: Any] = [
            "type": MediaTypes.key,
            "id": key.id,
            "name": key.name,
            "aliases": key.aliases,
            "tags": key.tags,
            "state": key.state.rawValue,
            "extractable": key.extractable,
            "crn": key.crn(region: region, account: account),
            "imported": key.imported,
            "keyRingID": key.keyRingID,
            "creationDate": Timestamp.format(key.creationDate),
            "createdBy": key.createdBy,
            "algorithmType": "Deprecated",
            "algorithmMetadata": ["bitLength": "256", "mode": "Deprecated"],
            "algorithmBitSize": 256,
            "algorithmMode": "Deprecated",
            "lastUpdateDate": Timestamp.format(key.lastUpdateDate),
            "keyVersion": version(key.currentVersion),
            "deleted": key.state == .destroyed,
        ]
        if let description = key.description { object["description"] = description }
        if let expiry = key.expirationDate { object["expirationDate"] = Timestamp.format(expiry) }
        if let rotated = key.lastRotateDate { object["lastRotateDate"] = Timestamp.format(rotated) }
        var dualAuth: [String: Any] = ["enabled": key.dualAuthDelete.enabled]
        if key.dualAuthDelete.enabled {
            let set = key.dualAuthDelete.isSetForDeletion(at: now)
            dualAuth["keySetForDeletion"] = set
            if set, let expiry = key.dualAuthDelete.authExpiration { dualAuth["authExpiration"] = Timestamp.format(expiry) }
        }
        object["dualAuthDelete"] = dualAuth
        if let rotation = key.rotation {
            object["rotation"] = ["enabled": rotation.enabled, "interval_month": rotation.intervalMonth]
        }
        if key.state == .destroyed, let deletion = key.deletionDate {
            object["deletionDate"] = Timestamp.format(deletion)
            if let by = key.deletedBy { object["deletedBy"] = by }
            let restoreExpiry = rules.restoreExpirationDate(key)
            if let restoreExpiry { object["restoreExpirationDate"] = Timestamp.format(restoreExpiry) }
            object["restoreAllowed"] = restoreExpiry.map { now < $0 } ?? false
            let purgeFrom = rules.purgeAllowedFrom(key) ?? deletion
            object["purgeAllowedFrom"] = Timestamp.format(purgeFrom)
            object["purgeAllowed"] = now >= purgeFrom
            object["purgeScheduledOn"] = Timestamp.format(deletion.addingTimeInterval(rules.configuration.autoPurgeAfter))
        }
        return object
    }

    func version(_ version: KeyVersion) -> [String: Any] {
        ["id": version.id, "creationDate": Timestamp.format(version.creationDate)]
    }

    /// `RegistrationResource` (reference §3). `registrationMetadata` only for service callers.
    func registration(_ registration: Registration, keyName: String?, includeMetadata: Bool) -> [String: Any] {
        var object: [String: Any] = [
            "keyId": registration.keyID,
            "resourceCrn": registration.resourceCRN,
            "createdBy": registration.createdBy,
            "creationDate": Timestamp.format(registration.creationDate),
            "updatedBy": registration.updatedBy,
            "lastUpdated": Timestamp.format(registration.lastUpdated),
            "preventKeyDeletion": registration.preventKeyDeletion,
            "keyVersion": version(registration.keyVersion),
        ]
        if let keyName { object["keyName"] = keyName }
        if let description = registration.description { object["description"] = description }
        if includeMetadata, let metadata = registration.registrationMetadata { object["registrationMetadata"] = metadata }
        return object
    }

    /// A key's policies as `GetKeyPoliciesOneOf` resources.
    func policies(_ key: Key, only: String?) -> [[String: Any]] {
        var out: [[String: Any]] = []
        let crn = key.crn(region: region, account: account)
        func resource(_ type: String, _ stamp: PolicyStamp?) -> [String: Any] {
            var object: [String: Any] = ["id": Self.stableID(key.id, type), "crn": crn, "type": MediaTypes.policy]
            if let stamp {
                object["creationDate"] = Timestamp.format(stamp.creationDate)
                object["createdBy"] = stamp.createdBy
                object["lastUpdateDate"] = Timestamp.format(stamp.lastUpdateDate)
                object["updatedBy"] = stamp.updatedBy
            }
            return object
        }
        if only == nil || only == "rotation", let rotation = key.rotation {
            var object = resource("rotation", key.rotationStamp)
            object["rotation"] = ["enabled": rotation.enabled, "interval_month": rotation.intervalMonth]
            out.append(object)
        }
        if only == nil || only == "dualAuthDelete", key.dualAuthStamp != nil || key.dualAuthDelete.enabled {
            var object = resource("dualAuthDelete", key.dualAuthStamp)
            object["dualAuthDelete"] = ["enabled": key.dualAuthDelete.enabled]
            out.append(object)
        }
        return out
    }

    func instancePolicy(_ policy: InstancePolicy) -> [String: Any] {
        var data: [String: Any] = ["enabled": policy.enabled]
        if let json = policy.attributesJSON, let attributes = try? JSONSerialization.jsonObject(with: Data(json.utf8)) {
            data["attributes"] = attributes
        }
        return [
            "policy_type": policy.policyType,
            "policy_data": data,
            "creationDate": Timestamp.format(policy.stamp.creationDate),
            "createdBy": policy.stamp.createdBy,
            "updatedBy": policy.stamp.updatedBy,
            "lastUpdated": Timestamp.format(policy.stamp.lastUpdateDate),
        ]
    }

    /// A v4-shaped id derived from a key id and a name (policy ids are stable across reads).
    static func stableID(_ keyID: String, _ name: String) -> String {
        let digest = Array(SHA256.hash(data: Data("\(keyID):\(name)".utf8)))
        func word(_ start: Int) -> UInt64 { digest[start..<start + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        return UUIDText.format(high: word(0), low: word(8))
    }
}
