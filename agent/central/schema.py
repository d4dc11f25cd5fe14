"""JSON Schemas of every contract message and an AsyncAPI document of the topology.

Written by `printstation schema --out DIR` for the central system's developers, from the
same pydantic models the agent validates with, so the documents cannot drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from printstation.agent import contract
from printstation.agent.broker.topology import queue_arguments
from printstation.agent.config import Names


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


def asyncapi(names: Names | None = None) -> dict:
    """An AsyncAPI 2.6 description of contract section 1 (the defaults, `{id}` per station)."""
    from printstation.agent.config import Settings

    n = names or Names()
    args = queue_arguments(Settings(station_id="x", state_dir=Path("/nonexistent")))
    args["x-delivery-limit"] = "configurable, default 20"

    def ref(schema_name: str) -> dict:
        return {"$ref": f"./{_file_name(schema_name)}"}

    def queue(name: str) -> dict:
        return {"name": name, "durable": True, "exclusive": False, "autoDelete": False,
                "vhost": "/", "x-arguments": args}

    def exchange(name: str, kind: str) -> dict:
        return {"name": name, "type": kind, "durable": True, "autoDelete": False, "vhost": "/"}

    return {
        "asyncapi": "2.6.0",
        "info": {"title": "printstation station contract", "version": "2",
                 "description": "Jobs to ID-card print stations and their reports back. "
                                "Bodies are UTF-8 JSON, at most 16 MiB; jobs and control "
                                "commands are signed with Ed25519 (headers x-signature, "
                                "x-key-id)."},
        "defaultContentType": "application/json",
        "channels": {
            "station.{station_id}": {
                "description": "Jobs for one station (routing key on the job exchange); "
                               f"queued in {n.station_queue.format(station='{station_id}')}.",
                "parameters": {"station_id": {"schema": {"type": "string",
                                                         "pattern": contract.NAME_PATTERN}}},
                "publish": {"message": {"name": "job", "payload": ref(contract.JOB_SCHEMA),
                                        "headers": _signature_headers()}},
                "bindings": {"amqp": {"is": "routingKey",
                                      "exchange": exchange(n.job_exchange, "direct"),
                                      "queue": queue(n.station_queue)}},
            },
            "pool.{pool}": {
                "description": "Jobs any station of an office's pool may print.",
                "parameters": {"pool": {"schema": {"type": "string",
                                                   "pattern": contract.NAME_PATTERN}}},
                "publish": {"message": {"name": "job", "payload": ref(contract.JOB_SCHEMA),
                                        "headers": _signature_headers()}},
                "bindings": {"amqp": {"is": "routingKey",
                                      "exchange": exchange(n.job_exchange, "direct"),
                                      "queue": queue(n.pool_queue)}},
            },
            "control.station.{station_id}": {
                "description": "Commands to one station: routing key station.{station_id} "
                               f"on {n.control_exchange}.",
                "parameters": {"station_id": {"schema": {"type": "string"}}},
                "publish": {"message": {"name": "control",
                                        "payload": ref(contract.CONTROL_SCHEMA),
                                        "headers": _signature_headers()}},
                "bindings": {"amqp": {"is": "routingKey",
                                      "exchange": exchange(n.control_exchange, "direct"),
                                      "queue": queue(n.control_queue)}},
            },
            **{
                key: {
                    "description": desc,
                    "subscribe": {"message": {"name": name, "payload": ref(schema)}},
                    "bindings": {"amqp": {"is": "routingKey",
                                          "exchange": exchange(n.event_exchange, "topic")}},
                }
                for key, name, schema, desc in [
                    ("status.{station_id}.{status}", "status", contract.STATUS_SCHEMA,
                     "Job status; deduplicate on station_id + seq."),
                    ("card.{station_id}", "card", contract.CARD_SCHEMA,
                     "One event for every blank that left the feeder."),
                    ("telemetry.{station_id}", "telemetry", contract.TELEMETRY_SCHEMA,
                     "Station state, at start, on change and at least every 30 s."),
                    ("alert.{station_id}.{severity}", "alert", contract.ALERT_SCHEMA,
                     "Raised once when a condition starts, once when it clears."),
                ]
            },
            "handback.pool.{pool}": {
                "description": "A pool job a station took but could not start, with its "
                               "signature headers, back to the central system (routing key "
                               f"pool.{{pool}} on the fanout {n.handback_exchange}), which "
                               "decides whether to send it to its pool again.",
                "parameters": {"pool": {"schema": {"type": "string",
                                                   "pattern": contract.NAME_PATTERN}}},
                "subscribe": {"message": {"name": "job", "payload": ref(contract.JOB_SCHEMA),
                                          "headers": _signature_headers()}},
                "bindings": {"amqp": {"is": "routingKey",
                                      "exchange": exchange(n.handback_exchange, "fanout"),
                                      "queue": queue(n.handback_queue)}},
            },
            n.dead_queue: {
                "description": "Dead letters: every queue above dead-letters here.",
                "bindings": {"amqp": {"is": "queue", "queue": queue(n.dead_queue),
                                      "exchange": exchange(n.dead_exchange, "fanout")}},
            },
        },
    }


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
