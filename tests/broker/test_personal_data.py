"""No personal data in logs, events or readable files; a job's images gone once terminal."""

from __future__ import annotations

import base64
import json
import stat
import sys

from printstation.agent.central.samples import sample_job
from printstation.agent.surfaces import logs
from tests.support import wait_for


def _needles(body: dict, personal: tuple[str, ...]) -> list[bytes]:
    """What would betray a job's content: its fake name and number, pieces of its images."""
    needles = [p.encode() for p in personal]
    for side in body["sides"].values():
        for key in ("image", "black"):
            if key in side:
                b64 = side[key]
                needles.append(b64[200:260].encode())  # a piece of the base64
                needles.append(base64.b64decode(b64)[100:140])  # and of the raw image
    return needles


def test_no_personal_data_in_logs_events_or_state_files(tmp_path, make_station, submitter,
                                                         events, station_id, capsys):
    log_file = tmp_path / "agent.log"
    stream = log_file.open("w")
    logs_to = sys.stderr
    sys.stderr = stream
    logs.configure("debug")
    try:
        station = make_station(station_id, sim="print_time=0.05&render=0&jam_at=2&clear_after=0.5")
        jobs = [sample_job(f"PII-{station_id}-{i}", two_sided=i == 0) for i in range(3)]
        bad = sample_job(f"PII-{station_id}-bad", two_sided=False)
        for job in jobs:
            submitter.submit_job(job.body, station=station_id)
        broken = dict(bad.body, card_stock="BAD STOCK")  # invalid: rejected with a reason
        submitter.submit_job(broken, station=station_id)
        finals = events.wait_final([j.body["job_id"] for j in [*jobs, bad]])
        assert finals[bad.body["job_id"]]["status"] == "rejected"
        wait_for(station.agent.printer.idle.is_set, what="the printer to be idle")
        needles = [n for j in [*jobs, bad] for n in _needles(j.body, j.personal)]

        def clean() -> bool:
            for path in station.agent.settings.state_dir.iterdir():
                if path.is_file() and any(n in path.read_bytes() for n in needles):
                    return False
            return True

        wait_for(clean, 20, "the journal to hold no job content")
        for path in station.agent.settings.state_dir.iterdir():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0 or path.name == "control.sock", (path, oct(mode))
        station.agent.stop()  # before the log file closes under its threads
    finally:
        sys.stderr = logs_to
        logs.configure("warning")
        stream.flush()  # left open: a logger bound to it elsewhere must never hit a closed file
    log_bytes = log_file.read_bytes()
    event_bytes = json.dumps(events.all).encode()
    assert log_bytes.count(b"\n") > 10  # the agent did log
    for needle in needles:
        assert needle not in log_bytes
        assert needle not in event_bytes


def test_a_printed_jobs_images_are_erased_while_the_station_is_paused(make_station, submitter,
                                                                      events, station_id):
    """A card's images are erased while the next card prints, or before the printer waits:
    a pause right after a card must not keep the citizen's images in the journal."""
    station = make_station(station_id, sim="print_time=0.2&render=0")
    jobs = [sample_job(f"ERASE-{station_id}-{i}").body for i in range(2)]
    for body in jobs:
        submitter.submit_job(body, station=station_id)
    events.wait_status([jobs[0]["job_id"]], {"printed"})
    station.agent.station.pause("test", "hold the station after a card")
    journal = station.agent.journal

    def printed_and_erased() -> bool:
        rows = [journal.jobs.get(b["job_id"]) for b in jobs]
        if any(r is None or r.state == "printing" for r in rows):
            return False  # the card in the printer finishes first
        printed = [r for r in rows if r.state == "printed"]
        return bool(printed) and all(r.body is None for r in printed)

    wait_for(printed_and_erased, 5, "the printed jobs' images to be erased while paused")
    assert station.agent.station.paused()
