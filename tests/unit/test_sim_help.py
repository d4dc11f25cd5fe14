"""`printstation-sim` tells its users what it takes: its help lists the control commands
(and each example it shows works), and a wrong fault or command is answered with the
valid ones."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

from printstation.drivers.base import FaultCode

SIM = [sys.executable, "-m", "printstation.simulator.server"]
COMMANDS = ["inject", "clear", "load", "unplug", "garbage", "truncate", "silent", "slow",
            "chip", "status"]
ALL_FAULTS = ", ".join(f.value for f in FaultCode)


def sim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SIM, *args], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "80", "PATH": "/usr/bin:/bin"})


def ask(sim_process, *lines: str) -> list[dict]:
    """Send raw lines to the simulator's control port; its answers, one per line."""
    host, port = sim_process.endpoints["control"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        fh = sock.makefile("rwb")
        answers = []
        for line in lines:
            fh.write(line.encode() + b"\n")
            fh.flush()
            answers.append(json.loads(fh.readline()))
    return answers


def test_help_lists_every_control_command_and_its_examples_work(sim_process):
    out = sim("--help")
    assert out.returncode == 0
    assert all(len(line) <= 79 for line in out.stdout.splitlines()), out.stdout
    block = out.stdout.split("control commands")[1].split("\n\n")[0]
    listed = re.findall(r"^  (\w+) +\S", block, re.M)
    assert listed == COMMANDS
    examples = re.findall(r"^ +(\{\"cmd\".*\})$", out.stdout, re.M)
    assert [json.loads(e)["cmd"] for e in examples] == COMMANDS
    assert f"faults: {ALL_FAULTS[:40]}" in out.stdout.replace("\n  ", " ")
    printer = sim_process(pty=False)
    for example, answer in zip(examples, ask(printer, *examples), strict=True):
        assert answer["ok"], (example, answer)


def test_an_unknown_fault_or_command_is_answered_with_the_valid_ones(sim_process):
    printer = sim_process(pty=False)
    fault, command, missing, not_json = ask(
        printer, '{"cmd": "inject", "fault": "jammed"}', '{"cmd": "eject"}',
        '{"cmd": "inject"}', "inject jam")
    assert fault == {"ok": False, "error": f"unknown fault 'jammed'; faults: {ALL_FAULTS}"}
    assert command == {"ok": False, "error": "unknown control command 'eject'; commands: "
                                             + ", ".join(COMMANDS)}
    assert missing == {"ok": False, "error": "inject: 'fault' is missing"}
    assert not_json["ok"] is False and not_json["error"].startswith("not JSON")
    assert ask(printer, '{"cmd": "status"}')[0]["faults"] == []  # nothing was injected


def test_an_unknown_fault_on_the_command_line_or_in_a_scenario_is_one_line(tmp_path):
    out = sim("--out", str(tmp_path / "a"), "--set", "faults=cover_open,jammed")
    assert out.returncode == 2
    assert out.stderr == f"printstation-sim: unknown fault 'jammed'; faults: {ALL_FAULTS}\n"
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[events]]\ncard = 3\nfault = "paper_jam"\n')
    out = sim("--out", str(tmp_path / "b"), "--scenario", str(scenario))
    assert out.returncode == 2
    assert out.stderr == f"printstation-sim: unknown fault 'paper_jam'; faults: {ALL_FAULTS}\n"
    out = sim("--out", str(tmp_path / "c"), "--set", "print_tme=1")
    assert out.returncode == 2 and "unknown printer settings: print_tme; settings: " \
        "model, serial" in out.stderr
