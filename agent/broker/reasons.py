"""What went wrong with the broker, in one line a person can act on, and whether one must.

pika hides the reason of a failed connection in a chain: a closed port is an
`AMQPConnectionError` whose text is empty (the `ConnectionRefusedError` sits in an
`AMQPConnectorSocketConnectError` in its args), an unknown host is a bare `socket.gaierror`,
a wrong password a `ProbableAuthenticationError` carrying the broker's `ACCESS_REFUSED`.
The agent's log and the central tools read that chain here, once, so both say the same
thing, and the agent knows which failures waiting will not cure (a refused login, a vhost
that does not exist, a right the broker user lacks): those need a person.

No text made here holds a password: it names the host, port, user and vhost only.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pika.exceptions
from pika.adapters.utils.connection_workflow import (
    AMQPConnectionWorkflowFailed,
    AMQPConnectorPhaseErrorBase,
    AMQPConnectorSocketConnectError,
    AMQPConnectorStackTimeout,
)

from printstation.agent.config.nodes import node_address, split_nodes
from printstation.drivers.errors import PrintstationError

ACCESS_REFUSED = 403
NOT_FOUND = 404

#: What a lost or unusable broker looks like from pika (and the sockets beneath it).
BROKER_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)


class BrokerUnusable(PrintstationError):
    """The broker could not be reached or refused what was asked; the message says why."""

    code = "broker_unusable"


@dataclass(frozen=True)
class BrokerProblem:
    #: One line, for a log or a terminal.
    text: str
    #: The broker refused this login or right: retrying cannot help until a person acts.
    refused: bool = False


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker URL points, without its password: for messages."""

    host: str
    port: int
    user: str
    vhost: str

    #: For a broker_url of several nodes, every node's `host:port`, as messages name them.
    nodes: tuple[str, ...] = ()

    @classmethod
    def of(cls, url: str | None) -> BrokerAddress | None:
        if not url:
            return None
        several = split_nodes(url)
        if len(several) > 1:
            first = cls.of(several[0])
            assert first is not None
            return cls(first.host, first.port, first.user, first.vhost,
                       tuple(node_address(node) for node in several))
        parts = urlsplit(url)
        try:
            port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        except ValueError:
            port = 0
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        return cls(parts.hostname or "localhost", port, unquote(parts.username or "guest"),
                   vhost)

    def __str__(self) -> str:
        if self.nodes:
            return f"any of the nodes {', '.join(self.nodes)}"
        return f"{self.host}:{self.port}"


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and those pika wrapped in it, outermost first; the last says what
    happened."""
    chain = [exc]
    while len(chain) < 10:
        if isinstance(exc, AMQPConnectionWorkflowFailed) and exc.exceptions:
            exc = exc.exceptions[-1]
        elif isinstance(exc, AMQPConnectorPhaseErrorBase) and exc.exception is not None:
            exc = exc.exception
        elif type(exc) is pika.exceptions.AMQPConnectionError and exc.args \
                and isinstance(exc.args[0], BaseException):
            exc = exc.args[0]
        else:
            break
        chain.append(exc)
    return chain


def _broker_said(exc: BaseException) -> str:
    """The broker's own reply ("ACCESS_REFUSED - Login was refused ..."), where pika kept it."""
    if isinstance(exc, (pika.exceptions.ConnectionClosed, pika.exceptions.ChannelClosed)):
        return str(exc.reply_text)
    text = " ".join(str(a) for a in exc.args)
    found = re.search(r"\(\d+\) '(.*)'", text)
    return found.group(1) if found else text


def explain(exc: BaseException, url: str | None = None) -> BrokerProblem:
    """One line saying what went wrong talking to the broker at `url` (its password is
    never shown), and whether a person must act before retrying can help."""
    at = BrokerAddress.of(url)
    where = f"the broker at {at}" if at else "the broker"
    user = f" as user {at.user!r}" if at else ""
    vhost = f" vhost {at.vhost!r}" if at else " the vhost"
    chain = causes(exc)
    root = chain[-1]
    E = pika.exceptions
    if isinstance(root, (E.ProbableAuthenticationError, E.AuthenticationError)):
        return BrokerProblem(f"{where} refused the login{user} (wrong password or no such "
                             f"user): {_broker_said(root)}", refused=True)
    if isinstance(root, E.ProbableAccessDeniedError):
        return BrokerProblem(f"{where} refused access to{vhost}{user} (no such vhost, or "
                             f"no permission there): {_broker_said(root)}", refused=True)
    if isinstance(root, E.ChannelClosedByBroker):
        said = _broker_said(root)
        if root.reply_code == ACCESS_REFUSED:
            return BrokerProblem(f"{where} refused{user} a right it needs: {said}",
                                 refused=True)
        if root.reply_code == NOT_FOUND and "no exchange" in root.reply_text:
            return BrokerProblem(f"{where}: {said}; the shared exchanges are declared by "
                                 "`printstation declare-shared` (an administrator) or by a "
                                 "station's agent when it first connects")
        return BrokerProblem(f"{where} closed the channel: {said}")
    if isinstance(root, E.ConnectionClosedByBroker):
        return BrokerProblem(f"{where} closed the connection: {_broker_said(root)}")
    if isinstance(root, socket.gaierror):
        host = repr(at.host) if at else "the broker's host"
        return BrokerProblem(f"cannot resolve the host {host}: {root.strerror or root} "
                             "(check the broker URL's host name and the DNS)")
    if isinstance(root, ConnectionRefusedError):
        return BrokerProblem(f"nothing accepts connections at {at or 'the broker'} "
                             "(connection refused): is RabbitMQ running there, on that port?")
    if isinstance(root, (TimeoutError, socket.timeout, AMQPConnectorStackTimeout)):
        return BrokerProblem(f"{where} did not answer in time (a firewall, the wrong host, or "
                             "the network is down)")
    if isinstance(root, ssl.SSLError):
        return BrokerProblem(f"TLS with {where} failed: {root.reason or root}")
    if isinstance(root, E.IncompatibleProtocolError):
        return BrokerProblem(f"{where} closed the connection before speaking AMQP (not "
                             "RabbitMQ's AMQP port, or it wants TLS: amqps://)")
    if isinstance(root, E.StreamLostError):
        return BrokerProblem(f"the connection to {where} was lost ({_broker_said(root)})")
    if isinstance(root, OSError):
        if any(isinstance(e, AMQPConnectorSocketConnectError) for e in chain):
            return BrokerProblem(f"cannot connect to {where}: {root.strerror or root}")
        return BrokerProblem(f"{type(root).__name__}: {root.strerror or root}")
    detail = str(root) or repr(root)
    name = type(root).__name__
    return BrokerProblem(f"{where}: {name}: {detail}" if name not in detail
                         else f"{where}: {detail}")


@contextmanager
def explained(url: str | None) -> Iterator[None]:
    """Whatever pika or the sockets raise in the block becomes `BrokerUnusable`, one line."""
    try:
        yield
    except BROKER_ERRORS as exc:
        raise BrokerUnusable(explain(exc, url).text) from None
