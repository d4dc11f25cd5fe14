"""The operator page's token: who can read it, its life with the agent, `printstation web`."""

from __future__ import annotations

import ctypes
import os
import subprocess

from tests.support import CLI


def _web(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "web", "--print-url", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env}, **kw)


def test_web_without_a_running_agent_exits_2_with_one_line(tmp_path):
    out = _web("--state-dir", str(tmp_path), env={"PRINTSTATION_WEB_LISTEN": "127.0.0.1:8470"})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("printstation: the agent is not running")
    assert len(out.stderr.strip().splitlines()) == 1
    off = _web("--state-dir", str(tmp_path), env={"PRINTSTATION_WEB_LISTEN": ""})
    assert off.returncode == 2 and "switched off" in off.stderr


def _as_a_plain_user() -> None:
    """In the child, before exec: lose root's power to read any file (the capabilities
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH leave the bounding set, so the new program
    never has them); a user who is not root has neither anyway."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_web_for_a_user_outside_the_agents_group_exits_2_saying_so(tmp_path):
    # The control socket as the agent leaves it: 0660, its owner and group not this user's.
    import socket as sockets

    path = tmp_path / "control.sock"
    listener = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        path.chmod(0o660)
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)  # nobody, nogroup
        else:
            path.chmod(0o000)  # as good as another user's, for one who cannot chown
        env = {"PRINTSTATION_CONTROL_SOCKET": str(path),
               "PRINTSTATION_WEB_LISTEN": "127.0.0.1:8470"}
        out = _web(env=env, preexec_fn=_as_a_plain_user)
    finally:
        listener.close()
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"printstation: permission denied on {path}: join the agent's group\n"
    assert out.stdout == ""
