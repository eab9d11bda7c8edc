"""The scoreboard on inputs a new user gives it by mistake: a rerun's truth read twice, an alert stamped with the wall
clock, a file of the wrong kind, an empty truth, a stream shorter than the horizon (issue 31)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

WINDOW = ("--mode", "sessions", "--seed", "4", "--user-id-range", "1-3000", "--start-time", "2026-01-01T00:00:00Z",
          "--end-time", "2026-02-15T00:00:00Z")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A dry run's events and truth, and alerts: one a week before each churn."""
    folder = tmp_path_factory.mktemp("board")
    events = subprocess.run([sys.executable, str(ROOT / "producer.py"), *WINDOW, "--dry-run", "--log-level",
                             "WARNING", "--truth-file", str(folder / "truth")], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert events.returncode == 0, events.stderr
    (folder / "events").write_text(events.stdout)
    churns = [json.loads(line) for line in (folder / "truth").read_text().splitlines() if '"churned"' in line]
    (folder / "alerts").write_text("".join(json.dumps({"user_id": c["user_id"], "timestamp": c["time"], "score": 1})
                                           + "\n" for c in churns))
    return folder


def board(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scoreboard.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_a_reruns_truth_read_twice_counts_each_churn_once(run, tmp_path):
    once = board("--truth", str(run / "truth"), "--alerts", str(run / "alerts"), "--json")
    (tmp_path / "twice").write_text((run / "truth").read_text() * 2)
    twice = board("--truth", str(tmp_path / "twice"), "--alerts", str(run / "alerts"), "--json")
    assert once.returncode == twice.returncode == 0, twice.stderr
    a, b = json.loads(once.stdout), json.loads(twice.stdout)
    assert a["churns"] == b["churns"] > 0 and a["precision"] == b["precision"]
    assert b["truth_events_repeated"] == len((run / "truth").read_text().splitlines())
    text = board("--truth", str(tmp_path / "twice"), "--alerts", str(run / "alerts")).stdout
    assert f"counted once: {b['truth_events_repeated']:,} truth events read twice" in text


def test_an_alert_stamped_with_the_wall_clock_is_not_scored_and_is_said(run, tmp_path):
    before = json.loads(board("--truth", str(run / "truth"), "--alerts", str(run / "alerts"), "--json").stdout)
    (tmp_path / "alerts").write_text((run / "alerts").read_text() +
                                     json.dumps({"user_id": 7, "timestamp": "2026-12-07T10:00:00Z", "score": 1}) + "\n")
    out = board("--truth", str(run / "truth"), "--alerts", str(tmp_path / "alerts"), "--json")
    after = json.loads(out.stdout)
    assert after["window"] == before["window"]  # the stream is not stretched to December
    assert {k: after[k] for k in ("alerts", "precision", "recall", "churns")} == \
        {k: before[k] for k in ("alerts", "precision", "recall", "churns")}
    assert after["alerts_outside_the_stream"] == 1
    text = board("--truth", str(run / "truth"), "--alerts", str(tmp_path / "alerts")).stdout
    assert "not scored: 1 alerts stamped outside the stream" in text


@pytest.mark.parametrize("flag, source, expected", [
    ("--alerts", "events", "an event, not an alert"),
    ("--alerts", "truth", "a truth event, not an alert"),
    ("--events", "truth", "a truth event (it has kind), not an event"),
    ("--truth", "events", "an event (it has event_type), not a truth event"),
], ids=["events-as-alerts", "truth-as-alerts", "truth-as-events", "events-as-truth"])
def test_a_file_of_the_wrong_kind_is_one_line_and_exit_2(run, flag, source, expected):
    args = {"--truth": str(run / "truth"), flag: str(run / source)}
    out = board(*[x for pair in args.items() for x in pair])
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert expected in out.stderr


def test_nothing_to_score_is_one_line_and_exit_2(run, tmp_path):
    (tmp_path / "empty").write_text("")
    out = board("--truth", str(tmp_path / "empty"))
    assert out.returncode == 2 and "--truth: no truth events" in out.stderr and out.stdout == ""
    out = board("--truth", str(run / "truth"), "--horizon-days", "60")
    assert out.returncode == 2 and out.stdout == "" and "shorter than the horizon (60 days)" in out.stderr
