"""A second agent on the PC, with a state folder of its own, given the ports or the control
socket the first one serves on: it stops at start with one line naming the address and the
setting (exit 2), where it used to print on without its operator page, or took the first's
socket over. Two real `printstation run` processes on the in-process simulated printer; no
broker (a closed port stands in)."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import CLI, control_answers, host_port, run, wait_for

NO_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def station(tmp_path: Path, name: str) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f'station_id = "{name}"\nbroker_url = "{NO_BROKER}"\n'
                   f'printer_url = "sim://?render=0&out={tmp_path / ("cards-" + name)}"\n'
                   f'state_dir = "{tmp_path / ("state-" + name)}"\n')
    cfg.chmod(0o600)
    return cfg


def served(log: Path) -> dict[str, str]:
    """The addresses the agent logged it serves on: {"web": "127.0.0.1:PORT", ...}."""
    urls = {}
    for line in log.read_text().splitlines():
        if '"http_listening"' in line:
            event = json.loads(line)
            urls[event["what"]] = event["url"].removeprefix("http://").rstrip("/")
    return urls


def get(address: str, path: str) -> int:
    conn = http.client.HTTPConnection(*host_port(f"http://{address}"), timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_a_second_agent_on_the_same_port_stops_at_start_naming_it(tmp_path):
    first_cfg, second_cfg = station(tmp_path, "first"), station(tmp_path, "second")
    log = tmp_path / "first.log"
    with log.open("w") as out:
        first = subprocess.Popen([*CLI, "run", "--config", str(first_cfg),
                                  "--web-listen", "127.0.0.1:0",
                                  "--metrics-listen", "127.0.0.1:0"],
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        urls = wait_for(lambda: (u := served(log)).keys() == {"web", "metrics"} and u, 30,
                        "the first agent to serve its page and metrics")
        web, metrics = urls["web"], urls["metrics"]

        clash = run("run", "--config", str(second_cfg), "--web-listen", web,
                    "--metrics-listen", "127.0.0.1:0", timeout=30)
        assert clash.returncode == 2, clash.stderr
        assert clash.stderr.splitlines() == [
            f"printstation: config key web_listen: {web} is in use by another program "
            f'(another printstation agent on this PC?); give web_listen a free port, or "" '
            "to switch it off"]
        clash = run("run", "--config", str(second_cfg), "--web-listen", "",
                    "--metrics-listen", metrics, timeout=30)
        assert clash.returncode == 2, clash.stderr
        assert clash.stderr.splitlines() == [
            f"printstation: config key metrics_listen: {metrics} is in use by another "
            'program (another printstation agent on this PC?); give metrics_listen a free '
            'port, or "" to switch it off']
        # The second agent started nothing: no control socket was left for operators.
        assert not (tmp_path / "state-second" / "control.sock").exists()

        # The first is untouched: `printstation web` gives its operators a login link that
        # its page takes, and its metrics answer.
        link = run("web", "--print-url", "--config", str(first_cfg))
        assert link.returncode == 0, link.stderr
        assert link.stdout.startswith(f"http://{web}/?login=")
        assert get(web, link.stdout.strip().removeprefix(f"http://{web}")) == 303
        assert get(metrics, "/healthz") == 200
        assert first.poll() is None

        # On ports of its own the second agent runs beside it.
        with (tmp_path / "second.log").open("w") as out:
            second = subprocess.Popen([*CLI, "run", "--config", str(second_cfg),
                                       "--web-listen", "127.0.0.1:0",
                                       "--metrics-listen", ""],
                                      stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: control_answers(tmp_path / "state-second"), 30,
                     "the second agent on ports of its own")
            # The page is served just after the socket answers (Agent._start_http).
            urls = wait_for(lambda: served(tmp_path / "second.log"), 30, "its page served")
            assert urls.keys() == {"web"}
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0


def test_a_second_agent_given_the_same_control_socket_stops_at_start_and_leaves_it(tmp_path):
    """A copied instance file that keeps the first's control_socket: the second agent used
    to unlink the first's socket and take it over (the first's operators then reached the
    second, and the first, stopping, removed the second's). Now it stops, naming the key;
    a socket left by an agent that was killed is still taken over."""
    sock = tmp_path / "run" / "control.sock"

    def config(name: str) -> Path:
        cfg = station(tmp_path, name)
        text = cfg.read_text().replace("sim://?", f"sim://?serial=PRN-{name.upper()}&")
        cfg.write_text(text + f'control_socket = "{sock}"\nweb_listen = ""\n'
                       'metrics_listen = ""\n')
        return cfg

    def printer(cfg: Path) -> str:
        out = run("status", "--config", str(cfg), timeout=30)
        assert out.returncode == 0, out.stderr
        return next(line for line in out.stdout.splitlines() if line.startswith("printer"))

    first_cfg, second_cfg = config("first"), config("second")
    first = subprocess.Popen([*CLI, "run", "--config", str(first_cfg)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: control_answers(sock), 30, "the first agent's control socket")
        clash = run("run", "--config", str(second_cfg), timeout=30)
        assert clash.returncode == 2, clash.stderr
        assert clash.stderr.splitlines() == [
            f"printstation: config key control_socket: {sock} is answered by another "
            "program (another printstation agent on this PC?); give control_socket a path "
            "of its own"]
        assert "PRN-FIRST" in printer(first_cfg)  # still the first's, from either file
        assert first.poll() is None
        first.kill()  # no clean stop: the socket file stays, with nothing behind it
        first.wait(10)
        assert sock.is_socket() and not control_answers(sock)
        second = subprocess.Popen([*CLI, "run", "--config", str(second_cfg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: control_answers(sock), 30, "the second agent on the freed path")
            assert "PRN-SECOND" in printer(second_cfg)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
        assert not sock.exists()
    finally:
        first.kill()
        first.wait(10)


def test_a_control_socket_removes_only_its_own_path_at_stop(tmp_path):
    """In one process: a live socket is refused (SocketInUse) and keeps answering; a server
    whose path was taken by another (unlinked and bound again) leaves that one at stop."""
    from printstation.agent.surfaces.control_socket import LocalControlServer, SocketInUse, call

    path = tmp_path / "control.sock"
    first = LocalControlServer(path, {"status": lambda _r, _w: {"who": "first"}})
    first.start()
    try:
        with pytest.raises(SocketInUse):
            LocalControlServer(path, {}).claim()
        assert call(path, {"cmd": "status"})["who"] == "first"
        path.unlink()  # someone removes it by hand and starts another
        second = LocalControlServer(path, {"status": lambda _r, _w: {"who": "second"}})
        second.start()
        try:
            first.stop()
            assert call(path, {"cmd": "status"})["who"] == "second"
        finally:
            second.stop()
        assert not path.exists()
    finally:
        first.stop()


def test_a_control_socket_path_naming_another_file_leaves_that_file_alone(tmp_path):
    """A mistyped control_socket that names a file (the journal, say) stops the start; the
    file is never removed to make room for the socket."""
    from printstation.agent.surfaces.control_socket import LocalControlServer

    precious = tmp_path / "journal.sqlite3"
    precious.write_bytes(b"the books")
    with pytest.raises(FileExistsError):
        LocalControlServer(precious, {}).claim()
    assert precious.read_bytes() == b"the books"
