#!/usr/bin/env python3
"""A second reference churn early-warning consumer: a model that learns online, from outcomes as they become known.

The first reference detector (early_warning.py) is a logistic model fitted once, offline, on another simulated run,
and kept as constants. This one starts knowing nothing and learns from the stream as a team would: each judgement's
outcome (did the customer churn within --horizon-days?) is known --horizon-days later, from the truth (the
producer's --truth-topic or --truth-file: the churns as they happen), and only then is it learnt. River
(https://riverml.xyz), a library made for machine learning on streams, keeps the model: the customer's signals
(early_warning.py's, against their own history) scaled as they come (StandardScaler) into a logistic regression
trained by SGD, one outcome at a time: online learning with delayed labels. A shop that changes (a scenario:
docs/scenarios.md) changes the model with it, with that delay.

It scores and alerts once it has learnt from --warm-up outcomes (until then its risk is a guess); an alert when the
model's risk reaches --threshold, at most once per customer per --cooldown-days. The rest (a consumer group or
a file in, alerts and scores out, event time, --until-idle) is early_warning.py's.

    python examples/early_warning_online.py --bootstrap-servers localhost:9092 --topic shop-events \\
        --truth-topic shop-truth --alerts-topic churn-alerts-online --until-idle 10
    python examples/early_warning_online.py --events-file events.jsonl --truth-file truth.jsonl \\
        --alerts-file alerts.jsonl --scores-file scores.jsonl   # offline

Exit codes: 0 done (stopped, or idle for --until-idle), 1 Kafka failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import itertools
import json
import sys
from datetime import datetime
from typing import Callable

import early_warning
from early_warning import DAY_MS, Customer, Detector

HORIZON_DAYS = 14.0  # the question each judgement answers, and how late its outcome is known
WARM_UP = 5000  # outcomes learnt before any alert
DEFAULT_THRESHOLD = 0.05
LEARNING_RATE = 0.02
RECHECK = int(5 * DAY_MS)  # a silence that goes on is judged again this often (early_warning.py: once)  # SGD's step: 0.005 to 0.05 gave the same ranking within 0.01 of AUC (README run)


class OnlineDetector(Detector):
    """early_warning.py's customers and judgements; the risk from a River model that learns each judgement's
    outcome when it is known, --horizon-days after it."""

    def __init__(self, emit: Callable[[int, int, float, str], None], threshold: float, cooldown_days: float,
                 judged: Callable[[int, int, float], None] | None, horizon_days: float = HORIZON_DAYS,
                 warm_up: int = WARM_UP) -> None:
        from river import linear_model, optim, preprocessing

        super().__init__(emit, threshold, cooldown_days, judged)
        self.model = preprocessing.StandardScaler() | linear_model.LogisticRegression(
            optimizer=optim.SGD(LEARNING_RATE))
        self.horizon = int(horizon_days * DAY_MS)
        self.warm_up = warm_up
        self.learnt = 0
        self.churns: dict[int, list[int]] = {}  # customer -> churn times, from the truth as it comes
        self._outcomes: list[tuple[int, int, int, int, dict[str, float]]] = []  # (known at, seq, user, judged, x)
        self._seq = itertools.count()
        self._judging = 0

    def feed(self, value: bytes) -> None:
        """An event, or a truth record (it has a "kind"): a churn is noted for the outcomes to come."""
        if b'"kind"' in value:
            record = json.loads(value)
            if record.get("kind") == "churned":
                self.churned(record["user_id"], _epoch_ms(record["time"]))
            return
        super().feed(value)

    def churned(self, user: int, when: int) -> None:
        bisect.insort(self.churns.setdefault(user, []), when)

    def observe(self, user_id: int, when: int, event_type: str, session_id: str | None) -> None:
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] <= when:  # event time has passed their horizon: their outcome is known
            _, _, user, judged_at, features = heapq.heappop(outcomes)
            self.model.learn_one(features, self._churned_within(user, judged_at))
            self.learnt += 1
        super().observe(user_id, when, event_type, session_id)

    def _churned_within(self, user: int, when: int) -> bool:
        churns = self.churns.get(user, ())
        i = bisect.bisect_right(churns, when)
        return i < len(churns) and churns[i] <= when + self.horizon

    def risk(self, c: Customer, now: int) -> tuple[float, str]:
        silent, signals = self.signals(c, now)
        features = {"in_silence": float(silent), **signals}
        score = self.model.predict_proba_one(features).get(True, 0.0)
        heapq.heappush(self._outcomes, (now + self.horizon, next(self._seq), self._judging, now, features))
        weights = self.model["LogisticRegression"].weights
        scaled = self.model["StandardScaler"].transform_one(features)
        reason = max(signals, key=lambda name: weights.get(name, 0.0) * scaled.get(name, 0.0))
        return score, reason

    def _judge(self, user_id: int, c: Customer, now: int) -> None:
        self._judging = user_id
        if now > c.start:  # judged in a silence: judged again if it goes on (a churn has no visit to judge at)
            heapq.heappush(self._silences, (now + RECHECK, user_id, c.start))
        if self.learnt < self.warm_up:  # its risk is a guess until it has learnt: learnt from, not scored or alerted
            self.risk(c, now)
            return
        if self.judged is None:  # every judgement is an outcome to learn, alerted or not: its risk is always asked
            self.judged = lambda *_: None
        super()._judge(user_id, c, now)


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def build_parser() -> argparse.ArgumentParser:
    parser = early_warning.build_parser(__doc__.split("\n\n")[0], group="early-warning-online",
                                        threshold=DEFAULT_THRESHOLD)
    parser.add_argument("--truth-topic", help="the producer's truth topic: the outcomes, as they happen")
    parser.add_argument("--truth-file", help="the producer's truth file (its churns are learnt only once event time "
                                             "has passed each judgement's horizon, as from the topic)")
    parser.add_argument("--horizon-days", type=float, default=HORIZON_DAYS,
                        help=f"the question: churned within this many days (default {HORIZON_DAYS:g})")
    parser.add_argument("--warm-up", type=int, default=WARM_UP,
                        help=f"outcomes learnt before any alert (default {WARM_UP})")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    say = (lambda text: print(f"early_warning_online: {text}", file=sys.stderr))
    if not (args.truth_topic or args.truth_file):
        say("--truth-topic or --truth-file: expected the truth, where the outcomes it learns from come")
        return early_warning.EXIT_USAGE
    if args.truth_file and not args.events_file:
        say("--truth-file goes with --events-file (and --truth-topic with the events topic)")
        return early_warning.EXIT_USAGE
    if not 0 < args.horizon_days <= 365:
        say(f"--horizon-days: {args.horizon_days:g}; expected days > 0 and <= 365")
        return early_warning.EXIT_USAGE
    if args.warm_up < 0:
        say(f"--warm-up: {args.warm_up}; expected 0 or more")
        return early_warning.EXIT_USAGE
    try:
        import river  # noqa: F401 - said now, in one line, rather than as a traceback at the first event
    except ImportError:
        say("needs River (the online model): `make setup-dev`, or pip install -r requirements-dev.txt")
        return early_warning.EXIT_USAGE
    churns: list[tuple[int, int]] = []
    if args.truth_file:
        try:
            with open(args.truth_file, encoding="utf-8") as truth:
                for number, line in enumerate(truth, start=1):
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if not isinstance(record, dict) or "kind" not in record:
                        raise ValueError
                    if record["kind"] == "churned":
                        churns.append((record["user_id"], _epoch_ms(record["time"])))
        except OSError as exc:
            say(f"--truth-file: cannot open {exc.filename} ({exc.strerror})")
            return early_warning.EXIT_USAGE
        except (ValueError, KeyError, TypeError):
            say(f"--truth-file: line {number} is not a truth event; expected the producer's --truth-file")
            return early_warning.EXIT_USAGE

    def make(emit, parsed: argparse.Namespace, judged) -> OnlineDetector:
        detector = OnlineDetector(emit, parsed.threshold, parsed.cooldown_days, judged, parsed.horizon_days,
                                  parsed.warm_up)
        for user, when in churns:  # learnt only once event time passes each judgement's horizon
            detector.churned(user, when)
        return detector
    return early_warning.main(argv, parser=parser, make_detector=make, name="early_warning_online",
                              more_topics=lambda parsed: (parsed.truth_topic,) if parsed.truth_topic else ())


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
