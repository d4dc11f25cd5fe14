"""The agent's local servers: the operator page and the metrics over HTTP, and (through
`ConnectionGate`) the control socket.

Every local user can open connections to them, and one did: a thread per connection, each
waiting without a timeout for a request that never came, took the agent from 8 threads to
115. So a server does not give a connection a thread until its whole request has arrived.
One thread per server (the gate) accepts connections and reads what they send; one that
has not sent a whole request within IDLE_TIMEOUT is closed; at most MAX_WAITING wait at
once (a new one pushes the oldest out); a complete request goes to one of at most
MAX_WORKERS threads, and past that the connection gets a short "busy" answer and is closed.
An idle connection costs a file descriptor, never a thread, and a request that arrives whole
is answered at once however many idle ones are held open.

The HTTP servers answer only requests whose Host names this server (`host_ok`): a web page
elsewhere that rebinds its DNS name to 127.0.0.1 cannot read or post to them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import ipaddress
import json
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import structlog

from printstation.agent.station.components import SURFACES, ThreadedComponent

log = structlog.get_logger("printstation.http")

#: Seconds a connection may take to send its whole request, and each later read or write.
IDLE_TIMEOUT = 10.0
#: Requests served at once by one server (threads beyond its gate).
MAX_WORKERS = 8
#: Connections one server holds while their request arrives.
MAX_WAITING = 64
#: An HTTP request head, and a body, larger than this is not waited for.
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")

_BUSY_TEXT = b"the agent is busy: too many requests at once, try again\n"
HTTP_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


def http_request_complete(data: bytes) -> bool:
    """True once `data` holds a request head and the body its Content-Length announces."""
    end = _HEAD_END.search(data)
    if end is None:
        return False
    length = _LENGTH.search(data, 0, end.start())
    size = int(length.group(1)) if length else 0
    return size > MAX_BODY or len(data) >= end.end() + size


@dataclass
class _Waiting:
    address: Any
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class ConnectionGate(ThreadedComponent):
    """Accepts connections on `listener`; serves each complete request on a bounded thread.

    `complete(data)` says whether a request has arrived whole; `serve(conn, address, data)`
    answers it on a worker thread (the connection has a timeout of `timeout` by then, and is
    closed afterwards); `busy` is what a connection gets when every worker is taken.
    """

    def __init__(self, listener: socket.socket, *, name: str,
                 complete: Callable[[bytes], bool],
                 serve: Callable[[socket.socket, Any, bytes], None],
                 busy: bytes, limit: int, timeout: float | None = None,
                 workers: int | None = None, waiting: int | None = None):
        self.listener = listener
        self.name = self.thread_name = name
        self.complete = complete
        self.serve = serve
        self.busy = busy
        self.limit = limit
        self.timeout = IDLE_TIMEOUT if timeout is None else timeout
        self.max_waiting = MAX_WAITING if waiting is None else waiting
        self.workers = MAX_WORKERS if workers is None else workers
        self._slots = threading.BoundedSemaphore(self.workers)
        self._waiting: dict[socket.socket, _Waiting] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._last_busy_log = 0.0
        super().__init__()

    @property
    def waiting(self) -> int:
        """Connections accepted whose request has not arrived whole yet."""
        return len(self._waiting)

    stop_timeout = 5.0

    def start(self) -> None:
        self.listener.setblocking(False)
        super().start()

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                # Accepted in order with one timeout, so the first is the next to expire;
                # with none waiting, the gate sleeps until a connection or `stop`.
                first = next(iter(self._waiting.values()), None)
                wait = None if first is None else max(0.0, first.deadline - time.monotonic())
                for key, _ in sel.select(wait):
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        if key.fileobj is self.listener:
                            self._accept(sel)
                        else:
                            self._read(sel, key.fileobj)  # type: ignore[arg-type]
                    except Exception as exc:  # one connection's trouble must not end the gate
                        log.error("connection_gate_error", what=self.name,
                                  error=type(exc).__name__)
                        if key.fileobj is not self.listener:
                            self._drop(sel, key.fileobj)  # type: ignore[arg-type]
                now = time.monotonic()
                while self._waiting:
                    conn, item = next(iter(self._waiting.items()))
                    if item.deadline > now:
                        break
                    self._drop(sel, conn)
        finally:
            for conn in list(self._waiting):
                self._drop(sel, conn)
            sel.close()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                conn, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # the client gave up before it was accepted
                log.warning("accept_failed", what=self.name, error=exc.strerror or str(exc))
                if not self._waiting:
                    time.sleep(0.1)  # nothing of ours to free: do not spin on the listener
                    return
                self._drop(sel, next(iter(self._waiting)))  # free the oldest, then retry
                continue
            conn.setblocking(False)
            if len(self._waiting) >= self.max_waiting:
                self._drop(sel, next(iter(self._waiting)))
            self._waiting[conn] = _Waiting(address, time.monotonic() + self.timeout)
            sel.register(conn, selectors.EVENT_READ)

    def _read(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        item = self._waiting.get(conn)
        if item is None:  # pushed out by a newer connection in this same round
            return
        try:
            chunk = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(sel, conn)
            return
        item.data += chunk
        if chunk and len(item.data) <= self.limit and not self.complete(bytes(item.data)):
            return
        sel.unregister(conn)
        del self._waiting[conn]
        if not item.data:  # closed without asking anything
            conn.close()
        else:
            self._dispatch(conn, item)

    def _drop(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(conn)
        self._waiting.pop(conn, None)
        conn.close()

    def _dispatch(self, conn: socket.socket, item: _Waiting) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                conn.send(self.busy)
            conn.close()
            now = time.monotonic()
            if now - self._last_busy_log > 60:
                self._last_busy_log = now
                log.warning("server_busy", what=self.name, workers=self.workers)
            return
        conn.setblocking(True)
        conn.settimeout(self.timeout)
        try:
            threading.Thread(target=self._work, args=(conn, item.address, bytes(item.data)),
                             name=f"{self.name}-request", daemon=True).start()
        except RuntimeError:  # no thread to be had
            self._slots.release()
            conn.close()

    def _work(self, conn: socket.socket, address: Any, data: bytes) -> None:
        try:
            self.serve(conn, address, data)
        except OSError as exc:  # the client went away or stopped reading
            log.debug("request_failed", what=self.name, error=type(exc).__name__)
        except Exception as exc:
            log.warning("request_failed", what=self.name, error=type(exc).__name__)
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            conn.close()
            self._slots.release()


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
    """One request, read whole by the gate (so its reads never wait on the client)."""

    server_version = "printstation"
    #: The station's read-only view (`printstation.agent.station.view.StationView`).
    view: Any = None

    def setup(self) -> None:
        conn, data = self.request
        self.request = self.connection = conn
        self.rfile = io.BytesIO(data)
        self.wfile = conn.makefile("wb")

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
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code: int, value: Any) -> None:
        self.send_body(code, json.dumps(value).encode(), "application/json")


class _Listener(HTTPServer):
    request_queue_size = MAX_WAITING


class LocalHTTPServer:
    """An HTTP server behind a `ConnectionGate`; `gate` options override the module's."""

    stop_order = SURFACES


    kind: ClassVar[str] = "http"
    handler: ClassVar[type[Handler]] = Handler

    def __init__(self, view: Any, listen: str, **gate: Any):
        host, _, port = listen.rpartition(":")
        self.view = view
        handler = type(f"{type(self).__name__}Handler", (self.handler,), {"view": view})
        self.httpd = _Listener((host.strip("[]"), int(port)), handler)
        self.gate = ConnectionGate(self.httpd.socket, name=self.kind,
                                   complete=http_request_complete, serve=self._serve,
                                   busy=HTTP_BUSY, limit=MAX_HEAD + MAX_BODY, **gate)

    def _serve(self, conn: socket.socket, address: Any, data: bytes) -> None:
        self.httpd.finish_request((conn, data), address)  # type: ignore[arg-type]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> None:
        self.gate.start()
        log.info("http_listening", what=self.kind, url=self.url)

    def alive(self) -> bool:
        return self.gate.alive()

    @property
    def name(self) -> str:
        return f"{self.kind} server"

    def stop(self) -> None:
        """Stop taking connections; a request being answered finishes on its own thread."""
        self.gate.stop()
        self.httpd.server_close()
