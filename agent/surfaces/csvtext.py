"""CSV as offices open it: in a spreadsheet.

Every CSV the tools write (the ledger, the rolls, the spoiled-card register, the fleet) goes
through `to_csv`. Some cells hold words people typed (a removal's reason, a roll's serial);
a spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula, so such a
text cell is written with a leading `'`, which spreadsheets show as text (OWASP's advice on
CSV injection). Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A value as a spreadsheet should show it: typed text never runs as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: Iterable[Mapping[str, Any]], fields: tuple[str, ...]) -> str:
    """`rows` as CSV with a header of `fields`; other keys of a row are left out."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def write_csv(rows: Iterable[Mapping[str, Any]], fields: tuple[str, ...],
              where: str | Path) -> None:
    """`rows` as CSV to stdout for '-', else to the file named."""
    text = to_csv(rows, fields)
    if str(where) == "-":
        sys.stdout.write(text)
    else:
        Path(where).write_text(text)
