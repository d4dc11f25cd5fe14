"""Chip jobs in a pool: a station that cannot encode them leaves them to one that can.

A pool delivery cannot be looked at without taking it, so a station without an encoder (or
without the job's profile) that takes a chip job hands it back to the central system
(contract 7.1, never begun, no blank used), and the central system sends it to the pool again,
where a station with an encoder prints it. The chip is written by the in-process `sim://`
encoder here; tests/pcsc/test_chip_end_to_end.py writes it through a real pcscd.
"""

from __future__ import annotations

import uuid

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap
from printstation.simulator.chip import digest_of_writes
from tests.support.broker import Events


def test_a_station_without_an_encoder_leaves_pool_chip_jobs_to_one_with_an_encoder(
        make_station, submitter, broker_url, central_relay):
    pool = f"chip-{uuid.uuid4().hex[:8]}"
    plain = make_station(f"pa-{pool}", pools=[pool])  # no encoder_url
    jobs = [sample_job(f"CHIP-{pool}-{i}", two_sided=False, chip=True) for i in range(3)]
    job_ids = [j.body["job_id"] for j in jobs]
    with EventTap(broker_url, binding="#") as tap:
        events = Events(tap)
        for job in jobs:
            submitter.submit_job(job.body, pool=pool)
        # Only the station without an encoder is there: it takes each job and hands it back.
        released = events.wait_status(job_ids, {"released"}, timeout=30)
        assert {e["reason"]["code"] for e in released.values()} == {"handed_back"}
        assert {e["station_id"] for e in released.values()} == {f"pa-{pool}"}
        chip = make_station(f"pb-{pool}", pools=[pool], encoder_url="sim://")
        finals = events.wait_final(job_ids, timeout=60, meanwhile=central_relay.relay)
    assert {(f["status"], f["station_id"]) for f in finals.values()} == \
        {("printed", f"pb-{pool}")}
    assert plain.ledger() == [] and plain.agent.journal.cards.drawn() == 0
    by_job = {line["job_id"]: line for line in chip.ledger()}
    for job in jobs:
        card = by_job[job.body["job_id"]]
        assert card["chip_digest"] == digest_of_writes(job.chip_writes)
        assert finals[job.body["job_id"]]["card"]["chip_uid"] == card["chip_uid"]
    assert sorted(chip.issued()) == sorted(job_ids)  # each once
