"""Interop proof: IBM's official Key Protect Python client (keyprotect on PyPI) against `keyrelay serve --dev
--manual-clock`. Run through scripts/interop, which sets KEYRELAY_URL and KEYRELAY_TOKEN.

Note: keyprotect 3.0.1 exports the client as `IbmKeyProtectApiV2` (there is no `keyprotectv2` module in it).
The tests run in file order and share one server and one manual clock.
"""
import base64
import json
import os
import urllib.parse
import uuid

import pytest
import requests
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from keyprotect import IbmKeyProtectApiV2
from keyprotect.ibm_key_protect_api_v2 import (CollectionMetadata, CreateKMIPAdapterObject, CreateKMIPClientCertificateObject,
                                              KMIPProfileDataBodyKMIPProfileDataNative)

URL = os.environ["KEYRELAY_URL"]
TOKEN = os.environ["KEYRELAY_TOKEN"]
INSTANCE = str(uuid.uuid4())
ACCOUNT = "interop-account"
KEY_TYPE = "application/vnd.ibm.kms.key+json"


@pytest.fixture(scope="module")
def kp():
    client = IbmKeyProtectApiV2(authenticator=BearerTokenAuthenticator(TOKEN))
    client.set_service_url(URL)
    return client


def body(obj):
    return json.dumps(obj).encode()


def key_body(name, extractable=False, **extra):
    resource = {"type": KEY_TYPE, "name": name, "description": "KeyRelay interop", "extractable": extractable}
    resource.update(extra)
    return body({"metadata": {"collectionType": KEY_TYPE, "collectionTotal": 1}, "resources": [resource]})


def create(kp, name, extractable=False, ring=None, **extra):
    response = kp.create_key(INSTANCE, key_body(name, extractable, **extra), x_kms_key_ring=ring)
    assert response.get_status_code() == 201
    raw = response.get_result()
    # The vendor media type makes the client hand back the raw requests.Response, as with the real service.
    assert isinstance(raw, requests.Response)
    assert raw.headers["Content-Type"].startswith(KEY_TYPE)
    return raw.json()["resources"][0]


def advance(duration):
    r = requests.post(URL + "/api/v2/_dev/clock", json={"advance": duration},
                      headers={"Authorization": "Bearer " + TOKEN})
    assert r.status_code == 200, r.text
    return r.json()["now"]


def reason(exc):
    return exc.http_response.json()["resources"][0]["reasons"][0]["code"]


def register_bucket(key_id, bucket, prevent=False):
    crn = f"crn:v1:bluemix:public:cloud-object-storage:global:a/{ACCOUNT}:cos-instance:bucket:{bucket}"
    r = requests.post(
        f"{URL}/api/v2/keys/{key_id}/registrations/{urllib.parse.quote(crn, safe='')}",
        headers={"Authorization": "Bearer " + TOKEN, "Bluemix-Instance": INSTANCE,
                 "Content-Type": "application/vnd.ibm.kms.registration_input+json"},
        json={"metadata": {"collectionType": "application/vnd.ibm.kms.registration_input+json", "collectionTotal": 1},
              "resources": [{"description": f"COS bucket {bucket}", "preventKeyDeletion": prevent}]})
    assert r.status_code == 201, r.text
    assert r.json()["resources"][0]["resourceCrn"] == crn
    return crn


def test_create_get_list_metadata_versions(kp):
    root = create(kp, "interop-root")
    assert root["extractable"] is False and root["state"] == 1 and root["imported"] is False
    material = base64.b64encode(os.urandom(32)).decode()
    standard = create(kp, "interop-standard", extractable=True, payload=material)
    assert standard["imported"] is True

    response = kp.create_key_with_policies_overrides(
        INSTANCE, key_body("interop-overrides", rotation={"enabled": True, "interval_month": 3},
                           dualAuthDelete={"enabled": False}))
    assert response.get_status_code() == 201
    overrides = response.get_result().json()["resources"][0]
    assert overrides["rotation"] == {"enabled": True, "interval_month": 3}

    got = kp.get_key(standard["id"], INSTANCE).get_result()["resources"][0]
    assert got["payload"] == material
    got_root = kp.get_key(root["id"], INSTANCE).get_result()["resources"][0]
    assert "payload" not in got_root and got_root["crn"].endswith(":key:" + root["id"])

    listed = kp.get_keys(INSTANCE, limit=100).get_result()
    ids = {k["id"] for k in listed["resources"]}
    assert {root["id"], standard["id"], overrides["id"]} <= ids
    assert listed["metadata"]["collectionTotal"] == len(listed["resources"])
    roots = kp.get_keys(INSTANCE, extractable=False).get_result()["resources"]
    assert standard["id"] not in {k["id"] for k in roots}

    head = kp.get_key_collection_metadata(INSTANCE)
    assert int(head.get_headers()["Key-Total"]) == 3

    metadata = kp.get_key_metadata(root["id"], INSTANCE).get_result()["resources"][0]
    assert metadata["name"] == "interop-root" and "payload" not in metadata
    versions = kp.get_key_versions(root["id"], INSTANCE, total_count=True).get_result()
    assert versions["metadata"]["totalCount"] == 1
    assert versions["resources"][0]["id"] == root["keyVersion"]["id"]

    with pytest.raises(ApiException) as missing:
        kp.get_key(str(uuid.uuid4()), INSTANCE)
    assert missing.value.status_code == 404 and reason(missing.value) == "KEY_NOT_FOUND_ERR"


