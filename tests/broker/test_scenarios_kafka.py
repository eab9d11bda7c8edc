"""What if… against the real broker, with each client: a scenarios run's events and truth read back (a duplicate is
its original's record, event_id header and all; a tracking outage's events are not in the topic); a scenario
started and stopped on demand in a live run."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone

import producer
from shopsim import parse_time
from tests.support import ProducerProcess, consume_all, evening_zone, free_port_block, run_producer, wait_until

SCENARIOS = """
[scenarios.payments-down]
kind = "payment_outage"
start = "+2d"
end = "+3d"

[scenarios.broken-tag]
kind = "tracking_outage"
start = "+1d"
end = "+2d"
share = 0.5

[scenarios.redelivered]
kind = "duplicates"
start = "+3d"
end = "+4d"
events = 0.05
"""
WINDOW = ("--mode", "sessions", "--seed", "5", "--user-id-range", "1-3000", "--start-time", "2026-03-02T00:00:00Z",
          "--end-time", "2026-03-08T00:00:00Z")
DAY = 86_400_000


def test_a_scenarios_run_to_kafka_reads_back_as_its_dry_run(kafka, topic, client, tmp_path):
    (tmp_path / "s.toml").write_text(SCENARIOS)
    truth_topic = topic + "-truth"
    args = (*WINDOW, "--scenarios", str(tmp_path / "s.toml"))
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--truth-topic",
                       truth_topic, *args)
    assert out.returncode == 0, out.stderr[-2000:]
    dry = run_producer("--dry-run", *args, "--truth-file", str(tmp_path / "truth"))
    records = consume_all(kafka.bootstrap, topic, expected=out.summary["sent"])
    assert sorted(r.value.decode() for r in records) == sorted(dry.stdout.splitlines())
    # a duplicate is its original again: the same key, value, timestamp and event_id header, next to it
    ids = Counter(dict(r.headers)[producer.EVENT_ID_HEADER] for r in records)
    copies = [r for r in records if ids[dict(r.headers)[producer.EVENT_ID_HEADER]] == 2]
    assert copies and not [i for i, n in ids.items() if n > 2]
    by_id: dict[bytes, set] = {}
    for r in copies:
        by_id.setdefault(dict(r.headers)[producer.EVENT_ID_HEADER], set()).add((r.key, r.value, r.timestamp))
    assert all(len(versions) == 1 for versions in by_id.values())
    start = parse_time("2026-03-02T00:00:00Z")
    assert all(start + 3 * DAY <= r.timestamp < start + 4 * DAY for r in copies)
    truth = [json.loads(r.value) for r in consume_all(kafka.bootstrap, truth_topic,
                                                      expected=len((tmp_path / "truth").read_text().splitlines()))]
    duplicated = sum(t.get("duplicated", 0) for t in truth if t["kind"] == "scenario_counts")
    assert duplicated == len(copies) // 2
    dropped = {t["user_id"] for t in truth if t["kind"] == "scenario_counts" and "dropped" in t}
    assert dropped and not [r for r in records if int(r.key) in dropped and start + DAY <= r.timestamp < start + 2 * DAY]
    assert {t["scenario"] for t in truth if t["kind"] == "scenario_started"} == \
        {"payments-down", "broken-tag", "redelivered"}
    assert not [r for r in records if json.loads(r.value)["event_type"] == "checkout"
                and start + 2 * DAY <= r.timestamp < start + 3 * DAY]


def test_a_scenario_started_and_stopped_on_demand_in_a_live_run(kafka, topic, tmp_path):
    """POST /scenarios/NAME/start, then /stop: the truth says when, and the events between are not in the topic."""
    (tmp_path / "s.toml").write_text('[scenarios.lost-tag]\nkind = "tracking_outage"\nstart = "on_demand"\n')
    port = free_port_block(1, 19400)
    truth_topic = topic + "-truth"
    hour_ago = datetime.fromtimestamp(time.time() - 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--truth-topic", truth_topic,
                          "--mode", "sessions", "--seed", "8", "--user-id-range", "1-200000", "--start-time", hour_ago,
                          "--follow", "--scenarios", str(tmp_path / "s.toml"), "--scenario-control-port", str(port),
                          "--stats-interval", "0.5", "--duration", "120", "--timezone", evening_zone())

    def post(action: str) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/scenarios/lost-tag/{action}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
    try:
        run.wait_until(lambda p: p["phase"] == "live", 60, "the backfill caught up")
        assert post("start") == (200, "scenario 'lost-tag' (tracking_outage): started\n")
        assert post("start")[0] == 409  # already started
        wait_until(lambda: sum(json.loads(r.value)["kind"] == "scenario_touched"
                               for r in consume_all(kafka.bootstrap, truth_topic, timeout=5)) >= 3, 60,
                   "three customers' events not tracked")
        assert post("stop") == (200, "scenario 'lost-tag' (tracking_outage): stopped\n")
        sent = run.progress()["sent"]
        run.wait_until(lambda p: p["sent"] >= sent + 3, 30, "events again")
    finally:
        run.proc.send_signal(2)
        code = run.finish(timeout=90)
    assert code == 0, run.text[-3000:]
    truth = [json.loads(r.value) for r in consume_all(kafka.bootstrap, truth_topic)]
    started = next(t for t in truth if t["kind"] == "scenario_started")
    ended = next(t for t in truth if t["kind"] == "scenario_ended")
    began, stopped = parse_time(started["time"]), parse_time(ended["time"])
    assert time.time() * 1000 - 120_000 < began < stopped
    records = consume_all(kafka.bootstrap, topic, expected=run.summary["sent"])
    assert not [r for r in records if began <= r.timestamp < stopped]  # share 1: nobody's events while it was on
    assert [r for r in records if r.timestamp >= stopped]
    dropped = sum(t["dropped"] for t in truth if t["kind"] == "scenario_counts")
    assert dropped >= 1


def test_workers_apply_the_scenarios_to_their_own_customers(kafka, topic, tmp_path):
    """--workers 2: each worker applies the scenarios to its shard's customers; the topic holds the one-process
    stream, and the merged truth file is the one-process truth."""
    (tmp_path / "s.toml").write_text(SCENARIOS)
    args = (*WINDOW, "--scenarios", str(tmp_path / "s.toml"))
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--workers", "2", "--truth-file",
                       str(tmp_path / "truth"), *args)
    assert out.returncode == 0, out.stderr[-2000:]
    dry = run_producer("--dry-run", *args, "--truth-file", str(tmp_path / "dry-truth"))
    records = consume_all(kafka.bootstrap, topic, expected=out.summary["sent"])
    assert sorted(r.value.decode() for r in records) == sorted(dry.stdout.splitlines())
    assert sorted((tmp_path / "truth").read_text().splitlines()) == \
        sorted((tmp_path / "dry-truth").read_text().splitlines())
