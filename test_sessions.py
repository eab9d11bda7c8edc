"""Sessions mode: a population with sessions, a funnel and churn; ground truth kept aside; simulated time,
backfill and follow; the churn signal is really there."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

import producer
from conftest import ROOT, consume_all, run_producer
from producer import DEFAULT_EVENT_WEIGHTS, SessionSimulator

START = "2026-11-01T00:00:00Z"
START_MS = 1_761_955_200_000  # START in epoch ms
DAY = 86_400_000


def simulate(days: float, seed: int = 1, users=(1, 1000), rate: float = 1 / 3, **kw):
    sim = SessionSimulator(weights=dict(DEFAULT_EVENT_WEIGHTS), segment_mix={"loyal": 0.3, "casual": 0.4,
                           "at_risk": 0.2, "churning": 0.1}, user_id_range=users, product_id_range=(1, 500),
                           session_length_range=(0.5, 30.0), events_per_second=rate, start_ms=START_MS, seed=seed,
                           **kw)
    out = []
    end = START_MS + days * DAY
    while sim.peek_ms() is not None and sim.peek_ms() < end:
        ms, key, value = sim.next_event()
        out.append((ms, key, value, json.loads(value)))
    return sim, out


@pytest.fixture(scope="module")
def week():
    return simulate(7)


def test_event_mix_over_a_simulated_week_is_within_5_points_of_the_weights(week):
    _, events = week
    counts = Counter(e["event_type"] for _, _, _, e in events)
    total = sum(counts.values())
    assert total > 150_000
    for kind, weight in DEFAULT_EVENT_WEIGHTS.items():
        assert abs(counts[kind] / total - weight) < 0.05, (kind, counts[kind] / total)


def test_every_checkout_follows_an_add_to_cart_in_the_same_session(week):
    _, events = week
    carted = set()
    checkouts = 0
    for _, _, _, e in events:
        sid = e["metadata"]["session_id"]
        if e["event_type"] == "add_to_cart":
            carted.add(sid)
        elif e["event_type"] == "checkout":
            checkouts += 1
            assert sid in carted, e
    assert checkouts > 10_000


def test_events_are_in_time_order_and_sessions_grow_within_range(week):
    _, events = week
    stamps = [ms for ms, _, _, _ in events]
    assert stamps == sorted(stamps)
    by_session = defaultdict(list)
    for ms, key, value, e in events:
        assert key == str(e["user_id"]).encode()
        assert value == producer.encode_event(e)  # the direct JSON is json.dumps's, byte for byte
        assert e["timestamp"] == producer.TimestampFormatter()(ms)
        by_session[e["metadata"]["session_id"]].append(e["metadata"]["session_length"])
        assert e["metadata"]["session_id"].startswith(f"{e['user_id']}-")
    lengths = [x for xs in by_session.values() for x in xs]
    assert min(lengths) == 0.5 and max(lengths) <= 30.0
    assert all(xs == sorted(xs) and xs[0] == 0.5 for xs in by_session.values())
    assert statistics.mean(len(xs) for xs in by_session.values()) > 2


def test_products_are_skewed_and_sessions_revolve_around_a_few(week):
    _, events = week
    views = Counter(e["metadata"]["product_id"] for _, _, _, e in events if e["event_type"] == "product_view")
    top = sum(n for _, n in views.most_common(50))  # the top 10% of 500 products
    assert top / sum(views.values()) > 0.4
    per_session = defaultdict(set)
    for _, _, _, e in events:
        per_session[e["metadata"]["session_id"]].add(e["metadata"]["product_id"])
    long_sessions = [p for p in per_session.values()]
    assert statistics.median(len(p) for p in long_sessions) <= 3


def test_churning_users_fade_then_send_nothing_after_their_churn_time():
    sim, events = simulate(21, seed=4)
    churners = {u.user_id: u for u in sim.users if u.segment == "churning"}
    assert churners and all(u.churn_ms is not None for u in churners.values())
    per_user = defaultdict(list)
    for ms, _, _, e in events:
        per_user[e["user_id"]].append((ms, e["event_type"]))
    early_sessions = late_sessions = early_bounces = late_bounces = 0
    for user_id, user in churners.items():
        mine = per_user[user_id]
        assert all(ms < user.churn_ms for ms, _ in mine), user_id
        half = START_MS + (user.churn_ms - START_MS) / 2
        early = [kind for ms, kind in mine if ms < half]
        late = [kind for ms, kind in mine if ms >= half]
        early_sessions += len(early)
        late_sessions += len(late)
        early_bounces += early.count("bounce")
        late_bounces += late.count("bounce")
    assert late_sessions < 0.8 * early_sessions  # rarer
    assert late_bounces / late_sessions > early_bounces / early_sessions  # more bounces
    others = [u for u in sim.users if u.segment != "churning"]
    assert all(u.churn_ms is None for u in others)


def test_users_who_stay_take_breaks_so_silence_alone_is_not_churn(week):
    """Users who do not churn sometimes go quiet for days (a break of 1-10 days) and come back: silence
    that activity alone would not explain (even the least active users start sessions daily)."""
    sim, events = week
    segment = {u.user_id: u.segment for u in sim.users}
    times = defaultdict(list)
    for ms, _, _, e in events:
        times[e["user_id"]].append(ms)
    longest_gap = {user: max((b - a for a, b in zip(t, t[1:])), default=0) for user, t in times.items()}
    staying = [u for u in times if segment[u] != "churning"]
    came_back = [u for u in staying if longest_gap[u] >= 3 * DAY]
    assert 0.02 * len(staying) < len(came_back) < 0.5 * len(staying), (len(came_back), len(staying))
    assert {segment[u] for u in came_back} == {"loyal", "casual", "at_risk"}
    # Breaks are budgeted in the rate: a week is within 10% of 1 event per 3 s (its first days are
    # busier than average, as at-risk and churning users decline over the following weeks).
    assert 0.9 * 7 * 28_800 < len(events) < 1.1 * 7 * 28_800


def test_labels_are_kept_aside_and_match_the_simulation(tmp_path):
    labels_file = tmp_path / "labels.jsonl"
    out = run_producer("--mode", "sessions", "--dry-run", "--seed", "3", "--start-time", START,
                       "--end-time", "2026-11-08T00:00:00Z", "--labels-file", str(labels_file), "--user-id-range",
                       "1-300")
    assert out.returncode == 0, out.stderr
    labels = [json.loads(line) for line in labels_file.read_text().splitlines()]
    assert [row["user_id"] for row in labels] == list(range(1, 301))
    assert set(labels[0]) == {"user_id", "segment", "churned", "churn_time"}
    assert {row["segment"] for row in labels} == {"loyal", "casual", "at_risk", "churning"}
    for row in labels:
        assert row["churned"] == (row["segment"] == "churning" and row["churn_time"] <= "2026-11-08T00:00:00.000Z")
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events and all(set(e) == {"user_id", "event_type", "timestamp", "metadata"} for e in events)
    assert not any("segment" in e["metadata"] or "churn" in json.dumps(e) for e in events)
    assert all(START <= e["timestamp"] < "2026-11-08T00:00:00Z" for e in events)


def test_same_seed_and_window_give_byte_identical_events():
    args = ("--mode", "sessions", "--dry-run", "--start-time", START, "--end-time", "2026-11-02T00:00:00Z")
    a = run_producer(*args, "--seed", "11").stdout
    b = run_producer(*args, "--seed", "11").stdout
    c = run_producer(*args, "--seed", "12").stdout
    assert a == b and len(a.splitlines()) > 20_000
    assert a != c


def test_churn_model_finds_the_signal_in_sessions_mode_and_not_in_random_mode(tmp_path):
    """14 simulated days, 1,000 users: ROC AUC >= 0.85 on held-out users; random mode about 0.5."""
    labels, events, noise = tmp_path / "labels.jsonl", tmp_path / "events.jsonl", tmp_path / "random.jsonl"
    with open(events, "w") as f:
        out = subprocess.run([sys.executable, "producer.py", "--mode", "sessions", "--dry-run", "--seed", "1",
                              "--start-time", START, "--end-time", "2026-11-15T00:00:00Z", "--labels-file",
                              str(labels), "--log-file", "", "--stats-interval", "0"], cwd=ROOT, stdout=f,
                             stderr=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    with open(noise, "w") as f:
        subprocess.run([sys.executable, "producer.py", "--dry-run", "--seed", "1", "--interval", "0", "--count",
                        "300000", "--log-file", ""], cwd=ROOT, stdout=f, stderr=subprocess.DEVNULL, check=True)
    auc = {}
    for name, path in (("sessions", events), ("random", noise)):
        result = subprocess.run([sys.executable, "examples/churn_model.py", "--events", str(path), "--labels",
                                 str(labels)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        auc[name] = float(re.search(r"ROC AUC on \d+ held-out users: ([\d.]+)", result.stdout).group(1))
    assert auc["sessions"] >= 0.85, auc
    assert 0.3 <= auc["random"] <= 0.7, auc


def test_backfill_then_follow_has_no_gap_no_burst_no_stall():
    """Ten minutes of history at 5 events/s, then live: the stream goes on at the same pace."""
    started = datetime.now(timezone.utc).timestamp()
    start = datetime.fromtimestamp(started - 600, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    proc = subprocess.Popen([sys.executable, "producer.py", "--mode", "sessions", "--dry-run", "--rate", "5",
                             "--start-time", start, "--follow", "--duration", "10", "--seed", "5", "--log-file", ""],
                            cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    arrivals = []  # (wall clock when read, event time)
    for line in proc.stdout:
        event = json.loads(line)
        when = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        arrivals.append((time.time(), when.timestamp()))
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, err
    assert "following live" in err
    stamps = [t for _, t in arrivals]
    assert stamps == sorted(stamps)
    backfill = [t for t in stamps if started - 120 <= t < started]  # after the window's ramp-up
    live = [(wall, t) for wall, t in arrivals if t >= started + 1]
    assert len(backfill) > 400 and len(live) > 25
    # No gap: event times run continuously through the hand-over.
    around = [t for t in stamps if started - 30 <= t <= started + 5]
    assert max(b - a for a, b in zip(around, around[1:])) < 4  # at 5/s a 4 s silence is a 1 in 10^8 event
    # No stall and no burst: live events come out when their time comes, not late and not early.
    lags = [wall - t for wall, t in live]
    assert max(lags) < 0.5 and min(lags) > -0.05, (min(lags), max(lags))
    live_rate = len(live) / (live[-1][1] - live[0][1])
    backfill_rate = len(backfill) / (backfill[-1] - backfill[0])
    assert 0.5 < live_rate / backfill_rate < 2


def test_backfill_to_kafka_logs_no_line_per_event_until_live(kafka, topic):
    """With the default LOG_EVENTS=auto, the backfill (thousands of events a second) is not logged
    event by event; once live (here at 2 events/s) every event is."""
    start = datetime.fromtimestamp(time.time() - 3600, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--mode", "sessions", "--seed", "3",
                       "--rate", "2", "--start-time", start, "--follow", "--duration", "6")
    assert out.returncode == 0, out.stderr[-2000:]
    sent = int(re.search(r"Events Sent: (\d+)", out.stderr).group(1))
    assert sent > 3000  # an hour at 2 events/s, then a few seconds live
    lines = out.stderr.splitlines()
    handover = next(i for i, line in enumerate(lines) if "following live" in line)
    assert not any("Event sent successfully" in line for line in lines[:handover])
    live = [line for line in lines[handover:] if "Event sent successfully" in line]
    assert 1 <= len(live) <= 30
    assert len(consume_all(kafka.bootstrap, topic, expected=sent)) == sent


def test_sessions_window_to_kafka_with_labels_topic(kafka, topic):
    labels_topic = topic + "-labels"
    args = ("--mode", "sessions", "--seed", "6", "--start-time", START, "--end-time", "2026-11-01T06:00:00Z",
            "--user-id-range", "1-400")
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--labels-topic", labels_topic, *args)
    assert out.returncode == 0, out.stderr
    sent = int(re.search(r"Events Sent: (\d+)", out.stderr).group(1))
    dry = run_producer("--dry-run", *args).stdout.splitlines()
    assert sent == len(dry) > 1000
    records = consume_all(kafka.bootstrap, topic, expected=sent)
    assert sorted(r.value.decode() for r in records) == sorted(dry)
    for r in records:
        event = json.loads(r.value)
        assert r.timestamp == producer.iso_to_epoch_ms(event["timestamp"]) and r.key == str(event["user_id"]).encode()
    labels = consume_all(kafka.bootstrap, labels_topic, expected=400)
    assert len(labels) == 400 and {json.loads(r.value)["user_id"] for r in labels} == set(range(1, 401))


def test_backfill_checks_that_the_topic_keeps_and_accepts_old_records(kafka, topic):
    """Brokers judge retention and acceptance by the record timestamp: a backfill into a topic that
    would delete its events gets a warning; one into a topic that refuses them stops before sending."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(topic + "-short", 1, 1, topic_configs={"retention.ms": str(DAY)}),
                             NewTopic(topic + "-strict", 1, 1,
                                      topic_configs={"message.timestamp.before.max.ms": str(DAY)})])
    finally:
        admin.close()
    start = datetime.fromtimestamp(time.time() - 3 * 86400, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    window = ("--mode", "sessions", "--seed", "2", "--user-id-range", "1-50", "--start-time", start, "--end-time",
              datetime.fromtimestamp(time.time() - 3 * 86400 + 600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    kept = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic + "-short", *window)
    assert kept.returncode == 0, kept.stderr
    assert re.search(r"WARNING - Topic '.*-short' keeps records for 1 day \(retention.ms=86400000\).*will delete",
                     kept.stderr), kept.stderr
    assert int(re.search(r"Events Sent: (\d+)", kept.stderr).group(1)) > 0

    refused = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic + "-strict", *window)
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "message.timestamp.before.max.ms=86400000" in errors[0], refused.stderr
    assert "Traceback" not in refused.stderr
    assert consume_all(kafka.bootstrap, topic + "-strict", timeout=5) == []

    fine = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, *window)
    assert fine.returncode == 0 and "retention.ms" not in fine.stderr, fine.stderr