def test_list_keys_filter_search_sort(kp):
    before = create(kp, "interop-search-early")
    advance("1s")
    aliased = create(kp, "interop-search-archive", aliases=["interop-payroll"])
    advance("1s")
    named = create(kp, "interop-search-payroll", extractable=True)

    # filter: the client sends the conditions as given; requests writes the spaces as "+".
    since = f'creationDate=gt:"{before["creationDate"]}" state=1,2'
    later = kp.get_keys(INSTANCE, filter=since, sort="creationDate").get_result()
    assert [k["id"] for k in later["resources"]] == [aliased["id"], named["id"]]
    assert "searchQuery" not in later["metadata"]
    head = kp.get_key_collection_metadata(INSTANCE, filter=since + " extractable=true")
    assert int(head.get_headers()["Key-Total"]) == 1

    found = kp.get_keys(INSTANCE, search="payroll", sort="-extractable,creationDate").get_result()
    # The alias scope looks up the key whose alias is the text: none here, so the order is the sort's.
    assert [k["id"] for k in found["resources"]] == [named["id"], aliased["id"]]
    assert found["metadata"]["searchQuery"] == {"query": "payroll", "scopes": ["name", "alias"], "not": False, "exact": False}
    assert found["metadata"]["incompleteSearch"] is False
    in_names = kp.get_keys(INSTANCE, search="name:payroll").get_result()["resources"]
    assert [k["id"] for k in in_names] == [named["id"]]
    exact_alias = kp.get_keys(INSTANCE, search="alias:exact:interop-payroll").get_result()
    assert [k["id"] for k in exact_alias["resources"]] == [aliased["id"]]
    assert exact_alias["metadata"]["searchQuery"]["scopes"] == ["alias"]
    others = kp.get_keys(INSTANCE, search="not:interop-search").get_result()["resources"]
    assert not {before["id"], aliased["id"], named["id"]} & {k["id"] for k in others}

    with pytest.raises(ApiException) as bad:
        kp.get_keys(INSTANCE, filter="color=red")
    assert bad.value.status_code == 400 and reason(bad.value) == "INVALID_QUERY_PARAM_ERR"
    assert "'color=red'" in bad.value.http_response.json()["resources"][0]["reasons"][0]["message"]


