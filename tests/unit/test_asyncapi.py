"""The AsyncAPI document `printstation schema` writes, read by the official AsyncAPI parser
(@asyncapi/parser under Node.js, as the central system's developers would read it) and
checked against the topology the agent really declares (broker.topology)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from printstation.agent.broker.topology import queue_arguments, queues
from printstation.agent.central.schema import PARAMETERS
from printstation.agent.config import Settings
from tests.support import REPO, run

#: Where `make system-deps` installs the parser with npm (a folder of the tests' own).
NODE_TOOLS = REPO / ".tools" / "node"
PARSER = NODE_TOOLS / "node_modules" / "@asyncapi" / "parser" / "package.json"
SCRIPT = REPO / "tests" / "support" / "node" / "asyncapi_parse.cjs"
INSTALL_NODE = ("the AsyncAPI test needs Node.js and npm: apt-get install -y nodejs npm, "
                "then make system-deps (which does both)")
INSTALL_PARSER = ("the AsyncAPI test needs the official parser: npm install --prefix "
                  ".tools/node @asyncapi/parser@3.6.6 (make system-deps does it)")
#: Severities of the parser's diagnostics (spectral): 0 error, 1 warning, 2 info, 3 hint.
ERROR, WARNING = 0, 1


def _parse(document: Path) -> dict:
    if not shutil.which("node"):
        pytest.fail(INSTALL_NODE, pytrace=False)
    if not PARSER.is_file():
        pytest.fail(INSTALL_PARSER, pytrace=False)
    out = subprocess.run(["node", str(SCRIPT), str(document), str(NODE_TOOLS)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documents as the command writes them (the JSON Schemas beside, for the $refs)."""
    out = tmp_path_factory.mktemp("schema")
    done = run("schema", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def api(written: Path) -> dict:
    return json.loads((written / "asyncapi.json").read_text())


def test_the_official_parser_accepts_the_document_without_errors_or_warnings(written):
    parsed = _parse(written / "asyncapi.json")
    problems = [d for d in parsed["diagnostics"] if d["severity"] in (ERROR, WARNING)]
    assert parsed["parsed"] and not problems, problems
    # What the parser understood: the central system's operations, each with its id, its
    # channel's real address (routing key or queue) and its messages' ids.
    ops = parsed["operations"]
    assert ops["sendStationJob"] == {"action": "send", "channels": ["station.{station_id}"],
                                     "messages": ["job"]}
    assert ops["sendControl"] == {"action": "send", "channels": ["station.{station_id}"],
                                  "messages": ["control"]}
    assert ops["sendPoolJob"]["channels"] == ["pool.{pool}"]
    assert ops["receiveStatus"]["channels"] == ["status.{station_id}.{status}"]
    assert ops["receiveHandback"]["channels"] == ["printstation.handback"]
    for channel in parsed["channels"].values():  # every placeholder has its parameter
        assert set(channel["parameters"]) == set(re.findall(r"{(\w+)}", channel["address"]))


def test_the_parser_reports_a_broken_document(written, api, tmp_path):
    """The check above can fail: a queue binding with a wrong type and an operation naming
    a message its channel does not carry are errors the parser reports."""
    broken = json.loads(json.dumps(api))
    broken["channels"]["stationQueue"]["bindings"]["amqp"]["queue"]["durable"] = "yes"
    broken["operations"]["sendControl"]["messages"] = [{"$ref": "#/components/messages/job"}]
    for path in written.iterdir():
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "asyncapi.json").write_text(json.dumps(broken))
    errors = {(d["code"], tuple(d["path"][:3])) for d in _parse(tmp_path / "asyncapi.json")
              ["diagnostics"] if d["severity"] == ERROR}
    assert ("asyncapi3-operation-messages-from-referred-channel",
            ("operations", "sendControl", "messages")) in errors
    assert any(path == ("channels", "stationQueue", "bindings") for _, path in errors), errors


def test_routing_keys_and_queues_are_the_ones_the_agent_declares(api):
    """Each queue's address, with the document's parameters filled in, is a queue the agent
    declares, and the routing key that reaches it is the one the agent binds."""
    settings = Settings(station_id="st-1", pools=["office-9"], state_dir=Path("/nonexistent"))
    declared = {spec.name: spec for spec in queues(settings)}
    values = {"station_id": "st-1", "pool": "office-9"}
    channels = api["channels"]
    reaches = {"stationJobs": "stationQueue", "poolJobs": "poolQueue",
               "control": "controlQueue", "handback": "handbackQueue"}
    for sender, queue in reaches.items():
        name = channels[queue]["address"].format(**values)
        spec = declared[name]
        binding = channels[sender]["bindings"]["amqp"]
        assert binding["exchange"]["name"] == spec.exchange, sender
        if binding["exchange"]["type"] != "fanout":  # a fanout binds with the empty key
            assert channels[sender]["address"].format(**values) == spec.routing_key, sender
    assert channels["control"]["address"] == "station.{station_id}"
    assert channels["control"]["bindings"]["amqp"]["exchange"]["name"] == "printstation.control"
    assert {channels[q]["address"].format(**values) for q in
            ("stationQueue", "poolQueue", "controlQueue", "handbackQueue", "deadLetters")} \
        == set(declared)


def test_queue_arguments_are_the_agents_own_values(api):
    """x-delivery-limit is the integer the agent declares (the `delivery_limit` setting,
    named in the description), never a text a broker would refuse."""
    expected = queue_arguments(Settings(station_id="x", state_dir=Path("/nonexistent")))
    for channel_id, channel in api["channels"].items():
        amqp = channel["bindings"]["amqp"]
        if amqp["is"] != "queue":
            continue
        assert amqp["queue"]["x-arguments"] == expected, channel_id
        assert isinstance(amqp["queue"]["x-arguments"]["x-delivery-limit"], int)
        assert "`delivery_limit`" in channel["description"], channel_id


def test_placeholders_have_one_name_each_everywhere(api):
    """`{station_id}` in routing keys and queue names alike, each with a parameters object."""
    for channel_id, channel in api["channels"].items():
        used = set(re.findall(r"{(\w+)}", channel["address"]))
        assert used <= set(PARAMETERS), (channel_id, used)
        assert set(channel["parameters"]) == used, channel_id
    text = json.dumps(api)
    assert "{station}" not in text and "{id}" not in text
