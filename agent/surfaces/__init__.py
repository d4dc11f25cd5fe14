"""What people and other programs see of the agent; none of it owns station state.

    cli             the `printstation` command, composed from each part's subcommands
    service_cli     `run`, `config`, `demo`, `probe`
    operator_cli    the operators' commands over the control socket, and `web`
    stock_cli       `load`, `stock`, `clean`, `ledger`
    control_socket  the running agent's local Unix socket (the CLI's way in)
    web             the operator's page on localhost (Indonesian first)
    metrics         Prometheus metrics and a health endpoint
    httpbase        the bounded local HTTP servers both are served by
    systemd         READY, STATUS and the watchdog
    logs            structlog JSON lines, never personal data
    probe, demo     a printer as the agent sees it; sample cards on the simulator
"""