def test_wrap_unwrap_rewrap_across_rotation(kp):
    root = create(kp, "interop-wrap")
    dek = base64.b64encode(os.urandom(32)).decode()
    wrapped = kp.wrap_key(root["id"], INSTANCE, key_action_wrap_body=body({"plaintext": dek, "aad": ["bucket-a"]})).get_result()
    assert isinstance(wrapped, requests.Response)
    wrapped = wrapped.json()
    assert wrapped["keyVersion"]["id"] == root["keyVersion"]["id"]
    generated = kp.wrap_key(root["id"], INSTANCE).get_result().json()
    assert len(base64.b64decode(generated["plaintext"])) == 32

    unwrapped = kp.unwrap_key(root["id"], INSTANCE, body({"ciphertext": wrapped["ciphertext"], "aad": ["bucket-a"]})).get_result()
    assert unwrapped["plaintext"] == dek and "rewrappedKeyVersion" not in unwrapped

    rotated = kp.rotate_key(root["id"], INSTANCE, key_action_rotate_body=body({}))
    assert rotated.get_status_code() == 204
    latest = kp.get_key_metadata(root["id"], INSTANCE).get_result()["resources"][0]["keyVersion"]["id"]
    assert latest != root["keyVersion"]["id"]

    old = kp.unwrap_key(root["id"], INSTANCE, body({"ciphertext": wrapped["ciphertext"], "aad": ["bucket-a"]})).get_result()
    assert old["plaintext"] == dek
    assert old["keyVersion"]["id"] == root["keyVersion"]["id"]
    assert old["rewrappedKeyVersion"]["id"] == latest

    rewrapped = kp.rewrap_key(root["id"], INSTANCE, body({"ciphertext": wrapped["ciphertext"], "aad": ["bucket-a"]})).get_result()
    assert rewrapped["rewrappedKeyVersion"]["id"] == latest
    again = kp.unwrap_key(root["id"], INSTANCE, body({"ciphertext": rewrapped["ciphertext"], "aad": ["bucket-a"]})).get_result()
    assert again["plaintext"] == dek and again["keyVersion"]["id"] == latest

    with pytest.raises(ApiException) as too_soon:
        kp.rotate_key(root["id"], INSTANCE, key_action_rotate_body=body({}))
    assert reason(too_soon.value) == "KEY_ROTATION_NOT_PERMITTED"
    versions = kp.get_key_versions(root["id"], INSTANCE).get_result()["resources"]
    assert [v["id"] for v in versions] == [latest, root["keyVersion"]["id"]]


def test_disable_enable(kp):
    root = create(kp, "interop-disable")
    assert kp.disable_key(root["id"], INSTANCE).get_status_code() == 204
    assert kp.get_key(root["id"], INSTANCE).get_result()["resources"][0]["state"] == 2
    with pytest.raises(ApiException) as wrap_disabled:
        kp.wrap_key(root["id"], INSTANCE)
    assert wrap_disabled.value.status_code == 409 and reason(wrap_disabled.value) == "KEY_ACTION_INVALID_STATE_ERR"
    with pytest.raises(ApiException) as early:
        kp.enable_key(root["id"], INSTANCE)
    assert reason(early.value) == "REQ_TOO_EARLY_ERR"
    advance("31s")
    assert kp.enable_key(root["id"], INSTANCE).get_status_code() == 204
    assert kp.get_key(root["id"], INSTANCE).get_result()["resources"][0]["state"] == 1


def test_aliases_and_key_rings(kp):
    assert kp.create_key_ring("interop-ring", INSTANCE).get_status_code() == 201
    rings = kp.list_key_rings(INSTANCE).get_result()["resources"]
    assert {"default", "interop-ring"} <= {r["id"] for r in rings}

    key = create(kp, "interop-ringed", ring="interop-ring")
    assert key["keyRingID"] == "interop-ring"
    alias = kp.create_key_alias(key["id"], "interop-alias", INSTANCE)
    assert alias.get_status_code() == 201
    assert alias.get_result()["resources"][0]["alias"] == "interop-alias"
    by_alias = kp.get_key("interop-alias", INSTANCE).get_result()["resources"][0]
    assert by_alias["id"] == key["id"] and "interop-alias" in by_alias["aliases"]

    with pytest.raises(ApiException):
        kp.delete_key_ring("interop-ring", INSTANCE)
    moved = kp.patch_key(key["id"], INSTANCE, key_patch_body=body({"keyRingID": "default"}), x_kms_key_ring="interop-ring")
    assert moved.get_result()["resources"][0]["keyRingID"] == "default"
    assert kp.delete_key_alias(key["id"], "interop-alias", INSTANCE).get_status_code() == 204
    assert kp.delete_key_ring("interop-ring", INSTANCE).get_status_code() == 204


