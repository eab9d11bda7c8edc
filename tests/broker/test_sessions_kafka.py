"""Sessions mode against the real broker: a backfill's log lines, a window with its labels topic read back, and
the topic checks a backfill makes (retention, the oldest timestamp accepted)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import producer
from tests.support import consume_all, evening_zone, run_producer

START = "2026-11-01T00:00:00Z"
DAY = 86_400_000


def test_backfill_to_kafka_logs_no_line_per_event_until_live(kafka, topic):
    """With the default LOG_EVENTS=auto, the backfill (thousands of events a second) is not logged
    event by event; once live (here at 2 events/s) every event is."""
    start = datetime.fromtimestamp(time.time() - 3600, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--mode", "sessions", "--seed", "3",
                       "--rate", "2", "--start-time", start, "--follow", "--duration", "12", "--timezone",
                       evening_zone())
    assert out.returncode == 0, out.stderr[-2000:]
    sent = out.summary["sent"]
    assert sent > 3000  # an hour at 2 events/s, then a few seconds live
    lines = out.stderr.splitlines()
    handover = next(i for i, line in enumerate(lines) if "following live" in line)
    assert not any("Event sent successfully" in line for line in lines[:handover])
    live = [line for line in lines[handover:] if "Event sent successfully" in line]
    assert 1 <= len(live) <= 60
    assert len(consume_all(kafka.bootstrap, topic, expected=sent)) == sent


def test_sessions_window_to_kafka_with_labels_topic(kafka, topic, tmp_path):
    """The labels topic is created as the events topic is (KAFKA_TOPIC_PARTITIONS: co-partitioned by user id), not
    left to the broker's automatic creation (its num.partitions is 3 here)."""
    from kafka.admin import KafkaAdminClient

    labels_topic = topic + "-labels"
    args = ("--mode", "sessions", "--seed", "6", "--start-time", START, "--end-time", "2026-11-01T12:00:00Z",
            "--user-id-range", "1-20000")
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--labels-topic", labels_topic,
                       "--topic-partitions", "2", *args)
    assert out.returncode == 0, out.stderr
    assert f"Created topic '{labels_topic}' with 2 partitions, replication factor 1\n" in out.stderr, out.stderr
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        described = admin.describe_topics([topic, labels_topic])
    finally:
        admin.close()
    assert {t["name"]: len(t["partitions"]) for t in described} == {topic: 2, labels_topic: 2}
    sent = out.summary["sent"]
    dry_labels = tmp_path / "labels.jsonl"
    dry = run_producer("--dry-run", *args, "--labels-file", str(dry_labels)).stdout.splitlines()
    assert sent == len(dry) > 1000
    records = consume_all(kafka.bootstrap, topic, expected=sent)
    assert sorted(r.value.decode() for r in records) == sorted(dry)
    for r in records:
        event = json.loads(r.value)
        assert r.timestamp == producer.iso_to_epoch_ms(event["timestamp"]) and r.key == str(event["user_id"]).encode()
    written = [json.loads(line) for line in dry_labels.read_text().splitlines()]
    labels = consume_all(kafka.bootstrap, labels_topic, expected=len(written))
    assert sorted(json.loads(r.value)["user_id"] for r in labels) == [row["user_id"] for row in written]
    assert set(range(1, 20001)) <= {row["user_id"] for row in written}


def test_backfill_checks_that_the_topic_keeps_and_accepts_old_records(kafka, topic):
    """Brokers judge retention and acceptance by the record timestamp: a backfill into a topic that
    would delete its events gets a warning; one into a topic that refuses them stops before sending. The truth
    topic, timestamped at simulated time too, gets the same: created keeping them, or a warning."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(topic + "-short", 1, 1, topic_configs={"retention.ms": str(DAY)}),
                             NewTopic(topic + "-short-truth", 1, 1, topic_configs={"retention.ms": str(DAY)}),
                             NewTopic(topic + "-strict", 1, 1,
                                      topic_configs={"message.timestamp.before.max.ms": str(DAY)})])
    finally:
        admin.close()
    start = datetime.fromtimestamp(time.time() - 3 * 86400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = ("--mode", "sessions", "--seed", "2", "--user-id-range", "1-100000", "--start-time", start, "--end-time",
              datetime.fromtimestamp(time.time() - 3 * 86400 + 600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    kept = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic + "-short", "--truth-topic",
                        topic + "-short-truth", *window)
    assert kept.returncode == 0, kept.stderr
    for name in ("-short", "-short-truth"):
        assert re.search(rf"WARNING - Topic '.*{name}' keeps records for 1 day \(retention.ms=86400000\).*will delete",
                         kept.stderr), kept.stderr
    assert f"python devkafka.py tool configs --bootstrap-server {kafka.bootstrap.split(',')[0]} --alter" in kept.stderr
    assert kept.summary["sent"] > 0

    refused = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic + "-strict", *window)
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "message.timestamp.before.max.ms=86400000" in errors[0], refused.stderr
    assert "Traceback" not in refused.stderr
    assert consume_all(kafka.bootstrap, topic + "-strict", timeout=5) == []

    fine = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--truth-topic", topic + "-truth",
                        *window)
    assert fine.returncode == 0 and "WARNING" not in fine.stderr, fine.stderr  # the topics it made keep the window
    assert "retention.ms=-1 (a backfill's history is kept)" in fine.stderr
    assert (f"Created topic '{topic}-truth' with 3 partitions, replication factor 1, retention.ms=-1 (a backfill's "
            "truth is kept)") in fine.stderr
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic + "-truth", ["retention.ms"])
        described = admin.describe_configs([resource])
    finally:
        admin.close()
    assert described["topic"][topic + "-truth"]["retention.ms"]["value"] == "-1"


def test_a_rerun_with_confluent_kafka_says_nothing_of_kafka_pythons_and_no_false_rate(kafka, topic):
    """A seeded window run twice with --client confluent-kafka: the rerun reads the topic's last events with
    kafka-python's consumer, whose own INFO lines (IO loop, bootstrap, transport) stay out; it rightly sends nothing,
    and no 0.00% success rate says otherwise (issue 31)."""
    args = ("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--client", "confluent-kafka", "--mode",
            "sessions", "--seed", "2", "--user-id-range", "1-300", "--start-time", START, "--end-time",
            "2026-11-03T00:00:00Z")
    first = run_producer(*args)
    assert first.returncode == 0 and first.summary["sent"] > 100, first.stderr[-2000:]
    rerun = run_producer(*args)
    assert rerun.returncode == 0 and rerun.summary["sent"] == 0, rerun.stderr[-2000:]
    assert f"already in topic '{topic}'" in rerun.stderr
    for noise in ("IO loop", "Bootstrap complete", "KafkaConnection", "KafkaTCPTransport", "metadata refresh"):
        assert noise not in first.stderr + rerun.stderr, noise
    assert "Success Rate: 0.00%" not in rerun.stderr and "Success Rate: - (nothing generated to send)" in rerun.stderr
