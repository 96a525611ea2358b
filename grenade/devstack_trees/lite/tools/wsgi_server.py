#!/usr/bin/env python3
"""wsgi_server - serve one WSGI application with a threaded stdlib server.

The lite tree runs keystone and placement with this instead of uwsgi/apache: no build,
no extra dependency, starts in about a second, one process per service (so the
pidfile and the process group are the service). Run it with the release venv's
python::

    python wsgi_server.py --name keystone --port 5000 \\
        --env OS_KEYSTONE_CONFIG_FILES=/etc/keystone/keystone.conf \\
        keystone.wsgi.api:application

``sys.argv`` is cleared before the application is imported, because the services
parse it with oslo.config and would reject our options. The port is bound only once
the application is built, so "the port answers" means "the service is ready".
SIGTERM and SIGINT stop the server at once (exit 0).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import socketserver
import sys
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class QuietHandler(WSGIRequestHandler):
    """Access log in one line per request on stderr, without reverse DNS."""

    server_name = "wsgi"

    def address_string(self) -> str:
        return self.client_address[0]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write(f"{self.server_name} {self.address_string()} - {format % args}\n")


def load(spec: str):
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "application")
    if app is None:
        raise SystemExit(f"{spec} is None after import")
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="service name for logs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("app", help="module:attribute of the WSGI application")
    args = parser.parse_args()

    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--env {item!r}: expected NAME=VALUE")
        os.environ[key] = value
    # oslo.config parses sys.argv when the application builds its configuration
    # (and names the program after argv[0] in its logs).
    sys.argv = [args.name]

    started = time.monotonic()
    app = load(args.app)
    QuietHandler.server_name = args.name
    httpd = ThreadingWSGIServer((args.host, args.port), QuietHandler)
    httpd.set_app(app)

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"{args.name}: serving {args.app} on http://{args.host}:{args.port} "
        f"(pid {os.getpid()}, ready in {time.monotonic() - started:.1f}s)",
        file=sys.stderr,
        flush=True,
    )
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        print(f"{args.name}: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
