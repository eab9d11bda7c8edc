#!/usr/bin/env python3
"""An honest churn benchmark on a sessions-mode stream: predict who churns in (T, T+H] from events before T.

producer.py's labels name the cut-off T and the horizon H, which users are eligible (active before T, not
churned at T), whether each churned within the horizon, and an oracle: the probability a perfect model of
the simulation would give from each user's hidden state at T. This script builds per-user features from the
events before T only, splits the eligible users into train and test sets (by user, several seeds), and
prints the test ROC AUC of: recency alone, an RFM logistic regression, a gradient-boosted model on all
features, the oracle, and the best single raw feature.

    python producer.py --mode sessions --dry-run --user-id-range 1-10000 --seed 1 \\
        --start-time 2026-09-01T00:00:00Z --end-time 2026-11-01T00:00:00Z --labels-file labels.jsonl > events.jsonl
    python examples/churn_model.py --events events.jsonl --labels labels.jsonl
    python examples/churn_model.py --bootstrap-servers localhost:9092 --events-topic user-events \\
        --labels-topic user-labels
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import defaultdict
from datetime import datetime

FEATURES = ("recency_days", "sessions_30d", "monetary", "tenure_days", "sessions_trend", "bounce_share",
            "abandoned_share", "views_per_session", "mean_gap_days", "recency_over_gap", "active_days", "orders",
            "bounce_share_14d", "views_per_session_14d")
RFM = ("recency_days", "sessions_30d", "monetary")
SHORT_HISTORY_DAYS = 30  # the longest look-back of the features: less history than this starves them


def epoch_seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def features(events, users: set[int], cutoff: float) -> dict[int, list[float]]:
    """One row of FEATURES per user, from that user's events before the cut-off (seconds since the epoch)."""
    sessions: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))  # user -> session -> [(t, type)]
    spent: dict[int, float] = defaultdict(float)
    for event in events:
        user = event["user_id"]
        if user not in users:
            continue
        when = epoch_seconds(event["timestamp"])
        if when >= cutoff:
            continue
        metadata = event.get("metadata") or {}
        sessions[user][metadata.get("session_id", "")].append((when, event["event_type"]))
        if event["event_type"] == "checkout":
            spent[user] += metadata.get("order_value", 0.0)
    day = 86400.0
    rows = {}
    for user in users:
        mine = sessions.get(user, {})
        starts = sorted(min(t for t, _ in rows_) for rows_ in mine.values())
        kinds = [[k for _, k in rows_] for rows_ in mine.values()]
        recent = [[k for _, k in rows_] for rows_ in mine.values() if min(t for t, _ in rows_) >= cutoff - 14 * day]
        last = max((t for rows_ in mine.values() for t, _ in rows_), default=cutoff - 90 * day)
        first = starts[0] if starts else last
        recency = (cutoff - last) / day
        carts = sum(1 for k in kinds if "add_to_cart" in k)
        orders = sum(k.count("checkout") for k in kinds)
        last14 = sum(1 for t in starts if t >= cutoff - 14 * day)
        prev14 = sum(1 for t in starts if cutoff - 28 * day <= t < cutoff - 14 * day)
        gap = (starts[-1] - starts[0]) / (len(starts) - 1) / day if len(starts) > 1 else (cutoff - first) / day
        rows[user] = [
            recency,
            sum(1 for t in starts if t >= cutoff - 30 * day),
            spent[user],
            (cutoff - first) / day,
            (last14 + 1) / (prev14 + 1),
            sum(1 for k in kinds if set(k) == {"bounce"}) / max(len(kinds), 1),
            (carts - sum(1 for k in kinds if "checkout" in k)) / carts if carts else 0.0,
            sum(k.count("product_view") for k in kinds) / max(len(kinds), 1),
            gap,
            recency / max(gap, 0.1),
            len({int((t - first) // day) for t in starts}),
            orders,
            sum(1 for k in recent if set(k) == {"bounce"}) / len(recent) if recent else -1.0,
            sum(k.count("product_view") for k in recent) / len(recent) if recent else -1.0,
        ]
    return rows


class BadInput(Exception):
    """One line for the user: which file or option, what is wrong, what is expected."""


def read_jsonl(path: str, option: str):
    """The file's JSON lines, one at a time (an events file may hold millions); BadInput naming the file. The
    file is opened at once, so that one that cannot be read is said before any work."""
    try:
        stream = open(path, encoding="utf-8")
    except OSError as exc:
        reason = "is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror or type(exc).__name__
        raise BadInput(f"{option} {path}: cannot be read ({reason}); expected a JSON-lines file") from None
    return _json_lines(stream, path, option)


def _json_lines(stream, path: str, option: str):
    with stream:
        lines = stream
        if sys.stderr.isatty():  # a few million lines take a while: on a terminal, a counter that redraws in place
            from tqdm import tqdm

            lines = tqdm(stream, desc=f"churn_model: reading {os.path.basename(path)}", unit=" lines", file=sys.stderr,
                         mininterval=0.5, leave=False)
        try:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        raise BadInput(f"{option} {path}: line {number} is not JSON; expected JSON lines "
                                       f"({'--labels-file output' if option == '--labels' else 'events'})") from None
        except UnicodeDecodeError:
            raise BadInput(f"{option} {path}: cannot be read (not UTF-8 text); expected a JSON-lines file") from None


def read_topic(bootstrap: str, topic: str) -> list[dict]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise SystemExit(f"churn_model: topic '{topic}' does not exist")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        rows = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000, max_records=50_000).values():
                rows.extend(json.loads(r.value) for r in records)
        return rows
    finally:
        consumer.close()


def benchmark(events, labels: list[dict], seeds: int = 5, test_share: float = 0.3) -> dict:
    """Test ROC AUC of each model over `seeds` train/test splits by user: {name: [auc per seed]}, plus counts."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if labels and "event_type" in labels[0] and "eligible" not in labels[0]:
        raise BadInput("--labels: holds events, not labels; expected the producer's --labels-file output (and the "
                       "events as --events)")
    rows = [r for r in labels if r.get("eligible") and r.get("churned_in_horizon") is not None]
    if not rows:
        raise SystemExit("churn_model: no eligible users with a complete horizon in the labels (give the producer a "
                         "window longer than CHURN_HORIZON_DAYS, or a --churn-cutoff)")
    cutoff = epoch_seconds(rows[0]["cutoff"])
    users = [r["user_id"] for r in rows]
    table = features(events, set(users), cutoff)
    x = np.array([table[u] for u in users], dtype=float)
    y = np.array([1 if r["churned_in_horizon"] else 0 for r in rows])
    oracle = np.array([r["oracle"] for r in rows], dtype=float)
    rfm = [FEATURES.index(f) for f in RFM]
    scores: dict[str, list[float]] = defaultdict(list)
    best_feature: dict[str, list[float]] = defaultdict(list)
    for seed in range(seeds):
        train, test = train_test_split(np.arange(len(y)), test_size=test_share, random_state=seed, stratify=y)
        scores["recency alone"].append(roc_auc_score(y[test], x[test, 0]))
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        rfm_x = np.log1p(x[:, rfm])  # recency, frequency and monetary are skewed: their logs, as RFM models do
        lr.fit(rfm_x[train], y[train])
        scores["RFM logistic regression"].append(roc_auc_score(y[test], lr.predict_proba(rfm_x[test])[:, 1]))
        gbm = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                             l2_regularization=1.0, random_state=seed)
        gbm.fit(x[train], y[train])
        scores["gradient boosting, all features"].append(roc_auc_score(y[test], gbm.predict_proba(x[test])[:, 1]))
        scores["oracle (hidden state at T)"].append(roc_auc_score(y[test], oracle[test]))
        for i, name in enumerate(FEATURES):
            auc = roc_auc_score(y[test], x[test, i])
            best_feature[name].append(max(auc, 1 - auc))  # a feature may predict either way
    best = max(best_feature, key=lambda f: statistics.mean(best_feature[f]))
    scores[f"best single feature ({best})"] = best_feature[best]
    history = max(float(x[:, FEATURES.index("tenure_days")].max()), 0.0)  # the earliest customer's days before T
    return {"users": len(y), "churned": int(y.sum()), "cutoff": rows[0]["cutoff"], "horizon_days":
            rows[0]["horizon_days"], "history_days": round(history, 1), "seeds": seeds,
            "auc": {k: [round(v, 4) for v in vs] for k, vs in scores.items()},
            "single_features": {k: round(statistics.mean(v), 4) for k, v in best_feature.items()}}


def report(result: dict) -> str:
    lines = [f"{result['users']} eligible users, {result['churned']} churned in the {result['horizon_days']:g} days "
             f"after {result['cutoff']}; test ROC AUC over {result['seeds']} splits by user (30% held out):", "",
             f"{'model':<46}{'mean':>7}{'sd':>7}{'min':>7}{'max':>7}"]
    for name, values in result["auc"].items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"{name:<46}{statistics.mean(values):>7.3f}{sd:>7.3f}{min(values):>7.3f}{max(values):>7.3f}")
    lines += ["", "single features (AUC either way): " + ", ".join(
        f"{k} {v:.2f}" for k, v in sorted(result["single_features"].items(), key=lambda kv: -kv[1]))]
    if result["history_days"] < SHORT_HISTORY_DAYS:
        lines += ["", f"note: only {result['history_days']:g} days of history before the cut-off: the features that "
                  f"look back 28-30 days (sessions_30d, sessions_trend) see less than their window, so a single "
                  f"feature can rank above the models; give the producer a window of {SHORT_HISTORY_DAYS} days or "
                  f"more before the cut-off (the example at the top of this file has 47)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--events", help="events as JSON lines (producer.py --dry-run output)")
    parser.add_argument("--labels", help="labels as JSON lines (--labels-file)")
    parser.add_argument("--bootstrap-servers", help="read from Kafka instead of files")
    parser.add_argument("--events-topic", default="user-events")
    parser.add_argument("--labels-topic", default="user-labels")
    parser.add_argument("--seeds", type=int, default=5, help="train/test splits (default 5)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: expected 1 or more train/test splits (default 5)")
    import importlib.util

    missing = [m for m in ("numpy", "sklearn") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"churn_model: needs {' and '.join(missing)} (the models); install them with `make setup-dev`",
              file=sys.stderr)
        return 2
    try:
        if args.bootstrap_servers:
            events, labels = read_topic(args.bootstrap_servers, args.events_topic), \
                read_topic(args.bootstrap_servers, args.labels_topic)
        elif args.events and args.labels:
            events, labels = read_jsonl(args.events, "--events"), list(read_jsonl(args.labels, "--labels"))
        else:
            parser.error("give --events and --labels, or --bootstrap-servers")
        result = benchmark(events, labels, seeds=args.seeds)
    except BadInput as exc:
        print(f"churn_model: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
