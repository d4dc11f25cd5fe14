"""A three-node RabbitMQ cluster of the tests' own, on this one machine, beside the system broker.

Each node runs from RabbitMQ's own scripts (not the /usr/sbin wrappers, which switch to the
rabbitmq user and its cookie) with an environment of the fixture's own: a HOME holding the
cluster's Erlang cookie, its own config, env and plugins files (without them a node reads
/etc/rabbitmq and collides with the system broker), data, log and pid under one folder, and
free ports. epmd is shared with the system broker and is never stopped; teardown kills only
the pids in this cluster's pid files whose command line holds this cluster's HOME, then
removes the folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
SERVER = RABBITMQ_BIN / "rabbitmq-server"
CTL = RABBITMQ_BIN / "rabbitmqctl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why a cluster cannot be started here (with how to fix it), or None."""
    for tool in (SERVER, CTL):
        if not tool.exists():
            return (f"{tool} is missing: the cluster tier starts RabbitMQ nodes of its own; "
                    "install RabbitMQ (apt-get install rabbitmq-server)")
    return None


@dataclass
class Node:
    name: str  # rmq-a-<tag>@localhost
    port: int
    dist_port: int
    base: Path
    proc: subprocess.Popen | None = None

    @property
    def pid_file(self) -> Path:
        return self.base / "pid"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Cluster:
    """Three nodes, `a` `b` `c`, clustered; `url()` names them all, `node_url()` one."""

    def __init__(self, folder: Path, size: int = 3):
        self.folder = folder
        self.home = folder / "home"
        self.tag = uuid.uuid4().hex[:6]
        self.nodes = [Node(f"rmq-{letter}-{self.tag}@localhost", free_port(), free_port(),
                           folder / letter) for letter in "abc"[:size]]
        self.home.mkdir(parents=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)

    # ------------------------------------------------------------------ environment
    def _env(self, node: Node | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(HOME=str(self.home), ERL_EPMD_ADDRESS="127.0.0.1",
                   LANG="C.UTF-8", LC_ALL="C.UTF-8")
        if node is not None:
            conf = node.base / "rabbitmq.conf"
            env.update(
                RABBITMQ_NODENAME=node.name,
                RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                RABBITMQ_NODE_PORT=str(node.port),
                RABBITMQ_DIST_PORT=str(node.dist_port),
                RABBITMQ_CONF_ENV_FILE=str(node.base / "rabbitmq-env.conf"),
                RABBITMQ_CONFIG_FILE=str(conf),
                RABBITMQ_ADVANCED_CONFIG_FILE=str(node.base / "advanced.config"),
                RABBITMQ_ENABLED_PLUGINS_FILE=str(node.base / "enabled_plugins"),
                RABBITMQ_MNESIA_BASE=str(node.base / "mnesia"),
                RABBITMQ_LOG_BASE=str(node.base / "log"),
                RABBITMQ_PID_FILE=str(node.pid_file),
                RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            )
        return env

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        """rabbitmqctl against `node`; a failure raises naming the command and its error."""
        proc = subprocess.run([str(CTL), "-n", node.name, *args], env=self._env(),
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)} failed: "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}")
        return proc.stdout

    # ------------------------------------------------------------------ life
    def _boot(self, node: Node) -> None:
        node.base.mkdir(parents=True, exist_ok=True)
        (node.base / "rabbitmq-env.conf").write_text("")
        (node.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{node.port}\nloopback_users = none\n")
        (node.base / "enabled_plugins").write_text("[].\n")
        log = (node.base / "server.out").open("wb")
        node.proc = subprocess.Popen([str(SERVER)], env=self._env(node), stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()

    def _wait(self, node: Node) -> None:
        self.ctl(node, "wait", str(node.pid_file), "--timeout", "120", timeout=150)

    def start(self) -> None:
        """Boot the nodes in parallel, then join b and c to a one after the other."""
        for node in self.nodes:
            self._boot(node)
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self._wait, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
        running = self.ctl(first, "eval", "length(rabbit_nodes:all_running()).").strip()
        if running != str(len(self.nodes)):
            raise RuntimeError(f"the cluster runs {running} nodes, not {len(self.nodes)}")

    def kill(self, node: Node) -> None:
        """kill -9 one node (its Erlang VM), as a crashed machine would stop."""
        pid = self._own_pid(node)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
        if node.proc is not None:
            node.proc.wait(timeout=10)

    def freeze(self, node: Node) -> None:
        """SIGSTOP one node's Erlang VM: a hung machine, whose sockets stay open and say
        nothing, unlike a killed one whose peers see the connection close at once. `kill`
        ends it afterwards (SIGKILL works on a stopped process); resuming it instead would
        leave a partitioned node behind for the next test."""
        pid = self._own_pid(node)
        if pid is None:
            raise RuntimeError(f"{node.name} is not running: nothing to freeze")
        os.kill(pid, signal.SIGSTOP)

    def frozen(self, node: Node) -> bool:
        """Whether the node's VM is stopped by `freeze`."""
        pid = self._own_pid(node)
        try:
            return pid is not None and Path(f"/proc/{pid}/stat").read_text().split()[2] == "T"
        except OSError:
            return False

    def restart(self, node: Node) -> None:
        """Start a killed node again with its data; it rejoins the cluster by itself."""
        self._boot(node)
        self._wait(node)

    def _own_pid(self, node: Node) -> int | None:
        """The pid in the node's pid file, only if its command line holds this HOME."""
        try:
            pid = int(node.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        return pid if str(self.home) in cmdline else None

    def stop(self) -> None:
        """Kill this cluster's nodes (only those) and remove its folder."""
        for node in self.nodes:
            pid = self._own_pid(node)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                    _wait_gone(pid)
                except ProcessLookupError:
                    pass
            if node.proc is not None and node.proc.poll() is None:
                # The start script, should the VM never have written its pid file.
                os.killpg(node.proc.pid, signal.SIGKILL)
            if node.proc is not None:
                node.proc.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ addresses
    def url(self, vhost: str = "/", nodes: list[Node] | None = None) -> str:
        """broker_url naming the nodes (all, in order a b c, by default)."""
        from urllib.parse import quote

        v = quote(vhost, safe="")
        return ",".join(f"amqp://guest:guest@{n.address}/{v}" for n in nodes or self.nodes)

    def node_at(self, address: str) -> Node:
        return next(n for n in self.nodes if n.address == address)

    def leader(self, queue: str, vhost: str = "/") -> Node:
        """The node that leads a quorum queue now, asked of a live node."""
        for node in self.nodes:
            if self._own_pid(node) is None:
                continue
            out = self.ctl(node, "list_queues", "-q", "-p", vhost, "name", "leader")
            for line in out.splitlines():
                name, _, leader = line.partition("\t")
                if name == queue:
                    return next(n for n in self.nodes if n.name == leader.strip())
            raise AssertionError(f"queue {queue} is not in the cluster")
        raise AssertionError("no node of the cluster is running")

    def members(self, queue: str, vhost: str = "/") -> tuple[str, str]:
        """A quorum queue's members and those online, as rabbitmqctl lists them."""
        node = next(n for n in self.nodes if self._own_pid(n) is not None)
        out = self.ctl(node, "list_queues", "-q", "-p", vhost, "name", "members", "online")
        for line in out.splitlines():
            name, members, online = line.split("\t")
            if name == queue:
                return members, online
        raise AssertionError(f"queue {queue} is not in the cluster")


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return
        if state == "Z" or time.monotonic() > deadline:
            return
        time.sleep(0.01)
