"""A webhook receiver as an outside team would write it, following only the Standard Webhooks and CloudEvents
specifications and their reference Python libraries (PyPI `standardwebhooks`, `cloudevents`).

Each POST is verified with `standardwebhooks` (signature and timestamp; 401 when either is wrong), then parsed
with `cloudevents` as a structured-mode CloudEvent and checked for the fields KeyRelay documents in
docs/webhooks.md (400 when one is missing); 204 when all is well. One JSON line per request goes to --log.

    python receiver.py --secret-file FILE --port-file FILE --log FILE

It listens on 127.0.0.1 on a free port, writes the port to --port-file, and serves until killed.
"""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

STATES = {"active": 1, "suspended": 2, "deactivated": 3, "destroyed": 5}


def check_event(headers, body):
    """Parses the body with the cloudevents library; returns (event, problem)."""
    if headers.get("content-type", "").split(";")[0].strip() != "application/cloudevents+json":
        return None, "content-type is not application/cloudevents+json"
    event = from_http_event(HTTPMessage(headers=headers, body=body))
    if event.get_specversion() != "1.0":
        return None, "specversion is not 1.0"
    if not event.get_type().startswith("com.ibm.kms.key."):
        return None, "type is not com.ibm.kms.key.*"
    if not event.get_subject():
        return None, "no subject (key id)"
    if event.get_time() is None:
        return None, "no time"
    if not str(event.get_extension("resourcecrn") or "").startswith("crn:v1:"):
        return None, "no resourcecrn extension"
    data = event.get_data()
    if not isinstance(data, dict):
        return None, "data is not a JSON object"
    for field in ("keyState", "keyStateCode", "keyVersion", "eventSequence"):
        if field not in data:
            return None, "data has no " + field
    if STATES.get(data["keyState"]) != data["keyStateCode"]:
        return None, "keyState and keyStateCode disagree"
    return event, None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret-file", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    with open(args.secret_file) as f:
        webhook = Webhook(f.read().strip())
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = {"webhook-id": headers.get("webhook-id")}
            try:
                webhook.verify(body, headers)
            except WebhookVerificationError as error:
                record.update(result="rejected", status=401, reason=str(error))
                return self.answer(401, record)
            try:
                event, problem = check_event(headers, body)
            except Exception as error:  # the cloudevents library refused the body
                event, problem = None, "not a CloudEvent: %s" % error
            if problem:
                record.update(result="invalid", status=400, reason=problem)
                return self.answer(400, record)
            record.update(result="accepted", status=204, id=event.get_id(), type=event.get_type(),
                          subject=event.get_subject(), resourcecrn=event.get_extension("resourcecrn"),
                          keyState=event.get_data()["keyState"])
            self.answer(204, record)

        def answer(self, status, record):
            log.write(json.dumps(record) + "\n")
            text = (record.get("reason") or "").encode()
            self.send_response(status)
            self.send_header("content-length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
