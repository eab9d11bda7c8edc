#!/usr/bin/env python3
"""A reference churn early-warning consumer: a baseline to replace with your own, and the pipeline end to end.

It reads the events topic in a consumer group (or a JSON-lines file), keeps a small state per customer, and
writes an alert {"user_id", "timestamp", "score", "reason"} when a customer's risk crosses --threshold.
Everything is judged in event time (the stream's own clock, the latest event timestamp seen), so a replayed
backfill and a live stream behave alike. The risk combines, against the customer's own history:
  - recency against their own rhythm: the time since their last visit over their usual gap between visits;
  - the frequency trend: their recent gaps over their usual gap;
  - bounces: the recent share of one-event visits against their usual share;
  - depth: the recent views per visit against their usual number;
  - abandoned carts: the recent share of carts left without a checkout.
A customer is alerted at most once per --cooldown-days.

    python producer.py --mode sessions --start-time 2026-01-01T00:00:00Z --end-time 2026-03-02T00:00:00Z \\
        --user-id-range 1-20000 --seed 1 --truth-topic user-truth
    python examples/early_warning.py --bootstrap-servers localhost:9092 --topic user-events \\
        --alerts-topic churn-alerts --until-idle 10
    python scoreboard.py --bootstrap-servers localhost:9092 --truth-topic user-truth --alerts-topic churn-alerts \\
        --events-topic user-events

    python examples/early_warning.py --events-file events.jsonl --alerts-file alerts.jsonl   # offline

Exit codes: 0 done (stopped, or idle for --until-idle), 1 Kafka failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

DAY_MS = 86_400_000
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# Moving averages over a customer's visits: the usual (slow) and the recent (fast) level.
SLOW, FAST = 0.08, 0.35
PRIOR_GAP_DAYS = 7.0  # a newcomer's usual gap until their own visits say otherwise
MIN_VISITS = 2  # fewer visits than this: no rhythm of their own to judge against
SILENCE_CHECK = 2.5  # a silence is looked at after this many usual gaps
HOUR_MS = 3_600_000
DEFAULT_THRESHOLD = 0.05
# The risk model: logistic weights of the signals (see risk()), fitted once with scikit-learn on a simulated
# 60-day run (20,000 customers, seed 1, every judgement labelled by the truth: churned within 14 days or not)
# and kept as constants here; scored on other seeds in docs/early-warning.md. TYPICAL: an engaged customer's
# level of each signal, for naming the main reason of an alert.
BIAS = -7.92
WEIGHTS = {"in_silence": 0.59, "silent": 0.54, "slowing": 1.58, "bouncing": 3.55, "bounces_usually": 2.24,
           "shallower": -0.85, "abandoning": 0.32, "seldom": 1.23}
TYPICAL = {"silent": 0.0, "slowing": 0.0, "bouncing": 0.32, "bounces_usually": 0.32, "shallower": 1.0,
           "abandoning": 0.7, "seldom": math.log(7.0)}


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Customer:
    """What the detector remembers of one customer: their current visit, and the usual and recent levels."""

    __slots__ = ("session", "start", "last", "events", "views", "carts", "bought", "visits", "gap", "gap_recent",
                 "bounce", "bounce_recent", "depth", "depth_recent", "abandoned", "quiet_until")

    def __init__(self, when: int) -> None:
        self.session, self.start, self.last = None, when, when
        self.events = self.views = self.carts = self.bought = 0
        self.visits = 0
        self.gap = self.gap_recent = PRIOR_GAP_DAYS * DAY_MS
        self.bounce = self.bounce_recent = 0.15
        self.depth = self.depth_recent = 3.0
        self.abandoned = 0.0
        self.quiet_until = 0  # alerted: not again before this


class Detector:
    """Event-time churn risk per customer; alerts go to emit(user_id, epoch ms, score, reason)."""

    def __init__(self, emit: Callable[[int, int, float, str], None], threshold: float = DEFAULT_THRESHOLD,
                 cooldown_days: float = 14.0, judged: Callable[[int, int, float], None] | None = None) -> None:
        self.emit, self.threshold, self.cooldown = emit, threshold, int(cooldown_days * DAY_MS)
        self.judged = judged  # every judgement's risk, alerted or not (--scores-file): the threshold-free figures
        self.customers: dict[int, Customer] = {}
        self.clock = 0  # event time: the latest event timestamp seen
        self._silences: list[tuple[int, int, int]] = []  # (when to look, user, the visit start it was set for)
        self.events = self.alerts = 0

    def feed(self, value: bytes) -> None:
        """A record of the input: an event of the producer's JSON."""
        self.observe(*decode(value))

    def observe(self, user_id: int, when: int, event_type: str, session_id: str | None) -> None:
        self.events += 1
        if when > self.clock:
            self.clock = when
            silences = self._silences
            while silences and silences[0][0] <= when:
                due, user, start = heapq.heappop(silences)
                customer = self.customers[user]
                if customer.start == start:  # no visit since: still silent
                    self._judge(user, customer, due)
        customer = self.customers.get(user_id)
        if customer is None:
            customer = self.customers[user_id] = Customer(when)
        if session_id != customer.session:
            self._visit(user_id, customer, when, session_id)
        customer.events += 1
        customer.last = max(customer.last, when)
        if event_type == "product_view":
            customer.views += 1
        elif event_type == "add_to_cart":
            customer.carts += 1
        elif event_type == "checkout":
            customer.bought += 1

    def _visit(self, user_id: int, c: Customer, when: int, session_id: str | None) -> None:
        """A new visit: the one before it folds into the levels; then the risk as the visit begins."""
        if c.session is not None:
            bounced = float(c.events == 1 and c.views == 0)
            c.bounce += SLOW * (bounced - c.bounce)
            c.bounce_recent += FAST * (bounced - c.bounce_recent)
            if not bounced:
                c.depth += SLOW * (c.views - c.depth)
                c.depth_recent += FAST * (c.views - c.depth_recent)
            if c.carts:
                c.abandoned += FAST * (float(not c.bought) - c.abandoned)
            gap = when - c.start
            c.gap += (SLOW if c.visits > MIN_VISITS else 1 / (c.visits + 1)) * (gap - c.gap)
            c.gap_recent += FAST * (gap - c.gap_recent)
        c.visits += 1
        c.session, c.start = session_id, when
        c.events = c.views = c.carts = c.bought = 0
        if c.visits > MIN_VISITS:
            self._judge(user_id, c, when)
            heapq.heappush(self._silences, (when + int(SILENCE_CHECK * c.gap), user_id, when))

    def risk(self, c: Customer, now: int) -> tuple[float, str]:
        """(score, the main reason) of a customer at event time `now`: a logistic model of the chance they churn
        in the next 14 days, from the signals against their own history (WEIGHTS)."""
        silent, signals = self.signals(c, now)
        contributions = {name: WEIGHTS[name] * (value - TYPICAL[name]) for name, value in signals.items()}
        z = BIAS + WEIGHTS["in_silence"] * silent + sum(WEIGHTS[name] * value for name, value in signals.items())
        return 1 / (1 + math.exp(-z)), max(contributions, key=contributions.get)

    @staticmethod
    def signals(c: Customer, now: int) -> tuple[bool, dict[str, float]]:
        """(judged in a silence, the signals of a customer at event time `now`, against their own history)."""
        silent = now > c.start  # judged in a silence, not as a visit begins
        return silent, {
            "silent": math.log(max(now - c.start, HOUR_MS) / c.gap) if silent else 0.0,
            "slowing": math.log(c.gap_recent / c.gap),
            "bouncing": c.bounce_recent,
            "bounces_usually": c.bounce,
            "shallower": c.depth_recent / c.depth if c.depth > 0 else 1.0,
            "abandoning": c.abandoned,
            "seldom": math.log(c.gap / DAY_MS),
        }

    def _judge(self, user_id: int, c: Customer, now: int) -> None:
        if self.judged is not None:
            score, reason = self.risk(c, now)
            self.judged(user_id, now, round(score, 4))
        if now < c.quiet_until:
            return
        if self.judged is None:
            score, reason = self.risk(c, now)
        if score >= self.threshold:
            c.quiet_until = now + self.cooldown
            self.alerts += 1
            self.emit(user_id, now, round(score, 4), reason)


