"""Every HTTP response of the interop run is checked against docs/openapi.yaml (openapi-core).

`requests.Session.send` is wrapped for the whole run, so the official client's calls (its SDK session) and the
tests' own `requests.post` calls (dev clock, service-to-service registrations) are all seen. A response that
does not match the document (an undocumented status, media type, header or body) is recorded against the test
that caused it, and that test fails at teardown with the list.

    KEYRELAY_OPENAPI=docs/openapi.yaml     the document (default: the repository's)
    KEYRELAY_OPENAPI_CHECK=0               skip the check (to tell a client failure from a contract failure)
"""
import json
import os
import pathlib

import pytest
import requests
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC_PATH = pathlib.Path(os.environ.get("KEYRELAY_OPENAPI", ROOT / "docs" / "openapi.yaml"))
ENABLED = os.environ.get("KEYRELAY_OPENAPI_CHECK", "1") != "0"

_violations = []
_checked = {"responses": 0}


def _json_media_types(node, found):
    """Every `…+json` media type the document names (openapi-core only decodes `application/json` by itself)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "content" and isinstance(value, dict):
                found.update(t for t in value if t.endswith("+json"))
            _json_media_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _json_media_types(value, found)
    return found


def _describe(error):
    """The schema errors inside an openapi-core error (path and message), or its own message."""
    cause = error
    while cause is not None:
        errors = getattr(cause, "schema_errors", None)
        if errors:
            return "; ".join(f"{type(error).__name__} at {getattr(e, 'json_path', '$')}: {e.message[:200]}" for e in errors)
        cause = cause.__cause__
    return f"{type(error).__name__}: {str(error)[:300]}"


def _openapi(base_url):
    spec = yaml.safe_load(SPEC_PATH.read_text())
    # Requests go to the server the run started, not to the document's example server.
    spec["servers"] = [{"url": base_url}]
    loads = lambda value, **_: json.loads(value)  # noqa: E731
    deserializers = {t: loads for t in _json_media_types(spec, set())}
    # The console's assets are text, the simulated objects bytes (their schema has no type).
    deserializers.update({"text/javascript": lambda v, **_: v.decode(), "text/css": lambda v, **_: v.decode(),
                          "application/octet-stream": lambda v, **_: v})
    config = Config(extra_media_type_deserializers=deserializers)
    return OpenAPI.from_dict(spec, config=config)


@pytest.fixture(scope="session", autouse=True)
def openapi_contract():
    """Wraps requests.Session.send for the run; yields nothing, records violations in `_violations`."""
    if not ENABLED:
        yield
        return
    base_url = os.environ["KEYRELAY_URL"]
    openapi = _openapi(base_url)
    original_send = requests.Session.send

    def send(session, request, **kwargs):
        response = original_send(session, request, **kwargs)
        if request.url.startswith(base_url):
            _checked["responses"] += 1
            try:
                openapi.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))
            except Exception as error:  # openapi-core raises one error per response, with the causes inside
                body = response.text[:200] if response.text else "(no body)"
                _violations.append(
                    f"{request.method} {request.path_url} -> {response.status_code} "
                    f"{response.headers.get('Content-Type', '(no Content-Type)')}: {_describe(error)}\n      body: {body}")
        return response

    requests.Session.send = send
    try:
        yield
    finally:
        requests.Session.send = original_send


@pytest.fixture(autouse=True)
def responses_match_openapi(openapi_contract):
    """Fails the test (at teardown) if any response it caused does not match docs/openapi.yaml."""
    start = len(_violations)
    yield
    found = _violations[start:]
    if found:
        pytest.fail(f"{len(found)} response(s) do not match {SPEC_PATH.name}:\n  " + "\n  ".join(found), pytrace=False)


def pytest_terminal_summary(terminalreporter):
    if ENABLED:
        terminalreporter.write_line(
            f"openapi: {_checked['responses']} responses checked against {SPEC_PATH.name}, {len(_violations)} violation(s)")
