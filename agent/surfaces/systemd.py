"""systemd integration: READY, STATUS in words, and WATCHDOG pings only while the agent works.

The notify protocol is one datagram to the socket systemd names in `NOTIFY_SOCKET`; it is
a few lines, so it is written here rather than pulled in with libsystemd's bindings (which
need a compiler and the library's headers on every station PC). With no `NOTIFY_SOCKET`
(not under systemd, or `Type=exec`) every call does nothing.

The watchdog pings at half of `WATCHDOG_USEC`, but only while every loop that matters is
alive and moving (see `Agent.health`): a printer thread stuck in a driver call stops the
pings, and systemd restarts the service (`Restart=on-failure`), whose start-up recovery
then settles the card that was in the printer.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger("printstation.service")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address or None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_seconds = int(usec) / 1e6 if usec.isdigit() and mine else None
        self._last_status: str | None = None

    def send(self, *fields: str) -> None:
        if self.address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.warning("notify_failed", error=exc.strerror or str(exc))

    def status(self, text: str) -> None:
        """STATUS= as `systemctl status` shows it; sent only when it changes."""
        text = text.replace("\n", " ")[:200]
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")


class Watchdog:
    """Pings systemd while `health()` finds nothing wrong; says what is wrong when it does."""

    def __init__(self, notifier: Notifier, health: Callable[[], list[str]]):
        self.notifier = notifier
        self.health = health
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self.interval = (notifier.watchdog_seconds or 0) / 2

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        reported: list[str] = []
        while not self._stop.wait(self.interval):
            problems = self.health()
            if not problems:
                self.notifier.send("WATCHDOG=1")
            elif problems != reported:
                log.error("watchdog_withheld", problems=problems)
                self.notifier.status("not healthy: " + "; ".join(problems))
            reported = problems
