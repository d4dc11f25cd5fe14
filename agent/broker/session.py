"""One thread owning one AMQP connection, kept up by the reconnect policy.

The consumer and the publisher are each a `BrokerThread`: the thread reads the broker
password once (a password that cannot be had stops the agent naming the key; retrying
would not find it), then runs the subclass's `_session` under `run_with_reconnect`, which
owns the policy (backoff, knocking on a closed port, what counts as recovered). The
session itself only knows its own channel work, as in pika's asynchronous consumer
example, where the reconnect policy is kept apart from the consumer.
"""

from __future__ import annotations

from collections.abc import Callable

import pika
from pydantic import SecretStr

from printstation.agent.broker.reconnect import run_with_reconnect
from printstation.agent.broker.topology import TlsFiles, connection_parameters
from printstation.agent.config import ConfigError, Settings
from printstation.agent.station.components import ThreadedComponent


class BrokerThread(ThreadedComponent):
    """The thread that is the one owner of one `pika.BlockingConnection`."""

    def __init__(self, settings: Settings, *, on_connected: Callable[[bool], None],
                 on_fatal: Callable[[BaseException], None]):
        super().__init__()
        self.settings = settings
        self.on_connected = on_connected
        self.on_fatal = on_fatal
        self._url = SecretStr("")

    def _run(self) -> None:
        try:
            self._url = SecretStr(self.settings.broker_connection_url())
        except ConfigError as exc:
            self.on_fatal(exc)
            return
        self._before_connecting()
        run_with_reconnect(self.name, self._stop, self._session,
                           on_state=self.on_connected, on_fatal=self.on_fatal,
                           max_delay=self.settings.reconnect_max_delay,
                           url=self.settings.broker_url)

    def _before_connecting(self) -> None:
        """What must happen before the first connection; nothing by default."""

    def _connect(self) -> pika.BlockingConnection:
        """A new connection, named for this thread and station in the broker's UI."""
        return pika.BlockingConnection(connection_parameters(
            self._url.get_secret_value(), heartbeat=self.settings.heartbeat,
            name=f"printstation-{self.name}-{self.settings.station_id}",
            tls=TlsFiles.of(self.settings)))

    def _session(self) -> None:
        """One connection's life: open it, work until stopped or lost, close it."""
        raise NotImplementedError
