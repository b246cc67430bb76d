"""Contract flows: the endpoints the official client never calls (service-to-service registrations, event_ack, the
console's JSON, the simulated services, the dev clock and bus, KMIP, /ui), driven with plain requests through
states that schemathesis rarely reaches (dual authorization, drift and acknowledgement, deletion and purge, the
deprecated `?action=` form). Every response is checked against docs/openapi.yaml by conftest.py; the tests here
check the statuses. Run after test_official_client.py by scripts/interop, on its own instance (the clock is shared).
"""
import base64
import os
import urllib.parse
import uuid

import requests

URL = os.environ["KEYRELAY_URL"]
TOKEN = os.environ["KEYRELAY_TOKEN"]
HEADERS = {"Authorization": "Bearer " + TOKEN, "Bluemix-Instance": str(uuid.uuid4())}
KEY = "application/vnd.ibm.kms.key+json"
POLICY = "application/vnd.ibm.kms.policy+json"
REGISTRATION = "application/vnd.ibm.kms.registration_input+json"


def call(method, path, expect, headers=None, **kwargs):
    response = requests.request(method, URL + path, headers=dict(HEADERS, **(headers or {})), timeout=60, **kwargs)
    assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:300]}"
    return response


def envelope(collection_type, *resources):
    return {"metadata": {"collectionType": collection_type, "collectionTotal": len(resources)}, "resources": list(resources)}


def create(name, headers=None, **fields):
    return call("POST", "/api/v2/keys", 201, headers, json=envelope(KEY, dict(name=name, **fields))).json()["resources"][0]


def advance(duration):
    call("POST", "/api/v2/_dev/clock", 200, json={"advance": duration})


def test_policies_and_dual_authorization():
    key = create("flow-dual")["id"]
    both = envelope(POLICY, {"type": POLICY, "dualAuthDelete": {"enabled": True}},
                    {"type": POLICY, "rotation": {"enabled": True, "interval_month": 2}})
    call("PUT", f"/api/v2/keys/{key}/policies", 200, json=both)
    assert len(call("GET", f"/api/v2/keys/{key}/policies", 200).json()["resources"]) == 2
    call("GET", f"/api/v2/keys/{key}/policies?policy=rotation", 200)
    call("POST", f"/api/v2/keys/{key}/actions/setKeyForDeletion", 204)
    dual = call("GET", f"/api/v2/keys/{key}", 200).json()["resources"][0]["dualAuthDelete"]
    assert dual["enabled"] and dual["keySetForDeletion"] and "authExpiration" in dual
    call("PUT", f"/api/v2/keys/{key}/policies?policy=dualAuthDelete", 403,
         json=envelope(POLICY, {"dualAuthDelete": {"enabled": False}}))
    call("POST", f"/api/v2/keys/{key}/actions/unsetKeyForDeletion", 204)
    call("DELETE", f"/api/v2/keys/{key}", 409)


def test_instance_policies():
    # public-and-private: private-only is enforced now and would lock the public listener (and the later tests) out.
    call("PUT", "/api/v2/instance/policies", 204, json=envelope(
        POLICY,
        {"policy_type": "allowedNetwork", "policy_data": {"enabled": True, "attributes": {"allowed_network": "public-and-private"}}},
        {"policy_type": "keyCreateImportAccess", "policy_data": {"enabled": True, "attributes": {"import_standard_key": False}}}))
    assert len(call("GET", "/api/v2/instance/policies", 200).json()["resources"]) == 2
    payload = base64.b64encode(os.urandom(16)).decode()
    call("POST", "/api/v2/keys", 409, json=envelope(KEY, {"name": "flow-refused", "extractable": True, "payload": payload}))
    call("PUT", "/api/v2/instance/policies?policy=keyCreateImportAccess", 204,
         json=envelope(POLICY, {"policy_type": "keyCreateImportAccess", "policy_data": {"enabled": False}}))
    call("GET", "/api/v2/instance/allowed_ip_port", 200)


def test_simulated_services_drift_and_sync():
    key = create("flow-sim", aliases=["flow-sim-alias"], tags=["a"], description="d", expirationDate="2099-01-01T00:00:00Z")["id"]
    call("POST", "/api/v2/_sim/buckets", 201, json={"name": "flow-bucket", "keyId": key})
    call("POST", "/api/v2/_sim/deployments", 201, json={"name": "flow-db", "keyId": "flow-sim-alias", "retention": True})
    call("PUT", "/api/v2/_sim/buckets/flow-bucket/objects/o1", 204, data=b"hello", headers={"Content-Type": "application/octet-stream"})
    assert call("GET", "/api/v2/_sim/buckets/flow-bucket/objects/o1", 200).content == b"hello"
    call("POST", f"/api/v2/keys/{key}/actions/rotate", 204)
    advance("1m")
    call("GET", f"/api/v2/_keyrelay/keys/{key}/associations", 200)
    call("GET", f"/api/v2/_keyrelay/keys/{key}/events", 200)
    call("GET", f"/api/v2/_keyrelay/keys/overview?ids={key},flow-sim-alias", 200)
    call("POST", f"/api/v2/keys/{key}/actions/disable", 204)
    advance("1m")
    call("GET", "/api/v2/_sim/buckets", 200)
    assert call("GET", "/api/v2/_sim/buckets/flow-bucket", 200).json()["access"] == "denied"
    call("GET", "/api/v2/_sim/deployments", 200)
    call("GET", "/api/v2/_sim/buckets/flow-bucket/objects/o1", 403)
    call("GET", f"/api/v2/keys/{key}/registrations?totalCount=true", 200)
    call("GET", "/api/v2/keys/registrations?totalCount=true&preventKeyDeletion=true", 200)
    call("GET", f"/api/v2/keys/{key}/versions?allKeyStates=true&totalCount=true", 200)
    call("GET", f"/api/v2/keys/{key}/versions", 409)
    advance("31s")
    call("POST", f"/api/v2/keys/{key}/actions/enable", 204)
    assert "Retry-After" in call("POST", f"/api/v2/keys/{key}/actions/sync", 409).headers
    advance("2h")
    call("POST", f"/api/v2/keys/{key}/actions/sync", 204)
    call("DELETE", f"/api/v2/keys/{key}?force=true", 409)


