"""The running agent's local control interface: a Unix socket.

Operators' commands (`printstation status`, `pause`, `resume`, `jobs`, `cancel`, `resolve`,
`hand-back`, `load`, `stock`, `clean`, `ledger`, `test-print`) reach the agent here, never
by editing files. Nothing listens on the network: the socket is a file, 0660, owned by the
agent's user and `control_group` (under systemd it lives in the RuntimeDirectory, so
operators in that group can reach it without reading the 0700 state folder), and the
kernel tells who is calling (SO_PEERCRED), which every action records in the journal with
its reason. Requests and answers are one JSON object per line.

Whoever may open the socket could still hold connections open without asking anything, so
connections go through the same `ConnectionGate` as the HTTP servers: they hold no thread
until a whole line has come, one that sends none within the idle timeout is closed, and at
most a few requests are answered at once.

An error in an answer is in the agent's language; one the calling command meets on its own
side (no agent, no permission) is in the command's.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import json
import os
import pwd
import socket
import stat as stat_module
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from printstation.agent.i18n import N_, _
from printstation.agent.station.actions import ControlError
from printstation.agent.station.components import CONTROL_SOCKET
from printstation.agent.surfaces.httpbase import ConnectionGate
from printstation.drivers.errors import PrintstationError

log = structlog.get_logger("printstation.control")

SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024
BUSY_MESSAGE = N_("the agent is busy answering other requests: try again")


def _error_line(message: str) -> bytes:
    return json.dumps({"ok": False, "error": message}).encode() + b"\n"


#: The answer to a request beyond the gate's limits (in English; the server sends it in the
#: agent's language).
BUSY = _error_line(BUSY_MESSAGE)


Handler = Callable[[dict[str, Any], str], dict[str, Any]]
#: Who a caller is when the kernel would not say.
UNKNOWN_PEER = "unknown"


def _peer(conn: socket.socket) -> str:
    """The user name of the process on the other end of the socket."""
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return UNKNOWN_PEER


class SocketInUse(PrintstationError):
    """Another process answers on the control socket's path: it is not this agent's to take."""

    code = "control_socket_in_use"

    def __init__(self, path: Path):
        super().__init__(f"{path} is answered by another program")
        self.path = path


def _answered(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket at `path`.

    Refused, or no socket there at all, means a stale file; any other answer (a connection,
    a timeout, no permission) is taken as a socket in use, which is never unlinked.
    """
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return True
    finally:
        probe.close()
    return True


class LocalControlServer:
    """The control socket; `gate` options (timeout, workers, waiting) override the defaults."""

    name = "control socket"
    stop_order = CONTROL_SOCKET

    def __init__(self, path: Path, handlers: dict[str, Handler], group: str | None = None,
                 **gate: Any):
        self.path = path
        self.group = group
        self.handlers = handlers
        self._gate_options = gate
        self._sock: socket.socket | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the bound path
        self.gate: ConnectionGate | None = None

    def claim(self) -> None:
        """Bind and listen on the socket's path, before the agent starts anything else.

        A socket another process still answers on is left alone (SocketInUse): a second
        agent on the PC given the same `control_socket` (a copied instance configuration)
        used to unlink it and take it over, so the first agent's operators reached the
        second one and the first, at its stop, unlinked the second's. Only a socket nothing
        answers on (left by an agent that did not stop cleanly) is replaced.
        """
        if self._sock is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            try:
                sock.bind(str(self.path))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                if _answered(self.path):
                    raise SocketInUse(self.path) from None
                if not stat_module.S_ISSOCK(os.lstat(self.path).st_mode):
                    # A mistyped control_socket naming another file: never removed.
                    raise FileExistsError(errno.EEXIST, "not a socket, left as it is",
                                          str(self.path)) from None
                self.path.unlink(missing_ok=True)
                sock.bind(str(self.path))
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old)
        stat = os.stat(self.path)
        self._identity = (stat.st_dev, stat.st_ino)
        self._sock = sock
        if self.group:
            try:
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            except (KeyError, PermissionError) as exc:
                log.error("control_group_not_set", group=self.group, error=type(exc).__name__,
                          detail="only the agent's own user can use the control socket")

    def start(self) -> None:
        self.claim()
        assert self._sock is not None
        self.gate = ConnectionGate(self._sock, name="local-control",
                                   complete=lambda d: b"\n" in d, serve=self._serve,
                                   busy=_error_line(_(BUSY_MESSAGE)), limit=MAX_REQUEST,
                                   **self._gate_options)
        self.gate.start()

    def alive(self) -> bool:
        return self.gate is not None and self.gate.alive()

    def stop(self) -> None:
        """Stop answering and remove the socket, only if the path is still this one's."""
        if self.gate is not None:
            self.gate.stop()
        if self._sock is not None:
            self._sock.close()
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        if (stat.st_dev, stat.st_ino) == self._identity:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _serve(self, conn: socket.socket, _address: Any, data: bytes) -> None:
        """Answer the first line the gate read (all of it when it is too long for one)."""
        end = data.find(b"\n")
        answer = self.answer(data if end < 0 else data[: end + 1], _peer(conn))
        conn.sendall(json.dumps(answer).encode() + b"\n")

    def answer(self, line: bytes, who: str) -> dict[str, Any]:
        """One request to one answer; a bad request gets an error naming the problem."""
        try:
            if len(line) > MAX_REQUEST:
                raise ControlError(_("request too long"))
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ControlError(_('a request is a JSON object with "cmd"'))
            handler = self.handlers.get(request["cmd"])
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                raise ControlError(_("unknown command {command}; known: {known}").format(
                    command=repr(request["cmd"]), known=known))
            return {"ok": True, **handler(request, who)}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {"ok": False, "error": _("the request is not JSON")}
        except Exception as exc:
            log.error("control_command_failed", error=type(exc).__name__)
            return {"ok": False, "error": _("the agent could not do it ({error})").format(
                error=type(exc).__name__)}


def call(where: Path, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to the running agent; ControlError if it cannot be reached.

    `where` is the socket, or a folder holding `control.sock` (the state folder).
    """
    path = where / SOCKET_NAME if where.is_dir() else where
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        raise ControlError(_("the agent is not running (no control socket at {path})").format(
            path=path)) from None
    except PermissionError:
        raise ControlError(_("permission denied on {path}: join the agent's group").format(
            path=path)) from None
    except OSError as exc:
        raise ControlError(_("cannot reach the agent at {path}: {error}").format(
            path=path, error=exc.strerror)) from None
    with sock, sock.makefile("rwb") as fh:
        fh.write(json.dumps(request).encode() + b"\n")
        fh.flush()
        line = fh.readline()
    if not line:
        raise ControlError(_("the agent closed the connection without an answer"))
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ControlError(answer.get("error") or _("the agent refused it without saying why"))
    return answer
