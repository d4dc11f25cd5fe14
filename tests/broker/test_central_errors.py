"""The central tools and the station commands as people run them, when something is wrong:
a closed port, an unknown host, a wrong password, a missing vhost, a station without a
queue, a reader that went away. Each is one clear line on stderr and exit 2 (or a quiet
141 for a closed pipe), never a traceback; against the real broker."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pika
import pytest

from printstation.agent.broker.topology import declare_shared
from printstation.agent.central.samples import sample_job
from printstation.agent.config import Settings
from tests.support import CLI, run, wait_for
from tests.support.broker import BROKER_HOST, BROKER_PORT, rabbitmqctl


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(out: subprocess.CompletedProcess) -> str:
    """The command failed as it should: exit 2, no traceback, one line on stderr."""
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [x for x in out.stderr.splitlines()
             if x and not x.startswith(("watching ", "listening "))]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("printstation: ")
    return lines[0]


@pytest.fixture(scope="module")
def job_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("jobs") / "job.json"
    path.write_text(json.dumps(sample_job(f"ERR-{uuid.uuid4().hex[:8]}").body))
    return path


def _command(name: str, url: str, job: Path, station: str) -> list[str]:
    return {
        "submit": ["submit", str(job), "--station", station, "--broker-url", url],
        "control": ["control", station, "pause", "--broker-url", url],
        "watch": ["watch", "--timeout", "0.5", "--broker-url", url],
        "fleet": ["fleet", "--duration", "0.5", "--broker-url", url],
    }[name]


BAD_BROKERS = {
    # kind: (URL builder from the test vhost, what the one line must say)
    "closed port": (lambda vhost: f"amqp://guest:guest@127.0.0.1:{_closed_port()}/"
                                  f"{quote(vhost, safe='')}",
                    r"nothing accepts connections at 127\.0\.0\.1:\d+ \(connection refused\)"),
    "unknown host": (lambda vhost: f"amqp://guest:guest@no-such-host.invalid:5672/"
                                   f"{quote(vhost, safe='')}",
                     r"cannot resolve the host 'no-such-host\.invalid'"),
    "wrong password": (lambda vhost: f"amqp://guest:not-the-password@{BROKER_HOST}:"
                                     f"{BROKER_PORT}/{quote(vhost, safe='')}",
                       r"refused the login as user 'guest' \(wrong password or no such "
                       r"user\): ACCESS_REFUSED"),
    "missing vhost": (lambda vhost: f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/"
                                    f"no-such-vhost-{uuid.uuid4().hex[:6]}",
                      r"refused access to vhost 'no-such-vhost-\w+' as user 'guest' \(no "
                      r"such vhost, or no permission there\): NOT_ALLOWED"),
}


@pytest.mark.parametrize("kind", list(BAD_BROKERS))
@pytest.mark.parametrize("command", ["submit", "control", "watch", "fleet"])
def test_a_broker_that_cannot_be_used_is_one_line(command, kind, vhost, job_file, station_id):
    url, said = BAD_BROKERS[kind]
    line = _one_line(run(*_command(command, url(vhost), job_file, station_id), timeout=60))
    assert re.search(said, line), line
    assert "not-the-password" not in line


def test_a_station_without_a_queue_yet_is_named_with_how_its_queue_is_made(
        broker_url, vhost, job_file, station_id):
    """The exchanges exist, the station's queue does not: the broker returns the message
    unroutable. Only the station's agent declares its queue (`declare-shared` declares
    what stations share, not theirs)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    declare_shared(conn, Settings(station_id=station_id))
    conn.close()
    line = _one_line(run("submit", str(job_file), "--station", station_id,
                         "--broker-url", broker_url))
    assert f"{job_file}: not published: nothing takes 'station.{station_id}' on " \
           f"'printstation.jobs' in vhost '{vhost}' (returned unroutable): station " \
           f"'{station_id}' has no queue yet" in line
    assert "start `printstation run` there once" in line
    line = _one_line(run("control", station_id, "pause", "--broker-url", broker_url))
    assert f"pause not sent: nothing takes 'station.{station_id}' on 'printstation.control'" \
           in line and f"station '{station_id}' has no control queue yet" in line
    line = _one_line(run("submit", str(job_file), "--pool", f"pool-{station_id}",
                         "--broker-url", broker_url))
    assert f"pool 'pool-{station_id}' has no queue yet" in line


