"""The system tier runs on the broker tier's fixtures: the same private vhost and agents."""

from tests.broker.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    broker_url,
    central_relay,
    events,
    make_station,
    raw_publish,
    submitter,
    vhost,
)
