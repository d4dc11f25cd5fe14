"""The operator's web page, served by the agent on localhost.

One page (`static/operator.html`) that asks `/api/state` every second and shows the
printer's state in words, the card in progress, the queue, consumables with the forecast,
open alerts and recent jobs, with buttons for the operator's actions. Actions go through
the same handlers as the control socket and are recorded the same way (who: `web`, and the
name the operator typed).

Only the station PC can reach it (127.0.0.1 by default), but every user of that PC can, and
the control socket's group does not apply to TCP. So the page asks for a secret, as Jupyter
does: at start the agent writes a random token to `web-token` next to the control socket,
readable by the agent's user and `control_group` only, new at each start and removed at
stop; scripts send it in the header `X-Printstation-Token`. A browser never sees it in an
address: `printstation web` asks the agent, over the control socket (the same group), for
a one-time login code, good for one use within a minute, writes a page of the user's own
(0600) that posts it to `/login`, and opens that page: a browser's command line is visible
to every user of the PC (`ps`), and shows only the page's file name. `/login` sets an
HttpOnly, SameSite=Strict cookie holding the token and sends the browser on to `/`
(`--print-url` prints the link form, `/?login=CODE`, for the operator's own terminal).
Without the cookie or the header, the page and its API answer 403 saying to open it with
`printstation web`.

Because any web page open in that PC's browser could try to post to localhost, an action
must also carry the header `X-Printstation-Action` with a JSON body (a cross-site form
cannot set either without a CORS preflight, which this server never grants), and the Host
header must name this server (against DNS rebinding).
"""

from __future__ import annotations

import contextlib
import grp
import hmac
import html
import json
import os
import secrets
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import structlog

from printstation.agent.station.journal.jobstate import LIVE, JobState
from printstation.agent.surfaces.httpbase import Handler, LocalHTTPServer

if TYPE_CHECKING:
    from printstation.agent.station.view import StationView

log = structlog.get_logger("printstation.web")

MAX_ACTION = 16 * 1024
#: A login link works once, within this many seconds of `printstation web` asking for it.
LOGIN_SECONDS = 60.0
#: The jobs the page lists as waiting: every one not ended, but a hand-back being sent
#: (the central system's now).
LISTED_WAITING = LIVE - {JobState.HANDBACK_SENDING}
TOKEN_FILE = "web-token"
COOKIE = "printstation_token"
TOKEN_HEADER = "X-Printstation-Token"
OPEN_WITH = "open the operator page with `printstation web` on the station PC"
REFUSED_PAGE = (b"<!doctype html><title>printstation</title><p>Open this page with "
                b"<code>printstation web</code> on the station PC.</p>\n")
GO_TO_PAGE = (b"<!doctype html><title>printstation</title><meta http-equiv=\"refresh\" "
              b"content=\"0;url=/\"><script>location.replace(\"/\")</script>"
              b"<p><a href=\"/\">Open the operator page</a></p>\n")
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
       "'unsafe-inline'; frame-ancestors 'none'")


def page() -> bytes:
    static = resources.files("printstation.agent.surfaces").joinpath("static/operator.html")
    return static.read_bytes()


def token_path(settings: Any) -> Path:
    """The token file: next to the control socket, where the agent's group may look."""
    return Path(settings.socket_path()).parent / TOKEN_FILE


def write_token(path: Path, group: str | None) -> str:
    """A new token in `path`: 0640 with `group` (0600 without, or if the group is not set),
    written to a new file and renamed over the old one, so no reader sees half a token."""
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        if group:
            try:
                os.fchown(fd, -1, grp.getgrnam(group).gr_gid)
                os.fchmod(fd, 0o640)
            except (KeyError, PermissionError) as exc:
                log.error("web_token_group_not_set", group=group, error=type(exc).__name__,
                          detail="only the agent's own user can open the operator page")
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token


