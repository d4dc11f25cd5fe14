"""`printstation probe URL`: what a technician installing a station needs to see first.

It opens the printer the agent would open, prints its identity, state, faults (with what
to do about each) and consumables, or one clear reason why it cannot reach it.
"""

from __future__ import annotations

import json
from pathlib import Path

from printstation.agent.station.state import FAULT_ADVICE
from printstation.drivers.base import PrinterError
from printstation.drivers.registry import DriverNotFound, open_driver


def probe(url: str, state_dir: Path) -> dict:
    """Everything the printer says about itself; raises PrinterError if it cannot be reached."""
    driver = open_driver(url, state_dir=state_dir)
    driver.open()
    try:
        ident = driver.identity()
        status = driver.status()
        details = driver.details()
    finally:
        driver.close()
    return {
        "url": url.split("?")[0],
        "driver": ident.driver, "model": ident.model, "serial": ident.serial,
        "firmware": ident.firmware, "state": status.state,
        "faults": [{"code": f.value, "advice": FAULT_ADVICE.get(f, "")} for f in status.faults],
        "card_counter": status.card_counter,
        "refusal_only_faults": [f.value for f in driver.refusal_only_faults],
        "card_stock": status.card_stock,
        "consumables": [
            {"kind": c.kind, "type": c.type, "remaining": c.remaining, "capacity": c.capacity,
             "unit": c.unit, "source": c.source} for c in status.consumables],
        "details": details,
    }


def run_probe(url: str, state_dir: Path, as_json: bool) -> int:
    """Exit codes: 0 reachable and ready, 1 reachable with faults, 2 unreachable or bad URL."""
    try:
        info = probe(url, state_dir)
    except PrinterError as exc:
        print(f"printer {url.split('?')[0]}: cannot reach it: {exc.detail}")
        return 2
    except (DriverNotFound, ValueError) as exc:
        print(f"printer URL {url!r}: {exc}")
        return 2
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        print(f"printer   {info['url']} ({info['driver']} driver)")
        print(f"model     {info['model']}")
        print(f"serial    {info['serial']}")
        print(f"firmware  {info['firmware']}")
        print(f"state     {info['state']}")
        if info["card_counter"] is None:
            print("counter   none reported: the agent numbers the cards itself")
        else:
            print(f"counter   {info['card_counter']} cards drawn in its life")
        for fault in info["faults"]:
            print(f"FAULT     {fault['code']}: {fault['advice']}")
        for c in info["consumables"]:
            cap = f"/{c['capacity']}" if c["capacity"] is not None else ""
            print(f"{c['kind']:9} {c['type'] or ''} {c['remaining']}{cap} {c['unit']} "
                  f"(read from the {c['source']})")
        for key, value in info["details"].items():
            print(f"said      {key}: {value}")
        if info["refusal_only_faults"]:
            print(f"unseen    {', '.join(info['refusal_only_faults'])}: this printer reports "
                  "them only by refusing a card; `printstation status` shows them then")
    return 1 if info["faults"] else 0
