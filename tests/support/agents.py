"""`printstation run` as the service runs it, on a config of its own, its log in a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import control_answers, run, wait_for


class AgentProcess:
    """An agent in its own process: started, killed (SIGKILL, as a power cut) or stopped,
    and asked with the operator commands."""

    def __init__(self, folder: Path, station_id: str, broker_url: str, printer_url: str,
                 **settings: str):
        self.state = folder / "state"
        self.log = folder / "agent.log"
        self.config = folder / "station.toml"
        extra = "".join(f'{key} = "{value}"\n' for key, value in settings.items())
        self.config.write_text(
            f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
            f'printer_url = "{printer_url}"\nstate_dir = "{self.state}"\n'
            f'verify_signatures = false\nlog_level = "info"\n{extra}')
        self.proc: subprocess.Popen | None = None

    def start(self, *, failpoints: str | None = None) -> None:
        """Start it and wait for its control socket; with `failpoints` it kills itself at
        those points (agent/station/failpoints.py)."""
        env = dict(os.environ)
        env.pop("PRINTSTATION_FAILPOINTS", None)
        if failpoints:
            env["PRINTSTATION_FAILPOINTS"] = failpoints
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "printstation.agent", "run",
                                          "--config", str(self.config)],
                                         stdout=log, stderr=log, env=env)
        wait_for(lambda: control_answers(self.state) or self.proc.poll() is not None, 30,
                 "the agent's control socket")

    def died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(30)
            self.proc = None

    def cli(self, *args: str) -> dict | list:
        result = run(*args, "--json", "--config", str(self.config))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
