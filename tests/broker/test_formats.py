"""VALUE_FORMAT avro and json-schema through a real Schema Registry (Apicurio, started by devkafka.py with its
Confluent-compatible API) and the real broker: the events read back with the matching deserializer equal the
JSON mode's for the same seed, under the topic's value subject and the registered schema id; an unreachable
registry, an incompatible subject and a bad schema file are refused clearly."""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import re
import ssl
import struct
import threading
import time
import urllib.error
import urllib.request

import pytest

import devkafka
from tests.support import ROOT, consume_all, event_seq, free_port_block, run_producer
from producer import iso_to_epoch_ms

STATE = ROOT / ".devkafka-test-registry"


@pytest.fixture(scope="module")
def registry() -> str:
    port = free_port_block(1, 28081)
    args = ["--state-dir", str(STATE), "registry"]
    assert devkafka.main(args + ["up", "--registry-port", str(port), "--timeout", "120"]) == 0
    try:
        yield f"http://127.0.0.1:{port}{devkafka.REGISTRY_API}"
    finally:
        devkafka.main(args + ["down", "--registry-port", str(port)])


class _GuardedRegistry(http.server.ThreadingHTTPServer):
    """A registry as Confluent Cloud serves one: HTTPS, with basic auth. A relay in front of the real one that
    refuses requests without the expected credentials (401, the registry's error body) and passes the others on."""

    def __init__(self, upstream: str, credentials: str, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.upstream = upstream
        self.expected = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.authorized = self.refused = 0


class _Relay(http.server.BaseHTTPRequestHandler):
    server: _GuardedRegistry

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        if self.headers.get("Authorization") != self.server.expected:
            self.server.refused += 1
            status, data, kind = 401, b'{"error_code": 401, "message": "Unauthorized"}', "application/json"
        else:
            self.server.authorized += 1
            request = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command,
                                             headers={"Content-Type": self.headers.get("Content-Type") or
                                                      "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    status, data, kind = reply.status, reply.read(), reply.headers.get("Content-Type")
            except urllib.error.HTTPError as refusal:
                status, data, kind = refusal.code, refusal.read(), refusal.headers.get("Content-Type")
        self.send_response(status)
        self.send_header("Content-Type", kind or "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _relay

    def log_message(self, *args) -> None:  # quiet: pytest shows what the tests assert
        pass


def self_signed_certificate(folder) -> tuple[str, str]:
    """(certificate, key) PEM files for localhost and 127.0.0.1, the certificate its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "registry.pem", folder / "registry-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


REGISTRY_USER, REGISTRY_SECRET = "churn-team", "s3cret-Registry-Key"


@pytest.fixture(scope="module")
def guarded_registry(registry, tmp_path_factory):
    """(URL, CA file, the relay) of the real registry behind HTTPS and basic auth."""
    cert_file, key_file = self_signed_certificate(tmp_path_factory.mktemp("registry-tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    upstream = registry[: -len(devkafka.REGISTRY_API)]
    server = _GuardedRegistry(upstream, f"{REGISTRY_USER}:{REGISTRY_SECRET}", context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}{devkafka.REGISTRY_API}", cert_file, server
    finally:
        server.shutdown()
        server.server_close()


def registry_client(url: str):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    return SchemaRegistryClient({"url": url})


def decode_all(url: str, value_format: str, records: list) -> list[dict]:
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = registry_client(url)
    if value_format == "avro":
        deserialize = AvroDeserializer(client)
    elif value_format == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf.json_format import MessageToDict

        from producer import protobuf_message_class

        messages = ProtobufDeserializer(protobuf_message_class(), {"use.deprecated.format": False})

        def deserialize(value, context):  # proto3's JSON mapping gives int64 as text: back to numbers
            event = MessageToDict(messages(value, context), preserving_proto_field_name=True)
            event["user_id"] = int(event["user_id"])
            event["metadata"]["product_id"] = int(event["metadata"]["product_id"])
            return event
    else:
        schema = (ROOT / "schemas" / "user_event.schema.json").read_text()
        deserialize = JSONDeserializer(schema, schema_registry_client=client)
    return [deserialize(r.value, SerializationContext(r.topic, MessageField.VALUE)) for r in records]


def without_nulls(event: dict) -> dict:
    """An event as JSON mode writes it: Avro gives the optional metadata fields a random event lacks as null."""
    return {**event, "metadata": {k: v for k, v in event["metadata"].items() if v is not None}}


def in_send_order(records: list) -> list:
    return sorted(records, key=event_seq)


@pytest.mark.parametrize("value_format, client", [("avro", "kafka-python"), ("protobuf", "kafka-python"),
                                                  ("json-schema", "kafka-python"), ("avro", "confluent-kafka")])
def test_events_read_back_through_the_registry_equal_the_json_events(kafka, registry, topic, value_format, client):
    n = 400
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--client", client, "--format",
                       value_format, "--schema-registry-url", registry, "--count", str(n), "--interval", "0",
                       "--seed", "11")
    assert out.returncode == 0, out.stderr[-3000:]
    said = re.search(r"Values in \S+, schema id (\d+) registered under subject '([^']+)'", out.stderr)
    assert said and said.group(2) == f"{topic}-value", out.stderr[-2000:]
    assert "HTTP Request" not in out.stderr  # the registry client's own INFO lines stay out of the log
    records = in_send_order(consume_all(kafka.bootstrap, topic, expected=n))
    assert len(records) == n
    # Confluent wire format: magic byte 0, then the schema id (big-endian) the subject's latest version has.
    latest = registry_client(registry).get_latest_version(f"{topic}-value")
    assert {r.value[0] for r in records} == {0}
    assert {struct.unpack(">I", r.value[1:5])[0] for r in records} == {latest.schema_id} == {int(said.group(1))}
    decoded = [without_nulls(e) for e in decode_all(registry, value_format, records)]
    dry = run_producer("--dry-run", "--count", str(n), "--seed", "11").stdout.splitlines()
    expected = [json.loads(line) for line in dry]
    strip = lambda e: {k: v for k, v in e.items() if k != "timestamp"}  # noqa: E731 - the clock differs
    assert [strip(e) for e in decoded] == [strip(e) for e in expected]
    assert all(iso_to_epoch_ms(e["timestamp"]) == r.timestamp for e, r in zip(decoded, records))


def test_a_sessions_window_in_avro_carries_the_sessions_fields(kafka, registry, topic):
    shop = ["--mode", "sessions", "--seed", "2", "--user-id-range", "1-300", "--start-time", "2026-11-01T00:00:00Z",
            "--end-time", "2026-11-04T00:00:00Z"]
    out = run_producer(*shop, "--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--format", "avro",
                       "--schema-registry-url", registry)
    assert out.returncode == 0, out.stderr[-3000:]
    expected = [json.loads(line) for line in run_producer(*shop, "--dry-run").stdout.splitlines()]
    records = in_send_order(consume_all(kafka.bootstrap, topic, expected=len(expected)))
    decoded = [without_nulls(e) for e in decode_all(registry, "avro", records)]
    assert decoded == expected  # simulated timestamps: every field equal
    assert any("order_value" in e["metadata"] for e in decoded)


def test_an_unreachable_registry_is_one_line_exit_1_within_the_connect_timeout(kafka, topic):
    port = free_port_block(1, 47000)
    started = time.monotonic()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--format", "avro",
                       "--schema-registry-url", f"http://127.0.0.1:{port}/apis/ccompat/v7", "--connect-timeout", "3",
                       "--count", "5")
    assert out.returncode == 1
    assert time.monotonic() - started < 3 + 10
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "Cannot reach the schema registry" in errors[0] and "SCHEMA_REGISTRY_URL" in errors[0]
    assert "Traceback" not in out.stderr and out.summary["generated"] == 0
    # the wait is said when it begins, once (it was 30 s of silence by default)
    waiting = [line for line in out.stderr.splitlines() if "does not answer yet" in line]
    assert len(waiting) == 1 and " - WARNING - " in waiting[0] and "retrying for up to 3s" in waiting[0], waiting
    assert out.stderr.index(waiting[0]) < out.stderr.index(errors[0])


def test_an_incompatible_subject_is_refused_before_anything_is_sent(kafka, registry, topic):
    subject = f"{topic}-value"
    other = {"type": "record", "name": "UserEvent", "namespace": "ecommerce.events",
             "fields": [{"name": "user_id", "type": "string"}, {"name": "source", "type": "string"}]}

    def call(method: str, path: str, body: dict) -> None:
        request = urllib.request.Request(f"{registry}{path}", data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200

    call("POST", f"/subjects/{subject}/versions", {"schema": json.dumps(other), "schemaType": "AVRO"})
    call("PUT", f"/config/{subject}", {"compatibility": "BACKWARD"})
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--format", "avro",
                       "--schema-registry-url", registry, "--count", "5", "--interval", "0")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "not compatible" in errors[0] and subject in errors[0], out.stderr[-2000:]
    assert out.summary["generated"] == 0


def test_a_registry_behind_https_and_basic_auth_takes_the_credentials_and_the_ca_file(kafka, registry, topic,
                                                                                       guarded_registry):
    url, ca_file, relay = guarded_registry
    before, refused_before = relay.authorized, relay.refused
    env = {"SCHEMA_REGISTRY_URL": url, "SCHEMA_REGISTRY_USERNAME": REGISTRY_USER,
           "SCHEMA_REGISTRY_PASSWORD": REGISTRY_SECRET, "SCHEMA_REGISTRY_CAFILE": ca_file}
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--format", "avro", "--count", "50",
                       "--interval", "0", "--seed", "4", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert relay.authorized > before and relay.refused == refused_before
    assert REGISTRY_SECRET not in out.stderr + out.stdout  # masked like the SASL password
    records = in_send_order(consume_all(kafka.bootstrap, topic, expected=50))
    decoded = decode_all(registry, "avro", records)  # the schema is the one registered through the relay
    assert [e["user_id"] for e in decoded] == [json.loads(line)["user_id"] for line in
                                               run_producer("--dry-run", "--count", "50", "--seed", "4").stdout.splitlines()]


def test_wrong_registry_credentials_are_one_line_exit_1_before_anything_is_sent(kafka, topic, guarded_registry):
    url, ca_file, relay = guarded_registry
    before = relay.refused
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--format", "avro", "--count", "5",
                       env={"SCHEMA_REGISTRY_URL": url, "SCHEMA_REGISTRY_USERNAME": REGISTRY_USER,
                            "SCHEMA_REGISTRY_PASSWORD": "not-the-key", "SCHEMA_REGISTRY_CAFILE": ca_file})
    assert out.returncode == 1 and relay.refused > before
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "refused the credentials (HTTP 401)" in errors[0], out.stderr[-2000:]
    assert "SCHEMA_REGISTRY_PASSWORD" in errors[0] and "not-the-key" not in out.stderr
    assert out.summary["generated"] == 0


def test_a_registry_certificate_not_trusted_is_one_line_naming_the_ca_setting(kafka, topic, guarded_registry):
    url, _, _ = guarded_registry
    started = time.monotonic()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--format", "avro", "--count", "5",
                       "--connect-timeout", "20", env={"SCHEMA_REGISTRY_URL": url, "SCHEMA_REGISTRY_USERNAME":
                                                       REGISTRY_USER, "SCHEMA_REGISTRY_PASSWORD": REGISTRY_SECRET})
    assert out.returncode == 1
    assert time.monotonic() - started < 15  # at once: waiting out the connect timeout would not make it trusted
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "SCHEMA_REGISTRY_CAFILE" in errors[0] and "certificate" in errors[0], out.stderr[-2000:]
    assert out.summary["generated"] == 0


def test_a_bad_schema_file_is_one_line_exit_2(tmp_path):
    broken = tmp_path / "broken.avsc"
    broken.write_text('{"type": "record", "name": "UserEvent", "fields": [{"name": "user_id"}]}')
    out = run_producer("--format", "avro", "--schema-file", str(broken), "--count", "1")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "--schema-file" in out.stderr and "not a valid avro schema" in out.stderr


def test_a_dry_run_in_avro_prints_the_json_and_says_so():
    out = run_producer("--dry-run", "--format", "avro", "--count", "3", "--seed", "1")
    assert out.returncode == 0, out.stderr
    plain = run_producer("--dry-run", "--count", "3", "--seed", "1").stdout
    strip = lambda text: [re.sub(r'"timestamp":"[^"]*"', "", line) for line in text.splitlines()]  # noqa: E731
    assert len(strip(out.stdout)) == 3 and strip(out.stdout) == strip(plain)
    assert "a dry run prints the events as JSON" in out.stderr
