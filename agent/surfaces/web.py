"""The operator's web page, served by the agent on localhost.

One page (`static/operator.html`) that asks `/api/state` every second and shows the
printer's state in words, the card in progress, the queue (the next card first), the cards
an operator must check with a picture of each one's front (`/api/thumbnail`), consumables
with the forecast, open alerts and recent jobs, with buttons for the operator's actions.
Actions go through the same handlers as the control socket and are recorded the same way:
as `web:<user>`, the user who asked for the login link (`printstation web`: the control
socket's peer credentials name them), or, for a script with the token, as `web (typed:
NAME)` with the name it sends, which no session's record can be mistaken for.

Only the station PC can reach it (127.0.0.1 by default), but every user of that PC can, and
the control socket's group does not apply to TCP. So the page asks for a secret, as Jupyter
does: at start the agent writes a random token to `web-token` next to the control socket,
readable by the agent's user and `control_group` only, new at each start and removed at
stop; scripts send it in the header `X-Printstation-Token`. A browser never sees it in an
address: `printstation web` asks the agent, over the control socket (the same group), for
a one-time login code, good for one use within a minute, writes a page of the user's own
(0600) that posts it to `/login`, and opens that page: a browser's command line is visible
to every user of the PC (`ps`), and shows only the page's file name. `/login` starts a
session for the user who asked for the code, sets an HttpOnly, SameSite=Strict cookie
holding the session's secret and sends the browser on to `/` (`--print-url` prints the
link form, `/?login=CODE`, for the operator's own terminal). Sessions live in the agent's
memory: a restart ends them, as it changes the token.
Without the cookie or the header, the page and its API answer 403 saying to open it with
`printstation web`.

Because any web page open in that PC's browser could try to post to localhost, an action
must also carry the header `X-Printstation-Action` with a JSON body (a cross-site form
cannot set either without a CORS preflight, which this server never grants), and the Host
header must name this server (against DNS rebinding).

The page speaks the agent's language: its `language` setting, else the agent's locale
(`page_language`). It is served with `<html lang>` set and the words it needs inlined as
JSON (`page_words`: the gettext catalogue, `i18n.catalogue`, and the words for job
statuses, faults and consumables from `i18n.labels`), so it shows no English first and
asks for nothing more. The browser's Accept-Language is not followed, not even when the
setting is unset: the sentences the agent makes itself (an alert, why it is not printing,
what to look for in a check) are in the agent's language, and a page in another language
would show the two mixed. An operator who wants the page in Indonesian sets
`language = "id"` (or runs the agent in an Indonesian locale).
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

from printstation.agent import i18n
from printstation.agent.i18n import N_, labels
from printstation.agent.station.journal.jobstate import LIVE, JobState
from printstation.agent.surfaces.control_socket import UNKNOWN_PEER
from printstation.agent.surfaces.httpbase import Handler, LocalHTTPServer
from printstation.agent.surfaces.thumbnail import front_thumbnail

if TYPE_CHECKING:
    from printstation.agent.station.view import StationView

log = structlog.get_logger("printstation.web")

MAX_ACTION = 16 * 1024
#: A login link works once, within this many seconds of `printstation web` asking for it.
LOGIN_SECONDS = 60.0
#: The jobs the page lists as waiting: every one not ended, but the card in the printer
#: (shown as such), the ones to check (shown apart, with their picture) and a hand-back
#: being sent (the central system's now).
LISTED_WAITING = LIVE - {JobState.PRINTING, JobState.NEEDS_CHECK, JobState.HANDBACK_SENDING}
#: The longest waiting list the page shows (its count says how many there are in all).
WAITING_SHOWN = 100
#: Logged-in browsers the agent remembers at once; a new one pushes the oldest out.
MAX_SESSIONS = 64
TOKEN_FILE = "web-token"
COOKIE = "printstation_session"
TOKEN_HEADER = "X-Printstation-Token"
CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
       "'unsafe-inline'; frame-ancestors 'none'")

#: The server's own words (the page's are in the page), marked here and translated into
#: the page's language per request.
WORDS = {
    "open_with": N_("open the operator page with `printstation web` on the station PC"),
    # TRANSLATORS: a page of one line; keep <code>printstation web</code> as it is.
    "refused": N_("Open this page with <code>printstation web</code> on the station PC."),
    "open_page": N_("Open the operator page"),
    "no_card": N_("no card to show: the job is not waiting for a check"),
    "wrong_host": N_("use http://127.0.0.1 on the station PC"),
    "not_found": N_("not found"),
    "not_from_page": N_("actions come from the operator page"),
    "too_big": N_("an action is a small JSON object"),
    "not_json": N_("the action is not JSON"),
    "not_object": N_("the action is not a JSON object"),
}
#: Where the page's inline JSON goes, and its language.
WORDS_SLOT = b'<script id="words" type="application/json">{}</script>'
LANG_SLOT = b'<html lang="en">'


def page_language(settings: Any) -> str:
    """The page's language: the agent's `language` setting, else the agent's locale."""
    return i18n.resolve(settings.language)


