"""Broker security: a station with only its own user's permissions; amqps with verification."""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import ssl
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from printstation.agent.broker.permissions import permissions, topic_permissions
from printstation.agent.broker.topology import TlsFiles, connection_parameters
from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap, HandbackRelay, Submitter
from printstation.agent.config import Settings
from tests.support import wait_for
from tests.support.broker import BROKER_HOST, BROKER_PORT, Events, rabbitmqctl


@pytest.fixture
def own_vhost():
    """A vhost of this test's own, its shared objects declared by an administrator."""
    name = f"printstation-perm-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


def _url(user: str, password: str, vhost: str) -> str:
    return f"amqp://{user}:{password}@{BROKER_HOST}:{BROKER_PORT}/{quote(vhost, safe='')}"


def _refused(url: str, action) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        action(conn.channel())
    except pika.exceptions.ChannelClosedByBroker as exc:
        return exc.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()
    return False


def test_a_station_runs_with_only_the_permissions_of_its_own_user(
        own_vhost, make_station, signing_key):
    from tests.support import KEY_ID, run

    station_id, pool = f"perm-{uuid.uuid4().hex[:8]}", f"pp-{uuid.uuid4().hex[:6]}"
    admin = _url("guest", "guest", own_vhost)
    setup = run("declare-shared", "--broker-url", admin)
    assert setup.returncode == 0, setup.stderr
    user, password = f"u-{station_id}", uuid.uuid4().hex
    rabbitmqctl("add_user", user, password)
    try:
        settings = Settings(station_id=station_id, pools=[pool])
        rabbitmqctl("set_permissions", "-p", own_vhost, user, *permissions(settings))
        rabbitmqctl("set_topic_permissions", "-p", own_vhost, user,
                    *topic_permissions(settings))
        mine = _url(user, password, own_vhost)
        station = make_station(station_id, broker_url=mine, pools=[pool],
                               sim="print_time=1.0&render=0")
        assert station.agent.fatal is None
        with EventTap(admin, binding="#") as tap, \
                Submitter(admin, key=signing_key, key_id=KEY_ID) as sub, \
                HandbackRelay(admin, user_for_station=lambda s: f"u-{s}") as central:
            events = Events(tap)
            a = sub.submit_job(sample_job(f"PERM-{station_id}-a").body, station=station_id)
            b = sub.submit_job(sample_job(f"PERM-{station_id}-b").body, pool=pool)
            c = sub.submit_job(sample_job(f"PERM-{station_id}-c").body, pool=pool)
            # c is claimed while another card prints; handed back, it goes to the central
            # system through printstation.handback, which this user may write.
            wait_for(lambda: station.agent.journal.jobs.known(c) == "queued", 30, "c claimed")
            assert station.agent.station.hand_back(c, "operator", "test") == [c]
            wait_for(lambda: [e for e in events.statuses(c) if e["status"] == "released"], 30,
                     "c released")
            assert wait_for(central.relay, 30, "c at the central system") == [c]
            finals = events.wait_final([a, b, c])
        assert {f["status"] for f in finals.values()} == {"printed"}
        # What a hand-back publishes is allowed; what belongs to others is not: a station
        # login cannot put a job in front of any station or pool (contract 1, v2).
        assert not _refused(mine, lambda ch: ch.basic_publish(
            "printstation.handback", f"pool.{pool}", b"{}",
            pika.BasicProperties(delivery_mode=2)) or ch.basic_qos(prefetch_count=1))
        for key in (f"station.{station_id}", f"pool.{pool}", "station.someone-else"):
            assert _refused(mine, lambda ch, key=key: ch.basic_publish(
                "printstation.jobs", key, b"{}",
                pika.BasicProperties(delivery_mode=2)) or ch.basic_qos(prefetch_count=1)), key
        # Events only in its own name: another station's `printed` or `released` is refused.
        assert not _refused(mine, lambda ch: ch.basic_publish(
            "printstation.events", f"status.{station_id}.printed", b"{}") or
            ch.basic_qos(prefetch_count=1))
        for key in ("status.someone-else.released", "card.someone-else",
                    f"status.{station_id}x.printed", "telemetry.someone-else"):
            assert _refused(mine, lambda ch, key=key: ch.basic_publish(
                "printstation.events", key, b"{}") or ch.basic_qos(prefetch_count=1)), key
        other = f"printstation.station.someone-else-{uuid.uuid4().hex[:4]}"
        pika.BlockingConnection(pika.URLParameters(admin)).channel().queue_declare(
            other, durable=True, arguments={"x-queue-type": "quorum",
                                            "x-dead-letter-exchange": "printstation.dead"})
        assert _refused(mine, lambda ch: ch.basic_get(other))
        assert _refused(mine, lambda ch: ch.queue_declare(f"printstation.station.x{station_id}"))
        assert _refused(mine, lambda ch: (ch.confirm_delivery(), ch.basic_publish(
            "printstation.control", f"station.{station_id}", b"{}")))
    finally:
        rabbitmqctl("delete_user", user)


def _certificates(folder: Path) -> None:
    """A CA and a server certificate for the name `localhost` only."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "printstation test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))


#: How pika reports a certificate it will not trust (the agent logs it and retries).
REFUSED = (pika.exceptions.AMQPConnectionError, ssl.SSLError)


@pytest.fixture
def tls_listener():
    """A TLS listener started on the running broker for this test, and stopped after it."""
    folder = Path(tempfile.mkdtemp(prefix="printstation-tls-"))
    os.chmod(folder, 0o755)  # the broker runs as its own user and must read these
    _certificates(folder)
    for f in folder.iterdir():
        os.chmod(f, 0o644)  # a throwaway test key, removed below
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listener = f'{{"127.0.0.1", {port}}}'
    rabbitmqctl("eval", f"rabbit_networking:start_ssl_listener({listener}, "
                        f'[{{certfile,"{folder}/server.pem"}},{{keyfile,"{folder}/server.key"}},'
                        f'{{cacertfile,"{folder}/ca.pem"}},{{verify,verify_none}},'
                        f"{{fail_if_no_peer_cert,false}}], 1).")
    yield port, folder / "ca.pem"
    rabbitmqctl("eval", f"rabbit_networking:stop_tcp_listener({listener}).")
    shutil.rmtree(folder)


def test_amqps_verifies_the_broker_certificate(tls_listener, vhost, make_station, submitter,
                                               events, station_id):
    port, ca = tls_listener
    url = f"amqps://guest:guest@localhost:{port}/{quote(vhost, safe='')}"
    station = make_station(station_id, broker_url=url, broker_ca_file=ca)
    job_id = submitter.submit_job(sample_job(f"TLS-{station_id}").body, station=station_id)
    assert events.wait_final([job_id])[job_id]["status"] == "printed"
    assert station.agent.fatal is None
    conn = pika.BlockingConnection(connection_parameters(url, tls=TlsFiles(ca_file=ca)))
    conn.close()
    # Not trusting the programme's CA, or a name the certificate does not carry: refused.
    with pytest.raises(REFUSED):
        pika.BlockingConnection(connection_parameters(url))
    wrong_name = url.replace("localhost", "127.0.0.1")
    with pytest.raises(REFUSED):
        pika.BlockingConnection(connection_parameters(wrong_name, tls=TlsFiles(ca_file=ca)))
