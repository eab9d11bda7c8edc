"""What if…: each scenario kind does what it says, measured from what producer.py emits (events, truth, labels)
of the documented examples, on the window they are documented for; the paired-run property; bad files refused."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from shopsim import parse_time
from shopsim.scenarios import parse_duration
from tests.support import ROOT, run_producer

EXAMPLES = ROOT / "examples" / "scenarios"
WINDOW = ("--mode", "sessions", "--seed", "1", "--user-id-range", "1-20000", "--start-time", "2026-03-02T00:00:00Z",
          "--end-time", "2026-05-01T00:00:00Z")  # the examples' documented window
START = parse_time("2026-03-02T00:00:00Z")
DAY = 86_400_000


@dataclass
class Run:
    lines: list[str]  # the events' JSON texts, in the order emitted
    events: list[dict]  # the same, parsed
    times: list[int]  # their timestamps (epoch ms), read once: a million events' are seconds of work
    truth: list[dict]
    labels: dict[int, dict]

    def at(self, offset: str) -> int:
        return START + parse_duration(offset)

    def between(self, begin: int, end: int, inside: bool = True) -> list[dict]:
        """The events timestamped in [begin, end) (inside=False: those outside it), in the order emitted."""
        return [e for e, t in zip(self.events, self.times) if (begin <= t < end) == inside]


@lru_cache(maxsize=2)  # the clean run and one other: a run is about a million events
def dry_run(scenarios: str | None = None, *extra: str) -> Run:
    """A dry run of the documented window (scenarios: a file in examples/scenarios, or TOML text), read back."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args = [*WINDOW, *extra, "--dry-run", "--log-level", "WARNING", "--truth-file", f"{tmp}/truth",
                "--labels-file", f"{tmp}/labels"]
        if scenarios is not None:
            path = EXAMPLES / scenarios if scenarios.endswith(".toml") else Path(tmp, "s.toml")
            if not scenarios.endswith(".toml"):
                path.write_text(scenarios)
            args += ["--scenarios", str(path)]
        out = run_producer(*args, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        truth = [json.loads(line) for line in Path(tmp, "truth").read_text().splitlines()]
        labels = {row["user_id"]: row for row in map(json.loads, Path(tmp, "labels").read_text().splitlines())}
    lines = out.stdout.splitlines()
    events = [json.loads(line) for line in lines]
    return Run(lines, events, [ms(e["timestamp"]) for e in events], truth, labels)


def ms(text: str) -> int:
    return parse_time(text)


def of_kind(run: Run, kind: str, **match) -> list[dict]:
    return [r for r in run.truth if r["kind"] == kind and all(r.get(k) == v for k, v in match.items())]


def declines_within(run: Run, users: dict[int, int], days: float) -> int:
    """How many of `users` (id -> from when) start a decline within `days` after it."""
    n = 0
    for r in of_kind(run, "decline_started"):
        since = users.get(r["user_id"])
        if since is not None and since <= ms(r["time"]) < since + days * DAY:
            users = {**users}
            del users[r["user_id"]]
            n += 1
    return n


# --- behaviour ----------------------------------------------------------------------------------------------

@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_payment_outage_blocks_checkouts_and_causes_a_churn_wave():
    clean, run = dry_run(), dry_run("payment_outage.toml")
    begin, end = run.at("20d"), run.at("23d")
    assert not [e for e in run.between(begin, end) if e["event_type"] == "checkout"]
    assert [e for e in clean.between(begin, end) if e["event_type"] == "checkout"]
    failed = {r["user_id"]: ms(r["time"]) for r in of_kind(run, "scenario_touched", scenario="payments-down")}
    assert len(failed) >= 100 and all(r["how"] == "failed_payment" for r in of_kind(run, "scenario_touched"))
    # the same customers, the same moments, in the paired clean run: the wave is the outage's doing
    after, before = declines_within(run, failed, 30), declines_within(clean, failed, 30)
    assert after >= 2 * before and after >= 30, (after, before)
    caused = [r for r in of_kind(run, "decline_started") if r["cause"] == "payments-down"]
    assert caused and all(r["user_id"] in failed for r in caused)
    assert {r["cause"] for r in of_kind(run, "churned")} <= {"natural", "payments-down"}
    assert all(run.labels[u]["scenarios"] == {"payments-down": "failed_payment"} for u in failed)


def decline_rate(run: Run, begin: int, end: int) -> float:
    """Decline starts per engaged customer-day in [begin, end), the engaged customers followed through the truth
    (present engaged, joined, returned or settled: engaged; decline_started: no longer)."""
    engaged: dict[int, int] = {}  # user -> engaged since
    days, starts = 0.0, 0
    for r in run.truth:
        if "user_id" not in r or r["kind"] not in ("present", "joined", "returned", "settled", "decline_started"):
            continue
        t = ms(r["time"])
        if r["kind"] == "decline_started":
            since = engaged.pop(r["user_id"], None)
            if since is not None:
                days += max(0, min(t, end) - max(since, begin)) / DAY
            starts += begin <= t < end
        elif r["kind"] != "present" or r["state"] == "engaged":
            engaged[r["user_id"]] = t
    days += sum(max(0, end - max(since, begin)) / DAY for since in engaged.values())
    return starts / days


def decline_rate_ratio(run: Run, change: int, days: int = 14) -> float:
    """The decline-start rate in the `days` after the change against the `days` before it."""
    return decline_rate(run, change, change + days * DAY) / decline_rate(run, change - days * DAY, change)


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_price_rise_multiplies_the_chance_of_starting_to_decline():
    clean, run = dry_run(), dry_run("price_rise.toml")
    change = run.at("30d")
    ratio, baseline = decline_rate_ratio(run, change), decline_rate_ratio(clean, change)
    assert abs(ratio / baseline - 1.5) <= 0.2 * 1.5, (ratio, baseline)
    values = lambda r, a, b: [e["metadata"]["order_value"] for e in r.between(a, b)  # noqa: E731
                              if e["event_type"] == "checkout"]
    late, clean_late = values(run, change, run.at("60d")), values(clean, change, run.at("60d"))
    assert statistics.median(late) > 1.05 * statistics.median(clean_late)
    assert {r["cause"] for r in of_kind(run, "decline_started") if ms(r["time"]) < change} == {"natural"}


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_competitor_launch_ramps_up_with_its_midpoint_where_asked():
    from scipy.optimize import curve_fit

    clean, run = dry_run(), dry_run("competitor_launch.toml")
    start, width = run.at("20d"), 14 * DAY

    def daily(r: Run) -> list[int]:
        counts = Counter((ms(x["time"]) - START) // DAY for x in of_kind(r, "decline_started"))
        return [counts[d] for d in range(60)]
    ratio = [a / max(b, 1) for a, b in zip(daily(run), daily(clean))]
    days = list(range(5, 58))  # away from the edges of the window

    def ramp(d, mid, factor):
        return [1 + (factor - 1) / (1 + math.exp(-8 * (x + 0.5 - mid) / 14)) if x >= 20 else 1.0 for x in d]
    (mid, factor), _ = curve_fit(ramp, days, [ratio[d] for d in days], p0=(25.0, 1.3))
    assert abs(mid - (start + width / 2 - START) / DAY) <= 1.0, mid
    after = decline_rate_ratio(run, run.at("34d"), days=20) / decline_rate_ratio(clean, run.at("34d"), days=20)
    assert abs(after - 1.5) <= 0.2 * 1.5 or abs(factor - 1.5) <= 0.3, (after, factor)


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_retention_offer_lowers_the_offered_groups_churn_by_the_asked_factor():
    run = dry_run("retention_offer.toml")
    groups = defaultdict(dict)
    for r in of_kind(run, "scenario_touched", scenario="win-back"):  # the declines whose end the window holds
        if "decline_ends" in r and ms(r["decline_ends"]) < run.at("60d"):
            groups[r["group"]][r["user_id"]] = r["decline_ends"]
    assert len(groups["treated"]) >= 500 and len(groups["control"]) >= 500
    churned = {(r["user_id"], r["time"]) for r in of_kind(run, "churned")}
    rate = {g: sum((u, t) in churned for u, t in members.items()) / len(members) for g, members in groups.items()}
    assert abs(rate["treated"] / rate["control"] - 0.5) <= 0.2 * 0.5, rate


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_an_acquisition_campaign_brings_its_customers_who_churn_sooner():
    clean, run = dry_run(), dry_run("acquisition_campaign.toml")
    signed = {r["user_id"]: ms(r["time"]) for r in of_kind(run, "scenario_touched", scenario="spring-ads")}
    assert len(signed) == 2000
    assert all(run.at("14d") <= t < run.at("28d") for t in signed.values())
    joined = {r["user_id"] for r in of_kind(run, "joined")}
    assert set(signed) <= joined and len(joined) >= len({r["user_id"] for r in of_kind(clean, "joined")}) + 1900
    natural = {r["user_id"]: ms(r["time"]) for r in of_kind(run, "joined") if r["user_id"] not in signed
               and run.at("14d") <= ms(r["time"]) < run.at("28d")}
    campaign_rate = declines_within(run, signed, 30) / len(signed)
    natural_rate = declines_within(run, natural, 30) / len(natural)
    assert campaign_rate >= 1.5 * natural_rate, (campaign_rate, natural_rate)


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_seasonal_peak_raises_traffic_and_conversion():
    clean, run = dry_run(), dry_run("seasonal_peak.toml")
    begin, end = run.at("45d"), run.at("49d")

    def count(r: Run, kind: str | None = None) -> int:
        return sum(kind is None or e["event_type"] == kind for e in r.between(begin, end))
    assert 1.3 <= count(run) / count(clean) <= 1.7, (count(run), count(clean))
    assert count(run, "checkout") / count(run) > 1.05 * count(clean, "checkout") / count(clean)


# --- data faults: the stream, paired exactly with the clean run ----------------------------------------------

@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_tracking_outage_drops_the_touched_customers_events_and_nothing_else():
    clean, run = dry_run(), dry_run("tracking_outage.toml")
    begin, end = run.at("21d"), run.at("22d")
    dropped = {r["user_id"]: r["dropped"] for r in of_kind(run, "scenario_counts", scenario="broken-tag")}
    in_window = Counter(e["user_id"] for e in clean.between(begin, end))
    assert dropped == {u: n for u, n in in_window.items() if u in dropped}  # every event of theirs, no other
    assert not [e for e in run.between(begin, end) if e["user_id"] in dropped]
    assert 0.4 <= len(dropped) / len(in_window) <= 0.6  # share = 0.5 of the customers
    assert run.between(begin, end, inside=False) == clean.between(begin, end, inside=False)
    # they went on living: the truth of their lives is the clean run's
    assert [r for r in run.truth if "scenario" not in r] == [r for r in clean.truth if "scenario" not in r]


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_late_events_are_the_asked_share_with_the_asked_delays():
    from scipy import stats

    clean, run = dry_run(), dry_run("late_events.toml")
    begin, end = run.at("21d"), run.at("28d")
    in_window = len(clean.between(begin, end))
    late, delays, newest = 0, [], 0
    for t in run.times:
        if t < newest:  # out of order: it came after events up to `newest`
            late += 1
            delays.append((newest - t) / 60_000)
        newest = max(newest, t)
    delayed = sum(r["delayed"] for r in of_kind(run, "scenario_counts", scenario="offline-sync"))
    assert abs(delayed / in_window - 0.1) <= 0.01, delayed / in_window
    assert late >= 0.95 * delayed  # a few come out in order: a gap in the stream longer than their delay
    ks = stats.kstest(delays, stats.lognorm(s=1.0, scale=10).cdf).statistic
    assert ks <= 0.05, ks
    assert sorted(run.lines) == sorted(clean.lines)  # the same events, byte for byte, none lost


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_duplicates_are_the_asked_share_and_copies_of_real_events():
    clean, run = dry_run(), dry_run("duplicates.toml")
    begin, end = run.at("21d"), run.at("28d")
    in_window = len(clean.between(begin, end))
    extra = len(run.events) - len(clean.events)
    assert abs(extra / in_window - 0.02) <= 0.002, extra / in_window
    texts = Counter(run.lines) - Counter(clean.lines)
    assert sum(texts.values()) == extra and all(begin <= ms(json.loads(t)["timestamp"]) < end for t in texts)
    assert sum(r["duplicated"] for r in of_kind(run, "scenario_counts", scenario="redelivered")) == extra


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_bots_view_many_products_add_nothing_to_carts_and_are_marked():
    clean, run = dry_run(), dry_run("bots.toml")
    bots = {r["user_id"] for r in of_kind(run, "scenario_touched", scenario="scrapers") if r.get("bot")}
    assert 7 * 24 * 20 * 0.8 <= len(bots) <= 7 * 24 * 20 * 1.2 and min(bots) >= 2_000_000_000
    bot_events = [e for e in run.events if e["user_id"] in bots]
    assert {e["event_type"] for e in bot_events} == {"product_view"}
    assert 30 <= len(bot_events) / len(bots) <= 50
    assert [line for line, e in zip(run.lines, run.events) if e["user_id"] not in bots] == clean.lines
    assert not bots & set(run.labels)  # not customers: not in the labels


# --- several at once, pairing -------------------------------------------------------------------------------

OVERLAP = """
[scenarios.payments-down]
kind = "payment_outage"
start = "+20d"
end = "+23d"
segment = "casual"

[scenarios.new-prices]
kind = "price_rise"
start = "+21d"

[scenarios.broken-tag]
kind = "tracking_outage"
start = "+22d"
end = "+23d"
share = 0.3
"""


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_overlapping_scenarios_combine():
    run = dry_run(OVERLAP)
    begin, end = run.at("20d"), run.at("23d")
    casual = {u for u, row in run.labels.items() if row["segment"] == "casual"}
    assert not [e for e in run.between(begin, end) if e["event_type"] == "checkout" and e["user_id"] in casual]
    causes = Counter(r["cause"] for r in of_kind(run, "decline_started") if ms(r["time"]) >= run.at("21d"))
    assert causes["payments-down"] > 0 and causes["new-prices"] > 0 and causes["natural"] > 0
    dropped = {r["user_id"] for r in of_kind(run, "scenario_counts", scenario="broken-tag")}
    assert dropped and not [e for e in run.between(run.at("22d"), end) if e["user_id"] in dropped]


@pytest.mark.slow  # two months of 20,000 customers, run and read back
def test_a_run_with_scenarios_is_the_clean_run_until_the_first_one_starts():
    clean, run = dry_run(), dry_run(OVERLAP)
    first = run.at("20d")
    assert [line for line, t in zip(run.lines, run.times) if t < first] == \
        [line for line, t in zip(clean.lines, clean.times) if t < first]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "cause"} for r in rows  # noqa: E731
                          if ms(r["time"]) < first and "scenario" not in r]
    assert strip(run.truth) == strip(clean.truth)


