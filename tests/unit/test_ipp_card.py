"""The simulated card printer's print command (simulator/ipp_card.py) on its own, without
ippeveprinter: what it tells ippeveprinter on stderr, byte for byte, what it renders and
records, and how the tests' behaviours steer it. The ipp tier runs it under ippeveprinter.
"""

from __future__ import annotations

import json
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from printstation.simulator.ipp_card import (
    BadBehaviour,
    check_behaviour,
    main,
    print_document,
    read_ledger,
    write_behaviour,
)

ENV = {"IPP_JOB_NAME": "JOB-7", "IPP_JOB_ID": "3"}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "card.png"
    Image.new("RGB", (1016, 648), (20, 40, 160)).save(path)
    return path


def test_a_card_is_rendered_and_recorded(out: Path, picture: Path) -> None:
    assert main(["--output", str(out), str(picture)]) == 0   # as ippeveprinter runs it
    [card] = read_ledger(out)
    assert {k: card[k] for k in ("card_no", "job_name", "ipp_job_id", "pages", "png",
                                 "outcome", "reason")} == {
        "card_no": 1, "job_name": None, "ipp_job_id": None, "pages": 1,
        "png": ["card-000001-p1.png"], "outcome": "issued", "reason": None}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("card-000001-p1.png", "ledger.jsonl", "state.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    with Image.open(out / "card-000001-p1.png") as page:
        assert page.size == (1016, 648)
        assert page.getpixel((500, 300)) == (20, 40, 160)


def test_the_job_name_and_id_come_from_ippeveprinter(out: Path, picture: Path) -> None:
    assert print_document(picture, out, ENV) == 0
    [card] = read_ledger(out)
    assert (card["job_name"], card["ipp_job_id"]) == ("JOB-7", 3)


def test_the_command_runs_as_a_module(out: Path, picture: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "printstation.simulator.ipp_card", "--output",
                           str(out), str(picture)], capture_output=True, text=True,
                          env={"IPP_JOB_NAME": "JOB-9", "PATH": "/usr/bin:/bin"}, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert [c["job_name"] for c in read_ledger(out)] == ["JOB-9"]


def test_it_tells_ippeveprinter_the_reasons_and_markers(
        out: Path, picture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_behaviour(out, next_job={
        "clear": ["cover-open"], "reasons": ["media-jam", "marker-supply-low"],
        "markers": {"names": ["Ribbon YMCKO", "Film"], "levels": [80, -2],
                    "types": ["ink-ribbon", "transfer-unit"], "colors": ["#00FFFF", "none"]}})
    assert print_document(picture, out, ENV) == 0
    assert capsys.readouterr().err == (
        "STATE: -cover-open\n"
        "STATE: +media-jam,marker-supply-low\n"
        'ATTR: marker-names="Ribbon YMCKO",Film marker-levels=80,-2 '
        "marker-types=ink-ribbon,transfer-unit marker-colors=#00FFFF,none\n")
    # Consumed: the next job says nothing.
    assert print_document(picture, out, ENV) == 0
    assert capsys.readouterr().err == ""


def test_clear_all_resets_every_reason(out: Path, picture: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    write_behaviour(out, next_job={"clear": "all"})
    assert print_document(picture, out, ENV) == 0
    assert capsys.readouterr().err == "STATE: none\n"


def test_failures_in_order_and_the_counter(out: Path, picture: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write_behaviour(out, next_job={"fail": True})
    write_behaviour(out, next_job={"fail": "media-jam", "drawn": True})
    write_behaviour(out, next_job={"reasons": ["cover-open"], "fail": True, "drawn": True})
    assert print_document(picture, out, ENV) == 1      # nothing drawn: nothing recorded
    assert read_ledger(out) == []
    assert print_document(picture, out, ENV) == 1
    assert print_document(picture, out, ENV) == 1
    assert print_document(picture, out, ENV) == 0
    cards = read_ledger(out)
    assert [(c["card_no"], c["outcome"], c["reason"], c["pages"], c["png"]) for c in cards] == [
        (1, "spoiled", "media-jam", 0, []), (2, "spoiled", "cover-open", 0, []),
        (3, "issued", None, 1, ["card-000003-p1.png"])]
    err = capsys.readouterr().err
    assert err == ("ERROR: the card printer failed: failed\n"
                   "ERROR: the card printer failed: media-jam\n"
                   "STATE: +cover-open\n"
                   "ERROR: the card printer failed: cover-open\n")
    assert json.loads((out / "state.json").read_text()) == {"counter": 3}


def test_always_applies_to_every_job_and_next_goes_on_top(out: Path, picture: Path) -> None:
    write_behaviour(out, always={"fail": True, "drawn": True})
    write_behaviour(out, next_job={"fail": False})
    assert print_document(picture, out, ENV) == 0
    assert print_document(picture, out, ENV) == 1
    assert print_document(picture, out, ENV) == 1
    write_behaviour(out, always={})
    assert print_document(picture, out, ENV) == 0
    assert [c["outcome"] for c in read_ledger(out)] == ["issued", "spoiled", "spoiled", "issued"]


def test_an_unreadable_document_spoils_the_drawn_card(out: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a document at all")
    assert print_document(junk, out, ENV) == 1
    [card] = read_ledger(out)
    assert (card["outcome"], card["reason"]) == ("spoiled", "unreadable-document")
    assert capsys.readouterr().err == ("ERROR: the card printer could not read the document: "
                                       "UnidentifiedImageError\n")


@pytest.mark.parametrize(("behaviour", "says"), [
    ({"reasons": ["offline"]}, "ippeveprinter ignores offline; it keeps only cover-open"),
    ({"reasons": "media-jam"}, "reasons must be a list of keywords"),
    ({"clear": ["door-open"]}, "ippeveprinter ignores door-open"),
    ({"jam": True}, "unknown behaviour jam; known: clear, delay, drawn, fail, markers, reasons"),
    ({"markers": {"names": ["Ribbon"]}}, "markers must be a mapping"),
    ({"markers": {"names": ["Ribbon"], "levels": [1, 2]}}, "one value per marker"),
    ({"markers": {"names": ["Ribbon"], "levels": [101]}}, "levels are integers from -3"),
    ({"delay": -1}, "delay must be a number of seconds"),
    ({"fail": 1}, "fail must be true or a reason"),
])
def test_a_behaviour_it_cannot_act_out_is_refused_in_one_line(behaviour: dict,
                                                               says: str) -> None:
    with pytest.raises(BadBehaviour) as refused:
        check_behaviour(behaviour)
    assert says in str(refused.value)
    assert "\n" not in str(refused.value)


def _pwg_page(rows: list[list[tuple[int, ...]]], *, rgb: bool) -> bytes:
    """One PWG raster page (PWG 5102.4): the header fields the decoder reads, then each
    distinct row once with a repeat count, pixels as literal runs."""
    size = 3 if rgb else 1
    width, height = len(rows[0]), len(rows)
    header = bytearray(1796)
    header[0:9] = b"PwgRaster"
    struct.pack_into(">II", header, 276, 300, 300)
    struct.pack_into(">II", header, 372, width, height)
    struct.pack_into(">IIIII", header, 384, 8, 8 * size, width * size, 0, 19 if rgb else 18)
    body = bytearray()
    y = 0
    while y < height:
        repeat = 1
        while y + repeat < height and rows[y + repeat] == rows[y] and repeat < 256:
            repeat += 1
        body.append(repeat - 1)
        row = rows[y]
        body.append(257 - len(row) if len(row) > 1 else 0)
        for pixel in row:
            body += bytes(pixel[:size])
        y += repeat
    return bytes(header) + bytes(body)


def test_a_pwg_raster_is_decoded_page_by_page(out: Path, tmp_path: Path) -> None:
    red, white = (200, 10, 10), (255, 255, 255)
    colour = [[red, white, red, white]] * 3 + [[white] * 4]
    gray = [[(0,), (128,), (255,), (7,)]] * 2
    document = tmp_path / "card.pwg"
    document.write_bytes(b"RaS2" + _pwg_page(colour, rgb=True) + _pwg_page(gray, rgb=False))
    assert print_document(document, out, ENV) == 0
    [card] = read_ledger(out)
    assert card["pages"] == 2
    with Image.open(out / card["png"][0]) as first:
        assert first.size == (4, 4)
        assert [first.getpixel((x, 1)) for x in range(4)] == [red, white, red, white]
        assert first.getpixel((0, 3)) == white
    with Image.open(out / card["png"][1]) as second:
        assert (second.mode, second.size) == ("L", (4, 2))
        assert [second.getpixel((x, 1)) for x in range(4)] == [0, 128, 255, 7]
