"""The operator's web page, served by the agent on localhost.

One page (`static/operator.html`) that asks `/api/state` every second and shows the
printer's state in words, the card in progress, the queue, consumables with the forecast,
open alerts and recent jobs, with buttons for the operator's actions. Actions go through
the same handlers as the control socket and are recorded the same way (who: `web`, and the
name the operator typed).

Only the station PC can reach it (127.0.0.1 by default). Because any web page open in that
PC's browser could try to post to localhost, an action must carry the header
`X-Printstation-Action` with a JSON body (a cross-site form cannot set either without a
CORS preflight, which this server never grants), and the Host header must name this
server (against DNS rebinding).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .httpbase import Handler, LocalHTTPServer

MAX_ACTION = 16 * 1024
WAITING = ("queued", "printing", "needs_check", "handing_back", "claiming")


def page() -> bytes:
    return resources.files("printstation.agent").joinpath("static/operator.html").read_bytes()


def state(agent: Any) -> dict[str, Any]:
    """Everything the page shows; job ids, references and times only, never job content."""
    jobs = agent.journal.recent_jobs(200)
    keep = ("job_id", "reference", "state", "source", "attempt", "updated_at", "reason_code",
            "reason_detail", "card_no")
    return {
        "station_id": agent.settings.station_id,
        "telemetry": agent.telemetry(),
        "current_job": agent.printer.snapshot.current_job,
        "waiting": [{k: j[k] for k in keep} for j in jobs if j["state"] in WAITING],
        "recent": [{k: j[k] for k in keep} for j in jobs if j["state"] not in WAITING][:20],
        "broker_up": all(agent.broker_up.values()),
    }


class OperatorHandler(Handler):
    def do_GET(self) -> None:
        if not self.host_ok():
            self.send_json(403, {"error": "use http://127.0.0.1 on the station PC"})
            return
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            self.send_body(200, page(), "text/html; charset=utf-8",
                           {"Content-Security-Policy": "default-src 'self'; "
                            "style-src 'self' 'unsafe-inline'; script-src 'self' "
                            "'unsafe-inline'; frame-ancestors 'none'"})
        elif path == "/api/state":
            self.send_json(200, state(self.agent))
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/api/action":
            self.send_json(404, {"error": "not found"})
            return
        if not self.host_ok() or not self.headers.get("X-Printstation-Action") or \
                not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self.send_json(403, {"ok": False, "error": "actions come from the operator page"})
            return
        length = int(self.headers.get("Content-Length") or 0)
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
        answer = self.agent.control.answer(json.dumps(request).encode(), who) \
            if self.agent.control else {"ok": False, "error": "the agent is stopping"}
        self.send_json(200 if answer.get("ok") else 400, answer)


class OperatorWeb(LocalHTTPServer):
    kind = "web"
    handler = OperatorHandler

