"""Scoring an early-warning pipeline: the truth events of sessions mode, the scoreboard's figures against known
answers, and the pipeline end to end on the real broker (backfill with --truth-topic, the reference detector over
the events topic, the scoreboard from the topics)."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
from datetime import datetime, timezone

import pytest

import producer
import scoreboard
from tests.support import PYTHON, ROOT, consume_all, run_producer

DAY = scoreboard.DAY_MS
T0 = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shop(churns: dict[int, list[int]], customers: int = 100, days: int = 60) -> scoreboard.Scoreboard:
    """A scoreboard fed a small truth: `customers` present at T0, the churns given, the stream ending at T0 + days."""
    board = scoreboard.Scoreboard(horizon_days=14)
    for user in range(1, customers + 1):
        board.add_truth({"user_id": user, "kind": "present", "time": iso(T0), "state": "engaged"})
    for user, times in churns.items():
        for when in times:
            board.add_truth({"user_id": user, "kind": "churned", "time": iso(when), "episode": 1})
    board.add_truth({"user_id": customers + 1, "kind": "joined", "time": iso(T0 + days * DAY)})
    return board


def some_churns(seed: int = 1) -> dict[int, list[int]]:
    rng = random.Random(seed)
    return {user: [T0 + int((15 + rng.random() * 44) * DAY)] for user in rng.sample(range(1, 101), 25)}


def test_an_alert_seven_days_before_every_churn_scores_recall_1_precision_1_lead_7():
    churns = some_churns()
    board = shop(churns)
    for user, times in churns.items():
        for when in times:
            board.add_alert({"user_id": user, "timestamp": iso(when - 7 * DAY), "score": 0.9})
    figures = board.report()
    assert figures["churns"] == 25
    assert figures["recall"] == 1.0
    assert figures["precision"] == 1.0
    assert figures["lead_time_days"]["median"] == 7.0
    assert figures["false_alarms_per_1000_customer_days"] == 0.0
    assert 0 < figures["alerts"] <= 25  # those in the last 14 days are still pending
    assert figures["alerts"] + figures["alerts_pending"] == 25


def test_no_alerts_score_recall_0():
    figures = shop(some_churns()).report()
    assert figures["churns"] == 25
    assert figures["recall"] == 0.0 and figures["alerts"] == 0 and figures["precision"] is None
    assert figures["lead_time_days"] is None


def test_random_alerts_score_the_share_of_them_followed_by_a_churn():
    churns = some_churns(seed=2)
    board = shop(churns)
    rng = random.Random(3)
    alerts = [(rng.randint(1, 100), T0 + int(rng.random() * 46 * DAY)) for _ in range(2000)]
    for user, when in alerts:
        board.add_alert({"user_id": user, "timestamp": iso(when), "score": rng.random()})
    followed = sum(any(when < c <= when + 14 * DAY for c in churns.get(user, ())) for user, when in alerts)
    figures = board.report()
    assert figures["alerts"] == 2000
    assert figures["precision"] == round(followed / 2000, 4)
    assert 0 < figures["precision"] < 0.2


def test_chance_is_the_mean_of_many_draws_with_their_spread():
    """One draw of random alerts moves with a few alerts more or less; chance is the mean of 20 seeded draws, and
    the report gives their standard deviation."""
    board = shop(some_churns(seed=4))
    rng = random.Random(5)
    for _ in range(40):
        board.add_alert({"user_id": rng.randint(1, 100), "timestamp": iso(T0 + int(rng.random() * 46 * DAY))})
    report = board.report()
    chance = report["baselines"]["random"]
    draws = [board.score(board.random_alerts(report["alerts"], seed)) for seed in range(scoreboard.CHANCE_DRAWS)]
    precisions = [d["precision"] for d in draws]
    assert chance["draws"] == 20 and len(set(precisions)) > 1  # the draws differ: one of them is not chance
    assert chance["precision"] == round(sum(precisions) / 20, 4)
    assert chance["spread"]["precision"] == round(statistics.stdev(precisions), 4) > 0
    assert chance["recall"] == round(sum(d["recall"] for d in draws) / 20, 4)
    assert "chance: the mean of 20 draws; their spread (sd): precision" in scoreboard.render(report)


def test_an_alert_after_the_churn_is_a_late_false_alarm():
    churns = {5: [T0 + 30 * DAY]}
    board = shop(churns)
    board.add_alert({"user_id": 5, "timestamp": iso(T0 + 32 * DAY), "score": 1})
    figures = board.report()
    assert (figures["precision"], figures["recall"], figures["late_alerts"]) == (0.0, 0.0, 1)


def truth_run(tmp_path, *extra: str, env: dict | None = None):
    """A seeded two-month window's truth, events (a dry run's) and labels."""
    truth, labels = tmp_path / "truth.jsonl", tmp_path / "labels.jsonl"
    out = run_producer("--mode", "sessions", "--start-time", "2026-01-01T00:00:00Z", "--end-time",
                       "2026-03-01T00:00:00Z", "--user-id-range", "1-3000", "--seed", "5", "--truth-file", str(truth),
                       "--labels-file", str(labels), *(extra or ["--dry-run"]), env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in out.stdout.splitlines()] if not extra else []
    return ([json.loads(line) for line in truth.read_text().splitlines()], events,
            [json.loads(line) for line in labels.read_text().splitlines()])


def test_the_truth_agrees_with_the_labels_and_the_stream(tmp_path):
    truth, events, labels = truth_run(tmp_path)
    times = [t["time"] for t in truth]
    assert times == sorted(times), "truth events are in time order"
    kinds = {t["kind"] for t in truth}
    assert kinds == {"present", "joined", "decline_started", "churned", "returned", "settled"}
    assert sum(t["kind"] == "present" for t in truth) == 3000
    # Every churn episode of the labels that begins inside the window is one `churned` truth event, and back.
    episodes = {(row["user_id"], begin) for row in labels for begin, _ in row["episodes"]
                if begin >= "2026-01-01T00:00:00.000Z"}
    churned = {(t["user_id"], t["time"]) for t in truth if t["kind"] == "churned"}
    assert churned == episodes and len(churned) == sum(t["kind"] == "churned" for t in truth) > 100
    returns = {(row["user_id"], back) for row in labels for _, back in row["episodes"] if back}
    assert {(t["user_id"], t["time"]) for t in truth if t["kind"] == "returned"} == returns
    # No event of a user between `churned` and `returned` (nor after a churn with no return).
    away: dict[int, list[list[str]]] = {}
    for t in truth:
        if t["kind"] == "churned" or t["kind"] == "present" and t["state"] == "churned":
            away.setdefault(t["user_id"], []).append([t["time"], "9999"])
        elif t["kind"] == "returned":
            away[t["user_id"]][-1][1] = t["time"]
    assert away
    for event in events:
        for begin, end in away.get(event["user_id"], ()):
            assert not begin < event["timestamp"] < end, (event, begin, end)
    # Newcomers: `joined` at their first event; and a decline says when it ends.
    first = {}
    for event in events:
        first.setdefault(event["user_id"], event["timestamp"])
    joined = [t for t in truth if t["kind"] == "joined"]
    assert joined and all(first.get(t["user_id"], t["time"]) == t["time"] for t in joined)
    assert all(t["ends"] > t["time"] for t in truth if t["kind"] == "decline_started")


def test_the_truth_of_several_workers_is_the_shops_merged_in_time_order(kafka, topic, tmp_path):
    alone, _, _ = truth_run(tmp_path)
    shared, _, _ = truth_run(tmp_path, "--workers", "2", "--topic", topic,
                             env={"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap})
    times = [t["time"] for t in shared]
    assert times == sorted(times)
    key = lambda t: json.dumps(t, sort_keys=True)  # noqa: E731
    assert sorted(map(key, shared)) == sorted(map(key, alone))


def test_the_scoreboard_scores_a_simulated_shop_with_its_baselines(tmp_path):
    truth, events, _ = truth_run(tmp_path)
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    alerts = tmp_path / "alerts.jsonl"
    detector = subprocess.run([PYTHON, str(ROOT / "examples" / "early_warning.py"), "--events-file",
                               str(tmp_path / "events.jsonl"), "--alerts-file", str(alerts)],
                              capture_output=True, text=True, timeout=120)
    assert detector.returncode == 0, detector.stderr
    assert alerts.read_text().count("\n") > 10
    out = subprocess.run([PYTHON, str(ROOT / "scoreboard.py"), "--truth", str(tmp_path / "truth.jsonl"), "--alerts",
                          str(alerts), "--events", str(tmp_path / "events.jsonl"), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    oracle, floor = report["baselines"]["oracle"], report["baselines"]["idle_7_days"]
    assert oracle["recall"] == 1.0 and oracle["precision"] > 0.5  # the ceiling knows when declines end
    assert floor["alerts"] > report["alerts"] > 0 and report["churns"] == oracle["churns"] > 50
    assert set(report["lead_time_days"] or {}) <= {"median", "p25", "p75"}
    text = subprocess.run([PYTHON, str(ROOT / "scoreboard.py"), "--truth", str(tmp_path / "truth.jsonl"),
                           "--alerts", str(alerts)], capture_output=True, text=True, timeout=120).stdout
    assert "ceiling: oracle" in text and "your detector" in text and "the floor needs the events" in text


@pytest.mark.parametrize("args, says", [
    ([], "--truth (or --truth-topic): needed"),
    (["--truth", "/nonexistent/truth.jsonl"], "--truth: cannot read '/nonexistent/truth.jsonl'"),
    (["--truth", "{bad}", "--horizon-days", "0"], "--horizon-days: 0; expected days > 0"),
    (["--truth", "{bad}"], ":1: kind 'arrived' is not a truth event"),
    (["--truth", "{good}", "--alerts", "{bad_alerts}"], ":1: 'yesterday' is not a date-time"),
])
def test_the_scoreboard_refuses_bad_input_with_one_line(tmp_path, args, says):
    (tmp_path / "bad.jsonl").write_text('{"user_id": 1, "kind": "arrived", "time": "2026-01-01T00:00:00Z"}\n')
    (tmp_path / "good.jsonl").write_text('{"user_id": 1, "kind": "present", "time": "2026-01-01T00:00:00Z"}\n')
    (tmp_path / "bad_alerts.jsonl").write_text('{"user_id": 1, "timestamp": "yesterday", "score": 1}\n')
    args = [a.format(bad=tmp_path / "bad.jsonl", good=tmp_path / "good.jsonl",
                     bad_alerts=tmp_path / "bad_alerts.jsonl") for a in args]
    out = subprocess.run([PYTHON, str(ROOT / "scoreboard.py"), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def create_topics(bootstrap: str, *names: str) -> None:
    """Topics that keep a backfill's old timestamps (retention judged by record time would delete them)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(n, 3, 1, config={"retention.ms": "-1"}) for n in names]).values():
        future.result(30)


