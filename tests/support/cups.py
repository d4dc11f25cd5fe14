"""A cupsd of the tests' own and CUPS's `ippeveprinter` as a card printer behind it.

    CardPrinter   a private `dbus-daemon --session` and `ippeveprinter` on a free port of
                  127.0.0.1 (and ::1), loaded with an IPP attributes file that makes it a CR80
                  card printer (`om_card_54x86mm`, 300 dpi, colour, PDF/JPEG/PWG raster), its
                  print command `python -m printstation.simulator.ipp_card` (which renders
                  each card into its output folder and ledger), steered through a behaviour
                  file (state reasons, markers, failures, slow prints).
    Cupsd         `cupsd -f` with its own configuration, spool, log, cache and state folders
                  on a free port of 127.0.0.1; `add_queue` puts a CardPrinter behind a queue.

Nothing mocks IPP: these are Debian's cups, cups-ipp-utils and dbus, as a station runs them.
Facts they rest on (CUPS 2.4.2, checked on this kind of machine):

- ippeveprinter needs a D-Bus to start even with `-r off` (its DNS-SD client is Avahi's);
  a private session bus named as the system bus is enough, no avahi-daemon is needed.
- `-a FILE` (an attributes file, the form `ipptool --ippserver` writes) cannot be combined
  with `-f`, `-m`, `-M`, `-s`, `-2` (it prints its usage and exits); it then says it takes
  only `image/pwg-raster, image/urf`, so the file declares `document-format-supported`
  itself. ippeveprinter appends its own list after it: clients (CUPS included) read the
  first, and `ipptool -t` complains about the duplicate.
- `-c` is exec'd without a shell or arguments: it is a small script in the printer's folder
  that runs the simulator's command with the printer's output folder.
- Its `printer-state-reasons` carry a suffix by printer state: `media-jam-report` when
  idle, `media-jam-warning` while processing; only 16 keywords exist (ipp_card.KEYWORDS).
- `media-empty` makes it hold every later job (adding `media-needed`) until its web form
  `/media` is posted with cards (`set_feeder`), which is how a feeder is refilled.

The queue model: `lpadmin -m everywhere` (an IPP Everywhere queue, the PPD generated from
the printer's attributes), not a raw queue. CUPS then runs its filters as a vendor's
queue does: `pdftopdf` (cups-filters, which Debian's cups package depends on) passes our
two-page PDF on as ONE document with both pages, fitted to the card: the landscape
1016x648 pages arrive as portrait 54x86 mm pages with the picture turned a quarter, so
the simulator's PNGs are 638x1016. A raw queue would pass the PDF untouched, but it is
deprecated in CUPS 2.4 and skips what a real station's queue does (the page size from
`media`, the filters), so it would test a path no office has.

cupsd runs its filters and backends as user `lp`, so its folders must be reachable by `lp`:
pytest's own temporary folders (0700) are not, and the `cupsd` fixture makes its folder
with `folder()` under the system's temporary folder. Every wait here is on a condition
with a deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from printstation.simulator.ipp_card import read_ledger, write_behaviour
from tests.support import wait_for

INSTALL = ("`make system-deps` installs it (apt: cups cups-ipp-utils libcups2-dev dbus "
           "poppler-utils), then `make ipp` installs pycups into .venv")
#: command, what it is in: every binary the tier runs.
BINARIES = (("cupsd", "cups"), ("lpadmin", "cups-client"), ("ippeveprinter", "cups-ipp-utils"),
            ("ipptool", "cups-ipp-utils"), ("dbus-daemon", "dbus"),
            ("pdftoppm", "poppler-utils"))
CUPS_HEADER = Path("/usr/include/cups/cups.h")
#: The card size the queue prints on (PWG self-describing name of CR80, 54 x 86 mm).
CARD_MEDIA = "om_card_54x86mm"
#: IPP job-state values (RFC 8011).
PENDING, HELD, PROCESSING, STOPPED, CANCELED, ABORTED, COMPLETED = 3, 4, 5, 6, 7, 8, 9
#: IPP printer-state values (RFC 8011).
PRINTER_IDLE, PRINTER_PROCESSING, PRINTER_STOPPED = 3, 4, 5

#: The card printer's attributes (`ipptool --ippserver` form); ippeveprinter fills in the
#: rest (operations, job attributes, state).
CARD_ATTRIBUTES = Path(__file__).with_name("card_printer.attrs")


def missing() -> str | None:
    """What the ipp tier lacks, said in one line, or None."""
    for command, package in BINARIES:
        if shutil.which(command) is None:
            return f"{command} ({package}) is missing: {INSTALL}"
    if not CUPS_HEADER.exists():
        return f"{CUPS_HEADER} (libcups2-dev) is missing: {INSTALL}"
    if importlib.util.find_spec("cups") is None:
        return ("pycups is missing: `make ipp` installs it into .venv "
                "(it builds against libcups2-dev)")
    return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ipv6_loopback() -> bool:
    """Whether ::1 can be bound here (ippeveprinter -n localhost listens on it too)."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def folder(prefix: str) -> Path:
    """A fresh folder under the system's temporary folder that user `lp` can pass through
    (cupsd's filters and backends run as `lp`); its caller removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    for parent in path.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            path.rmdir()
            raise AssertionError(f"{parent} is not searchable by others: cupsd's filters "
                                 "(user lp) could not reach the spool; set TMPDIR elsewhere")
    return path


def _tail(path: Path, size: int = 1200) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return "(no log)"


def _stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM,
          timeout: float = 10) -> None:
    """Signal a process group started by us (the process and what it started), then wait."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class CardPrinter:
    """An IPP Everywhere card printer: ippeveprinter with the simulator as its print command.

    `uri` is where a CUPS queue reaches it; `out` is the simulator's output folder (its
    ledger, PNGs, card counter and behaviour). Its port stays the same across `stop()` and
    `start()`, so a queue set up for it finds it again; its card counter and ledger survive
    restarts, while what ippeveprinter keeps in memory (state reasons, markers, its own job
    history and job ids) starts afresh.
    """

    def __init__(self, path: Path, name: str = "card"):
        self.path = path
        self.name = name
        self.out = path / "out"
        self.spool = path / "spool"
        self.log = path / "ippeveprinter.log"
        self.port = free_port()
        self.host = "127.0.0.1"
        for sub in (self.spool, self.out):
            sub.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.attributes_file = CARD_ATTRIBUTES
        # ippeveprinter execs -c without a shell or arguments: a script names the folder.
        self.command = path / "print-card"
        self.command.write_text(
            "#!/bin/sh\n"
            f"exec '{sys.executable}' -m printstation.simulator.ipp_card "
            f"--output '{self.out}' \"$@\"\n")
        self.command.chmod(0o700)
        self._dbus: subprocess.Popen | None = None
        self._printer: subprocess.Popen | None = None
        self.start()

    @property
    def uri(self) -> str:
        return f"ipp://{self.host}:{self.port}/ipp/print"

    # ------------------------------------------------------------------ the processes

    def start(self, timeout: float = 20) -> None:
        """Start its D-Bus and ippeveprinter; return once it answers on its port."""
        if self._printer is not None and self._printer.poll() is None:
            return
        address = self._start_dbus(timeout)
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address,
               "DBUS_SESSION_BUS_ADDRESS": address}
        args = ["ippeveprinter", "-v", "-r", "off", "-p", str(self.port), "-d",
                str(self.spool), "-a", str(self.attributes_file), "-c", str(self.command)]
        if _ipv6_loopback():
            # Listen on the loopback only (IPv4 and IPv6); without ::1 it needs every address.
            args[1:1] = ["-n", "localhost"]
        with self.log.open("ab") as log:
            self._printer = subprocess.Popen([*args, self.name], stdout=log,
                                             stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)
        try:
            wait_for(self._answers, timeout, f"ippeveprinter on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _start_dbus(self, timeout: float) -> str:
        if self._dbus is not None and self._dbus.poll() is None:
            return self._dbus_address
        with (self.path / "dbus.log").open("ab") as log:
            self._dbus = subprocess.Popen(
                ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
                stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        assert self._dbus.stdout is not None
        ready, _, _ = select.select([self._dbus.stdout], [], [], timeout)
        line = self._dbus.stdout.readline().decode().strip() if ready else ""
        self._dbus.stdout.close()
        if not line:
            _stop(self._dbus)
            raise AssertionError(f"dbus-daemon gave no address within {timeout} s: "
                                 f"{_tail(self.path / 'dbus.log')}")
        self._dbus_address = line
        return line

    def _answers(self) -> bool:
        assert self._printer is not None
        if self._printer.poll() is not None:
            raise AssertionError(f"ippeveprinter exited ({self._printer.returncode}): "
                                 f"{_tail(self.log)}")
        return self._get("/") is not None

    def _get(self, path: str) -> int | None:
        """One GET to its web server: the HTTP status, or None if it does not answer."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            answer.read()
            return answer.status
        except OSError:
            return None
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop ippeveprinter (and a print command it runs) and its D-Bus: the printer is
        off; a queue in front of it now cannot reach it."""
        _stop(self._printer)
        _stop(self._dbus)

    def running(self) -> bool:
        return self._printer is not None and self._printer.poll() is None

    # ------------------------------------------------------------------ what tests see

    def ledger(self) -> list[dict]:
        """Every card the printer produced, in order (ipp_card's ledger.jsonl)."""
        return read_ledger(self.out)

    def behave(self, **next_job: Any) -> None:
        """How the next job not yet steered goes (reasons, clear, markers, fail, drawn,
        delay: see ipp_card.check_behaviour); each call steers one more job."""
        write_behaviour(self.out, next_job=next_job)

    def behave_always(self, **always: Any) -> None:
        """How every job goes (a next-job behaviour goes on top); no arguments: normally."""
        write_behaviour(self.out, always=always)

    def set_feeder(self, cards: int) -> None:
        """Put cards in the feeder through ippeveprinter's `/media` form: 0 raises
        media-empty (jobs then wait, with media-needed), under 25 media-low, more clears
        them. The one way to clear media-empty while a job waits for cards."""
        query = urllib.parse.urlencode({"size0": CARD_MEDIA, "type0": "cardstock",
                                        "level0": cards})
        status = self._get(f"/media?{query}")
        if status != 200:
            raise AssertionError(f"ippeveprinter's /media form answered {status}")

    def attributes(self, *names: str) -> dict[str, Any]:
        """The printer's own attributes (not the queue's), asked over IPP with pycups."""
        import cups

        conn = cups.Connection(host=self.host, port=self.port)
        return conn.getPrinterAttributes(uri=self.uri, requested_attributes=list(names))


class Cupsd:
    """`cupsd -f` with every folder of its own under `path`, listening on 127.0.0.1:port.

    Its queues, PPDs and job history live in those folders, so `stop()` then `start()`
    brings back the same queues and the states of past jobs (PreserveJobHistory). It keeps
    CUPS's defaults a station has (ErrorPolicy stop-printer, DirtyCleanInterval 30 s, job
    values such as job-name private to unauthenticated clients), so what `kill()` loses is
    what a station's CUPS loses in a crash.
    """

    def __init__(self, path: Path):
        self.path = path
        self.port = free_port()
        self.conf = path / "conf"
        self.logs = path / "log"
        for sub in ("conf", "conf/ppd", "spool", "log", "cache", "state"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (self.conf / "cupsd.conf").write_text(
            f"Listen 127.0.0.1:{self.port}\n"
            "LogLevel debug\n"
            "MaxLogSize 0\n"
            "Browsing No\n"
            "WebInterface No\n"
            "DefaultAuthType None\n"
            "PreserveJobHistory Yes\n"
            "PreserveJobFiles No\n"
            "<Location />\n  Order allow,deny\n  Allow 127.0.0.1\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n"
            "</Policy>\n")
        (self.conf / "cups-files.conf").write_text(
            "SystemGroup root\n"
            "Sandboxing Relaxed\n"
            f"ServerRoot {self.conf}\n"
            f"RequestRoot {path / 'spool'}\n"
            f"CacheDir {path / 'cache'}\n"
            f"StateDir {path / 'state'}\n"
            f"AccessLog {self.logs / 'access_log'}\n"
            f"ErrorLog {self.logs / 'error_log'}\n"
            f"PageLog {self.logs / 'page_log'}\n"
            # Not the system's /run/cups/printcap.
            f"Printcap {path / 'state' / 'printcap'}\n")
        self.error_log = self.logs / "error_log"
        self._process: subprocess.Popen | None = None
        self.start()

    @property
    def server(self) -> str:
        """What `cups.setServer` and `lpadmin -h` take."""
        return f"127.0.0.1:{self.port}"

    def queue_uri(self, name: str) -> str:
        """The URL the agent is given for a queue."""
        return f"ipp://127.0.0.1:{self.port}/printers/{name}"

    def start(self, timeout: float = 20) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        with (self.logs / "cupsd.out").open("ab") as out:
            self._process = subprocess.Popen(
                ["cupsd", "-f", "-c", str(self.conf / "cupsd.conf"),
                 "-s", str(self.conf / "cups-files.conf")],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(self._answers, timeout, f"cupsd on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"cupsd exited ({self._process.returncode}): "
                                 f"{_tail(self.logs / 'cupsd.out')} {_tail(self.error_log)}")
        done = subprocess.run(["lpstat", "-h", self.server, "-r"], capture_output=True,
                              text=True, timeout=10)
        return done.returncode == 0 and "is running" in done.stdout

    def stop(self) -> None:
        """cupsd's own orderly shutdown (SIGTERM): it writes its job cache."""
        _stop(self._process)

    def restart(self) -> None:
        """Stop and start: cupsd writes its queues (printers.conf) and job cache on the way
        down. Otherwise it writes them up to 30 s (DirtyCleanInterval) after a change, so a
        queue added just before a `kill()` is gone after it; a station's queue was set up
        long before any crash."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """cupsd dies at once (SIGKILL), as in a crash: the changes it had not yet written
        (up to 30 s of them) are lost. The filters and backend of a job it was running are in
        process groups of their own and run on without it."""
        _stop(self._process, signal.SIGKILL)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def add_queue(self, name: str, printer: CardPrinter, timeout: float = 20) -> str:
        """An IPP Everywhere queue NAME in front of the printer (accepting, enabled); the
        agent's URL for it."""
        done = subprocess.run(["lpadmin", "-h", self.server, "-p", name, "-E", "-v",
                               printer.uri, "-m", "everywhere"],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"lpadmin could not add queue {name}: "
                                 f"{(done.stderr or done.stdout).strip()}")
        # cupsd asks the printer for its attributes and writes the queue's PPD after
        # lpadmin returned (0 even when the printer cannot be asked).
        ppd = self.conf / "ppd" / f"{name}.ppd"
        try:
            wait_for(ppd.exists, timeout, f"cupsd to write the PPD of queue {name}")
        except AssertionError:
            raise AssertionError(f"queue {name} has no PPD after {timeout} s: cupsd could not "
                                 f"query {printer.uri}: {_tail(self.error_log, 600)}") from None
        return self.queue_uri(name)

    def remove_queue(self, name: str) -> None:
        subprocess.run(["lpadmin", "-h", self.server, "-x", name], capture_output=True,
                       timeout=60)

    def connection(self) -> Any:
        """A pycups connection to this cupsd, as the driver makes it.

        `cups.setServer` first, in this thread: libcups keeps the server per thread, and its
        createJob (cupsCopyDestInfo) takes a connection whose host or port differs from that
        server for a connection to the printer itself, and sends the queue's device URI
        to cupsd, which answers client-error-not-found.
        """
        import cups

        cups.setServer(self.server)
        return cups.Connection(host="127.0.0.1", port=self.port)

    def job_state(self, job_id: int) -> int:
        """The IPP job-state of a job (3 pending ... 9 completed), from CUPS's history."""
        attrs = self.connection().getJobAttributes(job_id, requested_attributes=["job-state"])
        return int(attrs["job-state"])

    def wait_job_state(self, job_id: int, states: tuple[int, ...] = (CANCELED, ABORTED,
                                                                      COMPLETED),
                       timeout: float = 30) -> int:
        """Wait until the job is in one of `states` (by default: ended); that state."""
        return int(wait_for(lambda: (s := self.job_state(job_id)) in states and s, timeout,
                            f"job {job_id} to reach a state in {states}"))

    def queue_attributes(self, name: str, *names: str) -> dict[str, Any]:
        """The queue's printer attributes as CUPS reports them."""
        return self.connection().getPrinterAttributes(name, requested_attributes=list(names))
