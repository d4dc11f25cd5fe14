"""Prometheus metrics and a health endpoint, read from the agent at scrape time.

A collector asks the agent when Prometheus asks (no loop of its own to keep figures fresh):
cards by outcome and reason, jobs held by state and ended by status, consumables, printer
and station state, the outbox backlog and the broker connections. `/healthz` answers 200
while the agent's loops move and 503 with what is wrong otherwise (the same check as the
systemd watchdog).

Counters (`*_total`) are the journal's lifetime counts (`journal/tally.py`): they never go
down, across restarts and pruning, so Prometheus never mistakes a prune for a reset. Every
label value comes from a closed set of codes (states, statuses, fault and reason codes,
consumable kinds, the printer's identity); never an operator's name or anything typed.

Both answer only a Host that names this server (as the operator page does): otherwise any
web page open on the station PC could read them through DNS rebinding. A Prometheus on
another machine (with `metrics_listen` on a network address) scrapes it by IP address.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from printstation.agent.station.journal.jobstate import LIVE
from printstation.agent.station.state import StationMode
from printstation.agent.surfaces.httpbase import Handler, LocalHTTPServer

if TYPE_CHECKING:
    from printstation.agent.station.view import StationView

STATES = tuple(StationMode)
PRINTER_STATES = ("ready", "busy", "fault", "offline")
#: The states of a job not yet ended, each always exported (0 when none).
HELD_STATES = tuple(sorted(state.value for state in LIVE))


class StationCollector(Collector):
    def __init__(self, view: StationView):
        self.view = view

    def collect(self) -> Iterator[Any]:
        a = self.view
        t = a.telemetry()
        info = InfoMetricFamily("printstation", "The agent and its printer")
        info.add_metric([], {"version": t["agent_version"], "station_id": a.station_id,
                             "driver": t["printer"]["driver"] or "",
                             "model": t["printer"]["model"] or "",
                             "serial": t["printer"]["serial"] or ""})
        yield info
        cards = CounterMetricFamily(
            "printstation_cards", "Blanks that left the feeder since the journal began, by "
            "outcome and reason code", labels=["outcome", "reason"])
        for (outcome, reason), n in sorted(a.card_outcomes().items()):
            cards.add_metric([outcome, reason], n)
        yield cards
        jobs = GaugeMetricFamily("printstation_jobs", "Jobs the station holds, by state",
                                 labels=["state"])
        held = a.jobs_by_state()
        for state in HELD_STATES:
            jobs.add_metric([state], held.get(state, 0))
        yield jobs
        ended = CounterMetricFamily("printstation_jobs_ended",
                                    "Jobs ended here since the journal began, by final status",
                                    labels=["status"])
        for status, n in a.jobs_ended().items():
            ended.add_metric([status], n)
        yield ended
        remaining = GaugeMetricFamily("printstation_consumable_remaining",
                                      "What is left of each consumable, in its unit",
                                      labels=["kind", "type", "unit", "source"])
        capacity = GaugeMetricFamily("printstation_consumable_capacity",
                                     "A full roll or the feeder, in the consumable's unit",
                                     labels=["kind", "type", "unit"])
        cards_left = GaugeMetricFamily("printstation_consumable_cards_left",
                                       "Cards each consumable still allows", labels=["kind"])
        for c in t["consumables"]:
            if c["remaining"] is not None:
                remaining.add_metric([c["kind"], c["type"] or "", c["unit"], c["source"]],
                                     c["remaining"])
            if c["capacity"] is not None:
                capacity.add_metric([c["kind"], c["type"] or "", c["unit"]], c["capacity"])
            if c["cards_left"] is not None:
                cards_left.add_metric([c["kind"]], c["cards_left"])
        yield from (remaining, capacity, cards_left)
        if t["cards_left"] is not None:
            yield GaugeMetricFamily("printstation_cards_left",
                                    "Cards before the first consumable runs out",
                                    value=t["cards_left"])
        state = GaugeMetricFamily("printstation_state", "The station's state (1 = current)",
                                  labels=["state"])
        for s in STATES:
            state.add_metric([s], 1.0 if t["state"] == s else 0.0)
        yield state
        printer = GaugeMetricFamily("printstation_printer_state",
                                    "The printer's state (1 = current)", labels=["state"])
        for s in PRINTER_STATES:
            printer.add_metric([s], 1.0 if t["printer"]["state"] == s else 0.0)
        yield printer
        faults = GaugeMetricFamily("printstation_printer_fault", "Active printer faults",
                                   labels=["fault"])
        for f in t["printer"]["faults"]:
            faults.add_metric([f], 1.0)
        yield faults
        yield GaugeMetricFamily("printstation_taking_jobs", "1 while pool jobs are taken",
                                value=1.0 if t["taking_jobs"] else 0.0)
        yield GaugeMetricFamily("printstation_queued_jobs", "Jobs held, waiting to print",
                                value=t["queued_jobs"])
        if t.get("held_jobs") is not None:
            yield GaugeMetricFamily("printstation_held_jobs",
                                    "Jobs held with their images (bounded by max_held_jobs)",
                                    value=t["held_jobs"])
            yield GaugeMetricFamily("printstation_max_held_jobs",
                                    "The most jobs held with their images before the rest "
                                    "wait at the broker", value=t["max_held_jobs"])
        if t.get("waiting_jobs") is not None:
            yield GaugeMetricFamily("printstation_waiting_jobs",
                                    "Jobs waiting for this station in its queue at the broker",
                                    value=t["waiting_jobs"])
        yield GaugeMetricFamily("printstation_outbox_backlog",
                                "Events stored and not yet confirmed by the broker",
                                value=a.backlog())
        broker = GaugeMetricFamily("printstation_broker_connected",
                                   "1 while each broker connection is up", labels=["connection"])
        for name, up in a.broker_connections().items():
            broker.add_metric([name], 1.0 if up else 0.0)
        yield broker
        alerts = GaugeMetricFamily("printstation_alerts_open", "Open alerts by severity",
                                   labels=["severity"])
        for severity in ("info", "warning", "critical"):
            alerts.add_metric([severity], sum(1 for x in t["alerts"]
                                              if x["severity"] == severity))
        yield alerts
        m = t["maintenance"]
        yield GaugeMetricFamily("printstation_cards_since_cleaning",
                                "Cards since the printer was last cleaned",
                                value=m["cards_since_cleaning"])


class MetricsHandler(Handler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if not self.host_ok():
            self.send_json(403, {"error": "ask for this server by its IP address or localhost"})
        elif path == "/metrics":
            self.send_body(200, generate_latest(self.server_registry()), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/health"):
            problems = self.view.health()
            self.send_json(503 if problems else 200,
                           {"healthy": not problems, "problems": problems,
                            "state": self.view.state()})
        else:
            self.send_json(404, {"error": "see /metrics and /healthz"})

    def server_registry(self) -> CollectorRegistry:
        registry = getattr(type(self), "_registry", None)
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(StationCollector(self.view))
            type(self)._registry = registry
        return registry


class MetricsServer(LocalHTTPServer):
    kind = "metrics"
    handler = MetricsHandler