# --- bad input: one line, exit 2, nothing sent ----------------------------------------------------------------

BAD = {
    "unknown kind": ('[scenarios.x]\nkind = "meteor"\nstart = "+1d"\nend = "+2d"\n',
                     "scenario 'x': field 'kind': 'meteor' is not a kind; accepted: payment_outage"),
    "unknown field": ('[scenarios.x]\nkind = "payment_outage"\nstart = "+1d"\nend = "+2d"\nstrength = 3\n',
                      "scenario 'x': field 'strength': not a field of payment_outage; accepted: kind, start, end"),
    "end before start": ('[scenarios.x]\nkind = "tracking_outage"\nstart = "+2d"\nend = "+1d"\n',
                         "scenario 'x': field 'end': '+1d' is not after start ('+2d')"),
    "no such segment": ('[scenarios.x]\nkind = "price_rise"\nstart = "+1d"\nsegment = "vip"\n',
                        "scenario 'x': field 'segment': 'vip' is not a segment; accepted: loyal, casual"),
    "share outside 0..1": ('[scenarios.x]\nkind = "tracking_outage"\nstart = "+1d"\nend = "+2d"\nshare = 1.5\n',
                           "scenario 'x': field 'share': 1.5: accepted: a share from 0 to 1"),
    "not a time": ('[scenarios.x]\nkind = "bots"\nstart = "tomorrow"\nend = "+2d"\n',
                   "scenario 'x': field 'start': 'tomorrow' is not a time; accepted: an ISO 8601 date-time"),
    "a window without an end": ('[scenarios.x]\nkind = "payment_outage"\nstart = "+1d"\n',
                                "scenario 'x': field 'end': missing: a payment_outage has a window"),
    "mixed times": ('[scenarios.x]\nkind = "late_events"\nstart = "2026-03-05T00:00:00Z"\nend = "+2d"\n',
                    "scenario 'x': field 'end': start and end must both be date-times or both be times after"),
    "a factor below 1": ('[scenarios.x]\nkind = "price_rise"\nstart = "+1d"\ndecline_factor = 0.5\n',
                         "scenario 'x': field 'decline_factor': 0.5: accepted: a factor from 1 to 100"),
    "not TOML": ('[scenarios.x\nkind = 1\n', "not valid TOML"),
    "a top-level key": ('kind = "bots"\n', "unknown top-level key 'kind'; accepted: [scenarios.NAME] tables only"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_a_bad_scenarios_file_is_one_line_and_exit_2_with_nothing_sent(case, tmp_path):
    text, expected = BAD[case]
    (tmp_path / "s.toml").write_text(text)
    out = run_producer(*WINDOW, "--dry-run", "--scenarios", str(tmp_path / "s.toml"))
    assert out.returncode == 2 and out.stdout == "", (out.returncode, out.stdout[:300])
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("producer.py: error: --scenarios: ") and expected in lines[0], lines[0]


def test_an_unreadable_file_and_a_behaviour_scenario_in_random_mode_are_refused(tmp_path):
    out = run_producer("--dry-run", "--scenarios", str(tmp_path / "missing.toml"))
    assert out.returncode == 2 and out.stdout == "" and "cannot read" in out.stderr and \
        len(out.stderr.strip().splitlines()) == 1, out.stderr
    out = run_producer("--dry-run", "--count", "5", "--scenarios", str(EXAMPLES / "payment_outage.toml"))
    assert out.returncode == 2 and out.stdout == "", out.stderr
    assert "scenario 'payments-down': field 'kind': payment_outage changes how the shop's customers behave and " \
           "needs SIMULATION_MODE=sessions" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_random_mode_takes_the_data_faults(tmp_path):
    (tmp_path / "s.toml").write_text('[scenarios.dup]\nkind = "duplicates"\nstart = "+0s"\nend = "+1h"\n'
                                     'events = 0.5\n')
    clean = run_producer("--dry-run", "--seed", "3", "--count", "4000", "--interval", "0")
    run = run_producer("--dry-run", "--seed", "3", "--count", "4000", "--interval", "0", "--scenarios",
                       str(tmp_path / "s.toml"))
    assert clean.returncode == run.returncode == 0, run.stderr[-500:]
    events, copies = clean.stdout.splitlines(), run.stdout.splitlines()
    assert len(events) == 4000 and len(copies) > 5000  # --count counts the events made: the copies come on top
    repeated = lambda lines: sum(a == b for a, b in zip(lines, lines[1:]))  # noqa: E731 (a copy follows its original)
    assert repeated(events) < 40 and 0.45 <= repeated(copies) / (len(copies) - repeated(copies)) <= 0.55
    made = [line for i, line in enumerate(copies) if i == 0 or line != copies[i - 1]]
    assert 4000 - repeated(events) - 40 <= len(made) <= 4000  # without the copies: the 4,000 events made


def test_a_scenarios_file_is_part_of_a_seeded_windows_identity(tmp_path):
    import producer

    def run_id(text: str | None, name: str = "s.toml") -> str:
        args = [*WINDOW]
        if text is not None:
            (tmp_path / name).write_text(text)
            args += ["--scenarios", str(tmp_path / name)]
        return producer.run_id_for(producer.prepare(producer.load_settings(args, environ={})))
    payment = (EXAMPLES / "payment_outage.toml").read_text()
    assert run_id(payment) == run_id(payment, "copy.toml")  # the content, not the path
    assert len({run_id(None), run_id(payment), run_id(payment.replace('"+23d"', '"+24d"'))}) == 3


def test_shards_of_a_scenarios_run_are_the_whole_run(tmp_path):
    """Each shard applies the scenarios to its own customers; their union is the unsharded stream and truth."""
    text = OVERLAP + (EXAMPLES / "duplicates.toml").read_text() + (EXAMPLES / "late_events.toml").read_text()
    (tmp_path / "s.toml").write_text(text)
    window = [*WINDOW[:5], "1-3000", *WINDOW[6:]]

    def part(*shard: str) -> tuple[list[str], list[str]]:
        truth = tmp_path / f"truth{'-'.join(shard).replace('/', '')}"
        out = run_producer(*window, "--dry-run", "--scenarios", str(tmp_path / "s.toml"), "--truth-file",
                           str(truth), *shard)
        assert out.returncode == 0, out.stderr[-1000:]
        return out.stdout.splitlines(), truth.read_text().splitlines()
    whole, shards = part(), [part("--shard", f"{i}/2") for i in range(2)]
    assert sorted(whole[0]) == sorted(shards[0][0] + shards[1][0])
    assert sorted(whole[1]) == sorted(shards[0][1] + shards[1][1])


def test_a_data_fault_started_on_demand_is_started_at_once():
    """A second start before the next batch is refused (the live test hit that race once in CI)."""
    from shopsim import StreamFaults, parse_scenarios

    faults = StreamFaults(parse_scenarios('[scenarios.tag]\nkind = "tracking_outage"\nstart = "on_demand"\n'),
                          start_ms=START, seed=1, product_id_range=(1, 500), sessions=True)
    assert faults.on_demand("tag", "stop", START + 1) == "not under way"
    assert faults.on_demand("tag", "start", START + 5) == ""
    assert faults.on_demand("tag", "start", START + 6) == "already started"
    assert [json.loads(v)["kind"] for _, _, v in faults.truth(START + 10)] == ["scenario_started"]
    assert faults.on_demand("tag", "stop", START + 20) == ""
