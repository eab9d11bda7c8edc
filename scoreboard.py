#!/usr/bin/env python3
"""Score a churn early-warning pipeline against the simulated shop's truth.

The producer's sessions mode writes the truth as it happens (--truth-file / --truth-topic: who joined, whose
decline began, who churned, came back or settled, and when). A detector writes alerts, one JSON object each:
{"user_id": int, "timestamp": ISO 8601, "score": float, ...}. This tool matches the two over a horizon H:

    precision     the share of alerts whose user churns within H days after the alert
    recall        the share of churns with an alert for that user in the H days before
    lead time     from the first alert in those H days to the churn: median, p25, p75 (days)
    false alarms  alerts not followed by a churn within H, per 1,000 customer-days
    late          alerts that came after a churn (within H), as if it were news: false alarms of their own kind

An alert is scored once its H days have passed (those in the last H days of the stream are pending); a churn
once H days of the stream precede it. An alert takes the time of the event it judged: one outside the stream's
time (stamped with the wall clock, say) is not scored, and the report says how many. A truth event read twice
(a rerun of a window sends its truth again) counts once. Beside the detector, two baselines: the ceiling, an oracle that sees
the hidden state (it alerts when a decline that will end within H days enters that span; whether the decline
ends in churn or settles it does not know), and the floor, the plain rule "N days without an event" (it needs
the events: --events or --events-topic). "chance" is as many alerts as the detector's, of customers and moments
drawn at random: the mean of 20 seeded draws, with their spread.

    python scoreboard.py --truth truth.jsonl --alerts alerts.jsonl --events events.jsonl
    python scoreboard.py --bootstrap-servers localhost:9092 --truth-topic truth --alerts-topic alerts \\
        --events-topic user-events [--follow --report-every 1440]

Exit codes: 0 scored, 1 Kafka could not be read, 2 bad input (one line naming it).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

DAY_MS = 86_400_000
CHANCE_DRAWS = 20  # chance is the mean of this many seeded draws: one draw moved 0.042 -> 0.017 with four alerts more
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class InputError(Exception):
    """Bad input: one line naming it."""


class KafkaFailed(Exception):
    """Kafka could not be read: one line, exit 1."""


def parse_time(text: Any, where: str) -> int:
    """ISO 8601 ('2026-01-01T10:00:00.123Z', an offset, or none: UTC) -> epoch ms."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {text!r} is not a date-time; expected ISO 8601 such as "
                         "2026-01-01T10:00:00.000Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def _user(record: dict, where: str) -> int:
    user = record.get("user_id")
    if isinstance(user, bool) or not isinstance(user, int):
        raise InputError(f"{where}: user_id {user!r} is not a whole number")
    return user


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default), of a sorted list."""
    position = (len(ordered) - 1) * q
    lo = math.floor(position)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


class Scoreboard:
    """The truth, the alerts (of the detector and of the baselines) and, for the floor, event times; score()
    matches them as of the latest moment seen."""

    def __init__(self, horizon_days: float = 14.0, idle_days: float = 7.0) -> None:
        self.horizon = horizon_days * DAY_MS
        self.idle = idle_days * DAY_MS
        self.ordered = True  # truth from a file: each customer's in time order (a topic's, per key, is)
        self.since: dict[int, int] = {}  # customer -> when they are counted from (the window's start, or joined)
        self.churns: dict[int, list[int]] = {}  # customer -> churn times, in order
        self.declines: list[tuple[int, int, int]] = []  # (user, started, ends): the hidden state, for the oracle
        self.alerts: list[tuple[int, int]] = []  # the detector's (user, time)
        self.last_event: dict[int, int] = {}
        self.idle_alerts: list[tuple[int, int]] = []  # the floor's, found as the events go by
        self.events = 0
        self.start = math.inf
        self.end = -math.inf
        self.bots: set[int] = set()  # SCENARIOS' bots: visitors, not customers
        self._truth_seen: set[str] = set()
        self.truth_repeats = 0  # truth events read again (a rerun of a window sends its truth again): counted once
        self.truth_events = 0
        self.scores: list[tuple[int, int, float]] = []  # a detector's risk judgements (user, time, score)
        self.alert_scores: list[float] = []  # the alerts' scores, beside self.alerts (budget without --scores)
        self.decline_starts: dict[int, list[int]] = {}  # customer -> when each decline began (time to detect)
        self.causes: dict[tuple[int, int], str] = {}  # (customer, churn time) -> its cause, in a scenarios run
        self.scenarios: dict[str, dict[str, Any]] = {}  # name -> kind, start, end, touched customers
        self.present: list[tuple[int, Any, Any]] = []  # (customer, segment, state) at the start: the run's fingerprint
        self.sessions: dict[int, list] = {}  # customer -> [session, carted, bought, last time]: abandoned carts
        self.abandoned: dict[int, list[int]] = {}  # customer -> when each cart was left (a confirmatory signal)
        self._last_truth: dict[int, int] = {}  # customer -> their latest truth time: a file must be in time order

    # inputs -------------------------------------------------------------------------------------
    def add_truth(self, record: dict, where: str = "truth") -> None:
        if "event_type" in record and "kind" not in record:
            raise InputError(f"{where}: an event (it has event_type), not a truth event; expected the producer's "
                             "--truth-file or --truth-topic")
        text = json.dumps(record, sort_keys=True)
        if text in self._truth_seen:  # the same change of the same customer at the same moment: counted once
            self.truth_repeats += 1
            return
        self._truth_seen.add(text)
        self.truth_events += 1
        kind = record.get("kind")
        if isinstance(kind, str) and kind.startswith("scenario_"):  # what a scenario did (docs/scenarios.md)
            self._scenario_truth(kind, record, where)
            return
        user = _user(record, where)
        when = parse_time(record.get("time"), where)
        if when < self._last_truth.get(user, when) and self.ordered:
            raise InputError(f"{where}: customer {user}'s truth goes back in time ({record.get('time')} after "
                             f"{iso(self._last_truth[user])}); expected the truth in the order the producer wrote it "
                             "(a file sorted or joined out of order?)")
        self._last_truth[user] = when
        self._seen(when)
        if kind == "present":
            self.start = min(self.start, when)
            self.since.setdefault(user, when)
            self.present.append((user, record.get("segment"), record.get("state")))
            if record.get("state") == "declining":
                self.declines.append((user, when, parse_time(record.get("ends"), where)))
                self.decline_starts.setdefault(user, []).append(parse_time(record.get("since", record["time"]),
                                                                           where))
        elif kind == "joined":
            self.since.setdefault(user, when)
        elif kind == "decline_started":
            self.declines.append((user, when, parse_time(record.get("ends"), where)))
            self.decline_starts.setdefault(user, []).append(when)
        elif kind == "churned":
            self.churns.setdefault(user, []).append(when)
            if "cause" in record:
                self.causes[(user, when)] = record["cause"]
        elif kind not in ("returned", "settled"):
            raise InputError(f"{where}: kind {kind!r} is not a truth event; expected present, joined, "
                             "decline_started, churned, returned, settled or a scenario's (scenario_...)")
        self.since.setdefault(user, when)

    def _scenario_truth(self, kind: str, record: dict, where: str) -> None:
        """A scenario's rows: when it ran and whom it touched, for the per-scenario split."""
        name = record.get("scenario")
        if not isinstance(name, str):
            raise InputError(f"{where}: a {kind} row without its scenario's name")
        scenario = self.scenarios.setdefault(name, {"kind": record.get("scenario_kind"), "start": None, "end": None,
                                                    "touched": set()})
        if kind == "scenario_started":
            scenario["start"] = parse_time(record.get("time"), where)
        elif kind == "scenario_ended":
            scenario["end"] = parse_time(record.get("time"), where)
        elif kind == "scenario_touched":
            user = _user(record, where)
            scenario["touched"].add(user)
            if record.get("bot"):  # a bot is not a customer: no alert on it is scored, and the floor skips it
                self.bots.add(user)

    def add_score(self, record: dict, where: str = "scores") -> None:
        """A risk judgement {"user_id", "timestamp", "score"}: any number of them, for the threshold-free figures."""
        if "event_type" in record or "kind" in record:
            raise InputError(f"{where}: {'an event' if 'event_type' in record else 'a truth event'}, not a score; "
                             "expected the detector's scores, {\"user_id\", \"timestamp\", \"score\"} a line")
        score = record.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise InputError(f"{where}: score {score!r} is not a number; expected a risk score on every line")
        self.scores.append((_user(record, where), parse_time(record.get("timestamp"), where), float(score)))

    def add_alert(self, record: dict, where: str = "alerts") -> None:
        if "event_type" in record or "kind" in record:
            raise InputError(f"{where}: {'an event' if 'event_type' in record else 'a truth event'}, not an alert; "
                             "expected the detector's alerts, {\"user_id\", \"timestamp\", \"score\"} a line")
        user, when = _user(record, where), parse_time(record.get("timestamp"), where)
        score = record.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise InputError(f"{where}: score {score!r} is not a number")
        self.alerts.append((user, when))  # its time does not stretch the stream: see outside()
        self.alert_scores.append(float(score))

    def add_event(self, user: int, when: int, event_type: str | None = None, session: Any = None) -> None:
        """An event of the stream, for the floor (a silence of N days is an alert at its N-th day) and for the
        confirmatory share (a cart left: a session with an add_to_cart and no checkout)."""
        self.events += 1
        if session is not None:
            open_session = self.sessions.get(user)
            if open_session is None or open_session[0] != session:
                if open_session is not None and open_session[1] and not open_session[2]:
                    self.abandoned.setdefault(user, []).append(open_session[3])
                open_session = self.sessions[user] = [session, False, False, when]
            open_session[1] |= event_type == "add_to_cart"
            open_session[2] |= event_type == "checkout"
            open_session[3] = max(open_session[3], when)
        last = self.last_event.get(user)
        if last is not None and when - last > self.idle:
            self.idle_alerts.append((user, last + int(self.idle)))
        if last is None or when > last:
            self.last_event[user] = when
        self._seen(when)

    def _seen(self, when: int) -> None:
        if when > self.end:
            self.end = when

    # scoring ------------------------------------------------------------------------------------
    def oracle_alerts(self) -> list[tuple[int, int]]:
        """The ceiling: each decline alerted when its end comes within H days (at its start, if it is shorter)."""
        return [(user, max(started, ends - int(self.horizon))) for user, started, ends in self.declines
                if max(started, ends - int(self.horizon)) <= self.end]

    def floor_alerts(self) -> list[tuple[int, int]]:
        """The floor: the silences of N days found so far, and those still going on at the end."""
        ongoing = [(user, last + int(self.idle)) for user, last in self.last_event.items()
                   if self.end - last > self.idle]
        return [(user, when) for user, when in self.idle_alerts + ongoing if user not in self.bots]

    def random_alerts(self, count: int, seed: int = 0) -> list[tuple[int, int]]:
        """Chance: `count` alerts of customers drawn at random, each at a random moment of their scored span."""
        rng = random.Random(seed)
        start = self.start if self.start != math.inf else min(self.since.values(), default=self.end)
        spans = [(user, max(since, start), self.end - self.horizon) for user, since in self.since.items()
                 if max(since, start) < self.end - self.horizon]
        if not spans:
            return []
        return [(user, int(lo + rng.random() * (hi - lo))) for user, lo, hi in rng.choices(spans, k=count)]

    def chance(self, count: int, end: float, draws: int = CHANCE_DRAWS) -> dict[str, Any]:
        """Chance's figures: the mean over `draws` seeded draws of `count` random alerts (one draw moves with a few
        alerts more or less), with each figure's spread (the standard deviation over the draws) in `spread`."""
        runs = [self.score(self.random_alerts(count, seed), end) for seed in range(draws)]
        first = runs[0]

        def mean(values: list) -> float | None:
            values = [v for v in values if v is not None]
            return round(statistics.fmean(values), 4) if values else None

        def spread(values: list) -> float | None:
            values = [v for v in values if v is not None]
            return round(statistics.stdev(values), 4) if len(values) > 1 else None

        leads = [r["lead_time_days"] for r in runs if r["lead_time_days"]]
        figures = ("precision", "recall", "false_alarms_per_1000_customer_days")
        return {**first, **{name: mean([r[name] for r in runs]) for name in figures},
                "late_alerts": round(statistics.fmean(r["late_alerts"] for r in runs)),
                "lead_time_days": {q: round(statistics.fmean(lead[q] for lead in leads), 2)
                                   for q in ("median", "p25", "p75")} if leads else None,
                "draws": draws, "spread": {name: spread([r[name] for r in runs]) for name in figures}}

    def score(self, alerts: Iterable[tuple[int, int]], end: float | None = None) -> dict[str, Any]:
        """The figures of one set of alerts (user, epoch ms) against the churns, as of `end` (default: the
        latest moment seen)."""
        end = self.end if end is None else end
        start, horizon = self.start if self.start != math.inf else min(self.since.values(), default=end), self.horizon
        alerts_by_user: dict[int, list[int]] = {}
        for user, when in alerts:
            if start <= when <= end:  # outside the stream's time: not scored (outside() counts them)
                alerts_by_user.setdefault(user, []).append(when)
        scored = true = late = 0
        for user, times in alerts_by_user.items():
            times.sort()
            churns = self.churns.get(user, ())
            for when in times:
                if when + horizon > end:  # its horizon is not over yet: pending
                    continue
                scored += 1
                i = bisect.bisect_right(churns, when)
                if i < len(churns) and churns[i] <= when + horizon:
                    true += 1
                elif i > 0 and churns[i - 1] >= when - horizon:
                    late += 1  # after a churn, as if it were news: a false alarm of its own kind
        counted = caught = 0
        leads = []
        for user, churns in self.churns.items():
            times = alerts_by_user.get(user, ())
            for churn in churns:
                if churn < start + horizon or churn > end:
                    continue
                counted += 1
                i = bisect.bisect_left(times, churn - horizon)
                if i < len(times) and times[i] < churn:
                    caught += 1
                    leads.append((churn - times[i]) / DAY_MS)
        leads.sort()
        alert_span_end = end - horizon
        customer_days = sum(max(0.0, alert_span_end - since) for since in self.since.values()) / DAY_MS
        false = scored - true
        return {
            "alerts": scored,
            "alerts_pending": sum(len(t) for t in alerts_by_user.values()) - scored,
            "churns": counted,
            "precision": round(true / scored, 4) if scored else None,
            "recall": round(caught / counted, 4) if counted else None,
            "lead_time_days": {"median": round(_quantile(leads, 0.5), 2), "p25": round(_quantile(leads, 0.25), 2),
                               "p75": round(_quantile(leads, 0.75), 2)} if leads else None,
            "false_alarms_per_1000_customer_days": round(1000 * false / customer_days, 3) if customer_days else None,
            "late_alerts": late,
        }

    def outside(self) -> int:
        """The detector's alerts outside the stream's time (stamped with the wall clock, say): not scored. The
        stream's end is its last truth event (or event) seen: an alert up to a day after it is the stream's own
        last hours (pending), not a stranger."""
        return sum(1 for _, when in self.alerts if not self.start <= when <= self.end + DAY_MS) \
            if self.start != math.inf else 0

    def check(self) -> None:
        """InputError when there is nothing to score: no truth, or a stream shorter than the horizon."""
        for user, (_, carted, bought, last) in self.sessions.items():  # the visits under way at the end
            if carted and not bought:
                self.abandoned.setdefault(user, []).append(last)
        self.sessions.clear()
        for times in self.abandoned.values():
            times.sort()
        if not self.truth_events:
            raise InputError("--truth: no truth events; expected the producer's --truth-file or --truth-topic of a "
                             "sessions run")
        start = self.start if self.start != math.inf else min(self.since.values(), default=self.end)
        if self.end - start < self.horizon:
            raise InputError(f"--horizon-days: the stream spans {(self.end - start) / DAY_MS:.1f} days, shorter than "
                             f"the horizon ({self.horizon / DAY_MS:g} days): nothing can be scored; expected a longer "
                             "window or a shorter --horizon-days")

    def known(self, records: list[tuple[int, Any]]) -> None:
        """InputError when alerts or scores name customers the truth does not know (a truth of another run?)."""
        unknown = sorted({u for u, *_ in records} - set(self.since) - self.bots)
        if unknown:
            raise InputError(f"{len(unknown):,} customers of the alerts or scores are not in the truth (user_id "
                             f"{unknown[0]}{', ...' if len(unknown) > 1 else ''}); expected the truth of the run the "
                             "detector read")

    def report(self, detector: bool = True, end: float | None = None, asked: Asked | None = None,
               baseline: "Scoreboard | None" = None) -> dict[str, Any]:
        end = self.end if end is None else end
        out: dict[str, Any] = {
            "horizon_days": self.horizon / DAY_MS,
            "window": {"start": iso(self.start) if self.start != math.inf else None, "end": iso(end),
                       "alerts_scored_to": iso(end - self.horizon), "churns_scored_from": iso(self.start + self.horizon)
                       if self.start != math.inf else None},
            "customers": len(self.since),
            "alerts_outside_the_stream": self.outside(),
            "truth_events_repeated": self.truth_repeats,
        }
        baselines = {"oracle": self.score(self.oracle_alerts(), end)}
        if detector:
            out.update(self.score(self.alerts, end))
            baselines["random"] = self.chance(out["alerts"], end)
        if self.last_event:
            baselines[f"idle_{self.idle / DAY_MS:g}_days"] = self.score(self.floor_alerts(), end)
        out["baselines"] = baselines
        if detector and asked is not None:
            out.update(beyond(self, end, asked, baseline))
        return out


