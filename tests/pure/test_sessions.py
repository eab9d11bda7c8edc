"""Sessions mode: a population with sessions, a funnel and churn; ground truth kept aside; simulated time,
backfill and follow; the churn signal is really there."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

import producer
from tests.support import ROOT, producer_env, evening_zone, run_producer
from producer import SessionSimulator

START = "2026-11-01T00:00:00Z"
START_MS = 1_761_955_200_000  # START in epoch ms
DAY = 86_400_000
MIX = {"loyal": 0.3, "casual": 0.4, "at_risk": 0.2, "churning": 0.1}
sys.path.insert(0, str(ROOT / "examples"))


def simulate(days: float, seed: int = 1, users=(1, 10_000), **kw):
    """(simulator, [(ms, key, value, event)]) for a window of `days` from START."""
    sim = SessionSimulator(segment_mix=MIX, user_id_range=users, product_id_range=(1, 500),
                           session_length_range=(0.5, 30.0), start_ms=START_MS, seed=seed, **kw)
    end = START_MS + int(days * DAY)
    out = []
    while True:
        batch = sim.take(4096, end - 1)
        if not batch:
            break
        out.extend((ms, key, value, json.loads(value)) for ms, key, value in batch)
    return sim, out


@pytest.fixture(scope="module")
def month():
    """30 simulated days of 10,000 customers with the default settings: the scale of the published bands."""
    return simulate(30)


def test_a_simulated_month_is_inside_the_published_bands(month):
    """Issue 12's bands, measured from the events alone by the profile tool (the anchors are in README)."""
    import profile_stream

    _, events = month
    f = profile_stream.profile(e for _, _, _, e in events)
    assert 0.01 <= f["conversion"] <= 0.05, f["conversion"]
    assert 0.60 <= f["cart_abandonment"] <= 0.80, f["cart_abandonment"]
    assert 0.20 <= f["bounce"] <= 0.50, f["bounce"]
    assert 3 <= f["views_per_engaged_session"] <= 10 and f["views_p99"] >= 20, f
    assert 2 <= f["duration_median_min"] <= 10, f["duration_median_min"]
    assert 1 <= f["sessions_per_user_month_median"] <= 8, f["sessions_per_user_month_median"]
    assert f["top10_user_session_share"] >= 0.30, f["top10_user_session_share"]
    assert f["hourly_peak_to_trough"] >= 3 and f["weekend_vs_weekday"] >= 0.10, f
    assert f["orders_per_user_month"] < 1.5
    assert f["mix"]["product_view"] > 0.85 and f["mix"]["checkout"] < 0.02, f["mix"]