@pytest.fixture
def bare_vhost() -> Iterator[str]:
    """A vhost where nothing was declared yet."""
    name = f"printstation-bare-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def test_a_vhost_without_the_shared_exchanges_says_who_declares_them(bare_vhost, job_file):
    url = f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{quote(bare_vhost, safe='')}"
    line = _one_line(run("submit", str(job_file), "--station", "s1", "--broker-url", url))
    assert f"no exchange 'printstation.jobs' in vhost '{bare_vhost}'" in line
    assert "`printstation declare-shared`" in line


def test_a_closed_pipe_ends_status_and_jobs_quietly(make_station, station_id, submitter,
                                                     events):
    """`printstation status | head -1`: the reader left; no BrokenPipeError, exit 141."""
    station = make_station(station_id)
    job_id = submitter.submit_job(sample_job(f"PIPE-{station_id}").body, station=station_id)
    events.wait_final([job_id])
    where = ["--station-id", station_id, "--state-dir", str(station.agent.settings.state_dir)]
    for command in ("status", "jobs"):
        assert run(command, *where).stdout.strip()  # it has something to write
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the first line
        try:
            proc = subprocess.run([*CLI, command, *where], stdout=write,
                                  stderr=subprocess.PIPE, text=True, timeout=60)
        finally:
            os.close(write)
        assert proc.returncode == 141, proc.stderr
        assert proc.stderr == ""


def test_fleet_fits_80_columns_with_several_stations(make_station, broker_url, tmp_path):
    tag = uuid.uuid4().hex[:6]
    fleet = subprocess.Popen([*CLI, "fleet", "--broker-url", broker_url, "--stations",
                              f"w{tag}-*", "--duration", "8"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "COLUMNS": "80"})
    assert fleet.stderr is not None
    assert "listening" in fleet.stderr.readline()
    names = [f"w{tag}-bogor-kota-01", f"w{tag}-jakarta-selatan-kebayoran-01", f"w{tag}-bo3"]
    sims = ["print_time=0.05&render=0", "print_time=0.05&render=0&ribbon=40",
            "print_time=0.05&render=0&cards=30&faults=cover_open"]
    stations = [make_station(name, sim=sim, state_dir=tmp_path / f"s{i}")  # short socket path
                for i, (name, sim) in enumerate(zip(names, sims, strict=True))]
    wait_for(lambda: stations[2].agent.station.state().blocked_reason, 20,
             "the station with its cover open to be blocked")
    for station in stations:
        station.agent.telemetry.now()
    out, err = fleet.communicate(timeout=60)
    assert fleet.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("3 stations")
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    table = "\n".join(lines)
    for header in ("station", "state", "left", "first", "runs out", "ribbon", "film",
                   "blanks", "queue", "alerts"):
        assert header in lines[1], lines[1]
    assert f"w{tag}-bo3: " in table and "cover" in table  # what blocks it, under the table


def _summary_numbers(text: str) -> dict[str, int]:
    cards = re.search(r"cards from the printer: (\d+) \(([^)]*)\)", text)
    ledger = dict((k, int(v)) for v, k in
                  (x.split(" ")[::-1] for x in cards.group(2).split(", ")))  # type: ignore
    blanks = re.search(r"blanks\s+loaded (\d+), issued (\d+), spoiled (\d+), test (\d+),\s+"
                       r"removed \d+,\s+in\s+the\s+feeder\s+(\d+)", text)
    assert cards and blanks, text
    loaded, issued, spoiled, test, feeder = map(int, blanks.groups())
    return {"cards": int(cards.group(1)), "ledger_issued": ledger.get("printed", 0),
            "ledger_spoiled": ledger.get("spoiled", 0), "loaded": loaded, "issued": issued,
            "spoiled": spoiled, "test": test, "feeder": feeder}


def test_the_demo_through_the_broker_agrees_with_itself(tmp_path, broker_url):
    """Its summary's blanks are the agent's count at the end, which the printer's own
    ledger matches: not the last telemetry heard, which may predate the last cards."""
    out = run("demo", "--count", "4", "--print-time", "0.02", "--jam-at", "2",
              "--broker", broker_url, "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    n = _summary_numbers(out.stdout)
    assert n["ledger_issued"] == n["issued"] == 4, out.stdout
    assert n["ledger_spoiled"] == n["spoiled"] == 1, out.stdout  # the jammed blank
    assert n["cards"] == n["issued"] + n["spoiled"]
    assert n["feeder"] == n["loaded"] - n["issued"] - n["spoiled"] - n["test"]
    assert "all cards printed" in out.stdout