def test_service_registration_ack_delete_purge():
    key = create("flow-external")["id"]
    crn = urllib.parse.quote("crn:v1:bluemix:public:cloud-object-storage:global:a/keyrelay:ext:bucket:flow", safe="")
    path = f"/api/v2/keys/{key}/registrations/{crn}"
    call("POST", path, 201, json=envelope(REGISTRATION, {"description": "ext", "registrationMetadata": "m"}))
    call("PATCH", path, 200, json=envelope(REGISTRATION, {"description": "ext2"}))
    call("POST", f"/api/v2/keys/{key}/actions/rotate", 204)
    events = call("GET", f"/api/v2/_keyrelay/keys/{key}/events", 200).json()["resources"]
    version = call("GET", f"/api/v2/keys/{key}/metadata", 200).json()["resources"][0]["keyVersion"]["id"]
    call("POST", "/api/v2/event_ack", 204, json=envelope(
        "application/vnd.ibm.kms.event_acknowledge+json",
        {"eventId": events[0]["id"], "adopterKeyState": "DEK_ENABLED", "timestamp": "2026-01-01T00:00:00Z",
         "keyStateData": {"rewrappedKeyVersion": version}}))
    call("GET", f"/api/v2/_keyrelay/keys/{key}/associations", 200)
    call("PUT", path, 200, json=envelope(REGISTRATION, {"keyVersionId": version, "preventKeyDeletion": True}))
    call("DELETE", f"/api/v2/keys/{key}?force=true", 409)
    call("DELETE", path, 204)
    call("DELETE", f"/api/v2/keys/{key}", 200)
    call("GET", f"/api/v2/keys/{key}", 200)
    call("GET", "/api/v2/keys?state=5", 200)
    call("DELETE", f"/api/v2/keys/{key}", 410)
    call("DELETE", f"/api/v2/keys/{key}/purge", 409)
    advance("31s")
    call("POST", f"/api/v2/keys/{key}?action=restore", 201)
    call("DELETE", f"/api/v2/keys/{key}", 204, headers={"Prefer": "return=minimal"})
    advance("5h")
    call("DELETE", f"/api/v2/keys/{key}/purge", 200)
    call("GET", f"/api/v2/keys/{key}", 404)


def test_deprecated_actions():
    key = create("flow-deprecated")["id"]
    wrapped = call("POST", f"/api/v2/keys/{key}?action=wrap", 200, json={"aad": ["x"]}).json()
    call("POST", f"/api/v2/keys/{key}?action=unwrap", 200, json={"ciphertext": wrapped["ciphertext"], "aad": ["x"]})
    call("POST", f"/api/v2/keys/{key}?action=rotate", 204)
    old = call("POST", f"/api/v2/keys/{key}?action=unwrap", 200, json={"ciphertext": wrapped["ciphertext"], "aad": ["x"]}).json()
    assert "rewrappedKeyVersion" in old
    call("POST", f"/api/v2/keys/{key}?action=rewrap", 200, json={"ciphertext": wrapped["ciphertext"], "aad": ["x"]})
    call("POST", f"/api/v2/keys/{key}?action=disable", 204)
    call("POST", f"/api/v2/keys/{key}", 400)
    call("POST", f"/api/v2/keys/{key}/actions/bogus", 404)


def test_import_token_rings_dev_kmip_console():
    call("GET", "/api/v2/import_token", 404)
    call("POST", "/api/v2/import_token", 200, json={"expiration": 300, "maxAllowedRetrievals": 1})
    call("GET", "/api/v2/import_token", 200)
    call("GET", "/api/v2/import_token", 409)
    call("POST", "/api/v2/key_rings/flow-ring", 201)
    call("GET", "/api/v2/key_rings?totalCount=true", 200)
    create("flow-ringed", headers={"X-Kms-Key-Ring": "flow-ring"})
    assert call("HEAD", "/api/v2/keys", 200, headers={"X-Kms-Key-Ring": "flow-ring"}).headers["Key-Total"] == "1"
    call("DELETE", "/api/v2/key_rings/flow-ring", 409)
    call("DELETE", "/api/v2/key_rings/default", 400)
    call("POST", "/api/v2/key_rings/default", 409)
    call("GET", "/api/v2/kmip_adapters/a/kmip_objects/o", 404)
    call("GET", "/api/v2/_dev/bus?service=cloud-object-storage", 200)
    call("POST", "/api/v2/_dev/bus", 200, json={"service": "cloud-object-storage", "delay": "90s", "partition": True, "clear": True})
    call("POST", "/api/v2/_dev/bus", 200, json={"service": "cloud-object-storage", "clear": True})
    call("GET", "/ui", 302, allow_redirects=False)
    call("GET", "/ui/keys", 200)
    call("GET", "/ui/keys/some-key/events", 200)
    call("GET", "/ui/assets/console.js", 200)
    call("GET", "/ui/assets/console.css", 200)
    call("GET", "/api/v2/keys", 401, headers={"Authorization": "Bearer not-a-token"})
    call("GET", "/api/v2/keys", 400, headers={"Bluemix-Instance": ""})
