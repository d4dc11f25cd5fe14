"""Chip jobs through the agent's printer thread, on the in-process `sim://` printer.

Each test runs the real agent (intake, journal, printer thread, encoder) with the embedded
job source, and checks what the simulated printer's ledger says became of each blank and its
chip against the events the agent published. The chip is the simulator's (`simulator.chip`),
written by the `sim://` encoder through the same `apdu-script/1` runner as `pcsc://`
(tests/pcsc and tests/system run it through a real pcscd).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from printstation.agent.broker.embedded import EmbeddedSource
from printstation.agent.central.samples import sample_job
from printstation.agent.config import Settings
from printstation.agent.signing import Verifier
from printstation.agent.station.agent import Agent
from printstation.simulator.chip import digest_of_writes, uid_for
from printstation.simulator.printer import read_ledger
from tests.support import KEY_ID, PLUGINS, signed, wait_for


@dataclass
class ChipStation:
    agent: Agent
    cards: Path
    key: object
    events: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, body: dict) -> None:
        raw, headers = signed(self.key, body)
        EmbeddedSource(self.agent.station.intake).submit(raw, headers,
                                                         message_id=body["job_id"])

    def of(self, schema: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e["schema"] == f"printstation.{schema}/1"]

    def final(self, job_id: str, timeout: float = 20) -> dict:
        terminal = ("printed", "failed")
        return wait_for(lambda: next((e for e in self.of("status") if e["job_id"] == job_id
                                      and e["status"] in terminal), None), timeout,
                        f"{job_id} to end")

    def ledger(self) -> list[dict]:
        return read_ledger(self.cards)


@pytest.fixture
def chip_station(tmp_path: Path, signing_key) -> Iterator:
    started: list[Agent] = []

    def make(sim: str = "", encoder: str | None = "sim://", **settings) -> ChipStation:
        cards = tmp_path / "cards"
        s = Settings(station_id="chip-1", state_dir=tmp_path / "state",
                     printer_url=f"sim://?print_time=0.02&render=0&out={cards}{sim}",
                     encoder_url=encoder, web_listen="", metrics_listen="", **settings)
        agent = Agent(s, verifier=Verifier({KEY_ID: signing_key.public_key()}))
        station = ChipStation(agent, cards, signing_key)

        def sink(event: dict) -> None:
            with station.lock:
                station.events.append(event)

        agent.start(embedded_sink=sink)
        started.append(agent)
        return station

    yield make
    for agent in started:
        agent.stop()


def chip_job(job_id: str) -> tuple[dict, str]:
    """A chip job for station chip-1, and the digest its chip must end with."""
    job = sample_job(job_id, destination="station.chip-1", two_sided=False, chip=True)
    return job.body, digest_of_writes(job.chip_writes)


def test_a_chip_job_writes_its_chip_then_prints_and_reports_the_chip_uid(chip_station):
    station = chip_station()
    body, digest = chip_job("CHIP-1")
    station.submit(body)
    final = station.final("CHIP-1")
    [card] = station.ledger()
    uid = uid_for("SIM-0001", card["card_no"]).hex()
    assert (final["status"], final["card"]["chip_uid"]) == ("printed", uid)
    assert (card["outcome"], card["job_id"], card["chip_uid"], card["chip_digest"]) == \
        ("issued", "CHIP-1", uid, digest)
    [event] = station.of("card")
    assert (event["outcome"], event["chip_uid"]) == ("issued", uid)


def test_a_dead_chip_spoils_one_blank_registered_by_its_uid_and_the_next_blank_prints(
        chip_station):
    station = chip_station("&chip_faults=1:dead")
    body, digest = chip_job("CHIP-2")
    station.submit(body)
    final = station.final("CHIP-2")
    dead, good = station.ledger()
    assert (dead["outcome"], dead["reason"]) == ("spoiled", "rejected_by_host")
    assert dead["chip_digest"] == digest_of_writes([])  # nothing was written to it
    assert (good["outcome"], good["chip_digest"]) == ("issued", digest)
    assert (final["status"], final["attempt"], final["card"]["chip_uid"]) == \
        ("printed", 2, good["chip_uid"])
    spoiled = [e for e in station.of("card") if e["outcome"] == "spoiled"]
    assert [(e["reason"], e["chip_uid"]) for e in spoiled] == \
        [("encode_failed", dead["chip_uid"])]
    month = spoiled[0]["at"][:7]
    register = station.agent.journal.cards.register(month)
    assert [(r["reason"], r["chip_uid"], r["job_id"]) for r in register] == \
        [("encode_failed", dead["chip_uid"], "CHIP-2")]
    used = station.agent.journal.cards.counted_stock()
    assert used["ribbon"].remaining == 999  # the rejected card used no ribbon


def test_chips_that_keep_failing_end_the_job_after_its_attempts(chip_station):
    station = chip_station("&chip_fault=wrong", max_attempts=2)
    body, _ = chip_job("CHIP-3")
    station.submit(body)
    final = station.final("CHIP-3")
    assert (final["status"], final["reason"]["code"]) == ("failed", "encode_failed")
    assert "2 blanks spoiled" in final["reason"]["detail"]
    assert [c["outcome"] for c in station.ledger()] == ["spoiled", "spoiled"]


def test_a_card_without_a_chip_is_spoiled_with_no_uid(chip_station):
    station = chip_station("&chip_faults=1:absent")
    body, _ = chip_job("CHIP-4")
    station.submit(body)
    assert station.final("CHIP-4")["status"] == "printed"
    spoiled = [e for e in station.of("card") if e["outcome"] == "spoiled"]
    assert [(e["reason"], e.get("chip_uid")) for e in spoiled] == [("encode_failed", None)]


def test_a_station_without_an_encoder_fails_a_chip_job_using_no_blank(chip_station):
    station = chip_station(encoder=None)
    body, _ = chip_job("CHIP-5")
    station.submit(body)
    final = station.final("CHIP-5")
    assert (final["status"], final["reason"]["code"]) == ("failed", "no_encoder")
    assert "no chip encoder" in final["reason"]["detail"]
    assert station.ledger() == [] and station.agent.journal.cards.drawn() == 0


def test_an_encoder_without_the_jobs_profile_fails_it_naming_what_it_has(chip_station,
                                                                         monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    station = chip_station(encoder="testchip://desk")
    body, _ = chip_job("CHIP-6")
    station.submit(body)
    final = station.final("CHIP-6")
    assert (final["status"], final["reason"]["code"]) == ("failed", "no_encoder")
    assert "test-blob/1" in final["reason"]["detail"]
    assert station.ledger() == []


def test_a_lost_reader_holds_the_card_without_spoiling_blanks_until_it_is_back(
        chip_station, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import printstation_testencoder as plugin

    plugin.BROKEN.add("desk-lost")
    station = chip_station(encoder="testchip://desk-lost")
    body = sample_job("CHIP-7", destination="station.chip-1", two_sided=False).body
    body["chip"] = {"profile": "test-blob/1", "data": base64.b64encode(b"blob").decode()}
    try:
        station.submit(body)
        wait_for(lambda: "encoder_fault" in station.agent.printer.snapshot.status.faults, 10,
                 "the encoder fault to show")
        state = station.agent.station.state()
        assert state.blocked_reason.startswith("Chip reader not answering")
        assert station.ledger() == []  # no blank drawn while the reader is gone
        plugin.BROKEN.discard("desk-lost")
        station.agent.printer.retry_refused()  # an operator's resume does this
        final = station.final("CHIP-7")
    finally:
        plugin.BROKEN.discard("desk-lost")
    assert final["status"] == "printed" and final["card"]["chip_uid"].startswith("04")
    assert plugin.WRITTEN["desk-lost"][final["card"]["chip_uid"].upper()] == b"blob"
    said = [e["status"] for e in station.of("status") if e["job_id"] == "CHIP-7"]
    assert said == ["accepted", "printing", "printed"]  # its one try announced once


def blob_job(job_id: str) -> dict:
    body = sample_job(job_id, destination="station.chip-1", two_sided=False).body
    body["chip"] = {"profile": "test-blob/1", "data": base64.b64encode(b"blob").decode()}
    return body


def test_an_encoder_failing_with_a_card_parked_spoils_that_blank_and_no_other_until_someone_acts(
        chip_station, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import printstation_testencoder as plugin

    plugin.FAILING.add("desk-gone")
    station = chip_station(encoder="testchip://desk-gone")
    try:
        station.submit(blob_job("CHIP-9"))
        wait_for(lambda: "encoder_fault" in station.agent.printer.snapshot.status.faults, 10,
                 "the encoder fault to show")
        [card] = station.ledger()
        assert (card["outcome"], card["reason"]) == ("spoiled", "rejected_by_host")
        # Published once on disk, by the publisher's thread: it may follow the fault.
        [event] = wait_for(lambda: station.of("card"), 10, "the spoiled blank's card event")
        assert (event["outcome"], event["reason"]) == ("spoiled", "encoder_fault")
        # Held with no time limit: only an operator's action (or the printer's state
        # changing) lets another blank be drawn for a chip.
        assert station.agent.printer.refusals.refusal.retry_at == float("inf")
        plugin.FAILING.discard("desk-gone")
        station.agent.printer.retry_refused()
        final = station.final("CHIP-9")
    finally:
        plugin.FAILING.discard("desk-gone")
    assert (final["status"], final["attempt"]) == ("printed", 2)


def test_a_careless_encoders_answer_spoils_the_card_and_reaches_no_event_as_it_came(
        chip_station, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import printstation_testencoder as plugin

    plugin.ODD.add("desk-odd")
    station = chip_station(encoder="testchip://desk-odd", max_attempts=1)
    try:
        station.submit(blob_job("CHIP-10"))
        final = station.final("CHIP-10")
    finally:
        plugin.ODD.discard("desk-odd")
    assert (final["status"], final["reason"]["code"]) == ("failed", "encode_failed")
    assert "raw" not in final["reason"]["detail"]
    [event] = station.of("card")
    assert (event["reason"], event["chip_uid"]) == ("encode_failed", None)
    assert station.agent.printer.alive()


def test_a_prepare_that_returns_nothing_leaves_the_chip_section_as_it_was(tmp_path):
    """A plug-in's `prepare` that forgets its return must not make a chip card a plain one."""
    from printstation.agent.station.journal import Journal
    from printstation.agent.station.printing.cards import CardPreparer
    from printstation.drivers.encoder import ChipSection, Encoder, EncodeResult, ParkedCard
    from printstation.simulator.driver import SimDriver

    class Forgetful(Encoder):
        name = "forgetful"
        profiles = ("apdu-script/1",)

        @classmethod
        def from_url(cls, url: str) -> Forgetful:
            return cls()

        def prepare(self, chip: ChipSection) -> ChipSection:
            return None  # type: ignore[return-value]

        def encode(self, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
            return EncodeResult(uid="04")

    journal = Journal(tmp_path / "state", "chip-1")
    body, _ = chip_job("CHIP-11")
    raw = json.dumps(body).encode()
    from printstation.agent.contract import Job

    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
    driver = SimDriver.from_url("sim://?render=0", state_dir=tmp_path)
    card = CardPreparer(journal, driver, Forgetful()).build(journal.jobs.get("CHIP-11"))
    journal.close()
    assert card.chip is not None and card.chip.profile == "apdu-script/1"


def test_chip_data_is_erased_with_the_job_and_never_logged(chip_station, capsys, caplog):
    station = chip_station()
    body, _ = chip_job("CHIP-8")
    script = base64.b64decode(body["chip"]["data"])
    station.submit(body)
    station.final("CHIP-8")
    station.agent.stop()
    # Some written bytes of the photo (random, so found nowhere else), as hex and raw.
    photo = next(c["apdu"] for c in json.loads(script)["commands"] if len(c["apdu"]) > 200)
    data_hex = photo[10:70]
    out = capsys.readouterr()
    logged = out.out + out.err + caplog.text + json.dumps(station.events)
    assert data_hex not in logged.upper()
    assert "NIK=" not in logged and body["chip"]["data"][:40] not in logged
    state = station.agent.settings.state_dir
    journal = b"".join(f.read_bytes() for f in state.iterdir() if f.is_file())
    assert bytes.fromhex(data_hex) not in journal and script[:200] not in journal
    assert body["chip"]["data"][:40].encode() not in journal
