"""The simulator's card fingerprint: what tests tell jobs' cards apart by, without NumPy."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
from PIL import Image

from printstation.simulator.printer import fingerprint


def _panel(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.random((648, 1016)) > 0.5).convert("1")


def test_the_fingerprint_is_the_packed_ink_of_the_k_panel_as_before() -> None:
    """The same digest as the NumPy form it replaced, at the printers' width: ledgers of
    earlier runs and the tests' expectations keep matching."""
    panel = _panel(1)
    ink = ~np.asarray(panel, dtype=bool)
    assert fingerprint(panel) == hashlib.sha256(np.packbits(ink).tobytes()).hexdigest()[:20]
    assert fingerprint(panel) != fingerprint(_panel(2))


def test_the_in_process_simulator_does_not_load_numpy() -> None:
    """NumPy costs the agent's process about 20 MB of RSS (bench/footprint.py rss); the
    `sim://` printer runs in that process and has no need of it."""
    code = ("import sys, printstation.agent.station.agent, printstation.simulator.driver; "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"