def test_the_pipeline_end_to_end_on_the_broker(kafka, client, topic, tmp_path):
    """Backfill with --truth-topic, the reference detector over the events topic in a consumer group, the
    scoreboard from the topics: the truth on the topic is the truth file, keyed and timestamped; the scores agree
    with the files'."""
    events, truth_topic, alerts_topic = topic, f"{topic}-truth", f"{topic}-alerts"
    create_topics(kafka.bootstrap, events, truth_topic, alerts_topic)
    truth_file = tmp_path / "truth.jsonl"
    out = run_producer("--mode", "sessions", "--start-time", "2026-01-01T00:00:00Z", "--end-time",
                       "2026-03-01T00:00:00Z", "--user-id-range", "1-3000", "--seed", "7", "--topic", events,
                       "--truth-topic", truth_topic, "--truth-file", str(truth_file),
                       env={"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "KAFKA_CLIENT": client}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = truth_file.read_text().splitlines()
    records = consume_all(kafka.bootstrap, truth_topic, expected=len(lines), timeout=60)
    assert len(records) == len(lines) and f"Sent {len(lines)} truth events to topic '{truth_topic}'" in out.stderr
    assert sorted(r.value.decode() for r in records) == sorted(lines)
    for r in records:
        truth = json.loads(r.value)
        assert r.key == str(truth["user_id"]).encode()
        assert r.timestamp == producer.iso_to_epoch_ms(truth["time"])
    detector = subprocess.run([PYTHON, str(ROOT / "examples" / "early_warning.py"), "--bootstrap-servers",
                               kafka.bootstrap, "--topic", events, "--group", f"{topic}-detector", "--alerts-topic",
                               alerts_topic, "--until-idle", "5"], capture_output=True, text=True, timeout=300)
    assert detector.returncode == 0, detector.stderr
    assert f"{out.summary['sent']:,} events" in detector.stderr
    board = subprocess.run([PYTHON, str(ROOT / "scoreboard.py"), "--bootstrap-servers", kafka.bootstrap,
                            "--truth-topic", truth_topic, "--alerts-topic", alerts_topic, "--events-topic", events,
                            "--json"], capture_output=True, text=True, timeout=300)
    assert board.returncode == 0, board.stderr
    report = json.loads(board.stdout)
    assert report["customers"] == 3000 + sum('"joined"' in line for line in lines)
    alerts = consume_all(kafka.bootstrap, alerts_topic, timeout=60)
    assert alerts and report["alerts"] + report["alerts_pending"] == len(alerts)
    assert all(r.timestamp == producer.iso_to_epoch_ms(json.loads(r.value)["timestamp"]) for r in alerts)
    assert report["baselines"]["oracle"]["recall"] == 1.0
    assert report["churns"] == report["baselines"]["idle_7_days"]["churns"] > 50


@pytest.mark.parametrize("tool", ["detector", "scoreboard"])
def test_kafka_failures_in_the_early_warning_tools_are_one_line_and_exit_1(kafka, tmp_path, tool):
    """A topic that does not exist, a broker that does not answer: one line naming it, exit 1 (not 0 events and
    exit 0, not librdkafka's log nor exit 2, "bad input") (issue 31)."""
    def run(bootstrap: str, topic: str) -> subprocess.CompletedProcess:
        args = ([str(ROOT / "examples" / "early_warning.py"), "--bootstrap-servers", bootstrap, "--topic", topic,
                 "--alerts-file", str(tmp_path / "alerts"), "--until-idle", "5"] if tool == "detector" else
                [str(ROOT / "scoreboard.py"), "--bootstrap-servers", bootstrap, "--truth-topic", topic])
        return subprocess.run([PYTHON, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)
    missing = run(kafka.bootstrap, "no-such-topic-here")
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr[-2000:]
    assert "topic 'no-such-topic-here' does not exist" in missing.stderr
    dead = run("127.0.0.1:1", "user-events")
    assert dead.returncode == 1 and len(dead.stderr.strip().splitlines()) == 1, dead.stderr[-2000:]
    assert "127.0.0.1:1 did not answer within 10 s" in dead.stderr


def test_both_reference_detectors_in_consumer_groups_and_the_scoreboard_over_their_topics(kafka, topic):
    """The first detector and the online one (it learns from the truth topic, late), each in a consumer group with
    its alerts and scores on topics; the scoreboard reads each from the topics: every alert is one of its
    detector's scored judgements at or above its threshold, and the threshold-free figures are there."""
    events, truth = topic, f"{topic}-truth"
    outputs = {name: (f"{topic}-{name}-alerts", f"{topic}-{name}-scores") for name in ("first", "online")}
    create_topics(kafka.bootstrap, events, truth, *(t for pair in outputs.values() for t in pair))
    out = run_producer("--mode", "sessions", "--start-time", "2026-01-01T00:00:00Z", "--end-time",
                       "2026-03-01T00:00:00Z", "--user-id-range", "1-3000", "--seed", "7", "--topic", events,
                       "--truth-topic", truth, "--client", "confluent-kafka",
                       env={"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for name, (alerts, scores) in outputs.items():
        script, extra, threshold = (("early_warning.py", [], 0.05) if name == "first" else
                                    ("early_warning_online.py", ["--truth-topic", truth, "--warm-up", "500"], 0.05))
        detector = subprocess.run([PYTHON, str(ROOT / "examples" / script), "--bootstrap-servers", kafka.bootstrap,
                                   "--topic", events, "--group", f"{topic}-{name}", "--alerts-topic", alerts,
                                   "--scores-topic", scores, "--until-idle", "5", *extra],
                                  capture_output=True, text=True, timeout=300)
        assert detector.returncode == 0, detector.stderr
        assert f"{out.summary['sent']:,} events" in detector.stderr
        board = subprocess.run([PYTHON, str(ROOT / "scoreboard.py"), "--bootstrap-servers", kafka.bootstrap,
                                "--truth-topic", truth, "--alerts-topic", alerts, "--scores-topic", scores,
                                "--events-topic", events, "--budget", "20", "--json"],
                               capture_output=True, text=True, timeout=300)
        assert board.returncode == 0, board.stderr
        report = json.loads(board.stdout)
        judged = {(json.loads(r.value)["user_id"], json.loads(r.value)["timestamp"]): json.loads(r.value)["score"]
                  for r in consume_all(kafka.bootstrap, scores, timeout=60)}
        raised = [json.loads(r.value) for r in consume_all(kafka.bootstrap, alerts, timeout=60)]
        assert raised and report["alerts"] + report["alerts_pending"] == len(raised), name
        assert all(judged[(a["user_id"], a["timestamp"])] >= threshold for a in raised), name
        assert report["pr_auc"] is not None and report["judgements_scored"] > len(raised), name
        assert report["budget"]["alerts_per_day"] == 20 and report["normalized_score"]["standard"] is not None
