"""JSON Schemas of every contract message and an AsyncAPI document of the topology.

Written by `printstation schema --out DIR` for the central system's developers, from the
same pydantic models the agent validates with and the same queue arguments it declares
(`broker.topology`), so the documents cannot drift from the code.

The document is AsyncAPI 3.0, not 2.x: in 2.x a channel's name *is* its AMQP routing key,
and the job and control channels share the routing key `station.{station_id}` (on two
exchanges), which a 2.x document cannot name twice. In 3.0 a channel has an id and an
`address`, so both channels carry the real routing key. Operation and message ids are the
keys of `operations` and `components.messages` (3.0 has no `operationId`/`messageId`
fields). Operations are the central system's: it sends jobs and commands and receives
what stations report; a station does the opposite of each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from printstation.agent import contract
from printstation.agent.broker.topology import queue_arguments
from printstation.agent.config import Settings

ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
SEVERITIES = ("info", "warning", "critical")

#: Every placeholder of an address, one name for the same thing everywhere.
PARAMETERS: dict[str, dict[str, Any]] = {
    "station_id": {"description": "The station's id: 1 to 64 characters of a-z 0-9 - _ "
                                  "(pattern ^[a-z0-9_\\-]{1,64}$).",
                   "examples": ["jakarta-pusat-01"]},
    "pool": {"description": "An office's pool: 1 to 64 characters of a-z 0-9 - _ "
                            "(pattern ^[a-z0-9_\\-]{1,64}$).",
             "examples": ["jakarta-pusat"]},
    "status": {"description": "The job's status, as in the message's `status`.",
               "enum": sorted(contract.JOB_STATUS_NAMES),
               "location": "$message.payload#/status"},
    "severity": {"description": "The alert's severity, as in the message's `severity`.",
                 "enum": list(SEVERITIES), "location": "$message.payload#/severity"},
}

#: message id -> (schema name, title, signed by the central system)
MESSAGES: dict[str, tuple[str, str, bool]] = {
    "job": (contract.JOB_SCHEMA, "A card to print", True),
    "control": (contract.CONTROL_SCHEMA, "A command to one station", True),
    "status": (contract.STATUS_SCHEMA, "A job's status; deduplicate on station_id + seq", False),
    "card": (contract.CARD_SCHEMA, "One blank that left the feeder", False),
    "telemetry": (contract.TELEMETRY_SCHEMA,
                  "Station state, at start, on change and at least every 30 s", False),
    "alert": (contract.ALERT_SCHEMA, "Raised once when a condition starts, once when it clears",
              False),
}


def json_schemas() -> dict[str, dict]:
    out = {}
    for schema_name, model in contract.ALL_MODELS.items():
        doc = model.model_json_schema(by_alias=True, mode="validation")
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["$id"] = schema_name
        out[schema_name] = doc
    return out


def _file_name(schema_name: str) -> str:
    return schema_name.replace("/", "-v") + ".schema.json"


def _placeholders(template: str) -> str:
    """A broker name template of the settings with the document's placeholder names."""
    return template.format(station="{station_id}", pool="{pool}")


def _params(address: str) -> dict[str, Any]:
    """A `parameters` object naming each `{placeholder}` of the address (AsyncAPI needs one)."""
    return {name: spec for name, spec in PARAMETERS.items() if f"{{{name}}}" in address}


def _messages(*ids: str) -> dict[str, Any]:
    return {m: {"$ref": f"#/components/messages/{m}"} for m in ids}


def _exchange(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"}


class _Builder:
    """The channels and operations, built from one station configuration's names."""

    def __init__(self, settings: Settings):
        self.names = settings.names
        self.arguments = queue_arguments(settings)
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}

    def routing_key(self, channel_id: str, address: str, exchange: dict[str, Any],
                    description: str, *messages: str) -> None:
        """A channel senders publish to: `address` is the routing key on `exchange`."""
        self.channels[channel_id] = {
            "address": address, "description": description, "messages": _messages(*messages),
            "parameters": _params(address),
            "bindings": {"amqp": {"is": "routingKey", "exchange": exchange,
                                  "bindingVersion": AMQP_BINDING_VERSION}},
        }

    def queue(self, channel_id: str, template: str, description: str, *messages: str) -> None:
        """A quorum queue, with the arguments exactly as the agent declares them."""
        address = _placeholders(template)
        self.channels[channel_id] = {
            "address": address,
            "description": description + " Arguments as the agent declares them; "
                           "`x-delivery-limit` is the station setting `delivery_limit` "
                           f"(here {self.arguments['x-delivery-limit']}). A queue cannot be "
                           "declared again with other arguments (PRECONDITION_FAILED), so "
                           "stations and the administrator's setup use the same values.",
            "messages": _messages(*messages), "parameters": _params(address),
            "bindings": {"amqp": {"is": "queue",
                                  "queue": {"name": address, "durable": True,
                                            "exclusive": False, "autoDelete": False,
                                            "vhost": "/", "x-arguments": dict(self.arguments)},
                                  "bindingVersion": AMQP_BINDING_VERSION}},
        }

    def operation(self, operation_id: str, action: str, channel_id: str,
                  description: str) -> None:
        channel = self.channels[channel_id]
        op: dict[str, Any] = {
            "action": action, "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": description,
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"}
                         for m in channel["messages"]],
        }
        if action == "send":  # contract 2: persistent, with confirms and `mandatory`
            op["bindings"] = {"amqp": {"deliveryMode": 2, "mandatory": True,
                                       "bindingVersion": AMQP_BINDING_VERSION}}
        else:
            op["bindings"] = {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}}
        self.operations[operation_id] = op


