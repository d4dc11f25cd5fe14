"""A simulated printer as a process of its own, and a disk that really fills."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any


class SimProcess:
    """`printstation-sim` as its own process, with its control port for tests."""

    def __init__(self, out: Path, *settings: str, pty: bool = True,
                 extra_args: list[str] | None = None):
        self.out = out
        self.settings = settings
        self.pty = pty
        self.tcp_port: int | None = None
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.endpoints: dict[str, str] = {}
        self.start()

    def start(self) -> None:
        import sys

        args = [sys.executable, "-m", "printstation.simulator.server", "--out", str(self.out),
                "--tcp", str(self.tcp_port or 0), "--control", "0"]
        if self.pty:
            args += ["--pty", str(self.out / "ttySIM")]
        for s in self.settings:
            args += ["--set", s]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("printstation-sim did not start")
        self.endpoints = json.loads(line)
        self.tcp_port = int(self.endpoints["tcp"].rsplit(":", 1)[1])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def tcp_url(self) -> str:
        return f"evolis+tcp://{self.endpoints['tcp']}"

    @property
    def serial_url(self) -> str:
        return f"evolis+serial://{self.endpoints['pty']}"

    def control(self, **cmd: Any) -> dict:
        host, port = self.endpoints["control"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(json.dumps(cmd).encode() + b"\n")
            answer = sock.makefile("rb").readline()
        result = json.loads(answer)
        assert result["ok"], result
        return result

    def ledger(self) -> list[dict]:
        from printstation.simulator.printer import read_ledger

        return read_ledger(self.out)


class SmallDisk:
    """A small tmpfs the test mounts, that `fill` makes return ENOSPC to every writer."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until the disk says ENOSPC, in large pieces and then small ones, unbuffered
        (a buffered file would raise again on closing)."""
        with self.filler.open("ab", buffering=0) as fh:
            for size in (1 << 20, 65536, 4096, 512):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == 28, exc  # ENOSPC

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
