"""Random mode's generation: the event contract, the mix, the ranges, seeds, the fast serializer (no broker).

Run with `make test` or `make test-pure` (see docs/tests.md).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from datetime import datetime, timezone


import producer
from producer import ECommerceEventProducer, TimestampFormatter, default_settings, encode_event, load_settings
from tests.subclasses import SearchingProducer, events, make_producer

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOW_MS = 1_705_314_645_123  # 2024-01-15T10:30:45.123Z


def test_event_has_the_contract_shape():
    event = make_producer(seed=1).generate_event(NOW_MS)
    assert set(event) == {"user_id", "event_type", "timestamp", "metadata"}
    assert set(event["metadata"]) == {"product_id", "session_length"}
    assert event["timestamp"] == "2024-01-15T10:30:45.123Z"
    assert isinstance(event["user_id"], int) and isinstance(event["metadata"]["product_id"], int)
    assert isinstance(event["metadata"]["session_length"], float)


def test_event_mix_matches_the_weights_chi_square():
    from scipy.stats import chisquare

    n = 60_000
    counts = Counter(e["event_type"] for e in events(n, seed=11))
    weights = producer.DEFAULT_EVENT_WEIGHTS
    observed = [counts[t] for t in weights]
    expected = [n * w for w in weights.values()]
    assert sum(observed) == n
    assert chisquare(observed, expected).pvalue > 0.001
    # ... and a wrong mix is detected by the same test (the test has teeth).
    skewed = [expected[0] * 1.05, expected[1] * 0.95, expected[2], expected[3]]
    assert chisquare(observed, [x * n / sum(skewed) for x in skewed]).pvalue < 0.001


def test_ids_and_session_lengths_are_uniform_within_their_bounds():
    from scipy.stats import chisquare

    sample = events(100_000, seed=3)
    users = [e["user_id"] for e in sample]
    products = [e["metadata"]["product_id"] for e in sample]
    sessions = [e["metadata"]["session_length"] for e in sample]
    assert (min(users), max(users)) == (1, 1000)
    assert (min(products), max(products)) == (1, 500)
    assert 0.5 <= min(sessions) < 0.6 and 29.9 < max(sessions) <= 30.0
    assert all(round(s, 2) == s for s in sessions)
    for values, lo, hi in ((users, 1, 1000), (products, 1, 500), (sessions, 0.5, 30.0)):
        bins = Counter(min(int((v - lo) / (hi - lo) * 10), 9) for v in values)
        assert chisquare([bins[i] for i in range(10)]).pvalue > 0.001


def test_timestamps_are_utc_iso8601_with_milliseconds():
    fmt = TimestampFormatter()
    for ms in (0, 999, 1000, NOW_MS, NOW_MS + 1, NOW_MS + 877, 4_102_444_799_999):
        text = fmt(ms)
        assert ISO_MS.match(text), text
        expected = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
        assert text == expected
    # Default clock: the wall clock, now.
    event = make_producer().generate_event()
    ts = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs(ts.timestamp() - time.time()) < 5


def test_same_seed_same_events_other_seed_other_events():
    a, b, c = events(500, seed=42), events(500, seed=42), events(500, seed=43)
    assert a == b
    assert a != c
    # Apart from timestamps: another clock gives the same events otherwise.
    p = make_producer(seed=42)
    shifted = [p.generate_event(NOW_MS + 10_000_000 + i) for i in range(500)]
    strip = lambda es: [{k: v for k, v in e.items() if k != "timestamp"} for e in es]  # noqa: E731
    assert strip(shifted) == strip(a)


def test_fast_serializer_is_byte_identical_to_json_dumps():
    for overrides in ({}, {"user_id_range": (5, 5_000_000), "session_length_range": (0.0, 3.5)}):
        p = make_producer(seed=5, **overrides)
        ref = make_producer(seed=5, **overrides)
        for i in range(2000):
            key, value, _ = p.next_record(NOW_MS + i * 7)
            event = ref.generate_event(NOW_MS + i * 7)
            assert value == encode_event(event)
            assert key == str(event["user_id"]).encode()
            assert json.loads(value) == event


def test_batch_records_equal_the_per_event_path():
    for overrides in ({}, {"user_id_range": (5, 5_000_000)}):
        batch = make_producer(seed=12, **overrides)._compiled_generator()
        single = make_producer(seed=12, **overrides)._compiled_generator()
        stamps = iter(range(NOW_MS, NOW_MS + 10_000, 3))
        records = batch.records(lambda: next(stamps), 3000)
        expected = []
        for i in range(3000):
            drawn = single.draw()
            expected.append((NOW_MS + 3 * i, str(single.user_lo + drawn[0]).encode(),
                             single.encode(NOW_MS + 3 * i, drawn).encode()))
        assert records == expected


def test_batch_events_are_the_batch_records_as_dicts():
    """The schema formats take the events as dicts (EventGenerator.events): the same draws as records()."""
    for overrides in ({}, {"user_id_range": (5, 5_000_000), "product_id_range": (1, 2_000_000)}):
        as_text = make_producer(seed=13, **overrides)._compiled_generator()
        as_dicts = make_producer(seed=13, **overrides)._compiled_generator()
        text_stamps, dict_stamps = iter(range(NOW_MS, NOW_MS + 10_000, 3)), iter(range(NOW_MS, NOW_MS + 10_000, 3))
        records = as_text.records(lambda: next(text_stamps), 3000)
        events = as_dicts.events(lambda: next(dict_stamps), 3000)
        assert [(ms, key, encode_event(event)) for ms, key, event in events] == records
        assert len({event["user_id"] for _, _, event in events}) > 100


def test_custom_ranges_and_weights_from_settings():
    s = load_settings(["--event-weights", "product_view=1,search=3", "--user-id-range", "10-12",
                       "--product-id-range", "7-7", "--session-length-range", "1-1.05"], environ={"ENV_FILE": os.devnull})
    p = ECommerceEventProducer(s)
    sample = [p.generate_event(NOW_MS) for _ in range(4000)]
    assert {e["user_id"] for e in sample} == {10, 11, 12}
    assert {e["metadata"]["product_id"] for e in sample} == {7}
    assert {e["metadata"]["session_length"] for e in sample} == {1.0, 1.01, 1.02, 1.03, 1.04, 1.05}
    share = Counter(e["event_type"] for e in sample)["search"] / len(sample)
    assert 0.70 < share < 0.80


def test_subclass_adds_event_types_and_metadata():
    p = SearchingProducer(default_settings(seed=9))
    sample = [p.generate_event(NOW_MS) for _ in range(3000)]
    types = Counter(e["event_type"] for e in sample)
    assert set(types) == {"product_view", "add_to_cart", "checkout", "bounce", "search"}
    search = next(e for e in sample if e["event_type"] == "search")
    assert search["metadata"]["query"] == "red shoes" and "product_id" in search["metadata"]
    key, value, event = p.next_record(NOW_MS)
    assert json.loads(value) == event and event["metadata"]["device"] in ("mobile", "desktop")


def test_attribute_edits_before_start_are_honoured(capsys):
    """The original API's attributes, edited after construction (and after an event was generated with the old
    ones), shape the events of the run that starts afterwards."""
    p = make_producer(seed=1, dry_run=True, count=20, interval=0.0, log_file="")
    assert p.generate_event(NOW_MS)["user_id"] != 50 or p.generate_event(NOW_MS)["user_id"] != 50
    p.user_id_range, p.product_id_range = (50, 50), (7, 7)
    assert p.start_producing() == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 20
    assert {e["user_id"] for e in printed} == {50} and {e["metadata"]["product_id"] for e in printed} == {7}
