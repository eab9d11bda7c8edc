"""The scoreboard past one threshold (issue 30): known answers for the threshold-free figures, the budget, the
episodes, the normalised score and its published test vectors, the intervals; the per-scenario split and the clean
run beside a scenarios run; bad input in one line."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

import scoreboard
from tests.support import ROOT

DAY = scoreboard.DAY_MS
T0 = int(datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shop(customers: int = 400, days: int = 90, seed: int = 1, churn_share: float = 0.3) -> tuple:
    """A scoreboard with `customers` present at T0; a share of them decline for 20 days and churn, as many decline
    and settle; the stream ends at T0 + days. (board, churns {user: time}, declines [(user, start, end)])."""
    rng = random.Random(seed)
    board = scoreboard.Scoreboard(horizon_days=14)
    churns, declines = {}, []
    truth = []
    for user in range(1, customers + 1):
        truth.append((T0, {"user_id": user, "kind": "present", "time": iso(T0), "state": "engaged", "segment": "x"}))
        roll = rng.random()
        if roll < 2 * churn_share:
            start = T0 + int(rng.uniform(5, days - 25) * DAY)
            end = start + 20 * DAY
            declines.append((user, start, end))
            truth.append((start, {"user_id": user, "kind": "decline_started", "time": iso(start), "ends": iso(end)}))
            if roll < churn_share:
                churns[user] = end
                truth.append((end, {"user_id": user, "kind": "churned", "time": iso(end), "episode": 1}))
            else:
                truth.append((end, {"user_id": user, "kind": "settled", "time": iso(end)}))
    truth.append((T0 + days * DAY, {"user_id": customers + 1, "kind": "joined", "time": iso(T0 + days * DAY)}))
    for _, record in sorted(truth, key=lambda t: t[0]):
        board.add_truth(record)
    return board, churns, declines


def daily(board, customers: int, days: int, score) -> None:
    """A judgement a day for every customer, scored by score(user, ms)."""
    for day in range(days):
        for user in range(1, customers + 1):
            when = T0 + day * DAY + 3_600_000
            board.add_score({"user_id": user, "timestamp": iso(when), "score": score(user, when)})


def test_scores_of_the_hidden_state_reach_the_oracles_precision_and_random_scores_the_base_rate():
    board, churns, declines = shop()
    ending = {}  # the oracle's knowledge: a decline that ends within H from then on
    for user, start, end in declines:
        ending[user] = (max(start, end - board.horizon), end)
    daily(board, 400, 90, lambda u, t: 1.0 if u in ending and ending[u][0] <= t < ending[u][1] else 0.0)
    report = board.report(asked=scoreboard.Asked())
    oracle = report["baselines"]["oracle"]
    assert report["pr_auc"] >= oracle["precision"] * oracle["recall"] - 1e-4, (report["pr_auc"], oracle)

    noise, churns, _ = shop(customers=2000, seed=2)  # 180,000 judgements: the area's noise well under 10%
    rng = random.Random(3)
    daily(noise, 2000, 90, lambda u, t: rng.random())
    report = noise.report(asked=scoreboard.Asked())
    assert abs(report["pr_auc"] / report["base_rate"] - 1) < 0.10, (report["pr_auc"], report["base_rate"])
    # the threshold that keeps to 100 alerts a day (of 2,000 judged a day): about the top 5% of the scores
    kept = noise.report(asked=scoreboard.Asked(target_alerts_per_day=100))["at_target_alerts_per_day"]
    assert 95 <= kept["alerts_per_day"] <= 100 and 0.93 <= kept["threshold"] <= 0.97, kept
    # a lead of at least 7 days asks more of the same scores: never a larger area
    assert report["pr_auc_by_min_lead"]["7"] <= report["pr_auc"] * 1.1
    assert report["pr_auc_by_min_lead"]["14"] is None  # a lead of the whole horizon leaves no window
    # probabilities: the Brier score of a constant 0.5 is 0.25 whatever the labels
    constant, _, _ = shop(seed=4)
    daily(constant, 400, 90, lambda u, t: 0.5)
    assert constant.report(asked=scoreboard.Asked(calibration=True))["brier"] == 0.25


def test_the_normalised_score_matches_the_published_test_vectors():
    """docs/nab-test-vectors.json: null 0, the oracle 100, and the cases in between, under each profile."""
    vectors = json.loads((ROOT / "docs" / "nab-test-vectors.json").read_text())
    assert len(vectors["cases"]) >= 5
    for case in vectors["cases"]:
        board = scoreboard.Scoreboard(horizon_days=vectors["horizon_days"])
        for row in vectors["truth"]:
            record = {k: v for k, v in row.items() if k not in ("day", "ends_day")}
            record["time"] = iso(T0 + row["day"] * DAY)
            if "ends_day" in row:
                record["ends"] = iso(T0 + row["ends_day"] * DAY)
            board.add_truth(record)
        for alert in case["alerts"]:
            board.add_alert({"user_id": alert["user_id"], "timestamp": iso(T0 + alert["day"] * DAY), "score": 1})
        got = board.report(asked=scoreboard.Asked())["normalized_score"]
        assert got == case["normalized_score"], (case["case"], got)


def test_a_budget_keeps_the_highest_scores_of_each_day_one_per_customer():
    board, churns, declines = shop(customers=200, seed=5)
    # every customer judged daily; those who will churn within H score highest: a budget as large as the churns
    # that day catches them all, a budget of 1 a day at most one a day
    daily(board, 200, 90, lambda u, t: 0.9 if u in churns and churns[u] - board.horizon <= t < churns[u] else 0.1)
    report = board.report(asked=scoreboard.Asked(budget=200))
    assert report["budget"]["recall"] == 1.0 and report["budget"]["unreachable_churns"] == 0
    one = board.report(asked=scoreboard.Asked(budget=1))["budget"]
    assert one["alerts"] <= 90 - 14 + 1  # one a day over the scored days
    assert one["recall"] < 1.0 and one["unreachable_churns"] == round((1 - one["recall"]) * report["churns"])


def test_episodes_repeats_time_to_detect_and_the_maximum_delay():
    """A customer alerted every day for the ten days before their churn: caught once, nine repeats; the first of
    those alerts came eleven days after their decline began."""
    board = scoreboard.Scoreboard(horizon_days=14)
    board.add_truth({"user_id": 1, "kind": "present", "time": iso(T0), "state": "engaged"})
    board.add_truth({"user_id": 2, "kind": "present", "time": iso(T0), "state": "engaged"})
    board.add_truth({"user_id": 1, "kind": "decline_started", "time": iso(T0 + 19 * DAY), "ends": iso(T0 + 40 * DAY)})
    board.add_truth({"user_id": 1, "kind": "churned", "time": iso(T0 + 40 * DAY), "episode": 1})
    board.add_truth({"user_id": 3, "kind": "joined", "time": iso(T0 + 70 * DAY)})
    for day in range(30, 40):
        board.add_alert({"user_id": 1, "timestamp": iso(T0 + day * DAY), "score": 0.9})
    board.add_alert({"user_id": 2, "timestamp": iso(T0 + 20 * DAY), "score": 0.9})  # a false alarm
    report = board.report(asked=scoreboard.Asked(max_delay_days=10))
    assert report["recall"] == 1.0
    assert report["alarms_per_episode"] == {"mean": 10.0, "max": 10, "repeats": 9}
    assert report["time_to_detect_days"]["median"] == 11.0
    assert report["detected_within_max_delay"] == 0.0  # 11 days > 10: a miss by that measure
    assert board.report(asked=scoreboard.Asked(max_delay_days=12))["detected_within_max_delay"] == 1.0
    # one false alarm over the customer-days of the scored span (3 customers, days 0-56, the third from day 70)
    assert report["customer_days_between_false_alarms"] == round(2 * 56, 1)


def test_intervals_hold_the_figure_and_narrow_with_more_customers():
    def interval(customers: int) -> tuple[list, dict]:
        board, churns, _ = shop(customers=customers, seed=6)
        rng = random.Random(7)
        for user, when in churns.items():
            if rng.random() < 0.5:
                board.add_alert({"user_id": user, "timestamp": iso(when - 5 * DAY), "score": 1})
        for user in rng.sample(range(1, customers + 1), customers // 4):
            board.add_alert({"user_id": user, "timestamp": iso(T0 + int(rng.uniform(1, 70) * DAY)), "score": 1})
        report = board.report(asked=scoreboard.Asked(ci_resamples=200))
        return report["ci"], report

    small, report = interval(200)
    lo, hi = small["precision"]
    assert lo <= report["precision"] <= hi and lo < hi
    assert small["recall"][0] <= report["recall"] <= small["recall"][1]
    large, _ = interval(3000)
    assert large["precision"][1] - large["precision"][0] < hi - lo
    assert interval(200)[0] == small  # seeded: the same resamples


WINDOW = ("--mode", "sessions", "--seed", "8", "--user-id-range", "1-3000", "--start-time", "2026-01-01T00:00:00Z",
          "--end-time", "2026-03-01T00:00:00Z", "--dry-run", "--log-level", "WARNING")
SCENARIO = """[scenarios.payments-down]
kind = "payment_outage"
start = "+14d"
end = "+21d"
segment = "loyal"
decline_factor = 10.0
"""


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def paired(tmp_path_factory) -> Path:
    """A scenarios run and its clean run (the same seed and window), each with the reference detector's alerts and
    scores; and a run of another seed."""
    folder = tmp_path_factory.mktemp("paired")
    (folder / "outage.toml").write_text(SCENARIO)
    for name, extra in (("clean", ()), ("outage", ("--scenarios", str(folder / "outage.toml"))),
                        ("other", ("--seed", "9"))):
        run_dir = folder / name
        run_dir.mkdir()
        out = run(str(ROOT / "producer.py"), *WINDOW, "--truth-file", str(run_dir / "truth.jsonl"), *extra)
        assert out.returncode == 0, out.stderr
        (run_dir / "events.jsonl").write_text(out.stdout)
        detector = run(str(ROOT / "examples" / "early_warning.py"), "--events-file", str(run_dir / "events.jsonl"),
                       "--alerts-file", str(run_dir / "alerts.jsonl"), "--scores-file", str(run_dir / "scores.jsonl"))
        assert detector.returncode == 0, detector.stderr
    return folder


@pytest.mark.slow  # three runs of a shop and its detector
def test_a_scenario_is_split_and_set_beside_the_same_seeds_clean_run(paired):
    outage = paired / "outage"
    out = run(str(ROOT / "scoreboard.py"), "--truth", str(outage / "truth.jsonl"), "--alerts",
              str(outage / "alerts.jsonl"), "--scores", str(outage / "scores.jsonl"), "--events",
              str(outage / "events.jsonl"), "--baseline", str(paired / "clean"), "--json", "--plot",
              str(paired / "report.png"))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    truth = [json.loads(line) for line in (outage / "truth.jsonl").read_text().splitlines()]
    touched = {t["user_id"] for t in truth if t["kind"] == "scenario_touched"}
    split = report["by_scenario"]["payments-down"]
    assert split["kind"] == "payment_outage" and split["touched"]["customers"] == len(touched) > 50
    assert split["touched"]["customers"] + split["untouched"]["customers"] == report["customers"]
    caused = [t for t in truth if t["kind"] == "churned" and t.get("cause") == "payments-down"]
    assert split["churns_caused"] == len(caused) > 0
    versus = report["vs_baseline"]
    clean = json.loads(run(str(ROOT / "scoreboard.py"), "--truth", str(paired / "clean" / "truth.jsonl"),
                           "--alerts", str(paired / "clean" / "alerts.jsonl"), "--json").stdout)
    assert versus["precision"] == {"scenario": report["precision"], "baseline": clean["precision"],
                                   "delta": round(report["precision"] - clean["precision"], 4)}
    pair = versus["by_scenario"]["payments-down"]["touched_churns"]
    assert pair["scenario"] > pair["baseline"]  # the outage's churn wave, among the same customers
    assert (paired / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = run(str(ROOT / "scoreboard.py"), "--truth", str(outage / "truth.jsonl"), "--alerts",
               str(outage / "alerts.jsonl"), "--baseline", str(paired / "clean")).stdout
    assert "scenario payments-down (payment_outage" in text and "(clean run " in text


@pytest.mark.slow
@pytest.mark.parametrize("case, says", [
    ("another seed", "--baseline: its truth is not the same shop at the start as this run's"),
    ("another window", "--baseline: its truth is not the same shop at the start as this run's"),
    ("calibration", "--calibration: a score of 1.5 is not a probability"),
    ("unordered", "truth goes back in time"),
    ("unknown users", "customers of the alerts or scores are not in the truth (user_id 999999"),
    ("scores not numbers", "score 'high' is not a number"),
])
def test_bad_input_is_one_line_and_exit_2(paired, tmp_path, case, says):
    outage = paired / "outage"
    args = ["--truth", str(outage / "truth.jsonl"), "--alerts", str(outage / "alerts.jsonl")]
    if case == "another seed":
        args += ["--baseline", str(paired / "other")]
    elif case == "another window":
        shifted = []  # the clean run a day later: every moment of its truth moved on by a day
        for line in (paired / "clean" / "truth.jsonl").read_text().splitlines():
            record = json.loads(line)
            for key in ("time", "since", "ends"):
                if key in record:
                    record[key] = iso(scoreboard.parse_time(record[key], key) + DAY)
            shifted.append(json.dumps(record))
        (tmp_path / "truth.jsonl").write_text("\n".join(shifted) + "\n")
        (tmp_path / "alerts.jsonl").write_text((paired / "clean" / "alerts.jsonl").read_text())
        args += ["--baseline", str(tmp_path)]
    elif case == "calibration":
        (tmp_path / "scores.jsonl").write_text(json.dumps({"user_id": 1, "timestamp": "2026-01-20T00:00:00Z",
                                                           "score": 1.5}) + "\n")
        args += ["--scores", str(tmp_path / "scores.jsonl"), "--calibration"]
    elif case == "unordered":
        lines = (outage / "truth.jsonl").read_text().splitlines()
        (tmp_path / "truth.jsonl").write_text("\n".join(reversed(lines)) + "\n")
        args[1] = str(tmp_path / "truth.jsonl")
    elif case == "unknown users":
        (tmp_path / "alerts.jsonl").write_text(json.dumps({"user_id": 999999, "timestamp": "2026-01-20T00:00:00Z",
                                                           "score": 1}) + "\n")
        args[3] = str(tmp_path / "alerts.jsonl")
    else:
        (tmp_path / "scores.jsonl").write_text(json.dumps({"user_id": 1, "timestamp": "2026-01-20T00:00:00Z",
                                                           "score": "high"}) + "\n")
        args += ["--scores", str(tmp_path / "scores.jsonl")]
    out = run(str(ROOT / "scoreboard.py"), *args)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in out.stderr, out.stderr


@pytest.mark.slow
def test_the_online_detector_learns_only_outcomes_already_known(paired, tmp_path):
    """The second reference detector: alerts and scores as the first's; it never learns an outcome before its
    horizon has passed in event time (a truth cut at the half does not change what it said before the half's
    horizon... nor what it learnt)."""
    clean = paired / "clean"
    out = run(str(ROOT / "examples" / "early_warning_online.py"), "--events-file", str(clean / "events.jsonl"),
              "--truth-file", str(clean / "truth.jsonl"), "--alerts-file", str(tmp_path / "alerts.jsonl"),
              "--scores-file", str(tmp_path / "scores.jsonl"), "--warm-up", "500")
    assert out.returncode == 0, out.stderr
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    scores = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert alerts and len(scores) > 10 * len(alerts) and all(0 <= s["score"] <= 1 for s in scores)
    # the truth after day 30 removed: nothing judged before day 16 (30 - 14) can have learnt differently
    cut = T0 + 30 * DAY
    kept = [line for line in (clean / "truth.jsonl").read_text().splitlines()
            if scoreboard.parse_time(json.loads(line)["time"], "t") <= cut]
    (tmp_path / "cut.jsonl").write_text("\n".join(kept) + "\n")
    again = run(str(ROOT / "examples" / "early_warning_online.py"), "--events-file", str(clean / "events.jsonl"),
                "--truth-file", str(tmp_path / "cut.jsonl"), "--scores-file", str(tmp_path / "scores2.jsonl"),
                "--alerts-file", str(tmp_path / "alerts2.jsonl"), "--warm-up", "500")
    assert again.returncode == 0, again.stderr
    before = T0 + 30 * DAY
    first = [s for s in scores if scoreboard.parse_time(s["timestamp"], "s") < before]
    second = [json.loads(line) for line in (tmp_path / "scores2.jsonl").read_text().splitlines()]
    assert first and first == [s for s in second if scoreboard.parse_time(s["timestamp"], "s") < before]
    missing = run(str(ROOT / "examples" / "early_warning_online.py"), "--events-file", str(clean / "events.jsonl"),
                  "--alerts-file", str(tmp_path / "a.jsonl"))
    assert missing.returncode == 2 and "--truth-topic or --truth-file" in missing.stderr


@pytest.mark.slow
def test_several_runs_give_each_figures_mean_and_spread(paired):
    out = run(str(ROOT / "scoreboard.py"), "--runs", str(paired / "clean"), str(paired / "other"), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    precisions = [r["precision"] for r in result["reports"]]
    assert len(precisions) == 2 and result["figures"]["precision"]["runs"] == 2
    assert result["figures"]["precision"]["mean"] == round(statistics.fmean(precisions), 4)
    assert result["figures"]["precision"]["spread"] == round(statistics.stdev(precisions), 4)
    assert result["figures"]["pr_auc"]["mean"] > 0
    text = run(str(ROOT / "scoreboard.py"), "--runs", str(paired / "clean"), str(paired / "other")).stdout
    assert text.startswith("2 runs: each figure's mean ± spread") and "precision" in text


def test_live_report_lines_carry_each_scenarios_split(capsys):
    """--follow: a line of the running figures, with the touched customers' recall and precision per scenario."""
    import argparse

    board, churns, _ = shop(customers=100, seed=9)
    board.add_truth({"kind": "scenario_started", "scenario": "payments-down", "scenario_kind": "payment_outage",
                     "time": iso(T0 + 10 * DAY)})
    for user in list(churns)[:5]:
        board.add_truth({"kind": "scenario_touched", "scenario": "payments-down", "scenario_kind": "payment_outage",
                         "user_id": user, "time": iso(T0 + 11 * DAY), "how": "failed_payment"})
        board.add_alert({"user_id": user, "timestamp": iso(churns[user] - 3 * DAY), "score": 1})
    scoreboard._report_line(board, argparse.Namespace(json=False), True, scoreboard.Asked())
    line = capsys.readouterr().out.strip()
    assert "payments-down:touched_recall=" in line and "touched_precision=" in line, line
