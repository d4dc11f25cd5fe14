"""A needs_check job described so that an operator can decide it: what the journal keeps of
it, the sentences built from the printer's counter, and the picture of the card's front."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest
from PIL import Image

from printstation.agent.central.samples import sample_job
from printstation.agent.contract import Job
from printstation.agent.station.journal import Journal, schema
from printstation.agent.station.needscheck import (
    counter_words,
    describe,
    printer_report,
    report_words,
)
from printstation.agent.station.recovery import settle_printing
from printstation.agent.surfaces.thumbnail import front_thumbnail
from printstation.drivers.base import FaultCode, PrinterStatus


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state", "s1")
    yield j
    j.close()


def _take(journal: Journal, job_id: str, reference: str = "PERMOHONAN-000001") -> bytes:
    body = sample_job(job_id, two_sided=False, destination="station.s1",
                      reference=reference).body
    raw = json.dumps(body).encode()
    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
    return raw


def test_the_counter_says_where_to_look():
    assert "went from 41 to 42" in counter_words(41, 42)
    assert "last one out, on top of the output hopper" in counter_words(41, 42)
    many = counter_words(41, 45)
    assert "counted 4 cards since" in many and "under the 3 printed after it" in many
    assert "no blank seems to have left the feeder" in counter_words(41, 41)
    # Another printer (or a reset counter) must not read as "no blank left the feeder".
    back = counter_words(41, 3)
    assert "reads 3, lower than the 41" in back and "no blank" not in back
    assert "cannot be read now (it was 41" in counter_words(41, None)
    assert "gave no card counter" in counter_words(None, 42)


def test_what_the_printer_said_is_kept_with_the_job_and_read_in_words(journal):
    _take(journal, "J-1")
    assert journal.progress.start_printing("J-1", 41) == 1
    journal.progress.mark_needs_check("J-1", "the link broke",
                                      printer_report("link_broke", detail="no reply within 2 s"))
    [row] = journal.jobs.needing_check()
    assert row["counter_before"] == 41 and row["reference"] == "PERMOHONAN-000001"
    check = describe(row, PrinterStatus(state="ready", card_counter=43))
    assert check["printer_said"] == ("the link to the printer broke while the card was inside "
                                     "(no reply within 2 s)")
    assert (check["counter_before"], check["counter_now"], check["drawn_since"]) == (41, 43, 2)
    assert "operator page shows" in check["advice"]
    assert "with this photo and name" in check["advice_here"]
    offline = describe(row, PrinterStatus(state="offline", card_counter=None))
    assert offline["counter_now"] is None and "not answering" in offline["advice"]


def test_a_card_left_in_the_printer_by_a_stop_says_what_the_printer_said_at_the_restart(journal):
    _take(journal, "J-1")
    journal.progress.start_printing("J-1", 41)
    settle_printing(journal, PrinterStatus(state="fault", faults=(FaultCode.COVER_OPEN,),
                                           card_counter=42))
    [row] = journal.jobs.needing_check()
    said = describe(row, PrinterStatus(state="ready", card_counter=42))["printer_said"]
    assert said == ("the agent stopped while the card was inside; at the restart the printer "
                    "was in fault, cover open, its card counter at 42")
    assert report_words(None, "an older journal's detail") == "an older journal's detail"


def test_a_schema_3_journal_gains_the_check_report_column(tmp_path):
    journal = Journal(tmp_path / "state", "s1")
    path = journal.store.path
    journal.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE jobs DROP COLUMN check_report")
    db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    db.commit()
    db.close()
    again = Journal(tmp_path / "state", "s1")
    columns = {r[1] for r in again.store.db.execute("PRAGMA table_info(jobs)")}
    assert "check_report" in columns
    assert again.store.get_meta("schema_version") == str(schema.SCHEMA_VERSION) == "6"
    again.close()


def test_the_thumbnail_is_the_cards_front_with_its_black_panel(journal):
    raw = _take(journal, "J-1")
    picture = Image.open(io.BytesIO(front_thumbnail(raw)))
    assert picture.format == "PNG" and picture.width == 480
    assert abs(picture.width / picture.height - 1012 / 638) < 0.01
    # The resin-black text (the NIK line) is drawn in: dark pixels where the mask has ink.
    dark = sum(1 for px in picture.convert("L").crop((15, 50, 240, 70)).tobytes() if px < 60)
    assert dark > 50
    with pytest.raises(ValueError, match="cannot be read"):
        front_thumbnail(b"{}")


def test_a_card_resolved_printed_after_its_chip_was_written_is_reported_with_its_chip(journal):
    """The UID is journaled with the job once the chip is written: a card the agent lost
    track of after that (a kill, a link broken mid-print) is resolved with its chip."""
    _take(journal, "J-1")
    journal.progress.start_printing("J-1", 41)
    journal.progress.chip_encoded("J-1", "04a1b2c3d4e5f6")
    journal.progress.mark_needs_check("J-1", "the agent stopped")
    journal.progress.resolve("J-1", printed=True, who="ops", why="it is in the hopper")
    events = [json.loads(body) for _, _, body in journal.outbox.unpublished()]
    printed = [e for e in events if e.get("status") == "printed"]
    card = [e for e in events if e.get("outcome") == "issued"]
    assert printed[0]["card"]["chip_uid"] == card[0]["chip_uid"] == "04a1b2c3d4e5f6"
