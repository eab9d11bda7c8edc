"""The original class's API against the real broker: the seed's test flow, both subclass styles, reruns.

Run with `make test` or `make test-pure` (see docs/tests.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

import producer
from tests.subclasses import BooksProducer, CampaignProducer, books, campaign
from tests.support import ROOT, consume_all
from producer import ECommerceEventProducer, default_settings

ORIGINAL_SCRIPT = """
import json, sys
from producer import ECommerceEventProducer

producer = ECommerceEventProducer()  # as the original script: no arguments, settings from the environment or .env
assert producer.connect(), "no connection"
event = producer.generate_event()
assert set(event) == {"user_id", "event_type", "timestamp", "metadata"}, event  # the script validated its events
assert producer.send_event(event) is True
producer.stop()
stats = producer.stats
print(json.dumps({"bootstrap": producer.bootstrap_servers, "topic": producer.topic,
                  "interval": producer.producer_interval, "event": event, "stats": dict(stats),
                  "has_sent": "events_sent" in stats, "keys": sorted(stats.keys()),
                  "mapping": isinstance(stats, __import__("collections.abc").abc.Mapping)}))
"""



def test_the_original_test_flow_works_unchanged(kafka, topic, caplog):
    """connect, generate_event, send_event, log_event_details, log_statistics, stop (twice): as the original
    script's test used them; attributes edited after construction take effect."""
    p = ECommerceEventProducer()
    p.bootstrap_servers, p.topic = kafka.bootstrap, topic
    assert p.connect()
    event = p.generate_event()
    with caplog.at_level("INFO", logger="producer"):
        assert p.send_event(event) is True  # acknowledged, not merely handed over
        p.log_event_details(event)
        p.log_statistics()
    assert p.stats["events_sent"] == 1 and p.stats["events_failed"] == 0
    assert p.stats["start_time"] <= time.time()
    assert f"User: {event['user_id']}" in caplog.text and "PRODUCER STATISTICS" in caplog.text
    p.stop()
    p.stop()
    records = consume_all(kafka.bootstrap, topic, expected=1)
    assert [json.loads(r.value) for r in records] == [event]


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_the_original_class_reads_its_settings_from_the_environment_or_dotenv(kafka, topic, tmp_path, where):
    """ECommerceEventProducer() with no arguments, as the original script built it, with the broker on a port
    other than 9092 and the topic given only by the environment, then only by ./.env."""
    settings = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "KAFKA_TOPIC": topic, "PRODUCER_INTERVAL": "0.5"}
    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in producer.OPTIONS} and k != "ENV_FILE"}
    env["PYTHONPATH"] = str(ROOT)
    if where == "environment":
        env.update(settings)
    else:
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    out = subprocess.run([sys.executable, "-c", ORIGINAL_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout)
    assert (seen["bootstrap"], seen["topic"], seen["interval"]) == (kafka.bootstrap, topic, 0.5)
    assert seen["has_sent"] and seen["mapping"] and seen["keys"] == ["events_failed", "events_sent", "start_time"]
    assert seen["stats"]["events_sent"] == 1 and seen["stats"]["events_failed"] == 0
    records = consume_all(kafka.bootstrap, topic, expected=1)
    assert [json.loads(r.value) for r in records] == [seen["event"]]


@pytest.mark.parametrize("cls, check", [(BooksProducer, books), (CampaignProducer, campaign)], ids=["whole", "extra"])
def test_both_subclass_styles_flow_into_kafka_and_dry_run(kafka, topic, cls, check, capsys):
    p = cls(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic, count=60, log_file="", seed=3))
    p.producer_interval = 0  # the original attribute, set after construction
    assert p.start_producing() == 0
    events = [json.loads(r.value) for r in consume_all(kafka.bootstrap, topic, expected=60)]
    assert len(events) == 60 and all(check(e) for e in events), events[:3]
    assert any(e["event_type"] == "checkout" for e in events)
    dry = cls(default_settings(dry_run=True, count=60, interval=0.0, log_file="", seed=3))
    assert dry.start_producing() == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 60 and all(check(e) for e in printed)


def test_a_second_run_on_the_same_instance_counts_its_own_failures(kafka, topic, caplog):
    """The shutdown flag and the failure-report counters belong to one run: a second run on the same instance
    counted every failure as dropped at shutdown and never reported it."""
    p = OversizeProducer(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic, count=3, interval=0.0,
                                          log_file=""))
    assert p.start_producing() == 1 and p.stats.failed == 3
    with caplog.at_level("ERROR", logger="producer"):
        p.settings = replace(p.settings, count=2)
        assert p.start_producing() == 1
    assert p.stats.failed == 2 and p.stats.dropped_at_shutdown == 0
    assert "2 events failed since the last report (2 in all)" in caplog.text


def test_the_topic_attribute_is_the_topic_created_and_written(kafka, topic):
    from kafka.admin import KafkaAdminClient

    p = ECommerceEventProducer(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic + "-unused",
                                                count=5, interval=0.0, log_file=""))
    p.topic = topic
    assert p.start_producing() == 0
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        topics = admin.list_topics()
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    assert topic + "-unused" not in topics
    assert len(described[0]["partitions"]) == 3  # created by the producer (KAFKA_TOPIC_PARTITIONS), not by the broker
    assert len(consume_all(kafka.bootstrap, topic, expected=5)) == 5


class OversizeProducer(ECommerceEventProducer):
    def _generate_metadata(self, event_type):
        return {"blob": "x" * 2_000_000}  # over the client's max_request_size: refused at send()
