"""The broker permissions one station's own user needs (contract section 1), as regexes.

RabbitMQ grants configure, write and read per vhost as three regular expressions over
resource names. A station needs: configure, write and read on its own queues (its station
queue, its control queue, the pools it joins); write on the event and dead-letter
exchanges; read on the job and control exchanges (to bind its queues to them). A station
in a pool also needs write on the job exchange, to hand a job it cannot print back to the
pool (contract 7.1). The exchanges and the dead-letter queue are shared: an administrator
declares them once per vhost (`printstation declare-shared`); a station's agent only
checks that they exist.
"""

from __future__ import annotations

import re
import shlex

from .config import Settings


def _any(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"


def permissions(settings: Settings) -> tuple[str, str, str]:
    """(configure, write, read) for this station's user."""
    n = settings.names
    own = [settings.station_queue(), settings.control_queue(),
           *(settings.pool_queue(p) for p in settings.pools)]
    write = [*own, n.event_exchange, n.dead_exchange]
    if settings.pools:
        write.append(n.job_exchange)
    read = [*own, n.job_exchange, n.control_exchange]
    return _any(own), _any(write), _any(read)


def rabbitmqctl_lines(settings: Settings, vhost: str, user: str) -> list[str]:
    configure, write, read = permissions(settings)
    q = shlex.quote
    return [f"rabbitmqctl add_user {q(user)} 'a-long-random-password'",
            f"rabbitmqctl set_permissions -p {q(vhost)} {q(user)} {q(configure)} {q(write)} "
            f"{q(read)}"]