def test_no_warm_up_the_first_week_runs_at_the_pace_of_the_following_ones(month):
    """The population starts in its long-run state: week 1 within 5% of weeks 2-4 (the days in it differ by the
    weekly cycle and by chance only)."""
    _, events = month
    weeks = Counter((ms - START_MS) // (7 * DAY) for ms, _, _, _ in events)
    later = statistics.mean(weeks[w] for w in (1, 2, 3))
    assert abs(weeks[0] / later - 1) < 0.05, weeks
    days = Counter((ms - START_MS) // DAY for ms, _, _, _ in events)
    same_weekday = [days[d] for d in range(0, 28, 7)]
    assert abs(days[0] / statistics.mean(same_weekday) - 1) < 0.15, same_weekday


def _per_minute(start_ms: int, seed: int, warm: bool, minutes: int, users: int = 400_000) -> Counter:
    """Events per minute from noon on START's day, for `minutes` minutes, of a shop started at start_ms."""
    noon = START_MS + 12 * 3_600_000
    sim = SessionSimulator(segment_mix=MIX, user_id_range=(1, users), product_id_range=(1, 500),
                           session_length_range=(0.5, 30.0), start_ms=start_ms, seed=seed, warm_start=warm)
    return Counter((ms - noon) // 60_000 for ms, _, _ in sim.take(10**7, noon + minutes * 60_000 - 1) if ms >= noon)


@pytest.mark.slow
def test_a_warm_start_is_at_the_steady_pace_from_the_first_minute():
    """Live runs start warm (WARM_START=auto): the customers who would be mid-session are. Pooled over seeds, its
    minutes 1-3 are within 10% of its minutes 20-29 (the issue's measure); a cold start has less than two thirds of
    the pace in its first minutes: its sessions' later events lag for up to a session's maximum length (30
    minutes). (Against a shop that had run for an hour, the first ten minutes were within 10% too, by hand.)"""
    noon = START_MS + 12 * 3_600_000
    warm, cold = Counter(), Counter()
    for seed in (21, 22, 23):
        warm += _per_minute(noon, seed, True, 30)
        cold += _per_minute(noon, seed, False, 4)
    first = sum(warm[m] for m in (1, 2, 3)) / 3
    assert abs(first / (sum(warm[m] for m in range(20, 30)) / 10) - 1) < 0.10, warm
    assert sum(cold[m] for m in (1, 2, 3)) / 3 < 2 / 3 * first, (cold, warm)


@pytest.mark.slow
def test_a_live_run_starts_warm_with_sessions_under_way():
    """At a live start (auto), events of sessions begun before it come first: minutes into their session. A cold
    start's sessions all begin at or after it: no event is further into its session (SESSION_LENGTH_RANGE's least,
    0.5 minutes, at its first) than the time since the start allows; a window starts cold unless asked (its events
    are those of earlier releases)."""
    def first_sessions(*args: str, users: str = "1-100000") -> list[tuple[float, float]]:
        """(session_length, minutes since the window's start) of the first five events."""
        run = run_producer("--dry-run", "--mode", "sessions", "--user-id-range", users, "--count", "5",
                           "--timezone", evening_zone(), "--seed", "4", *args, timeout=120)
        assert run.returncode == 0, run.stderr
        events = [json.loads(line) for line in run.stdout.splitlines()]
        return [(e["metadata"]["session_length"], (_epoch_ms(e["timestamp"]) - WINDOW_MS) / 60_000) for e in events]

    assert max(length for length, _ in first_sessions(users="1-1000000")) > 2.0  # live: a large shop, five events
    window = ("--start-time", "2026-11-02T20:00:00Z", "--end-time", "2026-11-03T00:00:00Z")
    # (the time zone follows the hour CI runs at: the test must hold at a quiet hour of the shop's day as at a busy one)
    assert all(length <= 0.5 + since + 0.01 for length, since in first_sessions(*window))
    assert any(length > 0.5 + since + 0.01 for length, since in first_sessions(*window, "--warm-start", "on"))


WINDOW_MS = 1_793_649_600_000  # 2026-11-02T20:00:00Z


def _epoch_ms(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000


def test_every_checkout_follows_an_add_to_cart_and_carries_its_order_value(month):
    _, events = month
    carted: dict[str, list] = defaultdict(list)
    checkouts = 0
    for _, _, _, e in events:
        sid = e["metadata"]["session_id"]
        if e["event_type"] == "add_to_cart":
            carted[sid].append(e["metadata"]["product_id"])
        elif e["event_type"] == "checkout":
            checkouts += 1
            assert e["metadata"]["product_id"] in carted[sid], e
            assert e["metadata"]["items"] == len(carted[sid]) and e["metadata"]["order_value"] > 0, e
    assert checkouts > 500


def test_prices_are_stable_per_product_whatever_the_seed():
    a, b = simulate(0.1, seed=1, users=(1, 10)), simulate(0.1, seed=2, users=(1, 10))
    assert [a[0]._price(str(p)) for p in range(1, 50)] == [b[0]._price(str(p)) for p in range(1, 50)]
    assert len({a[0]._price(str(p)) for p in range(1, 50)}) > 40


def test_events_are_in_time_order_and_sessions_grow_within_range(month):
    _, events = month
    stamps = [ms for ms, _, _, _ in events]
    assert stamps == sorted(stamps)
    by_session = defaultdict(list)
    for ms, key, value, e in events[:50_000]:
        assert key == str(e["user_id"]).encode()
        assert value == producer.encode_event(e)  # the direct JSON is json.dumps's, byte for byte
        assert e["timestamp"] == producer.TimestampFormatter()(ms)
        by_session[e["metadata"]["session_id"]].append(e["metadata"]["session_length"])
        assert e["metadata"]["session_id"].startswith(f"{e['user_id']}-")
    lengths = [x for xs in by_session.values() for x in xs]
    assert min(lengths) == 0.5 and max(lengths) <= 30.0
    assert all(xs == sorted(xs) and xs[0] == 0.5 for xs in by_session.values())


def test_products_are_zipf_popular_with_a_setting_for_the_exponent(month):
    _, events = month
    views = Counter(e["metadata"]["product_id"] for _, _, _, e in events if e["event_type"] == "product_view")
    top = sum(n for _, n in views.most_common(50)) / sum(views.values())  # the top 10% of 500 products
    assert 0.55 < top < 0.8, top
    _, flat = simulate(7, users=(1, 3000), zipf_exponent=0.0)
    views = Counter(e["metadata"]["product_id"] for _, _, _, e in flat if e["event_type"] == "product_view")
    assert sum(n for _, n in views.most_common(50)) / sum(views.values()) < 0.2


def test_the_daily_cycle_follows_the_shop_time_zone():
    def busiest_utc_hour(tz):
        _, events = simulate(7, users=(1, 5000), timezone_name=tz)
        return Counter(ms // 3_600_000 % 24 for ms, _, _, _ in events).most_common(1)[0][0]

    assert busiest_utc_hour("UTC") in (19, 20, 21, 22)  # peak 8-10 pm local
    assert busiest_utc_hour("Asia/Tokyo") in (10, 11, 12, 13)  # the same local hours, 9 h earlier in UTC


def test_churn_is_a_process_in_every_segment_with_partial_churn_returns_and_arrivals():
    """90 days: users of every segment churn, at different times; some decline without churning (still active
    at a lower level); some who churned come back; new customers arrive with ids after the range."""
    sim, events = simulate(90, users=(1, 5000), seed=3)
    churned = [u for u in sim.users if any(START_MS <= c for c, _ in (u.episodes or ()))]
    assert {u.segment for u in churned} == set(producer.SEGMENTS)
    times = [c for u in churned for c, _ in u.episodes if c >= START_MS]
    assert max(times) - min(times) > 60 * DAY
    returned = [u for u in sim.users if any(b is not None for _, b in (u.episodes or ()))]
    assert returned
    arrivals = [u for u in sim.users if u.joined_ms is not None]
    assert arrivals and all(u.user_id > 5000 for u in arrivals)
    active = {e["user_id"] for _, _, _, e in events}
    assert {u.user_id for u in arrivals} & active
    # partial churn: declines that end without churning leave users active at a lower level
    assert sim.partial_declines > 0


def test_labels_semantics_no_event_after_churn_unless_back(tmp_path):
    """Labels are the ground truth of the stream: nobody sends an event while churned; the benchmark label is
    exactly 'churned in (T, T+H]' for users active before T and not churned at T."""
    labels_file = tmp_path / "labels.jsonl"
    out = run_producer("--mode", "sessions", "--dry-run", "--seed", "3", "--start-time", "2026-09-01T00:00:00Z",
                       "--end-time", START, "--labels-file", str(labels_file), "--user-id-range", "1-4000")
    assert out.returncode == 0, out.stderr
    labels = {row["user_id"]: row for row in map(json.loads, labels_file.read_text().splitlines())}
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert all(set(e) == {"user_id", "event_type", "timestamp", "metadata"} for e in events)
    assert not any("segment" in e["metadata"] or "churn" in json.dumps(e) for e in events)
    by_user = defaultdict(list)
    for e in events:
        by_user[e["user_id"]].append(e["timestamp"])
    assert set(by_user) <= set(labels) and set(range(1, 4001)) <= set(labels)
    cutoff = "2026-10-18T00:00:00.000Z"  # END minus the default 14-day horizon
    eligible = [row for row in labels.values() if row["eligible"]]
    assert len(eligible) > 2000 and 20 < sum(row["churned_in_horizon"] for row in eligible) < 0.2 * len(eligible)
    for user, row in labels.items():
        for churn, back in row["episodes"]:
            assert not [t for t in by_user[user] if churn <= t and (back is None or t < back)], (user, churn, back)
        assert row["cutoff"] == cutoff and row["horizon_days"] == 14
        if row["eligible"]:
            assert min(by_user[user]) < cutoff  # active before T
            assert not any(c <= cutoff and (b is None or b > cutoff) for c, b in row["episodes"])  # not churned at T
            assert row["churned_in_horizon"] == any(cutoff < c <= "2026-11-01T00:00:00.000Z" for c, _ in row["episodes"])
            assert 0 <= row["oracle"] <= 1
        else:
            assert row["churned_in_horizon"] is None and row["oracle"] is None
        if row["churned"]:
            assert row["episodes"][-1][1] is None and row["churn_time"] == row["episodes"][-1][0]


def test_same_seed_and_window_give_byte_identical_events_and_labels(tmp_path):
    args = ("--mode", "sessions", "--dry-run", "--start-time", START, "--end-time", "2026-11-03T00:00:00Z",
            "--user-id-range", "1-20000")
    a = run_producer(*args, "--seed", "11", "--labels-file", str(tmp_path / "a")).stdout
    b = run_producer(*args, "--seed", "11", "--labels-file", str(tmp_path / "b")).stdout
    c = run_producer(*args, "--seed", "12").stdout
    assert a == b and len(a.splitlines()) > 10_000
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert a != c


def test_event_weights_in_sessions_mode_are_solved_when_attainable(month):
    """Without EVENT_WEIGHTS the mix is the realistic funnel's outcome; given, the funnel is solved for it."""
    _, events = month
    counts = Counter(e["event_type"] for _, _, _, e in events)
    assert counts["product_view"] / sum(counts.values()) > 0.85  # not the random mode's 40%
    wanted = {"product_view": 0.7, "add_to_cart": 0.12, "checkout": 0.05, "bounce": 0.13}
    _, solved = simulate(14, users=(1, 5000), weights=wanted)
    counts = Counter(e["event_type"] for _, _, _, e in solved)
    total = sum(counts.values())
    for kind, share in wanted.items():
        assert abs(counts[kind] / total - share) < 0.02, (kind, counts[kind] / total)


def test_population_is_sized_to_the_rate_when_no_user_range_is_given():
    settings = producer.prepare(producer.load_settings(["--mode", "sessions", "--rate", "1"],
                                                       environ={"ENV_FILE": os.devnull}))
    users = settings.user_id_range[1] - settings.user_id_range[0] + 1
    sim = producer.simulator_for(settings, start_ms=START_MS)
    assert 0.85 < sim.expected_events_per_second() < 1.15 and 50_000 < users < 200_000  # an unseeded draw


@pytest.mark.slow
def test_churn_benchmark_is_honest_recency_is_not_enough_and_models_learn(tmp_path):
    """The forward task on README's defaults (10,000 customers, 61 days, T = end - 14 days): recency alone is
    weak, models on richer features do better, no single feature gives it away, the oracle shows the ceiling.
    (README gives the figures over several seeds; bounds here allow for one run's noise.)"""
    labels, events = tmp_path / "labels.jsonl", tmp_path / "events.jsonl"
    with open(events, "w") as f:
        out = subprocess.run([sys.executable, "producer.py", "--mode", "sessions", "--dry-run", "--seed", "1",
                              "--user-id-range", "1-10000", "--start-time", "2026-09-01T00:00:00Z", "--end-time",
                              START, "--labels-file", str(labels), "--log-file", "", "--stats-interval", "0"],
                             cwd=ROOT, stdout=f, stderr=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = subprocess.run([sys.executable, "examples/churn_model.py", "--events", str(events), "--labels",
                             str(labels), "--seeds", "3", "--json"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    auc = {name: statistics.mean(values) for name, values in json.loads(result.stdout)["auc"].items()}
    recency, rfm = auc["recency alone"], auc["RFM logistic regression"]
    best = max(rfm, auc["gradient boosting, all features"])
    assert 0.55 < recency <= 0.75, auc
    assert 0.65 <= rfm <= 0.88, auc
    assert best >= recency + 0.03, auc
    assert max(json.loads(result.stdout)["single_features"].values()) < 0.85, result.stdout
    assert auc["oracle (hidden state at T)"] > 0.9, auc


@pytest.mark.slow
def test_backfill_then_follow_has_no_gap_no_burst_no_stall():
    """Ten minutes of history at 5 events/s, then live: the stream goes on at the same pace."""
    started = datetime.now(timezone.utc).timestamp()
    start = datetime.fromtimestamp(started - 600, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # --rate 3: a population of about 400,000 customers, sized to send 3 events/s
    proc = subprocess.Popen([sys.executable, "producer.py", "--mode", "sessions", "--dry-run", "--rate", "3",
                             "--start-time", start, "--follow", "--duration", "20", "--seed", "5", "--log-file", "",
                             "--timezone", evening_zone()],
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
    live = [(wall, t) for wall, t in arrivals if t >= started + 10]  # building the customers takes seconds
    assert len(backfill) > 200 and len(live) > 25
    # No gap: event times run continuously through the hand-over.
    around = [t for t in stamps if started - 30 <= t <= started + 5]
    assert max(b - a for a, b in zip(around, around[1:])) < 8  # at 3/s an 8 s silence is a 1 in 10^10 event
    # No stall and no burst: live events come out when their time comes, not late and not early.
    lags = [wall - t for wall, t in live]
    assert max(lags) < 0.5 and min(lags) > -0.05, (min(lags), max(lags))
    live_rate = len(live) / (live[-1][1] - live[0][1])
    backfill_rate = len(backfill) / (backfill[-1] - backfill[0])
    assert 0.5 < live_rate / backfill_rate < 2


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
      "2026-11-02T00:00:00Z"], "expected only one of them"),
    (["--mode", "sessions", "--rate", "100"], "needs about"),
    (["--mode", "sessions", "--event-weights", "product_view=0.4,add_to_cart=0.1,checkout=0.3,bounce=0.2"],
     "more than add_to_cart"),
    (["--mode", "sessions", "--event-weights", "product_view=0.1,add_to_cart=0.5,checkout=0.1,bounce=0.3"],
     "more than product_view"),
    (["--mode", "sessions", "--timezone", "Mars/Olympus"], "IANA time zone"),
    (["--mode", "sessions", "--churn-signal", "2"], "from 0 to 1"),
    (["--timezone", "Europe/Paris"], "only used in sessions mode"),
    (["--mode", "sessions", "--start-time", START, "--end-time", "2026-11-08T00:00:00Z", "--churn-cutoff",
      "2026-10-01T00:00:00Z"], "not after START_TIME"),
    (["--mode", "sessions", "--topic", "shop", "--truth-topic", "shop"], "--truth-topic: 'shop' is the events topic"),
    (["--mode", "sessions", "--labels-topic", "user-events"], "--labels-topic: 'user-events' is the events topic"),
    (["--mode", "sessions", "--labels-topic", "side", "--truth-topic", "side"], "both are 'side'; expected a topic each"),
]


@pytest.mark.parametrize("argv, message", SESSION_ERRORS, ids=[m for _, m in SESSION_ERRORS])
def test_sessions_settings_errors_are_one_line_exit_2(argv, message, capsys):
    code = producer.main(argv + ["--dry-run"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


WINDOW = ["--mode", "sessions", "--dry-run", "--user-id-range", "1-300", "--seed", "1", "--start-time",
          "2026-01-01T00:00:00Z", "--end-time", "2026-01-05T00:00:00Z"]


def test_a_labels_file_that_cannot_be_opened_is_refused_before_anything_is_produced():
    out = run_producer(*WINDOW, "--labels-file", "/proc/labels.jsonl")
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--labels-file: cannot write '/proc/labels.jsonl'" in lines[0], lines


def test_labels_that_cannot_be_written_at_the_end_keep_the_statistics_and_the_summary():
    """/dev/full: the disk fills up as the labels are written, after the whole window went out."""
    out = run_producer(*WINDOW, "--labels-file", "/dev/full")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stdout.splitlines()) == out.summary["printed"] > 0  # every event went out
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "could not be written to /dev/full (No space left on device)" in errors[0]
    assert "PRODUCER STATISTICS" in out.stderr
    assert out.summary["exit_code"] == 1 and out.summary["exit_reason"] == "labels not written"


def test_labels_replace_the_previous_file_whole(tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text("old\n")
    out = run_producer(*WINDOW, "--labels-file", str(labels))
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert rows and all("user_id" in row for row in rows)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl"]  # no partial file left beside it


@pytest.mark.slow
def test_a_backfills_progress_lines_say_where_it_is_the_share_done_and_the_time_left():
    out = run_producer("--mode", "sessions", "--dry-run", "--user-id-range", "1-20000", "--seed", "1",
                       "--start-time", "2026-01-01T00:00:00Z", "--end-time", "2026-03-01T00:00:00Z",
                       "--stats-interval", "0.5", timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.findall(r"Progress: .* simulated=(\S+)Z done=(\d+)% eta=(\d+)s", out.stderr)
    assert len(found) >= 2, out.stderr[-2000:]
    reached = [datetime.fromisoformat(t + ":00+00:00") for t, _, _ in found]
    done = [int(d) for _, d, _ in found]
    assert reached == sorted(reached) and done == sorted(done) and 0 < done[0] < 100
    assert datetime(2026, 1, 1, tzinfo=timezone.utc) <= reached[0] <= reached[-1] < datetime(2026, 3, 1,
                                                                                            tzinfo=timezone.utc)
    eta = [int(e) for _, _, e in found]
    assert eta[-1] <= eta[0]


def test_on_a_terminal_the_progress_is_one_bar_that_redraws_in_place(tmp_path):
    """stderr on a terminal (a pseudo-terminal here): the backfill's progress is one tqdm bar redrawn in place, with
    the share done, the simulated time and the time left; the log file keeps the plain progress lines."""
    import fcntl
    import pty
    import struct
    import termios

    master, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    log_file = tmp_path / "producer.log"
    run = subprocess.Popen([sys.executable, "producer.py", "--mode", "sessions", "--dry-run", "--user-id-range",
                            "1-20000", "--seed", "1", "--start-time", "2026-01-01T00:00:00Z", "--end-time",
                            "2026-02-01T00:00:00Z", "--stats-interval", "0.2", "--log-file", str(log_file)],
                           cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal,
                           env=producer_env({}, tmp_path / "summary.json") | {"LOG_FILE": str(log_file)})
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the producer closed its end
            break
        if not chunk:
            break
        screen += chunk
    text = screen.decode(errors="replace")
    assert run.wait(timeout=120) == 0, text[-3000:]
    draws = re.findall(r"\rbackfill +(\d+)%\|[^\r]*simulated (2026-\S+), eta (\S+), sent=(\d+)", text)
    assert len(draws) >= 3, text[-2000:]
    # the last drawn is where the run ended: the whole window (it stayed at the last progress line's 83%: issue 31)
    assert [int(d[0]) for d in draws] == sorted(int(d[0]) for d in draws) and int(draws[-1][0]) == 100
    assert "Progress: sent=" not in text and "PRODUCER STATISTICS" in text  # other lines print as ever
    assert log_file.read_text().count("Progress: sent=") >= 3  # the file keeps plain lines


@pytest.mark.slow  # models trained
def test_the_churn_benchmark_says_when_the_history_is_too_short_for_its_features(tmp_path):
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    out = run_producer("--mode", "sessions", "--dry-run", "--user-id-range", "1-4000", "--seed", "3", "--start-time",
                       "2026-09-01T00:00:00Z", "--end-time", "2026-10-01T00:00:00Z", "--labels-file", str(labels))
    events.write_text(out.stdout)
    model = subprocess.run([sys.executable, str(ROOT / "examples" / "churn_model.py"), "--events", str(events),
                            "--labels", str(labels), "--seeds", "2"], capture_output=True, text=True, timeout=300)
    assert model.returncode == 0, model.stderr
    assert "note: only 16 days of history before the cut-off" in model.stdout


def test_the_profile_plot_draws_the_funnel_the_day_and_the_week_with_their_bands(tmp_path):
    events = run_producer("--mode", "sessions", "--dry-run", "--user-id-range", "1-1500", "--seed", "2",
                          "--start-time", "2026-10-01T00:00:00Z", "--end-time", "2026-10-15T00:00:00Z").stdout
    (tmp_path / "events.jsonl").write_text(events)
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "profile_stream.py"), str(tmp_path / "events.jsonl"),
                          "--timezone", "Europe/Paris", "--json", "--plot", str(tmp_path / "profile.png")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    funnel = json.loads(out.stdout)["funnel"]
    assert funnel["sessions"] > funnel["engaged"] > funnel["carted"] > funnel["converted"] > 0
    assert (tmp_path / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_invoice_export_writes_invoices_and_says_what_is_wrong_in_one_line():
    events = run_producer("--mode", "sessions", "--dry-run", "--user-id-range", "1-2000", "--seed", "3",
                          "--start-time", "2025-01-01T00:00:00Z", "--end-time", "2025-01-20T00:00:00Z").stdout
    script = str(ROOT / "examples" / "invoice_export.py")

    def export(stdin: bytes, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, script, *args], input=stdin, capture_output=True, timeout=120)

    out = export(events.encode())
    rows = out.stdout.decode().splitlines()
    assert out.returncode == 0 and rows[0].startswith("InvoiceNo,") and len(rows) > 1 + events.count('"checkout"')
    for stdin, args, says in ((b"\x7fELF\x00\x01" * 20, (), "is not"), (b"[1, 2]\n", (), "line 1 is not a sessions-mode"),
                              (events.encode(), ("--cancel-every", "0"), "--cancel-every 0: expected 1 or more"),
                              (events.encode(), ("--timezone", "Mars/Base"), "unknown time zone")):
        bad = export(stdin, *args)
        assert bad.returncode == 2 and says in bad.stderr.decode() and b"Traceback" not in bad.stderr, bad.stderr


@pytest.mark.parametrize("script, args, words", [
    ("churn_model.py", ["--events", "/nonexistent.jsonl", "--labels", "/nonexistent.jsonl"],
     ["--events /nonexistent.jsonl", "No such file"]),
    ("churn_model.py", ["--events", "{folder}", "--labels", "{folder}"], ["is a folder"]),
    ("churn_model.py", ["--events", "{bad}", "--labels", "{bad}"], ["line 1 is not JSON"]),
    ("churn_model.py", ["--events", "{events}", "--labels", "{events}"], ["holds events, not labels"]),
    ("profile_stream.py", ["/nonexistent.jsonl"], ["/nonexistent.jsonl", "No such file"]),
    ("profile_stream.py", ["{bad}"], ["line 1 is not JSON"]),
    ("profile_stream.py", ["{events}", "--plot", "/proc/none/plot.png"], ["--plot", "cannot be written"]),
])
def test_the_examples_say_what_is_wrong_in_one_line(tmp_path, script, args, words):
    (tmp_path / "bad.jsonl").write_text('{"user_id":\n')
    events = run_producer("--dry-run", "--count", "20", "--seed", "1")
    (tmp_path / "events.jsonl").write_text(events.stdout)
    args = [a.format(folder=tmp_path, bad=tmp_path / "bad.jsonl", events=tmp_path / "events.jsonl") for a in args]
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], capture_output=True, text=True,
                         timeout=120)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode in (1, 2) and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
