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
            if record.get("bot"):  # a bot is not a customer: no alert on it is scored, and the floor skips it
                self.bots.add(_user(record, where))
            return
        user = _user(record, where)
        when = parse_time(record.get("time"), where)
        self._seen(when)
        if kind == "present":
            self.start = min(self.start, when)
            self.since.setdefault(user, when)
            if record.get("state") == "declining":
                self.declines.append((user, when, parse_time(record.get("ends"), where)))
        elif kind == "joined":
            self.since.setdefault(user, when)
        elif kind == "decline_started":
            self.declines.append((user, when, parse_time(record.get("ends"), where)))
        elif kind == "churned":
            self.churns.setdefault(user, []).append(when)
        elif kind not in ("returned", "settled"):
            raise InputError(f"{where}: kind {kind!r} is not a truth event; expected present, joined, "
                             "decline_started, churned, returned, settled or a scenario's (scenario_...)")
        self.since.setdefault(user, when)

    def add_alert(self, record: dict, where: str = "alerts") -> None:
        if "event_type" in record or "kind" in record:
            raise InputError(f"{where}: {'an event' if 'event_type' in record else 'a truth event'}, not an alert; "
                             "expected the detector's alerts, {\"user_id\", \"timestamp\", \"score\"} a line")
        user, when = _user(record, where), parse_time(record.get("timestamp"), where)
        score = record.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise InputError(f"{where}: score {score!r} is not a number")
        self.alerts.append((user, when))  # its time does not stretch the stream: see outside()

    def add_event(self, user: int, when: int) -> None:
        """An event of the stream, for the floor: a silence of N days is an alert at its N-th day."""
        self.events += 1
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
        """The detector's alerts outside the stream's time (stamped with the wall clock, say): not scored."""
        return sum(1 for _, when in self.alerts if not self.start <= when <= self.end) if self.start != math.inf \
            else 0

    def check(self) -> None:
        """InputError when there is nothing to score: no truth, or a stream shorter than the horizon."""
        if not self.truth_events:
            raise InputError("--truth: no truth events; expected the producer's --truth-file or --truth-topic of a "
                             "sessions run")
        start = self.start if self.start != math.inf else min(self.since.values(), default=self.end)
        if self.end - start < self.horizon:
            raise InputError(f"--horizon-days: the stream spans {(self.end - start) / DAY_MS:.1f} days, shorter than "
                             f"the horizon ({self.horizon / DAY_MS:g} days): nothing can be scored; expected a longer "
                             "window or a shorter --horizon-days")

    def report(self, detector: bool = True, end: float | None = None) -> dict[str, Any]:
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
        return out


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
    if report.get("alerts_outside_the_stream"):
        lines.append(f"not scored: {report['alerts_outside_the_stream']:,} alerts stamped outside the stream "
                     f"({w['start']} to {w['end']}); an alert takes the time of the event it judged, not the clock's")
    if report.get("truth_events_repeated"):
        lines.append(f"counted once: {report['truth_events_repeated']:,} truth events read twice (a rerun of the "
                     "window sends its truth again)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\nExit codes")[0].rstrip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="exit codes: 0 scored, 1 Kafka could not be read, 2 bad input. The columns, the baselines and the truth "
                                            "events: docs/early-warning.md; a scenarios run's truth: docs/scenarios.md")
    files = parser.add_argument_group("from JSON-lines files")
    files.add_argument("--truth", help="the producer's --truth-file")
    files.add_argument("--alerts", help="the detector's alerts, one JSON object a line")
    files.add_argument("--events", help="the events (for the floor baseline)")
    topics = parser.add_argument_group("from Kafka topics (read from the beginning)")
    topics.add_argument("--bootstrap-servers")
    topics.add_argument("--truth-topic")
    topics.add_argument("--alerts-topic")
    topics.add_argument("--events-topic")
    topics.add_argument("--follow", action="store_true", help="keep reading; a report line every --report-every")
    topics.add_argument("--report-every", type=float, default=1440.0, metavar="MINUTES",
                        help="--follow: minutes of stream time between report lines (default 1440, a day)")
    topics.add_argument("--until-idle", type=float, default=0.0, metavar="SECONDS",
                        help="--follow: stop once nothing has come for this long (default: never)")
    parser.add_argument("--horizon-days", type=float, default=14.0, help="H (default 14)")
    parser.add_argument("--idle-days", type=float, default=7.0, help="the floor's N days without an event (default 7)")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    return parser


def _check(args: argparse.Namespace) -> None:
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check(args)
        board = Scoreboard(args.horizon_days, args.idle_days)
        if args.truth:
            for record, where in read_lines(args.truth, "truth"):
                board.add_truth(record, where)
            for record, where in read_lines(args.alerts, "alerts") if args.alerts else ():
                board.add_alert(record, where)
            for record, where in read_lines(args.events, "events") if args.events else ():
                add_event(board, record, where)
        else:
            _score_topics(board, args)
            if args.follow:
                return EXIT_OK
        board.check()
    except InputError as exc:
        print(f"scoreboard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaFailed as exc:
        print(f"scoreboard: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    report = board.report(detector=bool(args.alerts or args.alerts_topic))
    print(json.dumps(report, indent=2) if args.json else render(report))
    return EXIT_OK


def add_event(board: Scoreboard, record: dict, where: str) -> None:
    if "kind" in record and "event_type" not in record:
        raise InputError(f"{where}: a truth event (it has kind), not an event; expected the events (--events, "
                         "--events-topic)")
    board.add_event(_user(record, where), parse_time(record.get("timestamp"), where))


def _score_topics(board: Scoreboard, args: argparse.Namespace) -> None:
    topics = {name: topic for name, topic in (("truth", args.truth_topic), ("alerts", args.alerts_topic),
                                               ("events", args.events_topic)) if topic}
    every = args.report_every * 60_000
    next_report = None
    for which, value in read_topics(args.bootstrap_servers, topics, args.follow, args.until_idle):
        where = f"topic '{topics[which]}'"
        if which == "events":
            add_event(board, _record(value, where), where)
        elif which == "truth":
            board.add_truth(_record(value, where), where)
        else:
            board.add_alert(_record(value, where), where)
        if args.follow and board.end != -math.inf:
            if next_report is None:
                next_report = board.end + every
            elif board.end >= next_report:
                next_report += every
                _report_line(board, args, bool(args.alerts_topic))
    if args.follow:
        _report_line(board, args, bool(args.alerts_topic))


def _report_line(board: Scoreboard, args: argparse.Namespace, detector: bool) -> None:
    report = board.report(detector=detector)
    if args.json:
        print(json.dumps(report), flush=True)
        return
    figures = report if detector else report["baselines"]["oracle"]
    lead = figures["lead_time_days"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    print(f"{report['window']['end']} churns={figures['churns']} alerts={figures['alerts']} "
          f"precision={fmt(figures['precision'])} recall={fmt(figures['recall'])} "
          f"lead_median={'-' if not lead else format(lead['median'], '.1f')}d "
          f"false_per_1000cd={'-' if figures['false_alarms_per_1000_customer_days'] is None else figures['false_alarms_per_1000_customer_days']}",
          flush=True)


if __name__ == "__main__":
    sys.exit(main())