# --- the pipeline's ends ----------------------------------------------------------------------

def events_from_file(path: str) -> Iterator[bytes]:
    """The lines of a JSON-lines file ('-': standard input, as from `producer.py --dry-run |`)."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as f:
        yield from f


def decode(value: bytes) -> tuple[int, int, str, str | None]:
    event = json.loads(value)
    timestamp = event["timestamp"]
    # The producer's timestamps are 'YYYY-MM-DDTHH:MM:SS.mmmZ': fromisoformat reads them in Python 3.11.
    when = int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    metadata = event.get("metadata") or {}
    return event["user_id"], when, event["event_type"], metadata.get("session_id")


class KafkaFailed(Exception):
    """Kafka could not be read or written: one line, exit 1."""


def kafka_client(kind: str, config: dict):
    """A confluent-kafka Consumer or Producer whose own log lines stay quiet (what goes wrong is said here, once);
    KafkaFailed naming the package when it is not installed."""
    try:
        import confluent_kafka
    except ImportError:
        raise KafkaFailed("reading and writing Kafka needs confluent-kafka: `make setup-confluent` (or pip install "
                          "-r requirements-confluent.txt); --events-file and --alerts-file need nothing") from None
    return getattr(confluent_kafka, kind)({**config, "log_level": 0, "error_cb": lambda error: None})


def consume(bootstrap: str, topic: str, group: str, until_idle: float, stop: list,
            more: tuple[str, ...] = ()) -> Iterator[bytes]:
    """Event values from the topic (and the `more` topics: another detector's inputs) in a consumer group, from the
    group's offsets (the beginning, first time). KafkaFailed when the broker does not answer or a topic does not
    exist."""
    consumer = kafka_client("Consumer", {"bootstrap.servers": bootstrap, "group.id": group,
                                         "auto.offset.reset": "earliest", "enable.auto.commit": True})
    from confluent_kafka import KafkaException

    try:
        topics = consumer.list_topics(timeout=10).topics
    except KafkaException:
        consumer.close()
        raise KafkaFailed(f"--bootstrap-servers: {bootstrap} did not answer within 10 s; start the broker (make "
                          "kafka-up) or name one that runs") from None
    for name in (topic, *more):
        if name not in topics or topics[name].error is not None:
            consumer.close()
            raise KafkaFailed(f"topic '{name}' does not exist on {bootstrap}; expected the topic the producer sends "
                              f"{'to (--topic)' if name == topic else 'its truth to (--truth-topic)'}")
    consumer.subscribe([topic, *more])
    last = time.monotonic()
    try:
        while not stop:
            batch = consumer.consume(1000, timeout=0.5)
            if not batch:
                if until_idle and time.monotonic() - last > until_idle:
                    return
                continue
            last = time.monotonic()
            for message in batch:
                if message.error() is None:
                    yield message.value()
    finally:
        consumer.close()


def _first_or_fail(values: Iterator[bytes]) -> Iterator[bytes]:
    """The consumer's checks (broker, topic) run at its first step: taken here, so that a failure is said before the
    run starts."""
    first = list(itertools.islice(values, 1))
    return itertools.chain(first, values)


def build_parser(description: str = __doc__.split("\n\n")[0], group: str = "early-warning",
                 threshold: float = DEFAULT_THRESHOLD) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, epilog="exit codes: 0 done, 1 Kafka failed, 2 bad input")
    parser.add_argument("--bootstrap-servers", default="localhost:9092")
    parser.add_argument("--topic", default="user-events", help="the events topic (default user-events)")
    parser.add_argument("--group", default=group, help=f"consumer group (default {group})")
    parser.add_argument("--events-file", help="read events from this JSON-lines file (- for stdin) instead of Kafka")
    parser.add_argument("--alerts-topic", help="send alerts to this topic (keyed by user id, event-time stamped)")
    parser.add_argument("--alerts-file", help="write alerts to this JSON-lines file")
    parser.add_argument("--scores-file", help="also write every judgement's risk, alerted or not, to this JSON-lines "
                                              "file: {\"user_id\", \"timestamp\", \"score\"} (scoreboard.py --scores)")
    parser.add_argument("--scores-topic", help="also send every judgement's risk to this topic")
    parser.add_argument("--threshold", type=float, default=threshold,
                        help=f"alert at this risk (the chance of churning within 14 days) or above (default {threshold})")
    parser.add_argument("--cooldown-days", type=float, default=14.0,
                        help="at most one alert per customer in this many days (default 14)")
    parser.add_argument("--until-idle", type=float, default=0.0, metavar="SECONDS",
                        help="stop once no event has come for this long (default: run until stopped)")
    return parser


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None,
         make_detector: Callable[..., Detector] | None = None, name: str = "early_warning",
         more_topics: Callable[[argparse.Namespace], tuple[str, ...]] = lambda args: ()) -> int:
    """The pipeline around a detector: events in (a consumer group or a file), alerts and scores out. A detector of
    another kind (examples/early_warning_online.py) comes with its parser, make_detector(emit, args, judged), and
    the topics it reads beside the events (its feed() takes their records)."""
    args = (parser or build_parser()).parse_args(argv)
    if not (args.alerts_topic or args.alerts_file):
        print(f"{name}: --alerts-topic or --alerts-file: expected at least one place for the alerts",
              file=sys.stderr)
        return EXIT_USAGE
    if not 0 < args.threshold < 1:
        print(f"{name}: --threshold: {args.threshold:g}; expected a risk between 0 and 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        out = open(args.alerts_file, "w", encoding="utf-8") if args.alerts_file else None
        scores_out = open(args.scores_file, "w", encoding="utf-8") if args.scores_file else None
        if args.events_file and args.events_file != "-":
            open(args.events_file, "rb").close()  # a missing file is said now, not as a traceback later
        values: Iterable[bytes] = events_from_file(args.events_file) if args.events_file else ()
    except OSError as exc:
        print(f"{name}: cannot open {exc.filename} ({exc.strerror})", file=sys.stderr)
        return EXIT_USAGE
    producer = None
    stop: list[int] = []
    try:
        if args.alerts_topic or args.scores_topic:
            producer = kafka_client("Producer", {"bootstrap.servers": args.bootstrap_servers,
                                                 "enable.idempotence": True, "linger.ms": 50})
        if not args.events_file:
            values = consume(args.bootstrap_servers, args.topic, args.group, args.until_idle, stop, more_topics(args))
            values = _first_or_fail(values)
    except KafkaFailed as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    failed: list[str] = []

    def send(text: str, user_id: int, when: int, file, topic: str | None) -> None:
        """One output record: a line of its file, a record of its topic (keyed by the user, event-time stamped)."""
        if file is not None:
            file.write(text + "\n")
        if producer is not None and topic:
            producer.produce(topic, text.encode(), str(user_id).encode(), timestamp=when,
                             on_delivery=lambda error, _message: error is not None and failed.append(str(error)))
            producer.poll(0)

    def emit(user_id: int, when: int, score: float, reason: str) -> None:
        send(json.dumps({"user_id": user_id, "timestamp": iso(when), "score": score, "reason": reason}), user_id,
             when, out, args.alerts_topic)

    def judged(user_id: int, when: int, score: float) -> None:
        send(f'{{"user_id":{user_id},"timestamp":"{iso(when)}","score":{score}}}', user_id, when, scores_out,
             args.scores_topic)

    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.append(signum))
    scoring = judged if args.scores_file or args.scores_topic else None
    detector = make_detector(emit, args, scoring) if make_detector else Detector(emit, args.threshold,
                                                                                args.cooldown_days, scoring)
    feed = detector.feed
    if sys.stderr.isatty():  # on a terminal, the events read so far, on a counter that redraws in place
        from tqdm import tqdm

        values = tqdm(values, desc=f"{name}: events", unit=" events", file=sys.stderr, mininterval=0.5)
    first = last = 0.0  # the busy span, for the rate (not the wait of --until-idle)
    try:
        for value in values:
            if not first:
                first = time.monotonic()
            last = time.monotonic()
            try:
                feed(value)
            except (ValueError, KeyError, TypeError):
                print(f"{name}: skipped a record that is not an event of the producer's JSON: {value[:80]!r}",
                      file=sys.stderr)
    except KeyboardInterrupt:
        pass
    if producer is not None:
        left = producer.flush(30)
        if left or failed:
            print(f"{name}: {left + len(failed)} alerts were not acknowledged by Kafka"
                  + (f" ({failed[0]})" if failed else ""), file=sys.stderr)
            return EXIT_FAILURE
    if out is not None:
        out.close()
    if scores_out is not None:
        scores_out.close()
    busy = last - first
    print(f"{name}: {detector.events:,} events of {len(detector.customers):,} customers, "
          f"{detector.alerts:,} alerts, {detector.events / busy if busy > 0 else 0:,.0f} events/s", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
