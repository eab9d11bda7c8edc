"""End to end against the real broker, with each client: events read back, partitions, codecs, shutdown, errors.

Run with `make test` or `make test-pure` (see docs/tests.md).
"""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime, timezone

import pytest

import producer
from tests.support import ProducerProcess, consume_all, run_producer, wait_for_progress
from producer import default_settings
from tests.subclasses import SearchingProducer, make_producer

NOW_MS = 1_705_314_645_123  # 2024-01-15T10:30:45.123Z


def test_bad_input_sends_nothing(kafka, topic):
    """A settings error exits 2 before any connection: the topic is never created."""
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--rate", "x")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_count_events_arrive_with_keys_values_timestamps_and_unique_ids(kafka, topic, client):
    n = 500
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--count", str(n),
                       "--interval", "0", "--seed", "8")
    assert out.returncode == 0, out.stderr
    assert f"Successfully connected to Kafka ({client}). Topic" in out.stderr and "has 3 partitions" in out.stderr
    assert out.summary["sent"] == n and out.summary["failed"] == 0 and out.summary["exit_reason"] == "count reached"
    records = consume_all(kafka.bootstrap, topic, expected=n)
    assert len(records) == n
    ids = set()
    for r in records:
        event = json.loads(r.value)
        assert r.key == str(event["user_id"]).encode()
        when = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert r.timestamp == round(when.timestamp() * 1000)
        headers = dict(r.headers)
        ids.add(headers[producer.EVENT_ID_HEADER])
    assert len(ids) == n
    # The same seed in dry-run mode gives the very same values (timestamps aside).
    dry = run_producer("--dry-run", "--count", str(n), "--interval", "0", "--seed", "8").stdout.splitlines()
    strip = lambda v: re.sub(r'"timestamp":"[^"]*"', "", v)  # noqa: E731
    by_partition_order = sorted(records, key=lambda r: (r.partition, r.offset))
    assert sorted(strip(r.value.decode()) for r in by_partition_order) == sorted(strip(line) for line in dry)


def test_a_users_events_share_one_partition_in_order(kafka, topic, client):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--count", "2000",
                       "--interval", "0", "--user-id-range", "1-20")
    assert out.returncode == 0, out.stderr
    records = consume_all(kafka.bootstrap, topic, expected=2000)
    partitions_of = {}
    for r in records:
        partitions_of.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) == 3  # keys spread over the partitions
    # Within a partition, a user's event ids follow the send order (the counter in the id).
    for key in partitions_of:
        seq = [int(dict(r.headers)["event_id"].split(b"-")[1]) for r in sorted(records, key=lambda r: r.offset)
               if r.key == key]
        assert seq == sorted(seq)


def test_a_user_lands_in_the_same_partition_with_either_client(kafka, topic):
    """murmur2 of the key over the partition count, as the Java client: a user's events stay in one partition
    whichever client wrote them."""
    from kafka.partitioner.default import murmur2

    placed = {}
    for client in ("kafka-python", "confluent-kafka"):
        name = f"{topic}-{client}"
        out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", name, "--count",
                           "1500", "--interval", "0", "--user-id-range", "1-300", "--seed", "4")
        assert out.returncode == 0, out.stderr[-2000:]
        placed[client] = {r.key: r.partition for r in consume_all(kafka.bootstrap, name, expected=1500)}
    assert len(placed["kafka-python"]) > 250 and placed["kafka-python"] == placed["confluent-kafka"]
    assert all(partition == (murmur2(key) & 0x7FFFFFFF) % 3 for key, partition in placed["confluent-kafka"].items())


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_compression_type_works(kafka, topic, codec, client):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--count", "300",
                       "--interval", "0", "--compression", codec)
    assert out.returncode == 0, out.stderr
    records = consume_all(kafka.bootstrap, topic, expected=300)
    assert len(records) == 300 and all(json.loads(r.value)["event_type"] for r in records)


def test_subclass_metadata_reaches_kafka(kafka, topic):
    p = SearchingProducer(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic, count=200, interval=0.0,
                                           log_file="", seed=2))
    assert p.connect()
    assert p.start_producing() == 0
    records = consume_all(kafka.bootstrap, topic, expected=200)
    values = [json.loads(r.value) for r in records]
    assert len(values) == 200
    assert {v["metadata"]["device"] for v in values} == {"mobile", "desktop"}
    assert any(v["event_type"] == "search" and v["metadata"]["query"] == "red shoes" for v in values)


def test_send_event_api_returns_true_and_the_event_arrives(kafka, topic):
    p = make_producer(bootstrap_servers=kafka.bootstrap, topic=topic, log_file="")
    assert p.connect() is True
    event = p.generate_event(NOW_MS)
    assert p.send_event(event) is True
    p.producer.flush(10)
    assert p.stats.acked == 1 and p.stats.in_flight == 0
    p.stop()
    (record,) = consume_all(kafka.bootstrap, topic, expected=1)
    assert json.loads(record.value) == event and record.timestamp == NOW_MS


