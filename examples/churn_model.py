#!/usr/bin/env python3
"""Is there a churn signal in the stream? Per-user features -> logistic regression -> ROC AUC.

Reads the events and the ground-truth labels that producer.py writes in sessions mode, either from
files (written with --dry-run) or from the topics, builds a few features per user, trains a logistic
regression on part of the users and prints the ROC AUC on the others.

    python producer.py --mode sessions --dry-run --seed 1 --start-time 2026-11-01T00:00:00Z \\
        --end-time 2026-11-15T00:00:00Z --labels-file labels.jsonl > events.jsonl
    python examples/churn_model.py --events events.jsonl --labels labels.jsonl
    python examples/churn_model.py --bootstrap-servers localhost:9092 --events-topic user-events \\
        --labels-topic user-labels
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from datetime import datetime
from typing import Iterable

FEATURES = ("events", "sessions", "active_days", "bounce_share", "cart_per_view", "checkout_per_cart",
            "late_to_early_ratio", "days_since_last_event", "events_per_session")


def epoch_seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def features(events: Iterable[dict], user_ids: list[int]) -> list[list[float]]:
    """One feature row per user id, from that user's events over the observed window."""
    per_user: dict[int, list[tuple[float, str, str]]] = defaultdict(list)
    first = last = None
    for event in events:
        when = epoch_seconds(event["timestamp"])
        first = when if first is None else min(first, when)
        last = when if last is None else max(last, when)
        per_user[event["user_id"]].append((when, event["event_type"], str(event["metadata"].get("session_id", ""))))
    span = max((last or 0) - (first or 0), 1.0)
    rows = []
    for user in user_ids:
        mine = per_user.get(user, [])
        kinds = defaultdict(int)
        for _, kind, _ in mine:
            kinds[kind] += 1
        sessions = len({sid for _, _, sid in mine if sid}) or kinds["bounce"] + kinds["product_view"]
        early = sum(1 for when, _, _ in mine if when < first + span / 4)
        late = sum(1 for when, _, _ in mine if when >= last - span / 4)
        rows.append([
            len(mine),
            sessions,
            len({int((when - first) // 86400) for when, _, _ in mine}),
            kinds["bounce"] / max(len(mine), 1),
            kinds["add_to_cart"] / max(kinds["product_view"], 1),
            kinds["checkout"] / max(kinds["add_to_cart"], 1),
            (late + 1) / (early + 1),
            (last - max(when for when, _, _ in mine)) / 86400 if mine else span / 86400,
            len(mine) / max(sessions, 1),
        ])
    return rows


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


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


def score(events: list[dict], labels: list[dict], test_share: float = 0.3, seed: int = 0) -> tuple[float, int, int]:
    """(ROC AUC on held-out users, training users, held-out users)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    users = [row["user_id"] for row in labels]
    y = [1 if row["churned"] else 0 for row in labels]
    x = features(events, users)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_share, random_state=seed, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]), len(y_train), len(y_test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", help="events as JSON lines (producer.py --dry-run output)")
    parser.add_argument("--labels", help="labels as JSON lines (--labels-file)")
    parser.add_argument("--bootstrap-servers", help="read from Kafka instead of files")
    parser.add_argument("--events-topic", default="user-events")
    parser.add_argument("--labels-topic", default="user-labels")
    parser.add_argument("--test-share", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.bootstrap_servers:
        events = read_topic(args.bootstrap_servers, args.events_topic)
        labels = read_topic(args.bootstrap_servers, args.labels_topic)
    elif args.events and args.labels:
        events, labels = read_jsonl(args.events), read_jsonl(args.labels)
    else:
        parser.error("give --events and --labels, or --bootstrap-servers")
    churned = sum(1 for row in labels if row["churned"])
    auc, trained, held_out = score(events, labels, args.test_share, args.seed)
    print(f"{len(events)} events, {len(labels)} users ({churned} churned); trained on {trained} users")
    print(f"ROC AUC on {held_out} held-out users: {auc:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
