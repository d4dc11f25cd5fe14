"""The print-station agent: takes signed jobs, prints cards, reports every status back.

Its parts, each a package that owns one side of the work:

    station   the core: the journal, the printer thread, consumables, intake, recovery,
              the station's state, telemetry and alerts, and the agent that wires them
    broker    RabbitMQ: the consumer and the publisher (one AMQP connection each), the
              reconnect policy, the topology, and the embedded source used without a broker
    surfaces  what people and tools see: the CLI, the control socket, the operator page,
              metrics, systemd, logs, the probe and the demo
    central   the central side's reference tools: submit, control, watch, fleet, keys,
              sample jobs, schemas
    contract  the station contract (docs/CONTRACT.md) as pydantic models
    config    the settings, and the broker password kept apart

The printer drivers (`printstation.drivers`) and the simulator (`printstation.simulator`)
are packages of their own beside this one.
"""

__version__ = "0.1.0"
