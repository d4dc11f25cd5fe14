"""`printstation-sim`: the simulated Evolis printer as a device process of its own.

It answers the escape-command language on a pseudo-terminal (so the serial driver runs
unchanged), on TCP (the networked-printer driver, and the bridge the simulated USB backend
uses), and takes test controls as JSON lines on a control port. Its stock and counters
live in a state file and survive its restarts; cards and the ledger go to its output folder.

When it is ready it prints one JSON line with its endpoints, e.g.
{"tcp": "127.0.0.1:9100", "pty": "/tmp/sim/ttySIM", "control": "127.0.0.1:9101"}.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import select
import signal
import socket
import sys
import termios
import textwrap
import threading
import time
import tomllib
import tty
from pathlib import Path
from typing import Any

from .evolis_device import EvolisDevice
from .printer import (
    CHIP_FAULTS,
    FAULTS,
    SimParams,
    SimulatedPrinter,
    chip_fault,
    fault_code,
    setting_value,
)

#: The control port's commands: name, an example line, what it does. `--help` lists them,
#: and an unknown command is answered with their names.
CONTROL_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("inject", '{"cmd": "inject", "fault": "jam"}', "put a fault on the printer"),
    ("clear", '{"cmd": "clear", "fault": "jam"}', "clear that fault (no fault: every one)"),
    ("load", '{"cmd": "load", "cards": 100, "ribbon": 250}',
     "put in cards, stock, ribbon, film (a ribbon or film: a new roll)"),
    ("unplug", '{"cmd": "unplug", "seconds": 5}',
     "pull the cable: connections drop and nothing answers for that long"),
    ("garbage", '{"cmd": "garbage", "count": 1}', "the next COUNT replies are noise"),
    ("truncate", '{"cmd": "truncate", "count": 1}', "the next COUNT replies are cut short"),
    ("silent", '{"cmd": "silent", "count": 1}', "the next COUNT replies are withheld"),
    ("slow", '{"cmd": "slow", "seconds": 0.5}', "every reply waits that long (0: no more)"),
    ("chip", '{"cmd": "chip", "fault": "dead", "card": 5}',
     "set the chip fault of blank CARD (no card: of every later blank)"),
    ("status", '{"cmd": "status"}', "only the answer: nothing changes"),
)


def control_help() -> str:
    """The control commands, faults and printer settings, as `--help` shows them."""
    lines = ["control commands: --control PORT takes one JSON object a line and answers each",
             "with a JSON line (ok, the card counter, stock, faults, or an error):"]
    for name, example, what in CONTROL_COMMANDS:
        lines += [f"  {name:9} {what}", f"  {'':9} {example}"]
    wrap = textwrap.TextWrapper(width=79, subsequent_indent="  ")
    lines += ["", *wrap.wrap(f"faults: {FAULTS}"), *wrap.wrap(f"chip faults: {CHIP_FAULTS}"),
              *wrap.wrap("printer settings ([printer] in a scenario, or --set KEY=VALUE): "
                         + ", ".join(_settings())),
              *wrap.wrap('scenario events: [[events]] card = 12, fault = "cover_open" puts '
                         "the fault on the printer just before card 12 is drawn")]
    return "\n".join(lines)


def _settings() -> list[str]:
    return [f.name for f in dataclasses.fields(SimParams) if f.name not in ("events",)]


def _chip_settings(values: dict[str, Any]) -> None:
    """A scenario's chip faults, from TOML text to what the printer model takes.

    `chip_fault` is a name; `chip_faults` is text as `--set` takes it ("3:dead,5:absent") or
    a table of card counter to name ({"3" = "dead"}).
    """
    if "chip_fault" in values:
        values["chip_fault"] = setting_value("chip_fault", str(values["chip_fault"]))
    faults = values.get("chip_faults")
    if isinstance(faults, dict):
        table = {}
        for card, name in faults.items():
            if not card.isdigit():
                raise ValueError(f"chip_faults: {card!r} is not a card counter; give "
                                 '{"3" = "dead"}')
            table[int(card)] = chip_fault(str(name))
        values["chip_faults"] = table
    elif faults is not None:
        values["chip_faults"] = setting_value("chip_faults", str(faults))


def load_scenario(path: Path | None, overrides: list[str]) -> SimParams:
    """SimParams from a TOML scenario file ([printer] keys and [[events]]), then KEY=VALUE."""
    values: dict[str, Any] = {"model": "Evolis Primacy (simulated)"}
    if path is not None:
        doc = tomllib.loads(path.read_text())
        values.update(doc.get("printer", {}))
        _chip_settings(values)
        if "events" in doc:
            values["events"] = [dict(e) for e in doc["events"]]
            for e in values["events"]:
                fault_code(e.get("fault"))
        if "faults" in values:
            values["faults"] = [fault_code(f) for f in values["faults"]]
    for item in overrides:
        key, _, raw = item.partition("=")
        if key == "faults":
            values[key] = [fault_code(x) for x in raw.split(",") if x]
        else:
            values[key] = setting_value(key, raw)
    known = {f.name for f in dataclasses.fields(SimParams)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown printer settings: {', '.join(sorted(unknown))}; "
                         f"settings: {', '.join(_settings())}")
    return SimParams(**values)


class Server:
    def __init__(self, device: EvolisDevice, *, host: str, tcp_port: int | None,
                 pty_link: Path | None, control_port: int | None):
        self.device = device
        self.host = host
        self.pty_link = pty_link
        self.stop = threading.Event()
        self._listener: socket.socket | None = None
        self._tcp_port = tcp_port
        self._conns: set[socket.socket] = set()
        self._pty_fds: tuple[int, int] | None = None
        self._control = self._listen(control_port) if control_port is not None else None
        self.endpoints: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._tcp_port is not None:
            self._listener = self._listen(self._tcp_port)
            self._tcp_port = self._listener.getsockname()[1]
            self.endpoints["tcp"] = f"{self.host}:{self._tcp_port}"
            self._thread(self._accept_loop)
        if self.pty_link is not None:
            self._open_pty()
            self.endpoints["pty"] = str(self.pty_link)
            self._thread(self._pty_loop)
        if self._control is not None:
            self.endpoints["control"] = f"{self.host}:{self._control.getsockname()[1]}"
            self._thread(self._control_loop)

    def _thread(self, target) -> None:
        threading.Thread(target=target, daemon=True).start()

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(8)
        return sock

    # --------------------------------------------------------------------- TCP

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                conn, _ = listener.accept()
            except OSError:
                time.sleep(0.05)
                continue
            if self.device.unplugged:
                conn.close()
                continue
            self._conns.add(conn)
            self._thread(lambda c=conn: self._serve(c))

    def _serve(self, conn: socket.socket) -> None:
        session = self.device.session()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while not self.stop.is_set():
                data = conn.recv(1 << 20)
                if not data:
                    break
                for reply in session.feed(data):
                    conn.sendall(reply)
        except OSError:
            pass
        finally:
            self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()
            self.device.host_lost()

    # --------------------------------------------------------------------- pty

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        assert self.pty_link is not None
        tmp = self.pty_link.with_suffix(".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.pty_link)
        self._pty_fds = (master, slave)

    def _close_pty(self) -> None:
        fds, self._pty_fds = self._pty_fds, None
        if self.pty_link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pty_link.unlink()
        if fds:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _pty_loop(self) -> None:
        session = self.device.session()
        while not self.stop.is_set():
            fds = self._pty_fds
            if fds is None:
                time.sleep(0.05)
                session = self.device.session()
                continue
            master = fds[0]
            try:
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(master, 1 << 20)
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            for reply in session.feed(data):
                with contextlib.suppress(OSError):
                    os.write(master, reply)

    # ------------------------------------------------------------------ unplug

    def unplug(self, seconds: float) -> None:
        """The cable is pulled for `seconds`: connections drop and nothing answers."""
        self.device.unplugged_until = time.monotonic() + seconds
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._close_pty()
        self.device.host_lost()
        self._thread(lambda: self._replug(seconds))

    def _replug(self, seconds: float) -> None:
        time.sleep(seconds)
        if self._tcp_port is not None:
            for _ in range(100):
                try:
                    self._listener = self._listen(self._tcp_port)
                    break
                except OSError:
                    time.sleep(0.05)
        if self.pty_link is not None:
            self._open_pty()

    # ----------------------------------------------------------------- control

    def _control_loop(self) -> None:
        assert self._control is not None
        while not self.stop.is_set():
            try:
                conn, _ = self._control.accept()
            except OSError:
                return
            self._thread(lambda c=conn: self._control_session(c))

    def _control_session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as fh:
            for line in fh:
                try:
                    cmd = json.loads(line)
                    if not isinstance(cmd, dict):
                        raise ValueError('a command is a JSON object: {"cmd": "status"}')
                    answer = self.control(cmd)
                except json.JSONDecodeError:
                    answer = {"ok": False, "error": 'not JSON; a command is a JSON object '
                                                    'on one line: {"cmd": "status"}'}
                except KeyError as exc:
                    answer = {"ok": False, "error": f"{cmd.get('cmd')}: {exc} is missing"}
                except (ValueError, TypeError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                fh.write(json.dumps(answer).encode() + b"\n")
                fh.flush()

    def control(self, cmd: dict[str, Any]) -> dict[str, Any]:
        printer, mischief = self.device.printer, self.device.mischief
        action = cmd["cmd"]
        if action == "inject":
            printer.inject(fault_code(cmd["fault"]))
        elif action == "clear":
            printer.clear(fault_code(cmd["fault"]) if cmd.get("fault") else None)
        elif action == "load":
            printer.load(**{k: cmd[k] for k in ("cards", "stock", "ribbon", "film") if k in cmd})
        elif action == "unplug":
            self.unplug(float(cmd["seconds"]))
        elif action in ("garbage", "truncate", "silent"):
            setattr(mischief, action, int(cmd.get("count", 1)))
        elif action == "slow":
            mischief.delay = float(cmd["seconds"])
        elif action == "chip":
            self._chip(cmd)
        elif action != "status":
            names = ", ".join(name for name, _, _ in CONTROL_COMMANDS)
            raise ValueError(f"unknown control command {action!r}; commands: {names}")
        return {"ok": True, "serial": printer.params.serial, "counter": printer.counter,
                "cards": printer.cards_in_feeder,
                "ribbon": printer.ribbon_left, "film": printer.film_left,
                "faults": [f.value for f in printer.faults()],
                "unplugged": self.device.unplugged, "printing": self.device.printing,
                "parked": printer.parked}

    def _chip(self, cmd: dict[str, Any]) -> None:
        """What is wrong with the chip of blank `card` (by card counter), or without `card`
        of every later blank; a blank already parked keeps the chip it has."""
        fault = chip_fault(str(cmd["fault"]))
        params = self.device.printer.params
        if "card" not in cmd:
            params.chip_fault = fault
            return
        card = cmd["card"]
        if isinstance(card, bool) or not isinstance(card, int) or card < 1:
            raise ValueError(f"chip: card must be a card counter (1 or more), not {card!r}")
        params.chip_faults = {**params.chip_faults, card: fault}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="printstation-sim", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="A simulated Evolis card printer as a device process: answers the\n"
                    "escape-command language on a pty and on TCP, with test controls.",
        epilog=control_help())
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: card PNGs, ledger.jsonl, state.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tcp", type=int, metavar="PORT", help="serve on this TCP port (0: any)")
    parser.add_argument("--pty", type=Path, metavar="LINK",
                        help="serve on a pseudo-terminal, symlinked at LINK")
    parser.add_argument("--control", type=int, metavar="PORT",
                        help="JSON-lines control port for tests (0: any)")
    parser.add_argument("--scenario", type=Path, help="TOML: [printer] settings, [[events]]")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="printer setting, e.g. print_time=0.5, cards=100, jam_at=3 "
                             "(every one is listed below)")
    args = parser.parse_args(argv)
    try:
        params = load_scenario(args.scenario, args.set)
    except (ValueError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"printstation-sim: {exc}", file=sys.stderr)
        return 2
    if params.state_file is None:
        params.state_file = str(args.out / "state.json")
    args.out.mkdir(parents=True, exist_ok=True, mode=0o700)
    device = EvolisDevice(SimulatedPrinter(params, args.out))
    server = Server(device, host=args.host, tcp_port=args.tcp, pty_link=args.pty,
                    control_port=args.control)
    server.start()
    print(json.dumps(server.endpoints), flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop.set()
    server._close_pty()
    device.printer.close()  # the parked card leaves the virtual reader, its link stops
    return 0


if __name__ == "__main__":
    sys.exit(main())
