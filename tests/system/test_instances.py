"""Two printers on one PC: two agents side by side, as `printstation@fargo-1` and
`printstation@fargo-2` run them (systemd/printstation@.service, systemd/instances/).

Two `printstation run` processes, each from a configuration made from one of the example
instance files with this test's values (its broker vhost, a `printstation-sim` process of
its own as its printer, folders under the test's, free ports), share one pool. A batch of
pool jobs is printed, each exactly once across the two printers' ledgers, and each agent
is shown to keep to what is its own: while they print, every file either process holds
open, every Unix socket and TCP port it listens on, is read from /proc and is its own;
each answers `printstation status --config` on its own socket with its own printer, serves
its own page (which takes only its own token) and its own metrics; and after both stop,
nothing lies outside their own folders and neither left anything in its runtime folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tomllib
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap
from tests.support import (
    CLI,
    KEY_ID,
    REPO,
    control_answers,
    http_get,
    job_fingerprint,
    run,
    wait_for,
)
from tests.support.broker import Events
from tests.support.sim import SimProcess

EXAMPLES = REPO / "systemd" / "instances"
#: The keys of an example instance file this test gives values of its own: every key but
#: control_group (the test's user need not have a group `printstation`).
OWN_KEYS = {"station_id", "broker_url", "pools", "printer_url", "state_dir", "control_socket",
            "web_listen", "metrics_listen", "trusted_keys"}
JOBS = 12
#: The tests' port settings (tests/conftest.py) would override the files' under PRINTSTATION_*.
TEST_ENV = ("PRINTSTATION_WEB_LISTEN", "PRINTSTATION_METRICS_LISTEN")


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different (held open together while chosen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def toml_text(values: dict) -> str:
    """The little TOML the instance files use: strings, lists of strings, one table."""
    lines, tables = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append(f"[{key}]")
            tables += [f"{k} = {json.dumps(str(v))}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {json.dumps(value if isinstance(value, list) else str(value))}")
    return "\n".join(lines + tables) + "\n"


@dataclass
class Instance:
    """One instance: its configuration, folders, ports and process."""

    name: str
    station_id: str
    config: Path
    state: Path
    runtime: Path
    web: int
    metrics: int
    printer: SimProcess
    proc: subprocess.Popen | None = None
    open_paths: set[str] = field(default_factory=set)
    unix_listening: set[str] = field(default_factory=set)
    tcp_listening: set[int] = field(default_factory=set)

    @property
    def socket(self) -> Path:
        return self.runtime / "control.sock"

    def start(self, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k not in TEST_ENV}
        # What systemd sets for the instance; the file names the same folders, and the
        # operators' commands below run without these.
        env.update(STATE_DIRECTORY=str(self.state), RUNTIME_DIRECTORY=str(self.runtime))
        with log.open("w") as out:
            self.proc = subprocess.Popen([*CLI, "run", "--config", str(self.config)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def sample(self, root: Path) -> None:
        """Record what the process holds now: files under the test's folder, and the Unix
        sockets and TCP ports it listens on (from /proc; a file gone meanwhile is skipped)."""
        assert self.proc is not None
        unix, tcp = _listening_unix(), _listening_tcp()
        fds = Path(f"/proc/{self.proc.pid}/fd")
        for fd in fds.iterdir() if fds.exists() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in unix:
                    self.unix_listening.add(unix[inode])
                if inode in tcp:
                    self.tcp_listening.add(tcp[inode])
            elif target.startswith(str(root)) and int(fd.name) > 2:  # not its log
                self.open_paths.add(target)


def _listening_unix() -> dict[int, str]:
    """inode -> path of every listening Unix socket bound to a path."""
    found = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and int(parts[3], 16) & 0x10000:  # __SO_ACCEPTCON
            found[int(parts[6])] = parts[7]
    return found


def _listening_tcp() -> dict[int, int]:
    """inode -> port of every listening IPv4 TCP socket."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A":  # LISTEN
            found[int(parts[9])] = int(parts[1].rsplit(":", 1)[1], 16)
    return found


def _connected(log: Path) -> bool:
    """Whether the agent logged its consumer connected (its pool queue declared)."""
    return '"consumer_connected"' in log.read_text()