def asyncapi(settings: Settings | None = None) -> dict:
    """An AsyncAPI 3.0 description of contract section 1 for one configuration (defaults)."""
    s = settings or Settings(station_id="x", state_dir=Path("/nonexistent"))
    n = s.names
    b = _Builder(s)
    jobs = _exchange(n.job_exchange, "direct")
    events = _exchange(n.event_exchange, "topic")

    b.routing_key("stationJobs", "station.{station_id}", jobs,
                  f"Jobs for one station: routing key on {n.job_exchange}, queued in "
                  f"{_placeholders(n.station_queue)}.", "job")
    b.routing_key("poolJobs", "pool.{pool}", jobs,
                  f"Jobs any station of an office's pool may print: routing key on "
                  f"{n.job_exchange}, queued in {_placeholders(n.pool_queue)}.", "job")
    b.routing_key("control", "station.{station_id}", _exchange(n.control_exchange, "direct"),
                  f"Commands to one station: routing key on {n.control_exchange} (the same "
                  f"key as its jobs, on another exchange), queued in "
                  f"{_placeholders(n.control_queue)}.", "control")
    b.routing_key("status", "status.{station_id}.{status}", events,
                  "Job statuses; deduplicate on station_id + seq.", "status")
    b.routing_key("card", "card.{station_id}", events,
                  "One event for every blank that left the feeder.", "card")
    b.routing_key("telemetry", "telemetry.{station_id}", events,
                  "Station state, at start, on change and at least every 30 s.", "telemetry")
    b.routing_key("alert", "alert.{station_id}.{severity}", events,
                  "Raised once when a condition starts, once when it clears.", "alert")
    b.routing_key("handback", "pool.{pool}", _exchange(n.handback_exchange, "fanout"),
                  "A pool job a station took but could not start, with its signature "
                  "headers; the routing key names its pool. Queued in "
                  f"{n.handback_queue}.", "job")
    b.queue("stationQueue", n.station_queue,
            f"One station's job queue, bound to {n.job_exchange} with routing key "
            "station.{station_id}; only that station consumes it.", "job")
    b.queue("poolQueue", n.pool_queue,
            f"A pool's job queue, bound to {n.job_exchange} with routing key pool.{{pool}}; "
            "the pool's stations consume it (competing consumers).", "job")
    b.queue("controlQueue", n.control_queue,
            f"One station's command queue, bound to {n.control_exchange} with routing key "
            "station.{station_id}.", "control")
    b.queue("handbackQueue", n.handback_queue,
            f"Jobs stations handed back, bound to {n.handback_exchange}; only the central "
            "system consumes it and decides whether to send each to its pool again.", "job")
    b.queue("deadLetters", n.dead_queue,
            f"Dead letters: every queue here dead-letters to the fanout {n.dead_exchange}, "
            "bound to this queue; the broker's x-death header says from where.",
            "job", "control")

    b.operation("sendStationJob", "send", "stationJobs", "Send a signed job to one station.")
    b.operation("sendPoolJob", "send", "poolJobs", "Send a signed job to a pool's stations.")
    b.operation("sendControl", "send", "control", "Send a signed command to one station.")
    for kind in ("status", "card", "telemetry", "alert"):
        b.operation(f"receive{kind.title()}", "receive", kind,
                    f"Receive stations' {kind} events (bind a queue of your own to "
                    f"{n.event_exchange}).")
    b.operation("receiveHandback", "receive", "handbackQueue",
                "Receive the jobs stations handed back.")
    b.operation("receiveDeadLetter", "receive", "deadLetters",
                "Receive what no station could act on.")

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:printstation:station-contract:2",
        "info": {"title": "printstation station contract", "version": "2",
                 "description": "Jobs to ID-card print stations and their reports back "
                                "(docs/CONTRACT.md, version 2), as the central system sees "
                                "them: a station does the opposite of each operation. "
                                "Bodies are UTF-8 JSON, at most 16 MiB; jobs and control "
                                "commands are signed with Ed25519 (headers x-signature, "
                                "x-key-id). Every name is the default and configurable.",
                 "license": {"name": "Proprietary"},
                 "tags": [{"name": "printstation"}, {"name": "e-KTP"}]},
        "servers": {"broker": {
            "host": "{host}", "protocol": "amqp",
            "description": "The programme's RabbitMQ (amqps:// with TLS in production).",
            "variables": {"host": {"description": "host:port of the broker",
                                   "default": "127.0.0.1:5672"}}}},
        "defaultContentType": "application/json",
        "channels": b.channels,
        "operations": b.operations,
        "components": {"messages": {
            message_id: _message(message_id, schema_name, title, signed)
            for message_id, (schema_name, title, signed) in MESSAGES.items()}},
    }


def _message(message_id: str, schema_name: str, title: str, signed: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"name": message_id, "title": title,
                               "summary": f"schema {schema_name}",
                               "contentType": "application/json",
                               "payload": {"$ref": f"./{_file_name(schema_name)}"}}
    if signed:
        message["headers"] = _signature_headers()
    return message


def _signature_headers() -> dict:
    return {"type": "object", "required": ["x-signature", "x-key-id"],
            "properties": {"x-signature": {"type": "string",
                                           "description": "base64 Ed25519 signature of the body"},
                           "x-key-id": {"type": "string"}}}


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for schema_name, doc in json_schemas().items():
        path = out / _file_name(schema_name)
        path.write_text(json.dumps(doc, indent=2) + "\n")
        written.append(path)
    path = out / "asyncapi.json"
    path.write_text(json.dumps(asyncapi(), indent=2) + "\n")
    written.append(path)
    return written
