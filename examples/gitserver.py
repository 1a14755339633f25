"""A git server for the demo: serves one bare repository over git's smart HTTP protocol, on 127.0.0.1 only.

    python examples/gitserver.py PORT NAME.git REPOSITORY    (stops on SIGTERM or Ctrl-C)

It stands in for the shop's git hosting: the example GitSource fetches http://127.0.0.1:8418/shop.git.
dulwich's WSGI application does the protocol (its `web-daemon` command answers 404 to everything).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from wsgiref import simple_server

import dulwich.repo
import dulwich.server
import dulwich.web


class QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """One line per request is noise in the demo."""


def main() -> None:
    port, name, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    backend = dulwich.server.DictBackend({f"/{name}": dulwich.repo.Repo(path)})
    server = simple_server.make_server(
        "127.0.0.1", port, dulwich.web.make_wsgi_chain(backend), handler_class=QuietHandler
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