def page_words(language: str) -> dict[str, Any]:
    """What the page needs to speak `language`: the catalogue (`i18n.catalogue`) and the
    words for the codes it shows, from `labels`, already in that language."""
    return {
        "catalogue": i18n.catalogue(language),
        "labels": {name: {code: labels.word(table, code, language) for code in table}
                   for name, table in (("statuses", labels.STATUSES),
                                       ("faults", labels.FAULTS),
                                       ("consumables", labels.CONSUMABLES))},
    }


def _inline_json(value: Any) -> bytes:
    """JSON safe inside a <script> element: no `<`, `>` or `&` that could end it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.encode("utf-8")


def page(language: str = "en") -> bytes:
    """The operator page in `language`: its `lang` set and its words inlined."""
    static = resources.files("printstation.agent.surfaces").joinpath("static/operator.html")
    body = static.read_bytes()
    if body.count(WORDS_SLOT) != 1 or body.count(LANG_SLOT) != 1:
        raise RuntimeError("static/operator.html lost its words or lang slot")
    words = WORDS_SLOT.replace(b"{}", _inline_json(page_words(language)))
    return body.replace(WORDS_SLOT, words).replace(
        LANG_SLOT, f'<html lang="{language}">'.encode())


def refused_page(language: str) -> bytes:
    say = i18n.translations(language).gettext
    return (f'<!doctype html><html lang="{language}"><title>printstation</title><p>'
            f'{say(WORDS["refused"])}</p>\n').encode()


def go_to_page(language: str) -> bytes:
    say = i18n.translations(language).gettext
    return (f'<!doctype html><html lang="{language}"><title>printstation</title>'
            f'<meta http-equiv="refresh" content="0;url=/">'
            f'<script>location.replace("/")</script>'
            f'<p><a href="/">{html.escape(say(WORDS["open_page"]))}</a></p>\n').encode()


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
    """One-time login codes: each opens the page once, within LOGIN_SECONDS, for the user
    who asked for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[float, str]] = {}

    def issue(self, holder: str) -> str:
        code = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._codes = {c: v for c, v in self._codes.items() if v[0] > now}
            self._codes[code] = (now + LOGIN_SECONDS, holder)
        return code

    def redeem(self, code: str) -> str | None:
        """The user the code was issued to, if it is valid (once); None if not."""
        with self._lock:
            entry = self._codes.pop(code, None)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]


