"""The churn system this producer feeds (docs/churn-system.md): its consumer, as the original spec wrote it, pins
kafka-python's api_version=(0, 10, 1). Kafka 4.0 removed those protocol versions, so it reads from a 3.x broker:
`devkafka.py --kafka-version 3.9` (KAFKA_VERSION=3.9 for `make run`) starts one."""

from __future__ import annotations

import json

import pytest

import devkafka
from tests.support import consume_all, run_producer, start_broker, stop_broker, wait_until


@pytest.fixture(scope="module")
def kafka_3_9():
    broker = start_broker(".devkafka-test-3.9", kafka_version="3.9")
    try:
        yield broker
    finally:
        stop_broker(broker)


def test_the_broker_says_which_release_runs(kafka_3_9, capsys):
    assert kafka_3_9.info["kafka_version"] == devkafka.KAFKA_RELEASES["3.9"]
    assert devkafka.main(["--state-dir", str(kafka_3_9.state_dir), "--port", str(kafka_3_9.port), "status"]) == 0
    assert f"Kafka {devkafka.KAFKA_RELEASES['3.9']}" in capsys.readouterr().out


def test_a_consumer_pinned_to_old_protocol_versions_reads_every_event_from_a_kafka_3_9_broker(kafka_3_9, client,
                                                                                            topic):
    from kafka import KafkaConsumer

    run = run_producer("--bootstrap-servers", kafka_3_9.bootstrap, "--topic", topic, "--client", client,
                       "--count", "60", "--seed", "9", "--mode", "sessions", "--start-time", "2026-03-02",
                       "--end-time", "2026-03-09")
    assert run.returncode == 0, run.stderr
    assert run.summary["sent"] == 60
    # The spec's consumer: a group, subscribed, the protocol versions of Kafka 0.10.1; `earliest`, or a backfill
    # made before it started is skipped (docs/churn-system.md).
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_3_9.bootstrap, api_version=(0, 10, 1),
                             group_id=f"churn-{topic}", auto_offset_reset="earliest", consumer_timeout_ms=1000)
    got = []
    try:
        wait_until(lambda: got.extend(consumer) or len(got) >= 60, timeout=60, what="60 events read by the pinned consumer")
    finally:
        consumer.close()
    # The same events as a current client reads: every acknowledged one, once.
    assert sorted(r.value for r in got) == sorted(r.value for r in consume_all(kafka_3_9.bootstrap, topic, 60))
    assert {json.loads(r.value)["event_type"] for r in got} <= {"product_view", "add_to_cart", "checkout", "bounce"}


def test_a_release_asked_for_that_is_not_the_running_one_is_refused_not_swapped(kafka_3_9, capsys):
    args = ["--state-dir", str(kafka_3_9.state_dir), "--port", str(kafka_3_9.port)]
    assert devkafka.main([*args, "--kafka-version", "4.1", "up"]) == 1
    assert "is Kafka 3.9.1, not 4.1.1: stop it first" in capsys.readouterr().err
    assert devkafka.main([*args, "--kafka-version", "4.1", "ensure", f"localhost:{kafka_3_9.port}"]) == 1
    assert devkafka.main([*args, "ensure", f"localhost:{kafka_3_9.port}"]) == 0  # none asked: the running one
    assert devkafka.main([*args, "up"]) == 0 and "a Kafka broker (3.9.1) already answers" in capsys.readouterr().out


def test_the_default_release_is_the_poms_and_releases_are_named_or_refused_in_one_line():
    pom = (devkafka.POM).read_text()
    assert f"<kafka.version>{devkafka.DEFAULT_KAFKA_VERSION}</kafka.version>" in pom
    assert devkafka.kafka_version("3.9") == "3.9.1" and devkafka.kafka_version("4.1") == devkafka.DEFAULT_KAFKA_VERSION
    assert devkafka.kafka_version("3.9.2") == "3.9.2"
    for asked in ("2.8", "3.8.1", "latest", ""):
        with pytest.raises(devkafka.DevKafkaError, match="expected 4.1 or 3.9, or the full version"):
            devkafka.kafka_version(asked)
    # Another release keeps its data and jars apart from the default one's.
    inst = devkafka.make_instance(devkafka.DEFAULT_STATE_DIR, 9092, False, kafka_version="3.9.1")
    assert inst.data_dir.name == "data-3.9.1" and inst.lib.name == "lib-3.9.1"
    assert devkafka.make_instance(devkafka.DEFAULT_STATE_DIR, 9092, False).lib == devkafka.LIB