def test_send_event_waits_for_the_broker_at_full_speed_settings_with_either_client(kafka, topic, client):
    """send_event() on settings where confluent-kafka counts acknowledgements (no report per success): True once
    the broker has the event, False when it refused it (a topic whose max.message.bytes no event fits)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(f"{topic}-small", 1, 1, topic_configs={"max.message.bytes": "100"})])
    admin.close()
    for name, expected in ((topic, True), (f"{topic}-small", False)):
        p = make_producer(bootstrap_servers=kafka.bootstrap, topic=name, log_file="", client=client, interval=0.0)
        assert p.connect() is True
        assert p.settings.acks_counted is (client == "confluent-kafka")
        assert p.send_event(p.generate_event(NOW_MS)) is expected
        assert (p.stats.acked, p.stats.failed) == ((1, 0) if expected else (0, 1))
        p.stop()
    assert len(consume_all(kafka.bootstrap, topic, expected=1)) == 1


def test_low_rate_logs_each_acknowledged_event_with_partition_and_offset(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--count", "3",
                       "--interval", "0.2")
    assert out.returncode == 0, out.stderr
    lines = re.findall(r"Event sent successfully - User: \d+, Event: \w+, Product: \d+, Session: [\d.]+min, "
                       r"Partition: \d, Offset: \d+", out.stderr)
    assert len(lines) == 3


def test_sigterm_mid_run_loses_no_acknowledged_event(kafka, topic, client):
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--rate", "300",
                          "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=300)  # the producer says more than 300 were acknowledged
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish(timeout=30) == 0, run.text[-2000:]
    finally:
        run.kill()
    assert "PRODUCER STATISTICS" in run.text
    sent = run.summary["sent"]
    assert sent > 300 and run.summary["exit_reason"] == "stopped"
    records = consume_all(kafka.bootstrap, topic, expected=sent, timeout=30)
    assert len(records) == sent
    assert len({dict(r.headers)["event_id"] for r in records}) == sent


def test_duration_ends_the_run_like_count(kafka, topic):
    started = time.monotonic()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--rate", "50", "--duration", "2")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 20
    sent = out.summary["sent"]
    assert 80 <= sent <= 110 and out.summary["exit_reason"] == "duration reached"  # 2 s at 50/s, the first at t=0
    assert len(consume_all(kafka.bootstrap, topic, expected=sent)) == sent


def test_back_pressure_at_an_unlimited_rate_is_no_warning(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--interval", "0", "--count",
                       "20000", "--max-in-flight", "50", "--client", "confluent-kafka")
    assert out.returncode == 0 and out.summary["sent"] == 20000, out.stderr[-2000:]
    paused = [line for line in out.stderr.splitlines() if "generation paused" in line]
    assert len(paused) == 1 and " - INFO - " in paused[0] and "sets the pace; said once" in paused[0], paused
    # (a fresh broker's first idempotent producer may hear "Coordinator load in progress": librdkafka's, not ours)
    assert not [line for line in out.stderr.splitlines() if " - WARNING - " in line and "librdkafka" not in line], \
        out.stderr[-2000:]


def test_topic_creation_refused_is_said_clearly(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--count", "1",
                       "--topic-replication", "3")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"Topic '{topic}' does not exist and creating it was refused" in out.stderr
    assert "replication factor" in out.stderr.lower() or "InvalidReplicationFactor" in out.stderr


def test_acks_0_says_sent_not_acknowledged_and_gives_no_success_rate(kafka, topic, client):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--client", client, "--acks", "0",
                       "--idempotence", "false", "--interval", "0", "--count", "300")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Events Sent: 300 (sent, not acknowledged: acks=0)" in out.stderr
    assert "Success Rate" not in out.stderr and "WARNING - --acks=0:" in out.stderr
    assert out.summary["sent_means"] == "sent, not acknowledged (acks=0)" and out.summary["acks"] == 0
    assert len(consume_all(kafka.bootstrap, topic, expected=300, timeout=30)) == 300


def test_records_the_broker_refuses_are_failed_and_only_the_rest_counted_sent(kafka, topic, client):
    """A topic whose max.message.bytes lets only the shorter events through (one record per batch): the broker
    refuses the others. Sent is what is in the topic, to the record, with either client, and with confluent-kafka
    at full speed too, whose acknowledgements are counted, not reported one by one (only failures are)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1, topic_configs={"max.message.bytes": "237"})])
    admin.close()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--client", client, "--interval", "0",
                       "--count", "500", "--seed", "1", "--batch-size", "1", "--linger-ms", "0", "--stats-interval",
                       "0")
    sent, failed = out.summary["sent"], out.summary["failed"]
    assert out.returncode == 1 and 0 < sent < 500 and sent + failed == 500, out.stderr[-2000:]
    assert re.search(r"Failures by error: (MSG_SIZE_TOO_LARGE|MessageSizeTooLargeError)=\d+$", out.stderr, re.M), \
        out.stderr[-2000:]
    assert len(consume_all(kafka.bootstrap, topic, expected=sent, timeout=30)) == sent


def test_an_existing_topic_with_other_partitions_gets_a_warning(kafka, topic):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--topic-partitions", "3",
                       "--count", "1", "--interval", "0")
    assert out.returncode == 0, out.stderr
    assert re.search(rf"WARNING - Topic '{topic}' exists with 1 partitions, not the 3 of KAFKA_TOPIC_PARTITIONS",
                     out.stderr), out.stderr