# --- beyond one threshold: scores, a budget, episodes, one normalised score, scenarios, confidence ------------

# NAB's application profiles (Lavin and Ahmad 2015, the Numenta Anomaly Benchmark): the weight of a detection, of a
# false alarm and of a miss. docs/early-warning.md gives the formula and test vectors.
PROFILES = {"standard": (1.0, 0.11, 1.0), "low_fp": (1.0, 0.22, 1.0), "low_fn": (1.0, 0.11, 2.0)}
MIN_LEADS_DAYS = (0, 7, 14)
CI_LEVEL = 0.95


def nab_credit(y: float) -> float:
    """NAB's scaled sigmoid of where in its window a detection falls: y = (alert - churn) / H, from -1 (the window's
    start: 0.987) to 0 (the churn itself: 0); earlier is worth more."""
    return 2 / (1 + math.exp(5 * y)) - 1


class Analysis:
    """What one report needs of a Scoreboard as of `end`: the counted churns, the scored alerts and judgements,
    each with its customer, so that every figure can be summed per customer (and resampled: --ci-resamples)."""

    def __init__(self, board: "Scoreboard", end: float, users: set[int] | None = None) -> None:
        self.board, self.end, self.users = board, end, users
        start = board.start if board.start != math.inf else min(board.since.values(), default=end)
        self.start, self.horizon = start, board.horizon
        keep = (lambda u: u not in board.bots) if users is None else (lambda u: u in users and u not in board.bots)
        self.customers = [u for u in board.since if keep(u)]
        self.index = {u: i for i, u in enumerate(self.customers)}
        self.churns = [(u, c) for u, times in board.churns.items() if u in self.index for c in times
                       if start + self.horizon <= c <= end]
        span_end = end - self.horizon
        self.customer_days = [max(0.0, span_end - board.since[u]) / DAY_MS for u in self.customers]

    def scored(self, alerts: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """The alerts that are scored now: of known customers, inside the stream, their H days over."""
        return [(u, t) for u, t in alerts if u in self.index and self.start <= t <= self.end - self.horizon]

    def followed(self, user: int, when: int, min_lead: float = 0.0) -> bool:
        """Whether the customer churns within H after `when`, at least min_lead ms after it."""
        churns = self.board.churns.get(user, ())
        i = bisect.bisect_left(churns, when + min_lead)
        return i < len(churns) and churns[i] <= when + self.horizon

    # alerts: per episode, time to detect, confirmatory, one normalised score --------------------------------
    def episodes(self, alerts: list[tuple[int, int]], max_delay_ms: float | None) -> dict[str, Any]:
        by_user: dict[int, list[int]] = {}
        for u, t in alerts:
            if u in self.index and self.start <= t <= self.end:
                by_user.setdefault(u, []).append(t)
        for times in by_user.values():
            times.sort()
        per_episode, delays, confirmatory, detections, late = [], [], 0, 0, 0
        for u, c in self.churns:
            times = by_user.get(u, [])
            window = times[bisect.bisect_left(times, c - self.horizon):bisect.bisect_left(times, c)]
            if not window:
                continue
            per_episode.append(len(window))
            starts = [d for d in self.board.decline_starts.get(u, ()) if d <= c]
            if not starts:
                continue
            began = starts[-1]
            after = times[bisect.bisect_left(times, began):bisect.bisect_left(times, c)]
            if not after:
                continue
            detections += 1
            delay = after[0] - began
            delays.append(delay / DAY_MS)
            if max_delay_ms is not None and delay > max_delay_ms:
                late += 1
            carts = self.board.abandoned.get(u, ())
            i = bisect.bisect_left(carts, began)
            if i < len(carts) and carts[i] <= after[0]:
                confirmatory += 1
        churns = len(self.churns)
        return {
            "alarms_per_episode": {"mean": round(statistics.fmean(per_episode), 3) if per_episode else None,
                                   "max": max(per_episode, default=None),
                                   "repeats": sum(n - 1 for n in per_episode)},
            "time_to_detect_days": _quartiles(delays),
            # the churns whose first alert after their decline began came within the maximum delay
            "detected_within_max_delay": (round((detections - late) / churns, 4) if churns else None)
            if max_delay_ms is not None else None,
            "confirmatory_share": round(confirmatory / detections, 4) if detections and self.board.events else None,
        }

    def nab(self, alerts: list[tuple[int, int]]) -> dict[str, list[float]]:
        """Each customer's raw NAB score under each profile (summed for the score, resampled for its interval)."""
        windows: dict[int, list[int]] = {}
        for u, c in self.churns:
            windows.setdefault(u, []).append(c)
        credit = [0.0] * len(self.customers)
        false = [0] * len(self.customers)
        missed = [0] * len(self.customers)
        hit: set[tuple[int, int]] = set()
        for u, t in sorted(self.scored(alerts), key=lambda a: a[1]):
            churns = windows.get(u, ())
            i = bisect.bisect_right(churns, t)
            if i < len(churns) and churns[i] - self.horizon <= t:
                if (u, churns[i]) not in hit:  # the first detection of a window counts; the rest are ignored
                    hit.add((u, churns[i]))
                    credit[self.index[u]] += nab_credit((t - churns[i]) / self.horizon)
            elif not self.followed_any(u, t):
                false[self.index[u]] += 1
        for u, c in self.churns:
            if (u, c) not in hit:
                missed[self.index[u]] += 1
        return {name: [tp * a - fp * f - fn * m for a, f, m in zip(credit, false, missed)]
                for name, (tp, fp, fn) in PROFILES.items()}

    def followed_any(self, user: int, when: int) -> bool:
        """An alert in the window of a churn that is not counted (before the scored span): neither hit nor false."""
        churns = self.board.churns.get(user, ())
        i = bisect.bisect_right(churns, when)
        return i < len(churns) and churns[i] - self.horizon <= when

    def null_nab(self) -> dict[str, list[float]]:
        missed = [0] * len(self.customers)
        for u, _ in self.churns:
            missed[self.index[u]] += 1
        return {name: [-fn * m for m in missed] for name, (_, _, fn) in PROFILES.items()}

    # per customer, for the figures and their resampling -------------------------------------------------------
    def per_customer(self, alerts: list[tuple[int, int]]) -> dict[str, list[float]]:
        """Per customer: scored alerts, true ones, counted churns, caught ones, customer-days."""
        n = len(self.customers)
        scored, true, churns, caught = [0] * n, [0] * n, [0] * n, [0] * n
        by_user: dict[int, list[int]] = {}
        for u, t in self.scored(alerts):
            i = self.index[u]
            scored[i] += 1
            true[i] += self.followed(u, t)
        for u, t in alerts:
            if u in self.index and self.start <= t <= self.end:
                by_user.setdefault(u, []).append(t)
        for times in by_user.values():
            times.sort()
        for u, c in self.churns:
            i = self.index[u]
            churns[i] += 1
            times = by_user.get(u, ())
            j = bisect.bisect_left(times, c - self.horizon)
            caught[i] += j < len(times) and times[j] < c
        return {"scored": scored, "true": true, "churns": churns, "caught": caught, "days": self.customer_days}

    # scores: the precision-recall curve ----------------------------------------------------------------------
    def judgements(self, min_lead_ms: float = 0.0):
        """The scored judgements as numpy arrays, by score (highest first): score, customer index, positive; and
        each counted churn's highest score in [churn - H, churn - min_lead] (-inf: none), with its customer."""
        import numpy as np

        points = [(u, t, sc) for u, t, sc in self.board.scores
                  if u in self.index and self.start <= t <= self.end - self.horizon]
        order = sorted(range(len(points)), key=lambda k: -points[k][2])
        score = np.array([points[k][2] for k in order], dtype=float)
        who = np.array([self.index[points[k][0]] for k in order], dtype=np.int64)
        positive = np.array([self.followed(points[k][0], points[k][1], min_lead_ms) for k in order], dtype=float)
        by_user: dict[int, list[tuple[int, float]]] = {}
        for u, t, sc in self.board.scores:
            if u in self.index:
                by_user.setdefault(u, []).append((t, sc))
        for judged in by_user.values():
            judged.sort()
        best, owner = [], []
        for u, c in self.churns:
            judged = by_user.get(u, [])
            lo = bisect.bisect_left(judged, (c - self.horizon, -math.inf))
            hi = bisect.bisect_right(judged, (c - min_lead_ms, math.inf))
            best.append(max((sc for _, sc in judged[lo:hi]), default=-math.inf))
            owner.append(self.index[u])
        churn_best = np.array(best, dtype=float)
        churn_order = np.argsort(-churn_best, kind="stable")
        return score, who, positive, churn_best[churn_order], np.array(owner, dtype=np.int64)[churn_order]


def _quartiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"median": round(_quantile(ordered, 0.5), 2), "p25": round(_quantile(ordered, 0.25), 2),
            "p75": round(_quantile(ordered, 0.75), 2)}


