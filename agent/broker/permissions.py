"""The broker permissions one station's own user needs (contract section 1), as regexes.

RabbitMQ grants configure, write and read per vhost as three regular expressions over
resource names. A station needs: configure, write and read on its own queues (its station
queue, its control queue, the pools it joins); write on the event, hand-back and
dead-letter exchanges; read on the job and control exchanges (to bind its queues to them).
It never needs write on the job exchange (contract 1, v2): a pool job it cannot print goes
back to the central system on the hand-back exchange, so no station login can put a job in
front of another station. The exchanges, the dead-letter queue and the hand-back queue are
shared: an administrator declares them once per vhost (`printstation declare-shared`); a
station's agent only checks that they exist. On the event exchange, a topic exchange, topic
permissions let a station publish only events under its own id (`topic_permissions`).
"""

from __future__ import annotations

import re
import shlex

from printstation.agent.config import Settings


def _any(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def permissions(settings: Settings) -> tuple[str, str, str]:
    """(configure, write, read) for this station's user."""
    n = settings.names
    own = [settings.station_queue(), settings.control_queue(),
           *(settings.pool_queue(p) for p in settings.pools)]
    write = [*own, n.event_exchange, n.handback_exchange, n.dead_exchange]
    read = [*own, n.job_exchange, n.control_exchange]
    return _any(own), _any(write), _any(read)


def topic_permissions(settings: Settings) -> tuple[str, str, str]:
    """(exchange, write, read) routing-key patterns on the topic event exchange.

    Events are not signed: without these, one station's login could publish `printed` or
    `released` in another station's name. With them it may publish only under its own id
    (`status.<id>.*`, `card.<id>`, `telemetry.<id>`, `alert.<id>.*`), and bind nothing.
    """
    sid = re.escape(settings.station_id)
    return (settings.names.event_exchange,
            rf"^(status\.{sid}\..+|card\.{sid}|telemetry\.{sid}|alert\.{sid}\..+)$", "^$")


def rabbitmqctl_lines(settings: Settings, vhost: str, user: str) -> list[str]:
    configure, write, read = permissions(settings)
    exchange, topic_write, topic_read = topic_permissions(settings)
    q = shlex.quote
    return [f"rabbitmqctl add_user {q(user)} 'a-long-random-password'",
            f"rabbitmqctl set_permissions -p {q(vhost)} {q(user)} {q(configure)} {q(write)} "
            f"{q(read)}",
            f"rabbitmqctl set_topic_permissions -p {q(vhost)} {q(user)} {q(exchange)} "
            f"{q(topic_write)} {q(topic_read)}"]
