import Foundation
import KeyRelayCore
import KeyRelayStore

extension StoreContract {
    // MARK: KMIP adapter management

    static let kmipAdapters = StoreContractCheck(
        "kmipAdapters",
        "KMIP adapters, client certificates and objects round-trip; lookups by id and name stay in their instance and adapter; lists filter by root key, key ring and object state and page exactly; deleting an adapter deletes its certificates and objects."
    ) { backend in
        let store = try await backend.makeStore()
        let ringed = { var key = F.key("k2"); key.keyRingID = "ring-a"; return key }()
        let first = KMIPAdapter(id: "ad1", instanceID: "i1", name: "first", description: "one", crkID: "k1", createdAt: F.at(1), createdBy: "alice")
        let second = KMIPAdapter(id: "ad2", instanceID: "i1", name: "second", description: nil, crkID: "k2", createdAt: F.at(2), createdBy: "bob",
                                 updatedAt: F.at(3), updatedBy: "carol")
        let foreign = KMIPAdapter(id: "ad3", instanceID: "i2", name: "first", description: nil, crkID: "k3", createdAt: F.at(1), createdBy: "eve")
        let certificate = KMIPClientCertificate(id: "c1", adapterID: "ad1", name: "cert", certificate: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
                                                createdAt: F.at(4), createdBy: "alice")
        let objects = KMIPObjectState.allCases.map { state in
            KMIPObject(id: "o\(state.rawValue)", adapterID: "ad1", state: state, createdAt: F.at(Double(state.rawValue)), createdByCertificateID: "c1")
        }
        try await store.write { tx in
            try F.seed(tx, F.key("k1"))
            try tx.insertKeyRing(instanceID: "i1", id: "ring-a", at: F.epoch, by: "alice")
            try tx.insertKey(ringed)
            try F.seed(tx, F.key("k3", instance: "i2"))
            for adapter in [first, second, foreign] { try tx.insertKMIPAdapter(adapter) }
            try tx.insertKMIPClientCertificate(certificate)
            for object in objects { try tx.saveKMIPObject(object) }
        }
        try await store.read { tx in
            try requireEqual(try tx.kmipAdapter(id: "ad1", instanceID: "i1"), first, "adapter ad1 by id")
            try requireEqual(try tx.kmipAdapter(name: "second", instanceID: "i1"), second, "adapter 'second' by name")
            try requireEqual(try tx.kmipAdapter(name: "first", instanceID: "i2"), foreign, "the other instance's adapter 'first'")
            try require(try tx.kmipAdapter(id: "ad3", instanceID: "i1") == nil, "another instance's adapter is visible by id")
            try requireEqual(try tx.kmipAdapters(instanceID: "i1", crkID: nil, keyRingID: nil, limit: 10, offset: 0).map(\.id), ["ad1", "ad2"],
                             "adapters of i1, by creation")
            try requireEqual(try tx.kmipAdapters(instanceID: "i1", crkID: nil, keyRingID: nil, limit: 1, offset: 1).map(\.id), ["ad2"], "page 2 of 1")
            try requireEqual(try tx.kmipAdapters(instanceID: "i1", crkID: "k1", keyRingID: nil, limit: 10, offset: 0).map(\.id), ["ad1"], "adapters on k1")
            try requireEqual(try tx.kmipAdapters(instanceID: "i1", crkID: nil, keyRingID: "ring-a", limit: 10, offset: 0).map(\.id), ["ad2"],
                             "adapters whose key is in ring-a")
            try requireEqual(try tx.countKMIPAdapters(instanceID: "i1", crkID: nil, keyRingID: nil), 2, "adapter count of i1")
            try requireEqual(try tx.countKMIPAdapters(instanceID: "i1", crkID: "k2", keyRingID: "default"), 0, "adapters on k2 in ring default")

            try requireEqual(try tx.kmipClientCertificate(id: "c1", adapterID: "ad1"), certificate, "certificate c1 by id")
            try requireEqual(try tx.kmipClientCertificate(name: "cert", adapterID: "ad1"), certificate, "certificate 'cert' by name")
            try require(try tx.kmipClientCertificate(id: "c1", adapterID: "ad2") == nil, "a certificate is visible through another adapter")
            try requireEqual(try tx.kmipClientCertificates(adapterID: "ad1", limit: 10, offset: 0), [certificate], "certificates of ad1")
            try requireEqual(try tx.countKMIPClientCertificates(adapterID: "ad2"), 0, "certificates of ad2")

            try requireEqual(try tx.kmipObject(id: "o2", adapterID: "ad1"), objects[1], "object o2")
            try requireEqual(try tx.kmipObjects(adapterID: "ad1", states: KMIPObjectState.listedByDefault, limit: 10, offset: 0).map(\.id),
                             ["o1", "o2", "o3", "o4"], "objects listed by default (states 1-4)")
            try requireEqual(try tx.kmipObjects(adapterID: "ad1", states: [.active, .destroyed], limit: 1, offset: 1).map(\.id), ["o5"],
                             "page 2 of 1 of objects in states 2 and 5")
            try requireEqual(try tx.countKMIPObjects(adapterID: "ad1", states: [.destroyed, .destroyedCompromised]), 2, "destroyed objects")
            try requireEqual(try tx.countKMIPObjects(adapterID: "ad1", states: []), 0, "objects in no state")
        }
        // An object's new state is saved over the old one.
        let destroyed = {
            var object = objects[2]
            object.state = .destroyed
            object.destroyedAt = F.at(9)
            object.destroyedBy = "alice"
            object.updatedAt = F.at(9)
            return object
        }()
        try await store.write { tx in try tx.saveKMIPObject(destroyed) }
        try requireEqual(try await store.read { tx in try tx.kmipObject(id: "o3", adapterID: "ad1") }, Optional(destroyed), "object o3 after it was destroyed")

        let (removed, again) = try await store.write { tx in
            (try tx.deleteKMIPClientCertificate(id: "c1"), try tx.deleteKMIPClientCertificate(id: "c1"))
        }
        try require(removed && !again, "deleting certificate c1 twice answered \(removed), \(again): expected true, false")
        try await store.write { tx in try tx.insertKMIPClientCertificate(certificate) }
        let deleted = try await store.write { tx in try tx.deleteKMIPAdapter(id: "ad1") }
        try require(deleted, "deleting adapter ad1 answered false")
        try await store.read { tx in
            try require(try tx.kmipAdapter(id: "ad1", instanceID: "i1") == nil, "adapter ad1 is there after its deletion")
            try requireEqual(try tx.countKMIPClientCertificates(adapterID: "ad1"), 0, "certificates of the deleted adapter")
            try requireEqual(try tx.countKMIPObjects(adapterID: "ad1", states: Set(KMIPObjectState.allCases)), 0, "objects of the deleted adapter")
            try requireEqual(try tx.countKMIPAdapters(instanceID: "i1", crkID: nil, keyRingID: nil), 1, "adapters of i1 after the deletion")
        }
        try require(!(try await store.write { tx in try tx.deleteKMIPAdapter(id: "ad1") }), "deleting a deleted adapter answered true")
    }
}