class Sessions:
    """Logged-in browsers, each the secret in its cookie and the user it acts as."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, str] = {}

    def start(self, holder: str) -> str:
        secret = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._holders) >= MAX_SESSIONS:
                self._holders.pop(next(iter(self._holders)))
            self._holders[secret] = holder
        return secret

    def holder(self, secret: str) -> str | None:
        with self._lock:
            for known, holder in self._holders.items():
                if hmac.compare_digest(known.encode(), secret.encode("utf-8", "replace")):
                    return holder
        return None


def state(view: StationView, operator: str | None = None) -> dict[str, Any]:
    """Everything the page shows; job ids, references and times only, never job content
    (the card's front of a job to check comes apart, from `/api/thumbnail`).

    `operator` is the user this browser acts as, when known: the page shows the name fixed.
    """
    keep = ("job_id", "reference", "state", "source", "attempt", "updated_at", "reason_code",
            "reason_detail", "card_no")
    waiting, total = view.listed_jobs(LISTED_WAITING, WAITING_SHOWN)
    current = view.current_job()
    in_printer = view.listed_jobs(frozenset({JobState.PRINTING}), 5)[0] if current else []
    printing = next((j for j in in_printer if j["job_id"] == current), None)
    telemetry = view.telemetry()
    return {
        "station_id": view.station_id,
        "operator": operator,
        "telemetry": telemetry,
        "paused": view.paused(),
        "current_job": current,
        "current_reference": printing["reference"] if printing else None,
        "waiting": [{k: j[k] for k in keep} for j in waiting],
        "waiting_total": total,
        "queued_total": view.jobs_by_state().get(JobState.QUEUED, 0),
        "checks": view.checks(),
        "alerts": view.alerts(),
        "recent": [{k: j[k] for k in keep} for j in view.recent_jobs(200)
                   if j["state"] not in LIVE][:20],
        "broker_up": view.broker_up(),
    }


class OperatorHandler(Handler):
    token: str = ""  # set by OperatorWeb.start; empty: nothing is let in
    logins: LoginCodes = LoginCodes()  # replaced per server by OperatorWeb
    sessions: Sessions = Sessions()  # replaced per server by OperatorWeb

    @property
    def language(self) -> str:
        return page_language(self.view.settings)

    def say(self, key: str) -> str:
        """The server's word `key` in the page's language."""
        return i18n.translations(self.language).gettext(WORDS[key])

    def _refuse_page(self) -> None:
        self.send_body(403, refused_page(self.language), "text/html; charset=utf-8",
                       {"Content-Security-Policy": CSP})

    def _matches(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                        self.token.encode())

    def _caller(self) -> tuple[bool, str | None]:
        """Whether the request may see the page, and the user it acts as if known: the
        token in the header (a script: no user known), or a session's cookie."""
        given = self.headers.get(TOKEN_HEADER)
        if given is not None:
            return self._matches(given), None
        if not self.token:
            return False, None
        for header in self.headers.get_all("Cookie") or []:
            for part in header.split(";"):
                name, _, value = part.strip().partition("=")
                if name == COOKIE:
                    holder = self.sessions.holder(value)
                    if holder is not None:  # a user the kernel could not name is nobody
                        return True, None if holder == UNKNOWN_PEER else holder
        return False, None

    def _authorised(self) -> bool:
        return self._caller()[0]

    def _session_cookie(self, holder: str) -> str:
        return (f"{COOKIE}={self.sessions.start(holder)}; HttpOnly; SameSite=Strict; "
                "Path=/")

    def _thumbnail(self, query: str) -> None:
        """The card's front of a job in needs_check, drawn now; never stored or cached."""
        job_id = (parse_qs(query).get("job") or [""])[0]
        body = self.view.needs_check_body(job_id) if job_id else None
        if body is None:
            self.send_json(404, {"error": self.say("no_card")})
            return
        try:
            picture = front_thumbnail(body)
        except ValueError as exc:
            self.send_json(404, {"error": str(exc)})
            return
        self.send_body(200, picture, "image/png")

    def do_GET(self) -> None:
        if not self.host_ok():
            self.send_json(403, {"error": self.say("wrong_host")})
            return
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            given = parse_qs(url.query).get("login")
            holder = self.logins.redeem(given[0]) if given and self.token else None
            if holder is not None:
                self.send_body(303, b"", "text/plain", {
                    "Location": "/", "Set-Cookie": self._session_cookie(holder)})
            elif given or "token" in parse_qs(url.query) or not self._authorised():
                self._refuse_page()
            else:
                self.send_body(200, page(self.language), "text/html; charset=utf-8",
                               {"Content-Security-Policy": CSP})
            return
        allowed, holder = self._caller()
        if not allowed:
            self.send_json(403, {"ok": False, "error": self.say("open_with")})
        elif url.path == "/api/state":
            self.send_json(200, state(self.view, holder))
        elif url.path == "/api/thumbnail":
            self._thumbnail(url.query)
        else:
            self.send_json(404, {"error": self.say("not_found")})

    def _login(self) -> None:
        """POST /login with a one-time code (the page `printstation web` opens): set the
        cookie, then go to the page. The page is left by the page itself, not by a
        redirect, so the browser sends a SameSite=Strict cookie with it."""
        declared = self.headers.get("Content-Length") or "0"
        length = int(declared) if declared.isdigit() else 0
        form = parse_qs(self.rfile.read(length).decode("ascii", "replace")) \
            if 0 < length <= 1024 else {}
        code = (form.get("code") or [""])[0]
        holder = self.logins.redeem(code) if self.host_ok() and self.token else None
        if holder is None:
            self._refuse_page()
            return
        self.send_body(200, go_to_page(self.language), "text/html; charset=utf-8", {
            "Content-Security-Policy": CSP, "Set-Cookie": self._session_cookie(holder)})

    def do_POST(self) -> None:
        if self.path.split("?")[0] == "/login":
            self._login()
            return
        if self.path.split("?")[0] != "/api/action":
            self.send_json(404, {"error": self.say("not_found")})
            return
        if not self.host_ok() or not self.headers.get("X-Printstation-Action") or \
                not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self.send_json(403, {"ok": False, "error": self.say("not_from_page")})
            return
        allowed, holder = self._caller()
        if not allowed:
            self.send_json(403, {"ok": False, "error": self.say("open_with")})
            return
        declared = self.headers.get("Content-Length") or "0"
        length = int(declared) if declared.isdigit() else 0
        if not 0 < length <= MAX_ACTION:
            self.send_json(400, {"ok": False, "error": self.say("too_big")})
            return
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw)
        except ValueError:
            self.send_json(400, {"ok": False, "error": self.say("not_json")})
            return
        if not isinstance(request, dict):
            self.send_json(400, {"ok": False, "error": self.say("not_object")})
            return
        # The user who opened the page acts; a name typed in is taken only where nobody
        # is known (a script holding the token), and recorded as typed: `web:siti` is
        # only ever the user the kernel named, never a name anyone could send.
        name = str(request.pop("operator", "") or "").strip()[:40]
        who = f"web:{holder}" if holder else f"web (typed: {name})" if name else "web"
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
        self.httpd.RequestHandlerClass.sessions = Sessions()  # type: ignore[attr-defined]
        super().start()

    def login_url(self, holder: str) -> str:
        """A one-time link that opens the page logged in as `holder` (`printstation web`:
        the user the control socket's peer credentials name)."""
        code = self.httpd.RequestHandlerClass.logins.issue(holder)  # type: ignore[attr-defined]
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
    button = html.escape(i18n._(WORDS["open_page"]))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"<!doctype html><html lang=\"{i18n.language()}\"><meta charset=\"utf-8\">"
                 f"<title>printstation</title>"
                 f"<form method=\"post\" action=\"{html.escape(base)}login\">"
                 f"<input type=\"hidden\" name=\"code\" value=\"{html.escape(code)}\">"
                 f"<noscript><button>{button}</button></noscript>"
                 f"</form><script>document.forms[0].submit()</script>\n")
    return path
