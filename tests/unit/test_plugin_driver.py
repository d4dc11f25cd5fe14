"""A driver from another package is found by its URL scheme and used without touching the agent."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import PLUGINS


def test_probe_finds_a_driver_registered_by_another_package():
    env = {**os.environ, "PYTHONPATH": str(PLUGINS)}
    out = subprocess.run([sys.executable, "-m", "printstation.agent", "probe",
                          "testprinter://desk-3"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Plug-in Test Printer" in out.stdout and "desk-3" in out.stdout