def test_registration_delete_restore_purge(kp):
    root = create(kp, "interop-protected")
    crn = register_bucket(root["id"], "interop-bucket")
    listed = kp.get_registrations(root["id"], INSTANCE).get_result()
    assert [r["resourceCrn"] for r in listed["resources"]] == [crn]
    everywhere = kp.get_registrations_all_keys(INSTANCE, url_encoded_resource_crn_query=crn[:-len("interop-bucket")] + "*").get_result()
    assert crn in {r["resourceCrn"] for r in everywhere["resources"]}

    with pytest.raises(ApiException) as protected:
        kp.delete_key(root["id"], INSTANCE)
    assert protected.value.status_code == 409 and reason(protected.value) == "PROTECTED_RESOURCE_ERR"
    target = protected.value.http_response.json()["resources"][0]["reasons"][0]["target"]
    assert target == {"type": "query_param", "name": "force"}

    deleted = kp.delete_key(root["id"], INSTANCE, force=True, prefer="return=representation").get_result()["resources"][0]
    assert deleted["state"] == 5 and deleted["deleted"] is True

    advance("31s")
    restored = kp.restore_key(root["id"], INSTANCE)
    assert restored.get_status_code() == 201
    assert kp.get_key(root["id"], INSTANCE).get_result()["resources"][0]["state"] == 1

    kp.delete_key(root["id"], INSTANCE, force=True)
    with pytest.raises(ApiException) as early:
        kp.purge_key(root["id"], INSTANCE)
    assert early.value.status_code == 409 and reason(early.value) == "REQ_TOO_EARLY_ERR"
    advance("4h")
    purged = kp.purge_key(root["id"], INSTANCE)
    assert purged.get_status_code() == 200
    with pytest.raises(ApiException) as gone:
        kp.get_key(root["id"], INSTANCE)
    assert gone.value.status_code == 404 and reason(gone.value) == "KEY_NOT_FOUND_ERR"


def test_sync_cooldown(kp):
    root = create(kp, "interop-sync")
    register_bucket(root["id"], "interop-sync-bucket")
    assert kp.sync_associated_resources(root["id"], INSTANCE).get_status_code() == 204

    with pytest.raises(ApiException) as conflict:
        kp.sync_associated_resources(root["id"], INSTANCE)
    assert conflict.value.status_code == 409
    error = conflict.value.http_response.json()
    assert error["metadata"] == {"collectionType": "application/vnd.ibm.kms.error+json", "collectionTotal": 1}
    assert error["resources"][0]["errorMsg"] == \
        "Conflict: Could not initiate sync requests to associated resources: Please see 'reasons' for more details (REQ_TOO_EARLY_ERR)"
    assert reason(conflict.value) == "REQ_TOO_EARLY_ERR"
    assert error["resources"][0]["reasons"][0]["message"].startswith(
        "The key was updated recently: Please wait and try again: Sync cannot be performed until at least ")
    retry_after = int(conflict.value.http_response.headers["Retry-After"])
    assert 3590 <= retry_after <= 3601

    advance("1h 1s")
    assert kp.sync_associated_resources(root["id"], INSTANCE).get_status_code() == 204


