"""broker_url naming several cluster nodes: how it is written, checked, and connected to.

One form everywhere (file, environment, flag): whole URLs separated by commas, each with
the same scheme, user and vhost. Each problem is one line naming the node.
"""

from __future__ import annotations

import pytest

from printstation.agent.broker import reconnect
from printstation.agent.broker.reasons import BrokerAddress
from printstation.agent.broker.topology import connection_parameters, queue_arguments
from printstation.agent.config import ConfigError, load_settings, mask_url
from printstation.agent.config.nodes import rotated

THREE = ("amqps://st-1@rmq-1.example/%2F, amqps://st-1@rmq-2.example:5673/%2F,"
         "amqps://st-1@rmq-3.example/%2F")


#: Settings are read with none of the shell's PRINTSTATION_ variables (conftest.py).
pytestmark = pytest.mark.usefixtures("clean_env")


def password_file(tmp_path, text: str = "s3cret,with:comma\n"):
    path = tmp_path / "pw"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_several_nodes_are_read_in_order_from_file_environment_and_flag(tmp_path, monkeypatch):
    config = tmp_path / "p.toml"
    config.write_text(f'broker_url = "{THREE}"\n')
    pw = password_file(tmp_path)
    nodes = ["amqps://st-1@rmq-1.example/%2F", "amqps://st-1@rmq-2.example:5673/%2F",
             "amqps://st-1@rmq-3.example/%2F"]
    assert load_settings(config, broker_password_file=pw).broker_nodes() == nodes
    monkeypatch.setenv("PRINTSTATION_BROKER_URL", THREE)
    assert load_settings(broker_password_file=pw).broker_nodes() == nodes
    monkeypatch.delenv("PRINTSTATION_BROKER_URL")
    s = load_settings(broker_url=THREE, broker_password_file=pw)
    assert s.broker_url == ",".join(nodes)  # spaces after the commas dropped
    # One broker is a list of one: nothing changes for a station without a cluster.
    assert load_settings().broker_nodes() == ["amqp://guest:guest@127.0.0.1:5672/%2F"]


def test_the_password_from_its_file_goes_to_every_node(tmp_path):
    s = load_settings(broker_url=THREE, broker_password_file=password_file(tmp_path))
    params = connection_parameters(s.broker_connection_url())
    assert [(p.host, p.port) for p in params] == [
        ("rmq-1.example", 5671), ("rmq-2.example", 5673), ("rmq-3.example", 5671)]
    assert {(p.credentials.username, p.credentials.password) for p in params} == {
        ("st-1", "s3cret,with:comma")}  # a comma in the password does not split a node
    assert all(p.connection_attempts == 1 and p.retry_delay == 0 for p in params)


def test_the_nodes_are_tried_from_the_one_given_round_the_list():
    url = "amqp://u:p@a/%2F,amqp://u:p@b/%2F,amqp://u:p@c/%2F"
    assert [p.host for p in connection_parameters(url, start=1)] == ["b", "c", "a"]
    assert [p.host for p in connection_parameters(url, start=5)] == ["c", "a", "b"]
    assert rotated(["a"], 3) == ["a"]


def test_every_nodes_password_is_masked():
    url = "amqp://u:one@a/%2F,amqp://u:two@b/%2F"
    assert mask_url(url) == "amqp://u:***@a/%2F,amqp://u:***@b/%2F"


def test_a_toml_list_is_refused_in_one_line_saying_how_to_write_it(tmp_path):
    config = tmp_path / "p.toml"
    config.write_text('broker_url = ["amqp://a/%2F", "amqp://b/%2F"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    assert str(info.value).startswith(
        "config key broker_url: give several nodes as one string of URLs separated by commas")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("url", "lines"), [
    ("amqp://u:p@a/%2F,http://b/", ["must start with amqp:// or amqps://"]),
    ("amqp://u:p@a/%2F,,amqp://u:p@b/%2F", ["has an empty entry between commas"]),
    ("amqp://u:p@a/%2F,amqp://u:p@a:5672/%2F", ["node 2 (a:5672) is given twice"]),
    ("amqp://u:p@a/%2F,amqp://u:p@b:99999/%2F", ["node 2", "port"]),
    ("amqps://u@a/%2F,amqp://u@b/%2F", ["node 2 (b:5672) is amqp:// but node 1 is amqps://"]),
])
def test_a_bad_node_list_is_one_line_naming_the_problem(url, lines):
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url=url)
    message = str(info.value)
    assert message.startswith("config key broker_url: ") and "\n" not in message
    assert all(part in message for part in lines), message


def test_each_problem_with_the_nodes_is_a_line_of_its_own():
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url="amqp://u:p@a/v1,amqp://other:p@b/v2")
    assert info.value.problems == [
        "config key broker_url: node 2 (b:5672) names user 'other' but node 1 names 'u'; "
        "every node needs the same user",
        "config key broker_url: node 2 (b:5672) names vhost 'v2' but node 1 names 'v1'; "
        "every node needs the same vhost",
    ]


def test_messages_name_every_node_and_never_a_password():
    address = BrokerAddress.of("amqp://u:secret@a/%2F,amqp://u:secret@b:5673/%2F")
    assert str(address) == "any of the nodes a:5672, b:5673"
    assert address is not None and address.user == "u" and address.vhost == "/"


def test_with_several_nodes_a_lost_connection_is_retried_at_once_then_backed_off():
    one = reconnect.Backoff(0.5, 30)
    assert [one.next(), one.next()] == [0.5, 1.0]
    several = reconnect.Backoff(0.5, 30, immediate=True)
    assert [several.next(), several.next(), several.next()] == [0.0, 0.5, 1.0]
    several.reset()
    assert several.next() == 0.0


def test_the_replica_count_is_declared_only_when_set():
    assert "x-quorum-initial-group-size" not in queue_arguments(load_settings())
    args = queue_arguments(load_settings(quorum_group_size=3))
    assert args["x-quorum-initial-group-size"] == 3


def test_a_password_in_any_node_of_a_readable_config_is_warned_about(tmp_path):
    from printstation.agent.config import exposed_password_warning

    config = tmp_path / "p.toml"
    config.write_text('broker_url = "amqp://u@a/%2F, amqp://u:secret@b/%2F"\n')
    config.chmod(0o644)
    warning = exposed_password_warning(load_settings(config), config)
    assert warning is not None and "carries the broker password" in warning
    assert "secret" not in warning
