"""A small HTTP server on its own thread, for the operator page and the metrics.

Both are read by a browser or Prometheus on the station PC itself, so they listen on
localhost by default; the standard library's threading server is all they need.

They answer only requests whose Host names this server (`host_ok`): a web page elsewhere
that rebinds its DNS name to 127.0.0.1 cannot read or post to them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import structlog

log = structlog.get_logger("printstation.http")

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")


def host_ok(host_header: str | None, server: socket.socket, conn: socket.socket) -> bool:
    """Whether a request's Host names this server: a loopback name, the address it is bound
    to, or the IP address the request came in on. A DNS name that merely resolves here (DNS
    rebinding: a web page's own name pointed at 127.0.0.1) is refused."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    if not host:
        return False
    if host in LOOPBACK_NAMES or host == server.getsockname()[0]:
        return True
    with contextlib.suppress(ValueError, OSError):
        return ipaddress.ip_address(host.strip("[]")) == \
            ipaddress.ip_address(conn.getsockname()[0])
    return False


class Handler(BaseHTTPRequestHandler):
    server_version = "printstation"
    agent: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: a URL could carry a job id, never more, but stay quiet."""

    def host_ok(self) -> bool:
        return host_ok(self.headers.get("Host"), self.server.socket,  # type: ignore[attr-defined]
                       self.connection)

    def send_body(self, code: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code: int, value: Any) -> None:
        self.send_body(code, json.dumps(value).encode(), "application/json")


class LocalHTTPServer:
    kind: ClassVar[str] = "http"
    handler: ClassVar[type[Handler]] = Handler

    def __init__(self, agent: Any, listen: str):
        host, _, port = listen.rpartition(":")
        handler = type(f"{type(self).__name__}Handler", (self.handler,), {"agent": agent})
        self.httpd = ThreadingHTTPServer((host.strip("[]"), int(port)), handler)
        self.httpd.daemon_threads = True
        # No poll interval: an idle server sleeps until a request comes (see `stop`).
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(None,),
                                        name=self.kind, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> None:
        self._thread.start()
        log.info("http_listening", what=self.kind, url=self.url)

    def stop(self) -> None:
        """Shut the server down. It waits for requests without a timeout, so the listening
        socket is shut down too: its wait ends at once and the loop sees the shutdown."""
        if self._thread.is_alive():
            stopper = threading.Thread(target=self.httpd.shutdown, name=f"{self.kind}-stop",
                                       daemon=True)
            stopper.start()
            with contextlib.suppress(OSError):
                self.httpd.socket.shutdown(socket.SHUT_RDWR)
            stopper.join(5)
        self.httpd.server_close()