# A self-signed P-256 client certificate valid from 2026-12-01 to 2036-11-28.
KMIP_CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBnjCCAUOgAwIBAgIUea6pD1c3suLSoa8Nk6aGNp/AgrwwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZa2V5cmVsYXkta21pcC10ZXN0LWNsaWVudDAeFw0yNjEyMDEx
MTMyMjVaFw0zNjExMjgxMTMyMjVaMCQxIjAgBgNVBAMMGWtleXJlbGF5LWttaXAt
dGVzdC1jbGllbnQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARgR/dVKEi9MGn+
YwU8cIfJ1PY8QI6ChcOluP1me7RHXUU9dOygMcjTvDf0GuA+Y8hqpgOPx0hibPCC
EF9/dWWXo1MwUTAdBgNVHQ4EFgQUiTHJ6sUPKYdbAXm84ejgCWQ8WzYwHwYDVR0j
BBgwFoAUiTHJ6sUPKYdbAXm84ejgCWQ8WzYwDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNJADBGAiEAsmkA3dXWsriG+trFfzfLE5LFbKMPuK1XQ0eef140eI0C
IQCjBvg/cmGkP4D1weWh4+ce74QLqjG1YxvlvaCTAMoJQA==
-----END CERTIFICATE-----
"""
KMIP_ADAPTER = "application/vnd.ibm.kms.kmip_adapter+json"
KMIP_CERT = "application/vnd.ibm.kms.kmip_client_certificate+json"


def test_kmip_adapter_management(kp):
    """All eleven KMIP management operations through the client's own methods and models (reference §1.5)."""
    root = create(kp, "interop-kmip-root")

    # create_kmip_adapter: application/json in and out, 201.
    created = kp.create_kmip_adapter(
        INSTANCE, CollectionMetadata(KMIP_ADAPTER, 1),
        [CreateKMIPAdapterObject("native_1.0", name="interop-adapter", description="KeyRelay interop",
                                 profile_data=KMIPProfileDataBodyKMIPProfileDataNative(root["id"]))])
    assert created.get_status_code() == 201
    adapter = created.get_result()["resources"][0]
    assert adapter["name"] == "interop-adapter" and adapter["profile"] == "native_1.0"
    assert adapter["profile_data"] == {"crk_id": root["id"]}

    # get_kmip_adapters, with the root-key filter and the total.
    listed = kp.get_kmip_adapters(INSTANCE, total_count=True, crk_id=root["id"], limit=10, offset=0).get_result()
    assert listed["metadata"]["collectionType"] == KMIP_ADAPTER and listed["metadata"]["totalCount"] == 1
    assert [a["id"] for a in listed["resources"]] == [adapter["id"]]

    # get_kmip_adapter, by id and by name.
    assert kp.get_kmip_adapter(adapter["id"], INSTANCE).get_result()["resources"][0]["id"] == adapter["id"]
    assert kp.get_kmip_adapter("interop-adapter", INSTANCE).get_result()["resources"][0]["id"] == adapter["id"]

    # add_kmip_client_certificate: a vendor media type, so the client hands back the raw response and callers .json() it.
    added = kp.add_kmip_client_certificate(
        adapter["id"], INSTANCE, CollectionMetadata(KMIP_CERT, 1),
        [CreateKMIPClientCertificateObject(KMIP_CERTIFICATE, name="interop-cert")])
    assert added.get_status_code() == 201
    raw = added.get_result()
    assert isinstance(raw, requests.Response) and raw.headers["Content-Type"].startswith(KMIP_CERT)
    certificate = raw.json()["resources"][0]
    assert certificate["name"] == "interop-cert" and certificate["certificate"] == KMIP_CERTIFICATE

    with pytest.raises(ApiException) as bad_pem:
        kp.add_kmip_client_certificate(adapter["id"], INSTANCE, CollectionMetadata(KMIP_CERT, 1),
                                       [CreateKMIPClientCertificateObject("not a certificate", name="bad-cert")])
    assert bad_pem.value.status_code == 400 and reason(bad_pem.value) == "INVALID_FIELD_ERR"

    # get_kmip_client_certificates (without the PEM) and get_kmip_client_certificate (with it), by id and by name.
    certificates = kp.get_kmip_client_certificates(adapter["id"], INSTANCE, total_count=True).get_result()
    assert certificates["metadata"]["totalCount"] == 1 and "certificate" not in certificates["resources"][0]
    got = kp.get_kmip_client_certificate(adapter["id"], certificate["id"], INSTANCE).get_result()["resources"][0]
    assert got["certificate"] == KMIP_CERTIFICATE
    assert kp.get_kmip_client_certificate("interop-adapter", "interop-cert", INSTANCE).get_result()["resources"][0]["id"] == certificate["id"]

    # get_kmip_objects (empty: KeyRelay has no KMIP endpoint), with and without a state filter; get/delete of an
    # object that does not exist.
    objects = kp.get_kmip_objects(adapter["id"], INSTANCE, total_count=True).get_result()
    assert objects["metadata"] == {"collectionType": "application/vnd.ibm.kms.kmip_object+json", "collectionTotal": 0, "totalCount": 0}
    assert kp.get_kmip_objects(adapter["id"], INSTANCE, state=[2, 3], limit=5).get_result()["resources"] == []
    missing = str(uuid.uuid4())
    with pytest.raises(ApiException) as no_object:
        kp.get_kmip_object(adapter["id"], missing, INSTANCE)
    assert no_object.value.status_code == 404 and reason(no_object.value) == "NOT_FOUND_ERR"
    with pytest.raises(ApiException) as no_delete:
        kp.delete_kmip_object(adapter["id"], INSTANCE, missing, force=True)
    assert no_delete.value.status_code == 404

    # The adapter holds its root key: not even a forced delete goes through.
    with pytest.raises(ApiException) as held:
        kp.delete_key(root["id"], INSTANCE, force=True)
    assert held.value.status_code == 409 and reason(held.value) == "PROTECTED_RESOURCE_ERR"

    # delete_kmip_client_certificate and delete_kmip_adapter: 204.
    assert kp.delete_kmip_client_certificate(adapter["id"], certificate["id"], INSTANCE).get_status_code() == 204
    assert kp.delete_kmip_adapter("interop-adapter", INSTANCE).get_status_code() == 204
    with pytest.raises(ApiException) as gone:
        kp.get_kmip_adapter(adapter["id"], INSTANCE)
    assert gone.value.status_code == 404
    assert kp.delete_key(root["id"], INSTANCE).get_status_code() in (200, 204)