def pr_curve(score, who, positive, churn_best, churn_who, weights=None):
    """(thresholds, precision, recall) over every distinct score, highest first; weights: per customer (a
    bootstrap resample's counts), default 1 each. Recall counts churns: caught at a threshold when the customer's
    highest score in the H days before it reaches it."""
    import numpy as np

    w_points = np.ones(len(score)) if weights is None else weights[who]
    w_churns = np.ones(len(churn_best)) if weights is None else weights[churn_who]
    if len(score) == 0:
        return np.array([]), np.array([]), np.array([])
    last = np.r_[np.nonzero(np.diff(score))[0], len(score) - 1]  # the last judgement at each distinct score
    true = np.cumsum(w_points * positive)[last]
    judged = np.cumsum(w_points)[last]
    thresholds = score[last]
    caught = np.searchsorted(-churn_best, -thresholds, side="right")  # churns whose best score is >= threshold
    churn_weight = np.r_[0.0, np.cumsum(w_churns)]
    total = churn_weight[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(judged > 0, true / judged, 0.0)
        recall = churn_weight[caught] / total if total > 0 else np.zeros(len(thresholds))
    return thresholds, precision, recall


def average_precision(precision, recall) -> float | None:
    """The area under the precision-recall curve as steps (average precision): each gain in recall times the
    precision at which it came."""
    import numpy as np

    if len(precision) == 0 or recall[-1] == 0:
        return None
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Asked:
    """What the report is asked for beyond the one-threshold figures (the command line's options)."""

    budget: int | None = None  # alerts a day at most, highest scores first
    max_delay_days: float | None = None  # a detection later than this after the decline began counts as a miss
    calibration: bool = False  # scores are probabilities: the Brier score and a reliability table
    target_precision: float | None = None  # the threshold that gives it
    target_alerts_per_day: float | None = None  # the threshold that keeps to it
    ci_resamples: int = 0
    seed: int = 0


def beyond(board: "Scoreboard", end: float, asked: Asked, baseline: "Scoreboard | None" = None) -> dict[str, Any]:
    """The figures past one threshold: from the scores, on a budget, per episode, NAB-normalised, per scenario,
    against a clean run, and their confidence intervals."""
    whole = Analysis(board, end)
    out: dict[str, Any] = {}
    alerts = board.alerts
    out.update(whole.episodes(alerts, asked.max_delay_days * DAY_MS if asked.max_delay_days else None))
    per = whole.per_customer(alerts)
    false = sum(per["scored"]) - sum(per["true"])
    days = sum(per["days"])
    out["customer_days_between_false_alarms"] = round(days / false, 1) if false else None
    nab, null, oracle = whole.nab(alerts), whole.null_nab(), whole.nab(board.oracle_alerts())
    out["normalized_score"] = {name: _normalised(sum(nab[name]), sum(null[name]), sum(oracle[name]))
                               for name in PROFILES}
    if board.scores:
        out.update(_from_scores(whole, asked))
    if asked.budget is not None:
        out["budget"] = _budget(board, whole, end, asked.budget)
    if board.scenarios:
        out["by_scenario"] = {name: _scenario_figures(board, end, name, sc) for name, sc in board.scenarios.items()}
    if baseline is not None:
        out["vs_baseline"] = _versus(board, baseline, end, out.get("by_scenario", {}))
    if asked.ci_resamples:
        out["ci"] = _intervals(whole, per, nab, null, oracle, asked)
    return out


def _normalised(raw: float, null: float, oracle: float) -> float | None:
    return round(100 * (raw - null) / (oracle - null), 2) if oracle != null else None


def _from_scores(whole: Analysis, asked: Asked) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {"pr_auc_by_min_lead": {}}
    for lead in MIN_LEADS_DAYS:
        if lead * DAY_MS >= whole.horizon:  # a lead of the whole horizon or more leaves no window
            out["pr_auc_by_min_lead"][str(lead)] = None
            continue
        score, who, positive, churn_best, churn_who = whole.judgements(lead * DAY_MS)
        thresholds, precision, recall = pr_curve(score, who, positive, churn_best, churn_who)
        area = average_precision(precision, recall)
        out["pr_auc_by_min_lead"][str(lead)] = round(area, 4) if area is not None else None
        if lead == 0:
            out["pr_auc"] = out["pr_auc_by_min_lead"]["0"]
            out["judgements_scored"] = int(len(score))
            out["base_rate"] = round(float(positive.mean()), 4) if len(score) else None
            out["_curve"] = (thresholds, precision, recall)  # for the plot; dropped from the JSON
            if asked.target_alerts_per_day is not None:
                days = max(1e-9, (whole.end - whole.horizon - whole.start) / DAY_MS)
                judged = np.searchsorted(-score, -thresholds, side="right")  # judgements at or above each threshold
                within = np.nonzero(judged / days <= asked.target_alerts_per_day)[0]
                k = within[-1] if len(within) else None  # the lowest threshold that keeps to that many a day
                out["at_target_alerts_per_day"] = None if k is None else {
                    "threshold": float(thresholds[k]), "precision": round(float(precision[k]), 4),
                    "recall": round(float(recall[k]), 4), "alerts_per_day": round(float(judged[k] / days), 2)}
            if asked.target_precision is not None:
                reach = np.nonzero(precision >= asked.target_precision)[0]
                k = reach[-1] if len(reach) else None  # the lowest threshold that keeps that precision
                out["at_target_precision"] = None if k is None else {
                    "threshold": float(thresholds[k]), "precision": round(float(precision[k]), 4),
                    "recall": round(float(recall[k]), 4),
                    "alerts_per_day": round(float(np.sum(score >= thresholds[k])) /
                                            max(1e-9, (whole.end - whole.horizon - whole.start) / DAY_MS), 2)}
            if len(score) and (asked.calibration or (score.min() >= 0 and score.max() <= 1)):
                out["brier"] = round(float(np.mean((score - positive) ** 2)), 5)
                bins = np.minimum((score * 10).astype(int), 9)
                out["reliability"] = [{"bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}", "judgements": int(n),
                                       "mean_score": round(float(score[bins == b].mean()), 4),
                                       "churned_share": round(float(positive[bins == b].mean()), 4)}
                                      for b in range(10) if (n := int(np.sum(bins == b)))]
    return out


def _budget(board: "Scoreboard", whole: Analysis, end: float, budget: int) -> dict[str, Any]:
    """At most `budget` alerts a day (event-time days), highest scores first, one per customer a day: from the
    scores, or else the alerts' own scores."""
    judged = board.scores or [(u, t, sc) for (u, t), sc in zip(board.alerts, board.alert_scores)]
    by_day: dict[int, list[tuple[float, int, int]]] = {}
    for u, t, sc in judged:
        by_day.setdefault(t // DAY_MS, []).append((sc, u, t))
    kept = []
    for day in by_day.values():
        day.sort(key=lambda j: -j[0])
        users: set[int] = set()
        for sc, u, t in day:
            if u not in users:
                users.add(u)
                kept.append((u, t))
                if len(users) == budget:
                    break
    figures = board.score(kept, end)
    caught = figures["recall"] * figures["churns"] if figures["recall"] is not None else 0
    return {"alerts_per_day": budget, "alerts": figures["alerts"], "precision": figures["precision"],
            "recall": figures["recall"], "unreachable_churns": int(round(figures["churns"] - caught))}


def _scenario_figures(board: "Scoreboard", end: float, name: str, sc: dict[str, Any]) -> dict[str, Any]:
    """One scenario's split: its touched customers' figures and the others', false alarms during its window, and
    the churns it caused: how many were caught, and how many days after it began the first alert on them came."""
    begun = sc["start"] if sc["start"] is not None else board.start
    ended = sc["end"] if sc["end"] is not None else end
    touched = sc["touched"] - board.bots
    others = set(board.since) - touched - board.bots
    split = {}
    for label, users in (("touched", touched), ("untouched", others)):
        part = Analysis(board, end, users)
        per = part.per_customer(board.alerts)
        scored, true = sum(per["scored"]), sum(per["true"])
        churns, caught, days = sum(per["churns"]), sum(per["caught"]), sum(per["days"])
        split[label] = {"customers": len(users), "alerts": scored, "churns": churns,
                        "precision": round(true / scored, 4) if scored else None,
                        "recall": round(caught / churns, 4) if churns else None,
                        "false_alarms_per_1000_customer_days": round(1000 * (scored - true) / days, 3) if days
                        else None,
                        "time_to_detect_days": part.episodes(board.alerts, None)["time_to_detect_days"]}
        if board.scores:
            area = average_precision(*pr_curve(*part.judgements(0.0))[1:])
            split[label]["pr_auc"] = round(area, 4) if area is not None else None
    caused = [(u, c) for (u, c), cause in board.causes.items() if cause == name]
    firsts = []
    for u, c in caused:
        times = sorted(t for a, t in board.alerts if a == u and begun <= t < c)
        if times:
            firsts.append((times[0] - begun) / DAY_MS)
    return {"kind": sc["kind"], "start": iso(begun), "end": iso(ended), **split,
            "false_alarms_per_1000_customer_days_in_window": _window_false_rate(board, begun, ended, end),
            "churns_caused": len(caused), "churns_caused_alerted": len(firsts),
            "days_to_first_alert_on_caused": _quartiles(firsts)}


def _window_false_rate(board: "Scoreboard", begun: float, ended: float, end: float) -> float | None:
    """False alarms per 1,000 customer-days of the alerts raised in [begun, ended] (their H days over)."""
    whole = Analysis(board, end)
    last = min(ended, end - board.horizon)
    if last <= begun:
        return None
    false = sum(1 for u, t in whole.scored(board.alerts) if begun <= t <= last and not whole.followed(u, t))
    days = sum(max(0.0, last - max(begun, board.since[u])) for u in whole.customers) / DAY_MS
    return round(1000 * false / days, 3) if days else None


def fingerprint(board: "Scoreboard") -> tuple[Any, int, int]:
    """A run's identity as its truth tells it: the start, and its customers there with their segment and state
    (the same seed and window give the same, scenarios or not)."""
    import hashlib

    present = hashlib.sha256(repr(sorted(board.present, key=lambda p: p[0])).encode()).digest()
    return board.start, len(board.present), int.from_bytes(present[:8], "big")


def _versus(board: "Scoreboard", baseline: "Scoreboard", end: float,
            by_scenario: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each figure of the scenario run beside the clean run's, for the same customers and days; by_scenario: the
    scenario run's own split (beyond() has made it)."""
    def pair(ours: Any, theirs: Any) -> dict[str, Any]:
        delta = round(ours - theirs, 4) if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) \
            else None
        return {"scenario": ours, "baseline": theirs, "delta": delta}

    mine, clean = board.score(board.alerts, end), baseline.score(baseline.alerts, min(end, baseline.end))
    out: dict[str, Any] = {name: pair(mine[name], clean[name]) for name in
                           ("precision", "recall", "false_alarms_per_1000_customer_days", "churns", "alerts")}
    out["by_scenario"] = {}
    for name, sc in board.scenarios.items():
        begun = sc["start"] if sc["start"] is not None else board.start
        ended = sc["end"] if sc["end"] is not None else end
        ours = by_scenario[name]
        # the same customers (those it touched here) and days, in the clean run
        theirs = _scenario_figures(baseline, min(end, baseline.end), name, {**sc, "start": begun, "end": ended})
        out["by_scenario"][name] = {
            "false_alarms_per_1000_customer_days_in_window": pair(
                ours["false_alarms_per_1000_customer_days_in_window"],
                theirs["false_alarms_per_1000_customer_days_in_window"]),
            **{f"touched_{k}": pair(ours["touched"][k], theirs["touched"][k]) for k in ("churns", "alerts",
                                                                                          "precision", "recall")}}
    return out


def _intervals(whole: Analysis, per: dict[str, list[float]], nab: dict[str, list[float]],
               null: dict[str, list[float]], oracle: dict[str, list[float]], asked: Asked) -> dict[str, list]:
    """Bootstrap intervals over customers (CI_LEVEL, percentile): each resample draws the customers with
    replacement and sums their parts of each figure."""
    import numpy as np

    rng = np.random.default_rng(asked.seed)
    n = len(whole.customers)
    arrays = {k: np.asarray(v, dtype=float) for k, v in per.items()}
    nab_a = {k: np.asarray(v) for k, v in nab.items()}
    null_a, oracle_a = {k: np.asarray(v) for k, v in null.items()}, {k: np.asarray(v) for k, v in oracle.items()}
    curve = whole.judgements(0.0) if whole.board.scores else None
    draws: dict[str, list[float]] = {}

    def add(name: str, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            draws.setdefault(name, []).append(value)

    for _ in range(asked.ci_resamples):
        weights = rng.multinomial(n, np.full(n, 1 / n)).astype(float) if n else np.zeros(0)
        scored, true = weights @ arrays["scored"], weights @ arrays["true"]
        churns, caught, days = weights @ arrays["churns"], weights @ arrays["caught"], weights @ arrays["days"]
        precision = true / scored if scored else None
        recall = caught / churns if churns else None
        add("precision", precision)
        add("recall", recall)
        if precision and recall:
            add("f1", 2 * precision * recall / (precision + recall))
        add("false_alarms_per_1000_customer_days", 1000 * (scored - true) / days if days else None)
        for name in PROFILES:
            low, high = weights @ null_a[name], weights @ oracle_a[name]
            add(f"normalized_score_{name}", 100 * (weights @ nab_a[name] - low) / (high - low) if high != low
                else None)
        if curve is not None:
            _, precision_c, recall_c = pr_curve(*curve, weights=weights)
            add("pr_auc", average_precision(precision_c, recall_c))
    tail = (1 - CI_LEVEL) / 2
    return {name: [round(float(np.quantile(v, tail)), 4), round(float(np.quantile(v, 1 - tail)), 4)]
            for name, v in draws.items()}


# --- reading ------------------------------------------------------------------------------------

def read_lines(path: str, what: str) -> Iterator[tuple[dict, str]]:
    try:
        f = open(path, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--{what}: cannot read '{path}' ({exc.strerror or type(exc).__name__})") from None
    with f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            yield _record(line, where), where


def read_topics(bootstrap: str, topics: dict[str, str], follow: bool, idle_s: float) -> Iterator[tuple[str, bytes]]:
    """(which, value) of every record of the topics, from the beginning; without follow, up to the ends they had
    when reading began; with it, until nothing has come for idle_s seconds (never, when 0)."""
    try:
        from confluent_kafka import Consumer, KafkaException, TopicPartition
    except ImportError:
        raise KafkaFailed("reading topics needs confluent-kafka: `make setup-confluent` (or pip install -r "
                          "requirements-confluent.txt); --truth, --alerts and --events files need nothing") from None
    # its own log lines stay quiet: what goes wrong is said here, once
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"scoreboard-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0,
                         "error_cb": lambda error: None})
    try:
        which, ends, assignment = {}, {}, []
        for name, topic in topics.items():
            try:
                metadata = consumer.list_topics(topic, timeout=10)
            except KafkaException:
                raise KafkaFailed(f"--bootstrap-servers: {bootstrap} did not answer within 10 s; start the broker "
                                  "(make kafka-up) or name one that runs") from None
            partitions = metadata.topics[topic].partitions if metadata.topics[topic].error is None else {}
            if not partitions:
                raise KafkaFailed(f"--{name}-topic: topic '{topic}' does not exist on {bootstrap}")
            which[topic] = name
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[(topic, p)] = high
                assignment.append(TopicPartition(topic, p, -2))  # -2: the beginning
        consumer.assign(assignment)
        last = time.monotonic()
        while follow or ends:
            batch = consumer.consume(1000, timeout=0.5)
            if not batch:
                if idle_s and time.monotonic() - last > idle_s:
                    return
                continue
            last = time.monotonic()
            for message in batch:
                if message.error():
                    continue
                part = (message.topic(), message.partition())
                if not follow:
                    if part not in ends:
                        continue
                    if message.offset() >= ends[part] - 1:
                        del ends[part]
                yield which[message.topic()], message.value()
    finally:
        consumer.close()


def _record(value: bytes | str, where: str) -> dict:
    """One line or record as a JSON object, or InputError naming where it is."""
    try:
        record = json.loads(value)
    except ValueError:
        raise InputError(f"{where}: not JSON; expected one JSON object per line or record") from None
    if not isinstance(record, dict):
        raise InputError(f"{where}: not a JSON object")
    return record


# --- output -------------------------------------------------------------------------------------

def _row(name: str, figures: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    lead = figures["lead_time_days"]
    lead_text = f"{lead['median']:.1f} ({lead['p25']:.1f}-{lead['p75']:.1f})" if lead else "-"
    return (f"{name:<26}{figures['alerts']:>8}{fmt(figures['precision'], '11.3f')}{fmt(figures['recall'], '8.3f')}"
            f"{lead_text:>21}{fmt(figures['false_alarms_per_1000_customer_days'], '14.2f')}{figures['late_alerts']:>7}")


def render(report: dict[str, Any], detector_name: str = "your detector") -> str:
    w = report["window"]
    lines = [f"Scoreboard, horizon {report['horizon_days']:g} days: stream {w['start']} to {w['end']}, "
             f"{report['customers']:,} customers; alerts scored to {w['alerts_scored_to']}, churns from "
             f"{w['churns_scored_from']}",
             f"{'':<26}{'alerts':>8}{'precision':>11}{'recall':>8}{'lead days (p25-p75)':>21}"
             f"{'false/1000 cd':>14}{'late':>7}"]
    baselines = report["baselines"]
    lines.append(_row("ceiling: oracle", baselines["oracle"]))
    if "alerts" in report:
        lines.append(_row(detector_name, report))
        lines.append(_row("chance: as many, random", baselines["random"]))
    for name, figures in baselines.items():
        if name.startswith("idle_"):
            lines.append(_row(f"floor: {name[5:].replace('_', ' ')} idle", figures))
    lines.append(f"churns scored: {baselines['oracle']['churns']:,}"
                 + ("" if any(name.startswith("idle_") for name in baselines)
                    else "; the floor needs the events (--events or --events-topic)"))
    chance = baselines.get("random")
    if chance and chance.get("spread", {}).get("precision") is not None:
        lines.append(f"chance: the mean of {chance['draws']} draws; their spread (sd): precision "
                     f"{chance['spread']['precision']:.3f}, recall {chance['spread']['recall']:.3f}")
    lines += _render_beyond(report)
    if report.get("alerts_outside_the_stream"):
        lines.append(f"not scored: {report['alerts_outside_the_stream']:,} alerts stamped outside the stream "
                     f"({w['start']} to {w['end']}); an alert takes the time of the event it judged, not the clock's")
    if report.get("truth_events_repeated"):
        lines.append(f"counted once: {report['truth_events_repeated']:,} truth events read twice (a rerun of the "
                     "window sends its truth again)")
    return "\n".join(lines)


def _render_beyond(report: dict[str, Any]) -> list[str]:
    """The lines of the figures past one threshold (docs/early-warning.md defines each)."""
    def f(value: Any, spec: str = ".3f") -> str:
        return "-" if value is None else format(value, spec)

    def ci(name: str) -> str:
        interval = report.get("ci", {}).get(name)
        return f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""

    lines = []
    if "pr_auc" in report:
        by_lead = report["pr_auc_by_min_lead"]
        lines.append(f"scores: {report['judgements_scored']:,} judgements scored; PR-AUC {f(report['pr_auc'])}"
                     f"{ci('pr_auc')} (base rate {f(report['base_rate'])}); with at least 7 days' lead "
                     f"{f(by_lead['7'])}, 14 days {f(by_lead['14'])}"
                     + (f"; Brier {report['brier']:.4f}" if "brier" in report else ""))
        for key in ("at_target_precision", "at_target_alerts_per_day"):
            if report.get(key):
                t = report[key]
                lines.append(f"  threshold {t['threshold']:.4g} ({key.replace('_', ' ')}): precision "
                             f"{t['precision']:.3f}, recall {t['recall']:.3f}, {t['alerts_per_day']:g} alerts a day")
    if "budget" in report:
        b = report["budget"]
        lines.append(f"on a budget of {b['alerts_per_day']} alerts a day: precision {f(b['precision'])}, recall "
                     f"{f(b['recall'])}, {b['unreachable_churns']:,} churns not reached")
    if "alarms_per_episode" in report:
        a, ttd = report["alarms_per_episode"], report["time_to_detect_days"]
        lines.append(f"episodes: {f(a['mean'], '.2f')} alerts per caught churn ({a['repeats']:,} repeats); time to "
                     f"detect after the decline began {f(ttd and ttd['median'], '.1f')} days "
                     f"({f(ttd and ttd['p25'], '.1f')}-{f(ttd and ttd['p75'], '.1f')}); confirmatory share "
                     f"{f(report['confirmatory_share'])}; {f(report['customer_days_between_false_alarms'], ',.0f')} "
                     "customer-days between false alarms"
                     + (f"; detected within --max-delay-days {f(report['detected_within_max_delay'])}"
                        if report.get("detected_within_max_delay") is not None else ""))
        n = report["normalized_score"]
        lines.append(f"normalised score (NAB; null 0, oracle 100): standard {f(n['standard'], '.1f')}"
                     f"{ci('normalized_score_standard')}, few false alarms {f(n['low_fp'], '.1f')}, few misses "
                     f"{f(n['low_fn'], '.1f')}")
    for name, sc in report.get("by_scenario", {}).items():
        t, u = sc["touched"], sc["untouched"]
        versus = report.get("vs_baseline", {}).get("by_scenario", {}).get(name)
        clean = f" (clean run {f(versus['false_alarms_per_1000_customer_days_in_window']['baseline'], '.2f')})" \
            if versus else ""
        lines.append(f"scenario {name} ({sc['kind']}, {sc['start']} to {sc['end']}): touched {t['customers']:,} "
                     f"customers, precision {f(t['precision'])}, recall {f(t['recall'])}; untouched precision "
                     f"{f(u['precision'])}, recall {f(u['recall'])}; false/1000 cd in its window "
                     f"{f(sc['false_alarms_per_1000_customer_days_in_window'], '.2f')}{clean}; {sc['churns_caused']} "
                     f"churns it caused, {sc['churns_caused_alerted']} alerted, the first alert on them "
                     f"{f(sc['days_to_first_alert_on_caused'] and sc['days_to_first_alert_on_caused']['median'], '.1f')}"
                     " days in (median)")
    if "vs_baseline" in report:
        v = report["vs_baseline"]
        lines.append("against the clean run: " + ", ".join(
            f"{name} {f(v[name]['scenario'])} vs {f(v[name]['baseline'])}" for name in ("precision", "recall")))
    if "ci" in report:
        lines.append(f"{CI_LEVEL:.0%} intervals over customers: " + ", ".join(
            f"{name} [{lo:.3f}, {hi:.3f}]" for name, (lo, hi) in report["ci"].items()))
    return lines


def plot_report(path: str, board: Scoreboard, report: dict[str, Any], curve) -> None:
    """The report drawn: the PR curve, lead times and times to detect, a timeline, the per-scenario figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, 2, figsize=(15, 10))
    a = axes[0][0]
    if curve is not None and len(curve[0]):
        a.step(curve[2], curve[1], where="post", label=f"your detector (PR-AUC {report.get('pr_auc')})")
        a.axhline(report.get("base_rate") or 0, color="grey", linestyle=":", label="chance (the base rate)")
    a.scatter([report["baselines"]["oracle"]["recall"] or 0], [report["baselines"]["oracle"]["precision"] or 0],
              color="green", label="ceiling: oracle", zorder=3)
    if report.get("recall") is not None:
        a.scatter([report["recall"]], [report["precision"] or 0], color="red", label="your alerts", zorder=3)
    a.set_xlabel("recall (churns caught)")
    a.set_ylabel("precision")
    a.set_xlim(0, 1.02)
    a.set_ylim(0, 1.02)
    a.set_title("precision and recall over the thresholds")
    a.legend(fontsize=9)
    a = axes[0][1]
    whole = Analysis(board, board.end)
    leads, delays = [], []
    for u, c in whole.churns:
        times = sorted(t for x, t in board.alerts if x == u and c - board.horizon <= t < c)
        if times:
            leads.append((c - times[0]) / DAY_MS)
            starts = [d for d in board.decline_starts.get(u, ()) if d <= times[0]]
            if starts:
                delays.append((times[0] - starts[-1]) / DAY_MS)
    bins = np.linspace(0, max([board.horizon / DAY_MS, *delays]) if delays else board.horizon / DAY_MS, 30)
    a.hist(leads, bins=bins, alpha=0.6, label="lead time: first alert to churn")
    a.hist(delays, bins=bins, alpha=0.6, label="time to detect: decline began to first alert")
    a.set_xlabel("days")
    a.set_ylabel("caught churns")
    a.set_title("how early")
    a.legend(fontsize=9)
    a = axes[1][0]
    day = lambda ms: (ms - board.start) / DAY_MS  # noqa: E731
    churn_days = [day(c) for times in board.churns.values() for c in times]
    alert_days = [day(t) for _, t in board.alerts if board.start <= t <= board.end]
    span = np.arange(0, day(board.end) + 1)
    a.hist(churn_days, bins=span, alpha=0.6, label="churns")
    a.hist(alert_days, bins=span, alpha=0.6, label="alerts")
    for name, sc in board.scenarios.items():
        begun = sc["start"] if sc["start"] is not None else board.start
        ended = sc["end"] if sc["end"] is not None else board.end
        a.axvspan(day(begun), day(ended), color="orange", alpha=0.15)
        a.text(day(begun), a.get_ylim()[1] * 0.95, f" {name}", fontsize=9, va="top")
    a.set_xlabel(f"days from {iso(board.start)}")
    a.set_ylabel("a day")
    a.set_title("the stream: churns, alerts and scenario windows")
    a.legend(fontsize=9)
    a = axes[1][1]
    versus = report.get("vs_baseline", {}).get("by_scenario", {})
    if versus:
        names = list(versus)
        x = np.arange(len(names))
        for offset, (key, label) in enumerate((("touched_recall", "recall of the touched"),
                                               ("touched_precision", "precision of the touched"))):
            a.bar(x + offset * 0.2 - 0.3, [versus[n][key]["scenario"] or 0 for n in names], 0.2, label=f"{label}")
            a.bar(x + offset * 0.2 + 0.1, [versus[n][key]["baseline"] or 0 for n in names], 0.2,
                  label=f"{label}, clean run", alpha=0.5)
        a.set_xticks(x, names)
        a.set_title("each scenario against the clean run (the same customers)")
        a.legend(fontsize=9)
    elif report.get("by_scenario"):
        names = list(report["by_scenario"])
        x = np.arange(len(names))
        for offset, (part, key) in enumerate((("touched", "recall"), ("untouched", "recall"), ("touched", "precision"),
                                              ("untouched", "precision"))):
            a.bar(x + offset * 0.2 - 0.3, [report["by_scenario"][n][part][key] or 0 for n in names], 0.2,
                  label=f"{key}, {part}")
        a.set_xticks(x, names)
        a.set_title("each scenario: its customers and the others")
        a.legend(fontsize=9)
    else:
        a.axis("off")
        a.text(0.5, 0.5, "no scenarios in this run", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\nExit codes")[0].rstrip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="exit codes: 0 scored, 1 Kafka could not be read, 2 bad input. The columns, the baselines and the truth "
                                            "events: docs/early-warning.md; a scenarios run's truth: docs/scenarios.md")
    files = parser.add_argument_group("from JSON-lines files")
    files.add_argument("--truth", help="the producer's --truth-file")
    files.add_argument("--alerts", help="the detector's alerts, one JSON object a line")
    files.add_argument("--events", help="the events (for the floor baseline and the confirmatory share)")
    files.add_argument("--scores", help="the detector's risk judgements, {\"user_id\", \"timestamp\", \"score\"} a "
                                        "line, as many as it makes: the threshold-free figures (PR-AUC)")
    topics = parser.add_argument_group("from Kafka topics (read from the beginning)")
    topics.add_argument("--bootstrap-servers")
    topics.add_argument("--truth-topic")
    topics.add_argument("--alerts-topic")
    topics.add_argument("--events-topic")
    topics.add_argument("--scores-topic")
    topics.add_argument("--follow", action="store_true", help="keep reading; a report line every --report-every")
    topics.add_argument("--report-every", type=float, default=1440.0, metavar="MINUTES",
                        help="--follow: minutes of stream time between report lines (default 1440, a day)")
    topics.add_argument("--until-idle", type=float, default=0.0, metavar="SECONDS",
                        help="--follow: stop once nothing has come for this long (default: never)")
    parser.add_argument("--horizon-days", type=float, default=14.0, help="H (default 14)")
    parser.add_argument("--idle-days", type=float, default=7.0, help="the floor's N days without an event (default 7)")
    more = parser.add_argument_group("beyond one threshold (docs/early-warning.md)")
    more.add_argument("--budget", type=int, metavar="K", help="at most K alerts a day, highest scores first: the "
                                                              "precision and recall a team working K a day gets")
    more.add_argument("--max-delay-days", type=float, metavar="D", help="a detection later than D days after the "
                                                                         "decline began counts as a miss")
    more.add_argument("--calibration", action="store_true", help="the scores are probabilities: the Brier score "
                                                                  "and a reliability table (scores outside 0..1 are "
                                                                  "refused)")
    more.add_argument("--target-precision", type=float, metavar="P",
                      help="the threshold on the scores that keeps precision P, and its recall")
    more.add_argument("--target-alerts-per-day", type=float, metavar="A",
                      help="the threshold on the scores that keeps to A alerts a day (every judgement at or above "
                           "it an alert), and its precision and recall")
    more.add_argument("--ci-resamples", type=int, default=0, metavar="N",
                      help="bootstrap intervals (95%%) over customers for each headline figure, from N resamples")
    more.add_argument("--baseline", metavar="DIR", help="the same seed's clean run: DIR/truth.jsonl, "
                                                         "DIR/alerts.jsonl (and scores.jsonl, events.jsonl if there)")
    more.add_argument("--baseline-truth", metavar="FILE", help="the clean run's truth (instead of --baseline)")
    more.add_argument("--baseline-alerts", metavar="FILE", help="the clean run's alerts (instead of --baseline)")
    more.add_argument("--runs", nargs="+", metavar="DIR", help="several runs (seeds) at once, each a folder with "
                                                               "truth.jsonl and alerts.jsonl (scores.jsonl, "
                                                               "events.jsonl if there): each figure's mean and spread")
    more.add_argument("--plot", metavar="PNG", help="draw the report: the PR curve, the lead times and times to "
                                                    "detect, a timeline of churns, alerts and scenarios, the "
                                                    "per-scenario figures against the clean run")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    return parser


def _check(args: argparse.Namespace) -> None:
    if args.runs:
        if args.truth or args.truth_topic or args.baseline or args.baseline_truth or args.follow:
            raise InputError("--runs: expected the runs' folders alone, not with --truth, --truth-topic, --baseline "
                             "or --follow")
        return
    from_files, from_topics = args.truth or args.alerts or args.events, args.truth_topic or args.alerts_topic
    if from_files and (from_topics or args.bootstrap_servers):
        raise InputError("--truth/--alerts and --truth-topic/--alerts-topic: expected files or topics, not both")
    if from_topics and not args.bootstrap_servers:
        raise InputError("--bootstrap-servers: needed with --truth-topic (host:port)")
    if not (args.truth or args.truth_topic):
        raise InputError("--truth (or --truth-topic): needed; the producer writes it with --truth-file/--truth-topic")
    if args.follow and not args.truth_topic:
        raise InputError("--follow: reads topics; expected --truth-topic and --alerts-topic")
    for name in ("horizon_days", "idle_days"):
        value = getattr(args, name)
        if not (0 < value <= 365):
            raise InputError(f"--{name.replace('_', '-')}: {value:g}; expected days > 0 and <= 365")
    if args.report_every <= 0:
        raise InputError(f"--report-every: {args.report_every:g}; expected minutes > 0")
    if args.budget is not None and args.budget < 1:
        raise InputError(f"--budget: {args.budget}; expected 1 or more alerts a day")
    if args.max_delay_days is not None and not 0 < args.max_delay_days <= 365:
        raise InputError(f"--max-delay-days: {args.max_delay_days:g}; expected days > 0 and <= 365")
    if args.target_precision is not None and not 0 < args.target_precision <= 1:
        raise InputError(f"--target-precision: {args.target_precision:g}; expected a precision above 0, at most 1")
    if args.target_alerts_per_day is not None and not args.target_alerts_per_day > 0:
        raise InputError(f"--target-alerts-per-day: {args.target_alerts_per_day:g}; expected alerts a day above 0")
    if not 0 <= args.ci_resamples <= 100_000:
        raise InputError(f"--ci-resamples: {args.ci_resamples}; expected 0 (none) to 100,000 resamples")
    if args.baseline and (args.baseline_truth or args.baseline_alerts):
        raise InputError("--baseline and --baseline-truth/--baseline-alerts: expected a folder or files, not both")
    if bool(args.baseline_truth) != bool(args.baseline_alerts):
        raise InputError("--baseline-truth and --baseline-alerts: expected both (the clean run's truth and alerts)")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise InputError(f"--plot {args.plot}: the report is drawn as a PNG; expected a path ending in .png")
    asks_numpy = args.scores or args.scores_topic or args.ci_resamples or args.plot
    if asks_numpy:
        import importlib.util

        if importlib.util.find_spec("numpy") is None:
            raise InputError("--scores, --ci-resamples and --plot need numpy (and --plot matplotlib): "
                             "`make setup-dev`, or pip install -r requirements-dev.txt")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    asked = None
    try:
        _check(args)
        asked = Asked(budget=args.budget, max_delay_days=args.max_delay_days, calibration=args.calibration,
                      target_precision=args.target_precision, target_alerts_per_day=args.target_alerts_per_day,
                      ci_resamples=args.ci_resamples)
        if args.runs:
            return _score_runs(args, asked)
        board = Scoreboard(args.horizon_days, args.idle_days)
        if args.truth:
            read_files(board, args.truth, args.alerts, args.events, args.scores)
        else:
            _score_topics(board, args, asked)
            if args.follow:
                return EXIT_OK
        board.check()
        board.known(board.alerts + board.scores)
        if args.calibration and board.scores and not all(0 <= sc <= 1 for _, _, sc in board.scores):
            worst = next(sc for _, _, sc in board.scores if not 0 <= sc <= 1)
            raise InputError(f"--calibration: a score of {worst:g} is not a probability; expected scores from 0 to 1 "
                             "(or no --calibration)")
        baseline = read_baseline(args) if args.baseline or args.baseline_truth else None
        if baseline is not None and fingerprint(baseline) != fingerprint(board):
            raise InputError("--baseline: its truth is not the same shop at the start as this run's (another seed, "
                             "window or population); expected the clean run of the same seed and window")
    except InputError as exc:
        print(f"scoreboard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaFailed as exc:
        print(f"scoreboard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    report = board.report(detector=bool(args.alerts or args.alerts_topic), asked=asked, baseline=baseline)
    curve = report.pop("_curve", None)
    if args.plot:
        plot_report(args.plot, board, report, curve)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return EXIT_OK


def read_files(board: Scoreboard, truth: str, alerts: str | None, events: str | None, scores: str | None) -> None:
    for record, where in read_lines(truth, "truth"):
        board.add_truth(record, where)
    for record, where in read_lines(alerts, "alerts") if alerts else ():
        board.add_alert(record, where)
    for record, where in read_lines(scores, "scores") if scores else ():
        board.add_score(record, where)
    for record, where in read_lines(events, "events") if events else ():
        add_event(board, record, where)


def _run_files(folder: str, option: str) -> tuple[str, str, str | None, str | None]:
    """A run's folder: truth.jsonl and alerts.jsonl, and scores.jsonl and events.jsonl when there."""
    import os

    if not os.path.isdir(folder):
        raise InputError(f"{option} {folder}: not a folder; expected one with truth.jsonl and alerts.jsonl")
    paths = {name: os.path.join(folder, f"{name}.jsonl") for name in ("truth", "alerts", "scores", "events")}
    for name in ("truth", "alerts"):
        if not os.path.exists(paths[name]):
            raise InputError(f"{option} {folder}: no {name}.jsonl in it; expected a run's truth and alerts there")
    return (paths["truth"], paths["alerts"], *(paths[n] if os.path.exists(paths[n]) else None
                                               for n in ("events", "scores")))


HEADLINE = ("precision", "recall", "false_alarms_per_1000_customer_days", "pr_auc")


def _score_runs(args: argparse.Namespace, asked: Asked) -> int:
    """--runs: each run scored as one, then each headline figure's mean and spread (standard deviation) over them."""
    reports = []
    for folder in args.runs:
        board = Scoreboard(args.horizon_days, args.idle_days)
        truth, alerts, events, scores = _run_files(folder, "--runs")
        try:
            read_files(board, truth, alerts, events, scores)
            board.check()
            board.known(board.alerts + board.scores)
        except InputError as exc:
            raise InputError(f"--runs {folder}: {exc}") from None
        report = board.report(asked=asked)
        report.pop("_curve", None)
        reports.append(report)
    figures = {**{name: [r.get(name) for r in reports] for name in HEADLINE},
               "normalized_score_standard": [r["normalized_score"]["standard"] for r in reports],
               "chance_precision": [r["baselines"]["random"]["precision"] for r in reports],
               "oracle_precision": [r["baselines"]["oracle"]["precision"] for r in reports]}
    summary = {name: {"mean": round(statistics.fmean(v), 4), "spread": round(statistics.stdev(v), 4)
                      if len(v) > 1 else None, "runs": len(v)}
               for name, values in figures.items() if (v := [x for x in values if x is not None])}
    if args.json:
        print(json.dumps({"runs": args.runs, "figures": summary, "reports": reports}, indent=2))
    else:
        print(f"{len(reports)} runs: each figure's mean ± spread (the standard deviation over the runs)")
        for name, f in summary.items():
            print(f"  {name:<38}{f['mean']:>9.4f}" + (f" ± {f['spread']:.4f}" if f["spread"] is not None else ""))
    return EXIT_OK


def read_baseline(args: argparse.Namespace) -> Scoreboard:
    """The clean run's scoreboard: --baseline DIR (truth.jsonl, alerts.jsonl; scores.jsonl, events.jsonl if there),
    or --baseline-truth and --baseline-alerts."""
    if args.baseline:
        truth, alerts, events, scores = _run_files(args.baseline, "--baseline")
    else:
        truth, alerts, events, scores = args.baseline_truth, args.baseline_alerts, None, None
    baseline = Scoreboard(args.horizon_days, args.idle_days)
    try:
        read_files(baseline, truth, alerts, events, scores)
        baseline.check()
    except InputError as exc:
        raise InputError(f"--baseline: {exc}") from None
    return baseline


def add_event(board: Scoreboard, record: dict, where: str) -> None:
    if "kind" in record and "event_type" not in record:
        raise InputError(f"{where}: a truth event (it has kind), not an event; expected the events (--events, "
                         "--events-topic)")
    metadata = record.get("metadata")
    board.add_event(_user(record, where), parse_time(record.get("timestamp"), where), record.get("event_type"),
                    metadata.get("session_id") if isinstance(metadata, dict) else None)


def _score_topics(board: Scoreboard, args: argparse.Namespace, asked: Asked) -> None:
    board.ordered = False  # several partitions: each customer's truth in order, the customers interleaved
    topics = {name: topic for name, topic in (("truth", args.truth_topic), ("alerts", args.alerts_topic),
                                               ("events", args.events_topic), ("scores", args.scores_topic)) if topic}
    every = args.report_every * 60_000
    next_report = None
    for which, value in read_topics(args.bootstrap_servers, topics, args.follow, args.until_idle):
        where = f"topic '{topics[which]}'"
        if which == "events":
            add_event(board, _record(value, where), where)
        elif which == "truth":
            board.add_truth(_record(value, where), where)
        elif which == "scores":
            board.add_score(_record(value, where), where)
        else:
            board.add_alert(_record(value, where), where)
        if args.follow and board.end != -math.inf:
            if next_report is None:
                next_report = board.end + every
            elif board.end >= next_report:
                next_report += every
                _report_line(board, args, bool(args.alerts_topic), asked)
    if args.follow:
        _report_line(board, args, bool(args.alerts_topic), asked)


def _report_line(board: Scoreboard, args: argparse.Namespace, detector: bool, asked: Asked) -> None:
    """--follow: a line of the running figures, with each scenario's split (its touched customers' recall and
    precision) once scenarios have begun."""
    report = board.report(detector=detector)
    if detector and board.scenarios:  # only the split: the rest of the figures past one threshold is for the end
        report["by_scenario"] = {name: _scenario_figures(board, board.end, name, sc)
                                 for name, sc in board.scenarios.items()}
    if args.json:
        print(json.dumps(report), flush=True)
        return
    figures = report if detector else report["baselines"]["oracle"]
    lead = figures["lead_time_days"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{report['window']['end']} churns={figures['churns']} alerts={figures['alerts']} "
          f"precision={fmt(figures['precision'])} recall={fmt(figures['recall'])} "
          f"lead_median={'-' if not lead else format(lead['median'], '.1f')}d "
          f"false_per_1000cd={'-' if figures['false_alarms_per_1000_customer_days'] is None else figures['false_alarms_per_1000_customer_days']}"
          + "".join(f" {name}:touched_recall={fmt(sc['touched']['recall'])},touched_precision="
                    f"{fmt(sc['touched']['precision'])}" for name, sc in report.get("by_scenario", {}).items()),
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
