"""The card printer behind CUPS's `ippeveprinter`: its print command (`ippeveprinter -c`).

`ippeveprinter` (Debian's cups-ipp-utils) is CUPS's own IPP Everywhere printer. It speaks the
protocol, keeps the job states and the printer's `printer-state-reasons` and markers; what
it does with a document is left to a command it runs once per document, with the spool file
as its one argument and the job's attributes in its environment (`IPP_JOB_NAME`,
`IPP_JOB_ID`, ...). This module is that command for the tests' card printer:

    python -m printstation.simulator.ipp_card --output FOLDER SPOOL-FILE

It renders every page of the document to a PNG in FOLDER (a PDF with `pdftoppm -r 300`, a
PWG raster decoded here, any other image with Pillow) and appends one JSON line to
FOLDER/ledger.jsonl, the same ledger `printer.py` keeps and `read_ledger` reads: the ground
truth about cards, written by the "printer" and never by the agent. The card counter lives
in FOLDER/state.json, so it survives restarts as a printer's counter does.

Tests steer it through FOLDER/behaviour.json (`write_behaviour`, under FOLDER/behaviour.lock):
for the next jobs (each consumed by one job) or for every job, the printer-state-reasons to
raise and clear, the markers to report, a delay (a slow print), and a failure. It tells
`ippeveprinter` on stderr, in the lines it reads from its commands:

    STATE: +media-jam             a reason raised (only the KEYWORDS below are kept)
    STATE: -media-jam             a reason cleared
    ATTR: marker-names=... marker-levels=...   the markers (printer attributes)

and a non-zero exit aborts the job. FOLDER holds pictures of cards (personal data): it is
readable by its owner only, and nothing here writes a card's content anywhere else.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .printer import read_ledger

__all__ = ["KEYWORDS", "check_behaviour", "read_ledger", "write_behaviour"]

#: The printer-state-reasons ippeveprinter keeps from a `STATE:` line (CUPS 2.4,
#: tools/ippeveprinter.c, ippeve_preason_strings): any other keyword is dropped without a
#: word, so `offline` or `door-open` can never be shown (check_behaviour refuses them).
#: It reports each with a suffix by printer state: `-report` idle, `-warning` processing.
KEYWORDS = frozenset({
    "other", "cover-open", "input-tray-missing", "marker-supply-empty", "marker-supply-low",
    "marker-waste-almost-full", "marker-waste-full", "media-empty", "media-jam", "media-low",
    "media-needed", "moving-to-paused", "paused", "spool-area-full", "toner-empty",
    "toner-low"})

#: The marker attributes a behaviour may report, by their key in `markers`.
MARKER_KEYS = ("names", "levels", "types", "colors")
BEHAVIOUR_KEYS = frozenset({"reasons", "clear", "markers", "fail", "drawn", "delay"})
RENDER_DPI = 300


class BadBehaviour(ValueError):
    """A behaviour the printer cannot act out, said in one line."""


def check_behaviour(behaviour: dict[str, Any]) -> dict[str, Any]:
    """The behaviour as the command reads it, or BadBehaviour naming what is wrong.

    reasons: keywords to raise; clear: keywords to clear, or "all"; markers: {"names",
    "levels", and optionally "types", "colors"}, lists of one length; fail: True or a
    reason (the job aborts); drawn: with fail, a blank was drawn and is spoiled; delay:
    seconds the print takes.
    """
    unknown = set(behaviour) - BEHAVIOUR_KEYS
    if unknown:
        raise BadBehaviour(f"unknown behaviour {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(BEHAVIOUR_KEYS))}")
    out = dict(behaviour)
    for key in ("reasons", "clear"):
        value = out.get(key)
        if value is None or (key == "clear" and value == "all"):
            continue
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise BadBehaviour(f"{key} must be a list of keywords")
        bad = sorted(set(value) - KEYWORDS)
        if bad:
            raise BadBehaviour(f"ippeveprinter ignores {', '.join(bad)}; it keeps only "
                               f"{', '.join(sorted(KEYWORDS))}")
        out[key] = list(value)
    markers = out.get("markers")
    if markers is not None:
        if not isinstance(markers, dict) or not {"names", "levels"} <= set(markers) \
                or set(markers) - set(MARKER_KEYS):
            raise BadBehaviour(f"markers must be a mapping of {', '.join(MARKER_KEYS)} "
                               "(names and levels at least)")
        lengths = {len(v) for v in markers.values()}
        if len(lengths) != 1:
            raise BadBehaviour("markers: every list must have one value per marker")
        if not all(isinstance(v, int) and -3 <= v <= 100 for v in markers["levels"]):
            raise BadBehaviour("markers: levels are integers from -3 to 100 (RFC 3805)")
    delay = out.get("delay")
    if delay is not None and (not isinstance(delay, int | float) or delay < 0):
        raise BadBehaviour("delay must be a number of seconds, not negative")
    fail = out.get("fail")
    if fail is not None and not isinstance(fail, bool | str):
        raise BadBehaviour("fail must be true or a reason")
    return out


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The folder's behaviour and card counter are changed by one process at a time."""
    fd = os.open(folder / "behaviour.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_json(path: Path, data: Any) -> None:
    """Replace a small JSON file at once: a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def write_behaviour(folder: Path, *, next_job: dict[str, Any] | None = None,
                    always: dict[str, Any] | None = None) -> None:
    """Queue a behaviour for the next job not yet steered, and/or set the one for every job
    (an empty `always` resets it). What the tests call, through CardPrinter."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _locked(folder):
        path = folder / "behaviour.json"
        current = _read_json(path, {"next": [], "always": {}})
        if next_job is not None:
            current["next"].append(check_behaviour(next_job))
        if always is not None:
            current["always"] = check_behaviour(always)
        _write_json(path, current)


def _take_behaviour(folder: Path) -> dict[str, Any]:
    """The behaviour of this job: every job's, with the next queued one (consumed) on top."""
    with _locked(folder):
        path = folder / "behaviour.json"
        current = _read_json(path, {"next": [], "always": {}})
        behaviour = dict(current["always"])
        if current["next"]:
            behaviour.update(current["next"].pop(0))
            _write_json(path, current)
    return check_behaviour(behaviour)


def _draw_card(folder: Path) -> int:
    """A blank leaves the feeder: the next card number, kept in state.json."""
    with _locked(folder):
        path = folder / "state.json"
        state = _read_json(path, {"counter": 0})
        state["counter"] += 1
        _write_json(path, state)
        return int(state["counter"])


def _say(line: str) -> None:
    """One line to ippeveprinter, which reads the command's stderr as it comes."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _marker_value(value: Any) -> str:
    text = str(value)
    if any(c in text for c in " ,'\"\\"):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _announce(behaviour: dict[str, Any]) -> None:
    clear = behaviour.get("clear")
    if clear == "all":
        _say("STATE: none")
    elif clear:
        _say("STATE: -" + ",".join(clear))
    if behaviour.get("reasons"):
        _say("STATE: +" + ",".join(behaviour["reasons"]))
    markers = behaviour.get("markers")
    if markers:
        parts = [f"marker-{key}=" + ",".join(_marker_value(v) for v in markers[key])
                 for key in MARKER_KEYS if key in markers]
        _say("ATTR: " + " ".join(parts))


def _wait(seconds: float) -> None:
    """The print takes this long (the simulated mechanism, not a test waiting)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


# ---------------------------------------------------------------------------- rendering

def _kind(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"RaS2"):
        return "pwg"
    return "image"


def _render_pdf(document: Path, work: Path) -> list[Path]:
    done = subprocess.run(["pdftoppm", "-r", str(RENDER_DPI), "-png", str(document),
                           str(work / "page")], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"pdftoppm could not read the document (exit {done.returncode})")
    return sorted(work.glob("page-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def _render_image(document: Path, work: Path) -> list[Path]:
    pages = []
    with Image.open(document) as image:
        for number in range(getattr(image, "n_frames", 1)):
            image.seek(number)
            page = work / f"page-{number + 1}.png"
            image.convert("RGB").save(page, "PNG")
            pages.append(page)
    return pages


#: PWG 5102.4 page header: 1796 bytes, big-endian; the fields this decoder needs.
_PWG_HEADER = 1796


def _render_pwg(document: Path, work: Path) -> list[Path]:
    """Decode a PWG raster (PWG 5102.4): per page a header, then lines, each a repeat count
    and PackBits-like runs of whole pixels."""
    data = document.read_bytes()
    pos, pages = 4, []
    while pos + _PWG_HEADER <= len(data):
        header = data[pos:pos + _PWG_HEADER]
        pos += _PWG_HEADER
        width, height = struct.unpack(">II", header[372:380])
        bits_per_color, bits_per_pixel, bytes_per_line = struct.unpack(">III", header[384:396])
        color_order = struct.unpack(">I", header[396:400])[0]
        if bits_per_color != 8 or color_order != 0 or bits_per_pixel not in (8, 24):
            raise RuntimeError("this PWG raster layout is not simulated (8-bit gray or RGB)")
        size = bits_per_pixel // 8
        lines = bytearray()
        y = 0
        while y < height:
            repeat = data[pos] + 1
            pos += 1
            line = bytearray()
            while len(line) < bytes_per_line:
                count = data[pos]
                pos += 1
                if count < 128:   # one pixel repeated count + 1 times
                    line += data[pos:pos + size] * (count + 1)
                    pos += size
                elif count == 128:  # the rest of the line is blank (white)
                    line += b"\xff" * (bytes_per_line - len(line))
                else:             # 257 - count pixels as they are
                    n = (257 - count) * size
                    line += data[pos:pos + n]
                    pos += n
            lines += bytes(line[:bytes_per_line]) * repeat
            y += repeat
        pixels = np.frombuffer(bytes(lines[:bytes_per_line * height]), dtype=np.uint8)
        shape = (height, width) if size == 1 else (height, width, 3)
        mode = "L" if size == 1 else "RGB"
        page = work / f"page-{len(pages) + 1}.png"
        Image.fromarray(pixels.reshape(shape), mode).save(page, "PNG")
        pages.append(page)
    if not pages:
        raise RuntimeError("a PWG raster without a page")
    return pages


def _render(document: Path, folder: Path, card_no: int) -> list[str]:
    """Every page of the document as FOLDER/card-NNNNNN-pP.png (0600); their names."""
    work = Path(tempfile.mkdtemp(prefix=".render-", dir=folder))
    try:
        kind = _kind(document)
        pages = (_render_pdf(document, work) if kind == "pdf"
                 else _render_pwg(document, work) if kind == "pwg"
                 else _render_image(document, work))
        names = []
        for number, page in enumerate(pages, 1):
            name = f"card-{card_no:06d}-p{number}.png"
            os.chmod(page, 0o600)
            os.replace(page, folder / name)
            names.append(name)
        return names
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _record(folder: Path, line: dict[str, Any]) -> None:
    fd = os.open(folder / "ledger.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as fh:
        fh.write(json.dumps(line) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def print_document(document: Path, folder: Path, env: dict[str, str]) -> int:
    """Act out one document: the exit status ippeveprinter reads (0 printed, 1 aborted)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    behaviour = _take_behaviour(folder)
    _announce(behaviour)
    _wait(float(behaviour.get("delay") or 0))
    entry: dict[str, Any] = {"job_name": env.get("IPP_JOB_NAME"),
                             "ipp_job_id": int(env["IPP_JOB_ID"]) if env.get(
                                 "IPP_JOB_ID", "").isdigit() else None}
    fail = behaviour.get("fail")
    if fail:
        reason = fail if isinstance(fail, str) else (behaviour.get("reasons") or ["failed"])[0]
        if behaviour.get("drawn"):
            number = _draw_card(folder)
            _record(folder, {"card_no": number, **entry, "pages": 0, "png": [],
                             "outcome": "spoiled", "reason": reason,
                             "at": datetime.now().astimezone().isoformat()})
        _say(f"ERROR: the card printer failed: {reason}")
        return 1
    number = _draw_card(folder)
    try:
        names = _render(document, folder, number)
    except (OSError, RuntimeError, ValueError, IndexError) as error:
        # The blank was drawn and nothing usable printed on it: a spoiled card.
        reason = "unreadable-document"
        _record(folder, {"card_no": number, **entry, "pages": 0, "png": [],
                         "outcome": "spoiled", "reason": reason,
                         "at": datetime.now().astimezone().isoformat()})
        _say(f"ERROR: the card printer could not read the document: {type(error).__name__}")
        return 1
    _record(folder, {"card_no": number, **entry, "pages": len(names), "png": names,
                     "outcome": "issued", "reason": None,
                     "at": datetime.now().astimezone().isoformat()})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m printstation.simulator.ipp_card",
        description="ippeveprinter's print command for the simulated card printer: renders "
                    "each document's pages to PNG in the output folder and records the card "
                    "in its ledger.jsonl")
    parser.add_argument("--output", required=True, type=Path,
                        help="the simulator's output folder (ledger, PNGs, behaviour)")
    parser.add_argument("document", type=Path, help="the spool file ippeveprinter hands over")
    args = parser.parse_args(argv)
    os.umask(0o077)
    try:
        return print_document(args.document, args.output, dict(os.environ))
    except (BadBehaviour, json.JSONDecodeError, KeyError) as error:
        _say(f"ERROR: the card printer's behaviour file is unusable: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
