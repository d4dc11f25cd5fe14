"""A pcscd of the tests' own, with vsmartcard-vpcd's virtual readers, for the chip tests.

It runs in a mount namespace of its own with a private /run/pcscd: pcscd 1.9.9 always listens
on /run/pcscd/pcscd.comm (PCSCLITE_CSOCK_NAME is read by the client library only), so a
system pcscd, or another test run's, never clashes with it. The clients (pyscard, in this
process and in the processes it starts) find it through PCSCLITE_CSOCK_NAME. Its vpcd readers
listen on two free ports of its own, not vpcd's 35963 and 35964.

Nothing here mocks PC/SC: these are the Debian packages a station would run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.support import wait_for

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
READER = "Virtual PCD 00 00"
SECOND_READER = "Virtual PCD 00 01"
INSTALL = "make system-deps installs it (apt: pcscd vsmartcard-vpcd swig libpcsclite-dev)"


def missing() -> str | None:
    """What the chip tests lack, said in one line, or None."""
    if shutil.which("pcscd") is None:
        return f"pcscd is missing: {INSTALL}"
    if not VPCD_DRIVER.exists():
        return f"vsmartcard-vpcd is missing ({VPCD_DRIVER}): {INSTALL}"
    if importlib.util.find_spec("smartcard") is None:
        return ("pyscard is missing: `make system-deps` then `make pcsc` installs it "
                "into .venv (it builds against libpcsclite-dev with swig)")
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is missing: apt-get install util-linux"
    return None


def free_port_pair() -> int:
    """A port p with p and p + 1 free now (vpcd's two readers listen on both)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two adjacent free TCP ports for vpcd")


class Pcscd:
    """`pcscd --foreground` with vpcd on `port` (reader 00 00) and `port + 1` (00 01)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port_pair()
        conf, run = folder / "reader.conf.d", folder / "run"
        conf.mkdir(parents=True)
        run.mkdir()
        (conf / "vpcd").write_text(
            'FRIENDLYNAME "Virtual PCD"\n'
            f"DEVICENAME   /dev/null:0x{self.port:04X}\n"
            f"LIBPATH      {VPCD_DRIVER}\n"
            f"CHANNELID    0x{self.port:04X}\n")
        #: The socket the clients use (PCSCLITE_CSOCK_NAME).
        self.socket = run / "pcscd.comm"
        self.log = folder / "pcscd.log"
        Path("/run/pcscd").mkdir(parents=True, exist_ok=True)
        # unshare execs sh, which execs pcscd: the process we hold is pcscd itself.
        script = f'mount --bind "{run}" /run/pcscd && exec pcscd --foreground -c "{conf}"'
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=log, stderr=subprocess.STDOUT)

    def env(self) -> dict[str, str]:
        """The environment a client process needs to reach this pcscd."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket)}

    def wait_ready(self, timeout: float = 20) -> None:
        from smartcard.System import readers

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"pcscd exited ({self.process.returncode}): "
                                     f"{self.log.read_text(errors='replace')[-800:]}")
            if not self.socket.exists():
                return False
            try:
                return READER in [str(r) for r in readers()]
            except Exception:   # the context fails until pcscd listens
                return False

        wait_for(ready, timeout, "pcscd to list the vpcd readers")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
