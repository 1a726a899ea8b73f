#!/usr/bin/env python3
"""A webhook receiver for .ci/systemd-check: verifies Standard Webhooks signatures.

    webhook-sink.py PORT SECRET_FILE LOG

Every POST is checked as the README says a receiver should (HMAC-SHA256 over
`id.timestamp.body`, keyed with the decoded `whsec_` secret, the timestamp at
most 5 minutes off) and appended to LOG as one JSON line:
{"verified": true|false, "why": ..., "webhook_id": ..., "type": ..., "data": ...}.
Verified requests get 204, the others 401. Only the standard library.
"""

import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

PORT = int(sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f:
    SECRET = f.read().strip()
LOG = sys.argv[3]
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


def verify(headers, body):
    """None when the request is signed with the secret, else why not."""
    wid = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sigs = headers.get("webhook-signature")
    if not (wid and ts and sigs):
        return "missing webhook-id, webhook-timestamp or webhook-signature"
    if abs(time.time() - int(ts)) > 300:
        return f"timestamp {ts} more than 5 minutes off"
    signed = f"{wid}.{ts}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    for sig in sigs.split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return None
    return "no v1 signature matches"


class Sink(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        why = verify(self.headers, body)
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        line = {
            "verified": why is None,
            "why": why,
            "webhook_id": self.headers.get("webhook-id"),
            "type": event.get("type"),
            "data": event.get("data"),
        }
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(204 if why is None else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", PORT), Sink).serve_forever()
