"""What tests of every tier share: waiting on a condition, signing, the command as users
run it, and where the repository's files are. No broker here (`support.broker` has it)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.signing import sign_headers

#: The repository's root: the systemd unit, the example config, the simulator's scenarios.
REPO = Path(__file__).resolve().parents[2]
#: A driver package installed nowhere, found through PYTHONPATH (the plug-in tests).
PLUGINS = REPO / "tests" / "plugins"
#: The key id the tests' central system signs with.
KEY_ID = "central-test"
#: The `printstation` command, run as a user would.
CLI = [sys.executable, "-m", "printstation.agent"]


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def run(*args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess:
    """`printstation ARGS` in a process of its own, its output captured."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def signed(signing_key: Ed25519PrivateKey, body: dict | bytes) -> tuple[bytes, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, sign_headers(signing_key, KEY_ID, raw)


def job_fingerprint(body: dict) -> str:
    """The fingerprint the simulated printer writes in its ledger for this job's card."""
    from printstation.agent.station.journal import JobRow
    from printstation.agent.station.printing import build_card
    from printstation.simulator.printer import fingerprint

    raw = json.dumps({"destination": "station.any", **body}).encode()
    row = JobRow(body["job_id"], None, body["card_stock"], "station", "queued", 0, 1, None, raw,
                 None, None, None)
    return fingerprint(build_card(row, (1016, 648)).front.black)


def control_answers(state_dir: Path) -> bool:
    """True once the running agent answers on its control socket."""
    from printstation.agent.surfaces.control_socket import ControlError, call

    try:
        return call(state_dir, {"cmd": "status"}, timeout=5)["ok"]
    except ControlError:
        return False


def host_port(url: str) -> tuple[str, int]:
    """The host and port of a local server's http:// URL."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def http_get(url: str, path: str, headers: dict | None = None, *,
             timeout: float = 10.0) -> http.client.HTTPResponse:
    """One GET, redirects not followed, the answer read (as `.body`) within `timeout`."""
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        answer.body = answer.read()  # type: ignore[attr-defined]
        return answer
    finally:
        conn.close()


def unusual_password() -> str:
    """A password no other text in a test holds, with characters a URL must quote."""
    return f"pw:{uuid.uuid4().hex}@/%#?"


def password_file(path: Path, password: str, mode: int = 0o600) -> Path:
    """The password on the first line of a file with this mode, as an administrator writes it."""
    path.write_text(password + "\n")
    path.chmod(mode)
    return path
