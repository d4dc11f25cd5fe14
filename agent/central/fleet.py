"""`printstation fleet`: every station's state and consumables, for technicians.

Listens to telemetry and alerts on the event exchange (it needs nothing from the stations
but what they already publish) and keeps the latest of each station, sorted by what runs
out first, live in the terminal, or once as JSON or CSV for scripts.
"""

from __future__ import annotations

import fnmatch
import json
import time
from datetime import datetime
from typing import Any

#: A station not heard from for this long (telemetry comes at least every 30 s) is silent.
SILENT_AFTER = 90.0
CSV_FIELDS = ("station_id", "state", "why", "faults", "cards_left", "first_to_run_out",
              "runs_out_at", "ribbon", "film", "cards", "open_alerts", "queued_jobs",
              "printed_today", "last_seen")


class Fleet:
    def __init__(self, pattern: str = "*"):
        self.pattern = pattern
        self.telemetry: dict[str, dict] = {}
        self.seen: dict[str, float] = {}
        self.alerts: dict[str, dict[str, dict]] = {}

    def ingest(self, event: dict[str, Any], now: float | None = None) -> bool:
        """Take one event; True if it was about a station this view shows."""
        station = event.get("station_id")
        if not isinstance(station, str) or not fnmatch.fnmatch(station, self.pattern):
            return False
        self.seen[station] = time.monotonic() if now is None else now
        schema = event.get("schema")
        if schema == "printstation.telemetry/1":
            self.telemetry[station] = event
            self.alerts[station] = {a["condition"]: a for a in event.get("alerts") or []}
        elif schema == "printstation.alert/1":
            mine = self.alerts.setdefault(station, {})
            if event.get("cleared"):
                mine.pop(event["condition"], None)
            else:
                mine[event["condition"]] = event
        return True

    def rows(self, now: float | None = None) -> list[dict[str, Any]]:
        """One row per station, the first to run out first (stations never measured last)."""
        now = time.monotonic() if now is None else now
        rows = []
        for station, t in self.telemetry.items():
            levels = {c["kind"]: _level(c) for c in t.get("consumables", [])}
            silent = now - self.seen.get(station, now) > SILENT_AFTER
            rows.append({
                "station_id": station,
                "state": "silent" if silent else t["state"],
                "why": t.get("blocked_reason") or t.get("not_taking_jobs_because") or "",
                "faults": " ".join(t["printer"]["faults"]),
                "cards_left": t.get("cards_left"),
                "first_to_run_out": t.get("first_to_run_out"),
                "runs_out_at": t.get("runs_out_at"),
                "ribbon": levels.get("ribbon", "?"), "film": levels.get("film", "?"),
                "cards": levels.get("cards", "?"),
                "open_alerts": len(self.alerts.get(station, {})),
                "queued_jobs": t.get("queued_jobs"),
                "printed_today": t["counters"]["printed_today"],
                "last_seen": t.get("at"),
            })
        never = float("inf")
        rows.sort(key=lambda r: (r["cards_left"] if r["cards_left"] is not None else never,
                                 r["runs_out_at"] or "~", r["station_id"]))
        return rows


def _level(c: dict[str, Any]) -> str:
    if c.get("remaining") is None:
        return "?"
    return f"{c['remaining']}/{c['capacity']}" if c.get("capacity") else str(c["remaining"])


def to_csv(rows: list[dict[str, Any]]) -> str:
    from printstation.agent.surfaces.csvtext import to_csv

    return to_csv(rows, CSV_FIELDS)


#: The live table's columns: (header, justify). It fits 80 columns with station ids of up
#: to 16 characters (longer ones fold onto a second line); what each station is blocked
#: by is listed under the table, where it has the whole width.
COLUMNS = (("station", "left"), ("state", "left"), ("left", "right"), ("first", "left"),
           ("runs out", "left"), ("ribbon", "right"), ("film", "right"),
           ("blanks", "right"), ("queue", "right"), ("alerts", "right"))
COLOUR = {"ready": "green", "printing": "blue", "paused": "yellow", "blocked": "red",
          "offline": "red", "silent": "magenta"}


def _short(level: str) -> str:
    """`40/250` as `16%`: the table's ribbon and film; a bare count or `?` as it is."""
    remaining, _, capacity = level.partition("/")
    if not capacity or not remaining.isdigit() or not capacity.isdigit() or not int(capacity):
        return level
    return f"{100 * int(remaining) // int(capacity)}%"


def _when(at: str | None) -> str:
    return datetime.fromisoformat(at).strftime("%-d %b %H:%M") if at else ""


def table(rows: list[dict[str, Any]], title: str):
    """The live view: one line per station, what blocks each listed under it."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              padding=0, show_edge=False)
    for name, justify in COLUMNS:
        if name == "station":
            t.add_column(name, min_width=12, overflow="fold")
        else:
            t.add_column(name, justify=justify, no_wrap=True, min_width=len(name))
    notes = []
    for r in rows:
        t.add_row(r["station_id"], f"[{COLOUR.get(r['state'], 'white')}]{r['state']}[/]",
                  "" if r["cards_left"] is None else str(r["cards_left"]),
                  r["first_to_run_out"] or "", _when(r["runs_out_at"]),
                  _short(r["ribbon"]), _short(r["film"]), r["cards"].partition("/")[0],
                  "" if r["queued_jobs"] is None else str(r["queued_jobs"]),
                  str(r["open_alerts"] or ""))
        why = r["why"] or (f"printer: {r['faults']}" if r["faults"] else "")
        if why:
            notes.append(Text(f"{r['station_id']}: {why}"))
    return Group(t, *notes) if notes else t


def run(broker_url: str, *, pattern: str, duration: float | None, output: str) -> int:
    """Live table until Ctrl-C; with `duration`, collect that long, print once, exit."""
    from printstation.agent.central.tools import EventTap

    fleet = Fleet(pattern)
    with EventTap(broker_url, binding=["telemetry.#", "alert.#"]) as tap:
        import sys

        print(f"listening for telemetry and alerts of stations {pattern!r}", file=sys.stderr,
              flush=True)
        if output != "live" or duration is not None:
            deadline = time.monotonic() + (duration if duration is not None else 35.0)
            while (left := deadline - time.monotonic()) > 0:
                for event in tap.events(min(left, 0.5)):
                    fleet.ingest(event)
                    if time.monotonic() > deadline:
                        break
            rows = fleet.rows()
            if output == "json":
                print(json.dumps(rows, indent=2))
            elif output == "csv":
                sys.stdout.write(to_csv(rows))
            else:
                from rich.console import Console

                Console().print(table(rows, f"{len(rows)} stations"))
                if not rows:
                    print(f"no telemetry from stations {pattern!r} in {duration} s (each "
                          "publishes it at least every telemetry_interval, 30 s by default)",
                          file=sys.stderr)
            return 0
        from rich.live import Live

        with Live(table([], "waiting for telemetry..."), refresh_per_second=2) as live:
            try:
                while True:
                    for event in tap.events(1.0):
                        fleet.ingest(event)
                        break
                    rows = fleet.rows()
                    live.update(table(rows, f"{len(rows)} stations, first to run out first "
                                            f"(Ctrl-C to stop)"))
            except KeyboardInterrupt:
                return 0