SESSION_ERRORS = [
    (["--start-time", START, "--end-time", "2026-11-02T00:00:00Z"], "only used in sessions mode"),
    (["--mode", "sessions", "--start-time", "yesterday"], "ISO 8601"),
    (["--mode", "sessions", "--start-time", START], "needs END_TIME"),
    (["--mode", "sessions", "--end-time", START], "needs START_TIME"),
    (["--mode", "sessions", "--start-time", "2026-11-02T00:00:00Z", "--end-time", START], "must be after"),
    (["--mode", "sessions", "--start-time", START, "--follow", "--end-time", "2026-11-02T00:00:00Z"], "window ends now"),
    (["--mode", "sessions", "--follow"], "needs START_TIME"),
    (["--mode", "sessions", "--interval", "0"], "no meaning in sessions mode"),
    (["--mode", "sessions", "--event-weights", "product_view=1,search=1"], "models exactly"),
    (["--mode", "sessions", "--segment-mix", "loyal=1,vip=1"], "unknown segment 'vip'"),
    (["--mode", "chaos"], "random, sessions"),
    (["--mode", "sessions", "--rate", "1000", "--user-id-range", "1-10", "--start-time", START, "--end-time",
      "2026-11-02T00:00:00Z"], "can send at most"),
]


@pytest.mark.parametrize("argv, message", SESSION_ERRORS, ids=[m for _, m in SESSION_ERRORS])
def test_sessions_settings_errors_are_one_line_exit_2(argv, message, capsys):
    code = producer.main(argv + ["--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
