"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every POST, stopped at the end."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One POST the receiver got."""

    path: str
    idempotency_key: str | None
    content_type: str | None
    body: Any


@dataclass
class WebhookReceiver:
    """Records POSTs (any path) and answers 200; ``url(path)`` is where to post."""

    port: int
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, path: str | None = None) -> list[Received]:
        """What was posted so far (to ``path`` only, when given), oldest first."""
        with self.lock:
            return [item for item in self.received if path is None or item.path == path]

    def keys(self, path: str) -> list[str]:
        """The Idempotency-Key headers of the POSTs to ``path``, oldest first."""
        return [str(item.idempotency_key) for item in self.posts(path)]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """Serve on 127.0.0.1 (a free port) in a thread until the context ends."""
    receiver: WebhookReceiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
            assert receiver is not None
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, self.headers.get("Idempotency-Key"), self.headers.get("Content-Type"), body)
                )
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was received."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
