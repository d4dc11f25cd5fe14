"""`printstation broker-permissions | declare-shared`: the broker side's set-up, for the
administrators who create station users and the shared topology.
"""

from __future__ import annotations

import argparse
from typing import Any

from printstation.agent.surfaces.cliargs import load, settings_flags


def cmd_permissions(args: argparse.Namespace) -> int:
    from printstation.agent.broker.permissions import rabbitmqctl_lines

    settings = load(args)
    for line in rabbitmqctl_lines(settings, args.vhost, args.user or settings.station_id):
        print(line)
    return 0


def cmd_declare_shared(args: argparse.Namespace) -> int:
    import pika

    from printstation.agent.broker.topology import TlsFiles, connection_parameters, declare_shared

    settings = load(args)
    conn = pika.BlockingConnection(connection_parameters(
        settings.broker_connection_url(), name="printstation-admin",
        tls=TlsFiles.of(settings)))
    try:
        declare_shared(conn, settings)
    finally:
        conn.close()
    print("declared the exchanges and the dead-letter queue of contract section 1")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("broker-permissions",
                       help="the rabbitmqctl lines that give a station its own broker user",
                       description="Print the rabbitmqctl lines that create this station's "
                       "broker user with exactly the permissions it needs (its own queues; "
                       "write on the event, hand-back and dead-letter exchanges, never on the "
                       "job exchange; read on the job and control exchanges; topic "
                       "permissions that keep its events in its own name).")
    p.add_argument("--vhost", default="/", help="the vhost (default /)")
    p.add_argument("--user", help="the user name (default: the station id)")
    settings_flags(p)
    p.set_defaults(func=cmd_permissions)

    p = sub.add_parser("declare-shared",
                       help="declare the exchanges and dead-letter queue (administrators)",
                       description="Declare, with an administrator's --broker-url, what all "
                       "stations share: the job, event, control, hand-back and dead-letter "
                       "exchanges, the dead-letter queue and the central system's hand-back "
                       "queue. Station users may not; their agents only check that these "
                       "exist.")
    settings_flags(p)
    p.set_defaults(func=cmd_declare_shared)