class LoginCodes:
    """One-time login codes: each opens the page once, within LOGIN_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, float] = {}

    def issue(self) -> str:
        code = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._codes = {c: t for c, t in self._codes.items() if t > now}
            self._codes[code] = now + LOGIN_SECONDS
        return code

    def redeem(self, code: str) -> bool:
        with self._lock:
            expires = self._codes.pop(code, None)
        return expires is not None and expires > time.monotonic()


def state(view: StationView) -> dict[str, Any]:
    """Everything the page shows; job ids, references and times only, never job content."""
    jobs = view.recent_jobs(200)
    keep = ("job_id", "reference", "state", "source", "attempt", "updated_at", "reason_code",
            "reason_detail", "card_no")
    return {
        "station_id": view.station_id,
        "telemetry": view.telemetry(),
        "current_job": view.current_job(),
        "waiting": [{k: j[k] for k in keep} for j in jobs if j["state"] in LISTED_WAITING],
        "recent": [{k: j[k] for k in keep} for j in jobs if j["state"] not in LISTED_WAITING][:20],
        "broker_up": view.broker_up(),
    }


class OperatorHandler(Handler):
    token: str = ""  # set by OperatorWeb.start; empty: nothing is let in
    logins: LoginCodes = LoginCodes()  # replaced per server by OperatorWeb

    def _matches(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                        self.token.encode())

    def _authorised(self) -> bool:
        """The token came in the header, or in the cookie `/?token=` set."""
        given = self.headers.get(TOKEN_HEADER)
        if given is None:
            for header in self.headers.get_all("Cookie") or []:
                for part in header.split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == COOKIE:
                        given = value
        return given is not None and self._matches(given)

    def do_GET(self) -> None:
        if not self.host_ok():
            self.send_json(403, {"error": "use http://127.0.0.1 on the station PC"})
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            given = parse_qs(url.query).get("login")
            if given and self.token and self.logins.redeem(given[0]):
                self.send_body(303, b"", "text/plain", {
                    "Location": "/",
                    "Set-Cookie": f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"})
            elif given or "token" in parse_qs(url.query) or not self._authorised():
                self.send_body(403, REFUSED_PAGE, "text/html; charset=utf-8",
                               {"Content-Security-Policy": CSP})
            else:
                self.send_body(200, page(), "text/html; charset=utf-8",
                               {"Content-Security-Policy": CSP})
        elif not self._authorised():
            self.send_json(403, {"ok": False, "error": OPEN_WITH})
        elif url.path == "/api/state":
            self.send_json(200, state(self.view))
        else:
            self.send_json(404, {"error": "not found"})

    def _login(self) -> None:
        """POST /login with a one-time code (the page `printstation web` opens): set the
        cookie, then go to the page. The page is left by the page itself, not by a
        redirect, so the browser sends a SameSite=Strict cookie with it."""
        declared = self.headers.get("Content-Length") or "0"
        length = int(declared) if declared.isdigit() else 0
        form = parse_qs(self.rfile.read(length).decode("ascii", "replace")) \
            if 0 < length <= 1024 else {}
        code = (form.get("code") or [""])[0]
        if not self.host_ok() or not self.token or not self.logins.redeem(code):
            self.send_body(403, REFUSED_PAGE, "text/html; charset=utf-8",
                           {"Content-Security-Policy": CSP})
            return
        self.send_body(200, GO_TO_PAGE, "text/html; charset=utf-8", {
            "Content-Security-Policy": CSP,
            "Set-Cookie": f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] == "/login":
            self._login()
            return
        if self.path.split("?")[0] != "/api/action":
            self.send_json(404, {"error": "not found"})
            return
        if not self.host_ok() or not self.headers.get("X-Printstation-Action") or \
                not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self.send_json(403, {"ok": False, "error": "actions come from the operator page"})
            return
        if not self._authorised():
            self.send_json(403, {"ok": False, "error": OPEN_WITH})
            return
        declared = self.headers.get("Content-Length") or "0"
        length = int(declared) if declared.isdigit() else 0
        if not 0 < length <= MAX_ACTION:
            self.send_json(400, {"ok": False, "error": "an action is a small JSON object"})
            return
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw)
        except ValueError:
            self.send_json(400, {"ok": False, "error": "the action is not JSON"})
            return
        if not isinstance(request, dict):
            self.send_json(400, {"ok": False, "error": "the action is not a JSON object"})
            return
        name = str(request.pop("operator", "") or "").strip()[:40]
        who = f"web:{name}" if name else "web"
        answer = self.view.act(request, who)
        self.send_json(200 if answer.get("ok") else 400, answer)


class OperatorWeb(LocalHTTPServer):
    """The page's server; it owns the token file, from `start` to `stop`."""

    kind = "web"
    handler = OperatorHandler

    def __init__(self, view: StationView, listen: str, **gate: Any):
        self.token_file = token_path(view.settings)
        self.group: str | None = view.settings.control_group
        with contextlib.suppress(FileNotFoundError):
            self.token_file.unlink()  # a run that did not stop left it: it opens nothing now
        super().__init__(view, listen, **gate)

    def start(self) -> None:
        try:
            token = write_token(self.token_file, self.group)
        except OSError:
            self.httpd.server_close()
            raise
        self.httpd.RequestHandlerClass.token = token  # type: ignore[attr-defined]
        self.httpd.RequestHandlerClass.logins = LoginCodes()  # type: ignore[attr-defined]
        super().start()

    def login_url(self) -> str:
        """A one-time link that opens the page logged in (`printstation web`)."""
        code = self.httpd.RequestHandlerClass.logins.issue()  # type: ignore[attr-defined]
        return f"{self.url}?login={code}"

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(FileNotFoundError):
            self.token_file.unlink()


def login_page(url: str, folder: Path) -> Path:
    """A page of the user's own (0600, in a 0700 folder) that posts a login link's code.

    A browser started with an address shows it on its command line to every user of the
    PC (`ps`) for as long as it runs, and whoever used the code first would have the
    token; a `file://` address shows only this file's name. Pages older than five minutes
    (their codes long expired) are removed.
    """
    base, _, code = url.partition("?login=")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for old in folder.glob("web-login-*.html"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > 300:
                old.unlink()
    path = folder / f"web-login-{secrets.token_hex(8)}.html"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"<!doctype html><meta charset=\"utf-8\"><title>printstation</title>"
                 f"<form method=\"post\" action=\"{html.escape(base)}login\">"
                 f"<input type=\"hidden\" name=\"code\" value=\"{html.escape(code)}\">"
                 f"<noscript><button>Open the operator page</button></noscript></form>"
                 f"<script>document.forms[0].submit()</script>\n")
    return path
