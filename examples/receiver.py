"""A webhook receiver for the demo: prints one line per notification it gets, on 127.0.0.1 only.

    python examples/receiver.py PORT    (stops on SIGTERM or Ctrl-C)

It stands in for Slack and a pager: the demo's Secrets point the shop's channels at it.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        # A Slack payload has "text"; the generic webhook payload has the event's reason and message.
        event = payload.get("event") if isinstance(payload.get("event"), dict) else {}
        summary = payload.get("text") or f"{event.get('reason', '?')}: {event.get('message', '')}"
        key = self.headers.get("Idempotency-Key", "-")
        print(f"{self.path}  key={key}  {summary}", flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
