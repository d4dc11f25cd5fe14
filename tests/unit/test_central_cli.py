"""The central tools' and the command's own checks, without a broker: `submit` refuses
files that are not valid jobs before connecting, a closed pipe ends a command quietly,
`watch` and `fleet` print what a person can read (the broker tier runs the real errors)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess

from rich.console import Console

from printstation.agent.central.cli import format_event
from printstation.agent.central.fleet import Fleet, table
from printstation.agent.central.samples import sample_job
from tests.support import CLI, run


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


def _no_traceback(out: subprocess.CompletedProcess) -> list[str]:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr.splitlines()


def test_submit_names_each_bad_file_and_publishes_nothing(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(sample_job("GOOD-1").body))
    not_json = tmp_path / "not-json.json"
    not_json.write_text('{"job_id": "X-1",\n  "card_stock": "ektp"\n  "sides": {}}')
    invalid = tmp_path / "invalid.json"
    body = sample_job("BAD-1").body
    del body["created_at"]
    body["card_stock"] = "Not A Stock!"
    invalid.write_text(json.dumps(body))
    missing = tmp_path / "missing.json"
    out = run("submit", str(good), str(not_json), str(invalid), str(missing), "--station",
              "s1", "--broker-url", _closed_port_url())
    assert _no_traceback(out) == [
        f"printstation: {not_json}: not valid JSON: Expecting ',' delimiter at line 3 "
        "column 3",
        f"printstation: {invalid}: not a valid job: created_at: Field required; card_stock: "
        "String should match pattern '^[a-z0-9_\\-]{1,64}$' (--no-check sends it anyway)",
        f"printstation: {missing}: No such file or directory",
        "printstation: nothing published (3 of 4 files refused)",
    ]
    assert out.stdout == ""


def test_submit_no_check_publishes_without_the_contract(tmp_path):
    """With --no-check the invalid job goes on to the broker (here a closed port)."""
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"job_id": "BAD-2", "sides": "no"}))
    lines = _no_traceback(run("submit", str(invalid), "--no-check", "--station", "s1",
                              "--broker-url", _closed_port_url()))
    assert len(lines) == 1 and "(connection refused)" in lines[0], lines


def test_a_closed_pipe_ends_a_command_quietly():
    """`printstation probe URL | head -1` when head left first: exit 141, nothing on stderr."""
    assert run("probe", "sim://?render=0").stdout.strip()
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([*CLI, "probe", "sim://?render=0"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (141, "")


def _telemetry(station: str, **fields) -> dict:
    return {"schema": "printstation.telemetry/1", "at": "2026-05-01T10:00:00+07:00",
            "station_id": station, "seq": 7, "state": "offline",
            "printer": {"faults": []}, "counters": {"printed_today": 0}, "alerts": [],
            "consumables": [
                {"kind": "ribbon", "remaining": None, "capacity": None},
                {"kind": "film", "remaining": 40, "capacity": None},
                {"kind": "cards", "remaining": 12, "capacity": 500}],
            "cards_left": None, "first_to_run_out": None, "runs_out_at": None,
            "queued_jobs": None, **fields}


def test_watch_says_unknown_and_never_none():
    events = [
        _telemetry("bo-1"),
        _telemetry("bo-1", consumables=[], state="ready", cards_left=5,
                   first_to_run_out="cards", queued_jobs=3),
        {"schema": "printstation.status/1", "station_id": "bo-1", "seq": 8, "job_id": "J-1",
         "status": "failed", "reason": {"code": "printer_fault", "detail": None}, "card": None},
        {"schema": "printstation.card/1", "station_id": "bo-1", "seq": 9, "card_no": 3,
         "outcome": "issued", "job_id": "J-2", "reason": None},
    ]
    lines = [format_event(e) for e in events]
    assert all("None" not in line for line in lines), lines
    assert "ribbon unknown, film 40, cards 12/500" in lines[0]
    assert ("consumables unknown; 5 cards left (cards first; not enough printing yet to "
            "forecast when); queued 3") in lines[1]
    assert lines[2].endswith("J-1 failed (printer_fault)")
    assert lines[3].endswith("card 3 issued job=J-2")


def test_the_fleet_table_fits_80_columns_with_long_station_ids():
    fleet = Fleet()
    for i, station in enumerate(["bogor-kota-01", "jakarta-selatan-kebayoran-baru-01", "b3"]):
        fleet.ingest(_telemetry(station, state="blocked" if i == 1 else "ready",
                                blocked_reason="printer fault: cover_open - close the "
                                               "printer's cover; the queued jobs print once "
                                               "it is closed" if i == 1 else None,
                                cards_left=10 * (i + 1), first_to_run_out="ribbon",
                                runs_out_at="2026-05-03T14:22:00+07:00", queued_jobs=1234),
                     now=0.0)
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(table(fleet.rows(now=1.0), "3 stations, first to run out first"))
    text = console.export_text()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert "3 May 14:22" in text and "jakarta-selatan-kebayoran-baru-01: printer fault" in text
    assert "None" not in text


def test_submit_reads_job_files_as_the_station_checks_them(tmp_path):
    """The check is the contract's own model: a sample job passes, with its destination set
    as `submit` sets it."""
    from printstation.agent.central.cli import read_job

    path = tmp_path / "ok.json"
    path.write_text(json.dumps(sample_job("OK-1").body))
    job_id, body = read_job(path, station="s1", pool=None)
    assert job_id == "OK-1" and body == path.read_bytes()


def test_a_broker_url_pika_cannot_read_is_named_masked_in_one_line():
    for url, problem in (("amqp://tech:s3cret@127.0.0.1:99999/%2F", "Port out of range 0-65535"),
                         ("amqp://tech:s3cret@[::1/%2F", "Invalid IPv6 URL")):
        done = run("watch", "--broker-url", url, timeout=30)
        masked = url.replace("s3cret", "***")
        assert (done.returncode, done.stdout, done.stderr) == (
            2, "", f"printstation: broker URL {masked}: {problem}\n")
