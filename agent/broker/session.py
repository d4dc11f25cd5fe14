"""One thread owning one AMQP connection, kept up by the reconnect policy.

The consumer and the publisher are each a `BrokerThread`: the thread reads the broker
password once (a password that cannot be had stops the agent naming the key; retrying
would not find it), then runs the subclass's `_session` under `run_with_reconnect`, which
owns the policy (backoff, knocking on a closed port, what counts as recovered). The
session itself only knows its own channel work, as in pika's asynchronous consumer
example, where the reconnect policy is kept apart from the consumer.

When the broker refuses the login, the thread reads the password again before the next
(slow) try, so a person who corrects the password file needs no restart, and tells the
agent (`on_refused`, set by it) so that it raises the alert a person must act on.
"""

from __future__ import annotations

from collections.abc import Callable

import pika
import structlog
from pydantic import SecretStr

from printstation.agent.broker.reconnect import run_with_reconnect
from printstation.agent.broker.topology import TlsFiles, connection_parameters
from printstation.agent.config import ConfigError, Settings
from printstation.agent.config.secrets import resolve_broker_password, with_password
from printstation.agent.station.components import ThreadedComponent

log = structlog.get_logger("printstation.broker")


class BrokerThread(ThreadedComponent):
    """The thread that is the one owner of one `pika.BlockingConnection`."""

    def __init__(self, settings: Settings, *, on_connected: Callable[[bool], None],
                 on_fatal: Callable[[BaseException], None]):
        super().__init__()
        self.settings = settings
        self.on_connected = on_connected
        self.on_fatal = on_fatal
        #: Told why the broker refuses this connection's login or rights (set by the agent).
        self.on_refused: Callable[[str], None] = lambda reason: None
        self._url = SecretStr("")
        self._password_stale = False
        #: broker_url's nodes, and the one the next connection tries first.
        self._nodes = settings.broker_nodes()
        self._first_node = 0
        #: `host:port` of the node this thread is connected to, or None.
        self.node: str | None = None
        self._node_index: int | None = None
        self._lost: str | None = None

    def _run(self) -> None:
        try:
            self._url = SecretStr(self.settings.broker_connection_url())
        except ConfigError as exc:
            self.on_fatal(exc)
            return
        self._before_connecting()
        run_with_reconnect(self.name, self._stop, self._session_on_a_node,
                           on_state=self.on_connected, on_fatal=self.on_fatal,
                           on_refused=self._refused,
                           max_delay=self.settings.reconnect_max_delay,
                           url=self.settings.broker_url, node=self._lost_node)

    def _session_on_a_node(self) -> None:
        """One session; when it ends in an error, the next connection begins with the node
        after the one it was on, so a dead node is tried last, not first, every time (on a
        network that drops packets, a dead node costs a whole connect timeout)."""
        self._node_index = None
        self._lost = None
        try:
            self._session()
        except BaseException:
            if self._node_index is not None:
                self._lost = self._nodes[self._node_index % len(self._nodes)]
                self._first_node = self._node_index + 1
            raise
        finally:
            self.node = None

    def _lost_node(self) -> str | None:
        """The URL (as configured) of the node a failed session was on, for its message;
        None when it never connected (every node was tried: the message names them all)."""
        return self._lost if len(self._nodes) > 1 else None

    def _refused(self, reason: str) -> None:
        """The broker refused us: say so, and read the password again before the next try."""
        self._password_stale = True
        self.on_refused(reason)

    def _fresh_password(self) -> None:
        """The password as it is now, after a refusal; if it cannot be read, the old one."""
        self._password_stale = False
        try:
            password, problem = resolve_broker_password(self.settings.broker_url,
                                                        self.settings.broker_password_file)
        except ConfigError as exc:
            password, problem = None, str(exc)
        if problem is not None:
            log.warning("broker_password_unreadable", owner=self.name, error=problem,
                        detail="the password read before is tried again")
        elif password is not None:
            self._url = SecretStr(with_password(self.settings.broker_url,
                                                password.get_secret_value()))

    def _before_connecting(self) -> None:
        """What must happen before the first connection; nothing by default."""

    def _connect(self) -> pika.BlockingConnection:
        """A new connection, named for this thread and station in the broker's UI."""
        if self._password_stale:
            self._fresh_password()
        params = connection_parameters(
            self._url.get_secret_value(), heartbeat=self.settings.heartbeat,
            name=f"printstation-{self.name}-{self.settings.station_id}",
            tls=TlsFiles.of(self.settings), start=self._first_node)
        conn = pika.BlockingConnection(params)
        # Which node answered: pika keeps the parameters it connected with.
        used = conn._impl.params
        tried = next((i for i, p in enumerate(params)
                      if (p.host, p.port) == (used.host, used.port)), 0)
        self._node_index = (self._first_node + tried) % len(params)
        self._first_node = self._node_index
        self.node = f"{used.host}:{used.port}"
        if len(params) > 1:
            log.info("broker_node", owner=self.name, node=self.node)
        return conn

    def _session(self) -> None:
        """One connection's life: open it, work until stopped or lost, close it."""
        raise NotImplementedError