def _metric(text: str, name: str, label: str) -> float:
    """The sum of `name`'s samples whose labels hold `label`, in Prometheus's text format."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if not p.is_dir()}


def test_two_instances_share_a_pool_and_keep_to_their_own_files_ports_and_sockets(
        tmp_path, broker_url, submitter, sim_process, signing_key):
    root = tmp_path.resolve()
    run_id = uuid.uuid4().hex[:8]
    pool = f"office-{run_id}"
    key_file = root / "keys" / "central.pub"
    key_file.parent.mkdir()
    key_file.write_bytes(signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ports = free_ports(4)
    instances: list[Instance] = []
    for n, name in enumerate(("fargo-1", "fargo-2")):
        example = tomllib.loads((EXAMPLES / f"{name}.toml").read_text())
        assert set(example) - {"control_group"} == OWN_KEYS, "the examples gained a key"
        printer = sim_process("print_time=0.2", "render=0", f"serial={name.upper()}",
                              name=f"printer-{name}", pty=False)
        station_id = f"{name}-{run_id}"
        state = root / "var-lib-printstation" / name  # /var/lib/printstation/NAME
        runtime = root / "run-printstation" / name  # /run/printstation/NAME
        values = {**{k: v for k, v in example.items() if k != "control_group"},
                  "station_id": station_id, "broker_url": broker_url, "pools": [pool],
                  "printer_url": printer.tcp_url + "?timeout=2", "state_dir": state,
                  "control_socket": runtime / "control.sock",
                  "web_listen": f"127.0.0.1:{ports[2 * n]}",
                  "metrics_listen": f"127.0.0.1:{ports[2 * n + 1]}",
                  "trusted_keys": {KEY_ID: key_file}}
        config = root / "etc-printstation" / f"{name}.toml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(toml_text(values))
        config.chmod(0o640)
        instances.append(Instance(name, station_id, config, state, runtime, ports[2 * n],
                                  ports[2 * n + 1], printer))
    one, two = instances
    before = {p for p in root.rglob("*") if not p.is_dir()}
    try:
        for inst in instances:
            inst.start(root / f"{inst.name}.log")
        for inst in instances:
            wait_for(lambda inst=inst: control_answers(inst.socket), 30,
                     f"{inst.name} to answer on its control socket")
            wait_for(lambda inst=inst: _connected(root / f"{inst.name}.log"), 30,
                     f"{inst.name} to connect to the broker and declare the pool")

        def sample() -> None:
            for inst in instances:
                inst.sample(root)

        bodies = [sample_job(f"OFFICE-{run_id}-{i}", two_sided=False).body
                  for i in range(JOBS)]
        with EventTap(broker_url, binding="status.#") as tap:
            events = Events(tap)
            for body in bodies:
                submitter.submit_job(body, pool=pool)
            finals = events.wait_final([b["job_id"] for b in bodies], timeout=120,
                                       meanwhile=sample)
        sample()

        # Every job printed once, on one printer or the other, and where its agent says.
        assert {f["status"] for f in finals.values()} == {"printed"}, finals
        issued = {inst.name: Counter(c["fingerprint"] for c in inst.printer.ledger()
                                     if c["outcome"] == "issued") for inst in instances}
        assert sum(issued.values(), Counter()) == Counter(job_fingerprint(b) for b in bodies)
        for inst in instances:
            mine = [b for b in bodies if finals[b["job_id"]]["station_id"] == inst.station_id]
            assert mine, f"{inst.name} printed nothing: the pool was not shared"
            assert set(issued[inst.name]) == {job_fingerprint(b) for b in mine}

        for inst, other in ((one, two), (two, one)):
            # Operators reach each agent on its own socket, from its file alone.
            status = run("status", "--config", str(inst.config), timeout=30)
            assert status.returncode == 0, status.stderr
            assert f"{inst.name.upper()}: ready" in status.stdout, status.stdout
            # Its page, with its own token only; its metrics, with its own station.
            page = f"http://127.0.0.1:{inst.web}"
            token = (inst.runtime / "web-token").read_text().strip()
            other_token = (other.runtime / "web-token").read_text().strip()
            answer = http_get(page, "/api/state", {"X-Printstation-Token": token})
            assert answer.status == 200
            assert json.loads(answer.body)["station_id"] == inst.station_id
            assert http_get(page, "/api/state",
                            {"X-Printstation-Token": other_token}).status == 403
            metrics = http_get(f"http://127.0.0.1:{inst.metrics}", "/metrics").body.decode()
            assert f'station_id="{inst.station_id}"' in metrics
            assert other.station_id not in metrics
            printed = sum(issued[inst.name].values())
            assert _metric(metrics, "printstation_cards_total", 'outcome="issued"') == printed
            # What the process held: its own folders, its own socket and ports, nothing more.
            assert inst.open_paths, f"no file of {inst.name} seen open"
            for path in inst.open_paths:
                assert Path(path).is_relative_to(inst.state) or \
                    Path(path).is_relative_to(inst.runtime), (inst.name, path)
            assert inst.unix_listening == {str(inst.socket)}, inst.unix_listening
            assert inst.tcp_listening == {inst.web, inst.metrics}, inst.tcp_listening
    finally:
        codes = [inst.stop() for inst in instances]
    logs = {inst.name: (root / f"{inst.name}.log").read_text() for inst in instances}
    assert codes == [0, 0], logs

    # Afterwards: every file the agents left is in their own state folders, and each runtime
    # folder is empty (each removed its own socket and token, and only those).
    left = {p for p in root.rglob("*") if not p.is_dir()} - before
    for inst in instances:
        assert _files(inst.runtime) == set(), (inst.name, _files(inst.runtime))
        assert _files(inst.state), f"{inst.name} kept no journal"
    printers = [inst.printer.out.resolve() for inst in instances]
    outside = {p for p in left
               if not any(p.is_relative_to(d) for d in (*printers, one.state, two.state))
               and p.parent != root}  # the logs
    assert outside == set(), outside
