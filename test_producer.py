"""Tests of producer.py: generation and settings (pure, no broker) and end to end against a real broker.

Run with `make test`, `pytest`, or `python test_producer.py`.
"""

from __future__ import annotations

import collections.abc
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone

import pytest

import producer
from conftest import ROOT, ProducerProcess, consume_all, free_port_block, run_producer, wait_for_progress
from producer import (DeliveryMonitor, ECommerceEventProducer, KafkaPythonConnection, SettingsError, TimestampFormatter,
                      default_settings, encode_event, load_settings)

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
NOW_MS = 1_705_314_645_123  # 2024-01-15T10:30:45.123Z


def make_producer(**overrides) -> ECommerceEventProducer:
    return ECommerceEventProducer(default_settings(**overrides))


def events(n: int, seed: int = 7, **overrides) -> list[dict]:
    p = make_producer(seed=seed, **overrides)
    return [p.generate_event(NOW_MS + i) for i in range(n)]


# --- generation: the event contract -------------------------------------------------------------

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


class SearchingProducer(ECommerceEventProducer):
    """The documented customisation: a new event type and extra metadata."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.event_types = self.event_types + ["search"]
        self.event_weights = self.event_weights + [0.5]

    def _generate_metadata(self, event_type):
        return {"device": "mobile", "query": "red shoes"} if event_type == "search" else {"device": "desktop"}


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


# --- settings -------------------------------------------------------------------------------------

def test_precedence_flag_over_env_over_dotenv_over_default(tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("KAFKA_TOPIC=from-dotenv\nPRODUCER_INTERVAL=7\nKAFKA_CLIENT_ID=dotenv-client\n"
                        "# a comment\nLOG_LEVEL=debug\n")
    environ = {"KAFKA_TOPIC": "from-env", "PRODUCER_INTERVAL": "5"}
    s = load_settings(["--env-file", str(env_file), "--interval", "1.5"], environ=environ)
    assert s.interval == 1.5                  # flag
    assert s.topic == "from-env"              # env over .env
    assert s.client_id == "dotenv-client"     # .env over default
    assert s.log_level == "DEBUG"
    assert s.bootstrap_servers == "localhost:9092"  # default
    assert os.environ.get("KAFKA_CLIENT_ID") != "dotenv-client"  # the .env file does not leak into os.environ


def test_rate_and_interval_the_more_specific_source_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("PRODUCER_INTERVAL=3\n")
    assert load_settings(["--env-file", str(env_file), "--rate", "50"], environ={}).seconds_per_event == 0.02
    assert load_settings(["--env-file", str(env_file)], environ={"EVENTS_PER_SECOND": "4"}).seconds_per_event == 0.25
    assert load_settings(["--interval", "2"], environ={"EVENTS_PER_SECOND": "4", "ENV_FILE": os.devnull}
                         ).seconds_per_event == 2
    with pytest.raises(SettingsError, match="EVENTS_PER_SECOND and PRODUCER_INTERVAL are both set"):
        load_settings([], environ={"EVENTS_PER_SECOND": "4", "PRODUCER_INTERVAL": "1", "ENV_FILE": os.devnull})


def test_rate_replaces_the_interval():
    s = load_settings(["--rate", "0.2"], environ={"ENV_FILE": os.devnull})
    assert s.seconds_per_event == pytest.approx(5.0)
    assert load_settings(["--interval", "0"], environ={"ENV_FILE": os.devnull}).seconds_per_event == 0


def test_log_events_auto_gives_way_at_high_rates():
    env = {"ENV_FILE": os.devnull}
    assert load_settings([], environ=env).events_logged
    assert not load_settings(["--rate", "500"], environ=env).events_logged
    assert not load_settings(["--interval", "0"], environ=env).events_logged
    assert load_settings(["--rate", "500", "--log-events", "true"], environ=env).events_logged


BAD_INPUT = [
    (["--interval", "abc"], "--interval", "seconds >= 0"),
    (["--interval", "-1"], "--interval", "seconds >= 0"),
    (["--rate", "-5"], "--rate", "events per second"),
    (["--rate", "fast"], "--rate", "events per second"),
    (["--rate", "10", "--interval", "1"], "--rate and --interval", "only one"),
    (["--user-id-range", "100-1"], "--user-id-range", "MIN <= MAX"),
    (["--session-length-range", "30-0.5"], "--session-length-range", "MIN <= MAX"),
    (["--event-weights", "product_view:0.4"], "--event-weights", "name=weight"),
    (["--event-weights", "product_view=0,bounce=0"], "--event-weights", "summing to more than 0"),
    (["--compression", "brotli"], "--compression", "gzip, snappy, lz4, zstd"),
    (["--security-protocol", "TLS"], "--security-protocol", "SASL_SSL"),
    (["--security-protocol", "SASL_PLAINTEXT"], "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD", "required"),
    (["--security-protocol", "SSL", "--ssl-cafile", "/nonexistent/ca.pem"], "--ssl-cafile", "PEM file"),
    (["--env-file", "/nonexistent/.env"], "--env-file", "does not exist"),
    (["--producer-options", "no_such_option=1"], "--producer-options", "unknown option 'no_such_option'"),
    (["--acks", "1"], "--acks", "idempotence"),
    (["--count", "0"], "--count", "whole number >= 1"),
    (["--log-events", "sometimes"], "--log-events", "expected true, false or auto"),
]


@pytest.mark.parametrize("argv, names, accepted", BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_the_setting_exit_2(argv, names, accepted, capsys):
    code = producer.main(argv + ["--bootstrap-servers", "127.0.0.1:1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert names in err and accepted in err, err
    assert "Traceback" not in err


def test_bad_environment_variable_is_named(capsys):
    with pytest.raises(SettingsError, match=r"^PRODUCER_INTERVAL: 'soon' is not valid"):
        load_settings([], environ={"PRODUCER_INTERVAL": "soon", "ENV_FILE": os.devnull})


def test_bad_input_sends_nothing(kafka, topic):
    """A settings error exits 2 before any connection: the topic is never created."""
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--rate", "x")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        assert topic not in admin.list_topics()
    finally:
        admin.close()


def test_help_documents_every_flag_with_variable_and_default():
    out = run_producer("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for option in producer.OPTIONS:
        assert option.flag in text
        assert option.env in text, option.env
    assert "default: localhost:9092" in text and "default: 3.0" in text


def test_print_config_masks_secrets():
    out = run_producer("--print-config", "--security-protocol", "SASL_PLAINTEXT", "--sasl-username", "bob",
                       env={"KAFKA_SASL_PASSWORD": "hunter2-very-secret"})
    assert out.returncode == 0, out.stderr
    assert "hunter2-very-secret" not in out.stdout + out.stderr
    assert re.search(r"KAFKA_SASL_PASSWORD\s+= \*\*\*", out.stdout)
    assert re.search(r"KAFKA_SASL_USERNAME\s+= bob", out.stdout)


def test_print_config_says_where_each_value_came_from(tmp_path):
    env_file = tmp_path / "x.env"
    env_file.write_text("KAFKA_TOPIC=from-dotenv\n")
    out = run_producer("--print-config", "--rate", "5", "--env-file", str(env_file), env={"KAFKA_CLIENT_ID": "mine"})
    assert out.returncode == 0, out.stderr
    origin = {m[0]: m[1] for m in re.findall(r"(?m)^(\S+)\s+= .*?  # (\S+)$", out.stdout)}
    assert len(origin) == len(producer.OPTIONS)  # every setting, each with its origin
    assert (origin["EVENTS_PER_SECOND"], origin["KAFKA_CLIENT_ID"], origin["KAFKA_TOPIC"], origin["KAFKA_ACKS"]) == \
        ("flag", "environment", ".env", "default")


def test_a_schema_format_into_the_json_demos_topic_is_warned():
    """--format avro into the default user-events: a reader of it would get JSON and Avro mixed."""
    quiet = {"ENV_FILE": os.devnull}
    warned = [w for w in load_settings(["--format", "avro"], environ=quiet).warnings if "JSON demo" in w]
    assert len(warned) == 1 and "--topic user-events-avro" in warned[0]
    assert not [w for w in load_settings(["--format", "avro", "--topic", "mine"], environ=quiet).warnings
                if "JSON demo" in w]


def test_version_names_this_file_and_the_clients():
    out = run_producer("--version")
    assert out.returncode == 0
    assert re.fullmatch(r"producer\.py \d+\.\d+\.\d+ \(kafka-python 3\.\S+, confluent-kafka 2\.\S+; Python 3\.\S+\)\n",
                        out.stdout), out.stdout


def _sections(source: str) -> list[tuple[int, str]]:
    """producer.py's banners: (line, title)."""
    return [(i + 1, m[1]) for i, line in enumerate(source.splitlines())
            if (m := re.match(r"^# --- (.+?) -{3,}$", line))]


def test_each_section_of_producer_py_uses_only_what_is_above_it():
    """The reading order the module docstring declares: a top-level name is used (in code, in a class body or a
    signature, quoted annotations included) only by its own section or those below it. A name from below means
    the section order is wrong, or the thing belongs elsewhere."""
    import ast

    source = (ROOT / "producer.py").read_text()
    banners = _sections(source)
    assert len(banners) >= 12 and banners[0][1].startswith("constants, exceptions")

    def section(line: int) -> int:
        return max((k for k, (at, _) in enumerate(banners) if at <= line), default=-1)

    tree = ast.parse(source)
    home: dict[str, int] = {}
    for node in tree.body:
        targets = [node] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
            [t for target in getattr(node, "targets", [getattr(node, "target", None)]) if target is not None
             for t in ast.walk(target) if isinstance(t, ast.Name)]
        for target in targets:
            home.setdefault(getattr(target, "name", None) or target.id, section(node.lineno))

    def names_used(node: ast.AST, bound: frozenset = frozenset()):
        """(line, name) of each name read inside node, but for names bound in an enclosing function."""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            local = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg] if a}
            local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            bound = bound | local
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id not in bound:
                yield child.lineno, child.id
            elif isinstance(child, ast.Constant) and isinstance(child.value, str) and child is not \
                    getattr(node, "value", 0) and isinstance(node, (ast.arg, ast.FunctionDef, ast.AnnAssign)):
                for name in re.findall(r"[A-Za-z_]\w*", child.value):  # a quoted annotation
                    yield child.lineno, name
            yield from names_used(child, bound)

    wrong = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            continue  # the public API's names, as strings
        for line, name in names_used(node):
            if name in home and home[name] > section(node.lineno):
                wrong.append(f"line {line} ({banners[section(line)][1]}) uses {name} from '{banners[home[name]][1]}'")
    assert not wrong, "\n".join(wrong)


def test_the_original_class_is_a_facade_over_one_loop():
    """ECommerceEventProducer keeps the original API in at most 300 lines and runs no loop of its own: every mode
    runs in RunEngine.run, the one loop of the engine section."""
    import ast

    tree = ast.parse((ROOT / "producer.py").read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    facade = classes["ECommerceEventProducer"]
    assert facade.end_lineno - facade.lineno + 1 <= 300
    assert not [n for n in ast.walk(facade) if isinstance(n, (ast.While, ast.For))
                and any(isinstance(c, ast.Call) and getattr(c.func, "attr", "") in ("send", "send_many", "take")
                        for c in ast.walk(n))], "the facade sends in a loop of its own"
    engine = ("RunEngine", "KafkaSink", "StdoutSink", "RandomEvents", "SimulatedShop", "Schedule", "SimulatedTime",
              "Unlimited")
    loops = [cls for cls in engine if any(isinstance(n, ast.While) for n in ast.walk(classes[cls]))]
    assert loops == ["RunEngine"]
    for name in ("connect", "generate_event", "send_event", "log_event_details", "log_statistics", "start_producing",
                 "stop", "_generate_metadata"):
        assert callable(getattr(ECommerceEventProducer, name))


def test_the_where_to_change_what_maps_name_what_is_there():
    """The module docstring's and README's maps name sections and things that exist, in the file's order."""
    import ast

    source = (ROOT / "producer.py").read_text()
    titles = [title for _, title in _sections(source)]
    tree = ast.parse(source)
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))} | \
        {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
         for t in ast.walk(n.targets[0] if isinstance(n, ast.Assign) else n.target) if isinstance(t, ast.Name)}
    docstring = ast.get_docstring(tree)
    readme = (ROOT / "README.md").read_text()
    for where, text in (("docstring", docstring.split("Where to change what", 1)[1]),
                        ("README", readme.split("## Where to change what", 1)[1].split("\n## ", 1)[0])):
        named = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\(\))?`", text)) - {o.env for o in producer.OPTIONS}
        assert len(named) > 15, where
        missing = sorted(n for n in named if n not in defined and n not in ("make", "schemas"))
        assert not missing, f"the {where}'s map names what producer.py does not define: {missing}"
    # The code map's row for producer.py lists its sections in the file's order, each with names it defines.
    row = next(line for line in readme.split("## Code map", 1)[1].splitlines() if line.startswith("| `producer.py`"))
    listed = re.findall(r"\*\*([^*]+)\*\*(?: \(([^)]*)\))?", row)
    assert [next((t for t in titles if t.startswith(x)), x) for x, _ in listed] == titles
    sections = {title: k for k, title in enumerate(titles)}
    lines = source.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"^# --- .+ -{3,}$", line)] + [len(lines)]
    for title, names in listed:
        k = sections[next(t for t in titles if t.startswith(title))]
        body = "\n".join(lines[starts[k]:starts[k + 1]])
        for name in re.findall(r"`([A-Za-z_]\w*)", names):
            assert re.search(rf"^(class|def) {name}\b|^{name}\b.* = ", body, re.M), f"{name} is not in '{title}'"


def test_importing_has_no_side_effects(tmp_path):
    code = (
        "import logging, signal, os, sys\n"
        "before = dict(os.environ)\n"
        "import producer\n"
        "assert logging.getLogger().handlers == [], 'logging configured at import'\n"
        "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, 'signal handler installed at import'\n"
        "assert dict(os.environ) == before, 'environment changed at import'\n"
        "assert 'kafka' not in sys.modules, 'Kafka client imported at import'\n"
        "print('clean')\n")
    (tmp_path / ".env").write_text("KAFKA_TOPIC=leaked\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "clean", out.stderr
    assert os.listdir(tmp_path) == [".env"]  # no log file or anything else written


def test_dry_run_prints_json_lines_only_on_stdout():
    out = run_producer("--dry-run", "--count", "25", "--interval", "0", "--seed", "4")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 25
    assert all(ISO_MS.match(json.loads(line)["timestamp"]) for line in lines)
    assert "PRODUCER STATISTICS" in out.stderr and "PRODUCER STATISTICS" not in out.stdout


def test_dry_run_with_seed_is_reproducible():
    strip = lambda text: [re.sub(r'"timestamp":"[^"]*"', "", line) for line in text.splitlines()]  # noqa: E731
    a = run_producer("--dry-run", "--count", "200", "--interval", "0", "--seed", "99").stdout
    b = run_producer("--dry-run", "--count", "200", "--interval", "0", "--seed", "99").stdout
    assert strip(a) == strip(b) and len(strip(a)) == 200


# --- end to end against the real broker -----------------------------------------------------------

def test_count_events_arrive_with_keys_values_timestamps_and_unique_ids(kafka, topic, client):
    n = 500
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--count", str(n),
                       "--interval", "0", "--seed", "8")
    assert out.returncode == 0, out.stderr
    assert f"Successfully connected to Kafka ({client}). Topic" in out.stderr and "has 3 partitions" in out.stderr
    assert out.summary["sent"] == n and out.summary["failed"] == 0 and out.summary["exit_reason"] == "count reached"
    records = consume_all(kafka.bootstrap, topic, expected=n)
    assert len(records) == n
    ids = set()
    for r in records:
        event = json.loads(r.value)
        assert r.key == str(event["user_id"]).encode()
        when = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert r.timestamp == round(when.timestamp() * 1000)
        headers = dict(r.headers)
        ids.add(headers[producer.EVENT_ID_HEADER])
    assert len(ids) == n
    # The same seed in dry-run mode gives the very same values (timestamps aside).
    dry = run_producer("--dry-run", "--count", str(n), "--interval", "0", "--seed", "8").stdout.splitlines()
    strip = lambda v: re.sub(r'"timestamp":"[^"]*"', "", v)  # noqa: E731
    by_partition_order = sorted(records, key=lambda r: (r.partition, r.offset))
    assert sorted(strip(r.value.decode()) for r in by_partition_order) == sorted(strip(line) for line in dry)


def test_a_users_events_share_one_partition_in_order(kafka, topic, client):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--count", "2000",
                       "--interval", "0", "--user-id-range", "1-20")
    assert out.returncode == 0, out.stderr
    records = consume_all(kafka.bootstrap, topic, expected=2000)
    partitions_of = {}
    for r in records:
        partitions_of.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) == 3  # keys spread over the partitions
    # Within a partition, a user's event ids follow the send order (the counter in the id).
    for key in partitions_of:
        seq = [int(dict(r.headers)["event_id"].split(b"-")[1]) for r in sorted(records, key=lambda r: r.offset)
               if r.key == key]
        assert seq == sorted(seq)


def test_partition_choice_matches_the_clients_default_partitioner():
    from kafka.partitioner.default import DefaultPartitioner, murmur2

    connection = KafkaPythonConnection(default_settings(), threading.Event(), lambda: 0)
    connection._partition_count = 7  # as read at connect
    for user in range(1, 300):
        key = str(user).encode()
        assert connection.keyed_partition(key) == (murmur2(key) & 0x7FFFFFFF) % 7

    class Cluster:
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, t):
            return set(range(7))

        def available_partitions_for_topic(self, t):
            return set(range(7))

    dp = DefaultPartitioner()
    assert all(dp.partition("t", None, str(u).encode(), None, None, Cluster()) ==
               connection.keyed_partition(str(u).encode()) for u in range(1, 300))


def test_a_user_lands_in_the_same_partition_with_either_client(kafka, topic):
    """murmur2 of the key over the partition count, as the Java client: a user's events stay in one partition
    whichever client wrote them."""
    from kafka.partitioner.default import murmur2

    placed = {}
    for client in ("kafka-python", "confluent-kafka"):
        name = f"{topic}-{client}"
        out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", name, "--count",
                           "1500", "--interval", "0", "--user-id-range", "1-300", "--seed", "4")
        assert out.returncode == 0, out.stderr[-2000:]
        placed[client] = {r.key: r.partition for r in consume_all(kafka.bootstrap, name, expected=1500)}
    assert len(placed["kafka-python"]) > 250 and placed["kafka-python"] == placed["confluent-kafka"]
    assert all(partition == (murmur2(key) & 0x7FFFFFFF) % 3 for key, partition in placed["confluent-kafka"].items())


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_every_compression_type_works(kafka, topic, codec, client):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--count", "300",
                       "--interval", "0", "--compression", codec)
    assert out.returncode == 0, out.stderr
    records = consume_all(kafka.bootstrap, topic, expected=300)
    assert len(records) == 300 and all(json.loads(r.value)["event_type"] for r in records)


def test_subclass_metadata_reaches_kafka(kafka, topic):
    p = SearchingProducer(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic, count=200, interval=0.0,
                                           log_file="", seed=2))
    assert p.connect()
    assert p.start_producing() == 0
    records = consume_all(kafka.bootstrap, topic, expected=200)
    values = [json.loads(r.value) for r in records]
    assert len(values) == 200
    assert {v["metadata"]["device"] for v in values} == {"mobile", "desktop"}
    assert any(v["event_type"] == "search" and v["metadata"]["query"] == "red shoes" for v in values)


def test_send_event_api_returns_true_and_the_event_arrives(kafka, topic):
    p = make_producer(bootstrap_servers=kafka.bootstrap, topic=topic, log_file="")
    assert p.connect() is True
    event = p.generate_event(NOW_MS)
    assert p.send_event(event) is True
    p.producer.flush(10)
    assert p.stats.acked == 1 and p.stats.in_flight == 0
    p.stop()
    (record,) = consume_all(kafka.bootstrap, topic, expected=1)
    assert json.loads(record.value) == event and record.timestamp == NOW_MS


def test_low_rate_logs_each_acknowledged_event_with_partition_and_offset(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--count", "3",
                       "--interval", "0.2")
    assert out.returncode == 0, out.stderr
    lines = re.findall(r"Event sent successfully - User: \d+, Event: \w+, Product: \d+, Session: [\d.]+min, "
                       r"Partition: \d, Offset: \d+", out.stderr)
    assert len(lines) == 3


def test_sigterm_mid_run_loses_no_acknowledged_event(kafka, topic, client):
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--rate", "300",
                          "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=300)  # the producer says more than 300 were acknowledged
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish(timeout=30) == 0, run.text[-2000:]
    finally:
        run.kill()
    assert "PRODUCER STATISTICS" in run.text
    sent = run.summary["sent"]
    assert sent > 300 and run.summary["exit_reason"] == "stopped"
    records = consume_all(kafka.bootstrap, topic, expected=sent, timeout=30)
    assert len(records) == sent
    assert len({dict(r.headers)["event_id"] for r in records}) == sent


def test_duration_ends_the_run_like_count(kafka, topic):
    started = time.monotonic()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--rate", "50", "--duration", "2")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 20
    sent = out.summary["sent"]
    assert 80 <= sent <= 110 and out.summary["exit_reason"] == "duration reached"  # 2 s at 50/s, the first at t=0
    assert len(consume_all(kafka.bootstrap, topic, expected=sent)) == sent


def test_a_slow_stream_is_not_reported_as_an_outage(caplog):
    """One event every 10 s: the last acknowledgement is 10 s old when the next event goes out, which is no
    silence of the broker; a real silence (events pending, no acknowledgement for SILENCE_S) still is one."""
    settings = default_settings(log_file="")
    monitor, connection = DeliveryMonitor(settings), KafkaPythonConnection(settings, threading.Event(), time.time)
    t0 = monitor.stats.started
    monitor.stats.generated = monitor.stats.acked = 1
    monitor.report_broker_state(t0 + 0.1, connection)  # the first event acknowledged at once
    monitor.stats.generated = 2  # the next one, 10 s later, just handed to the client
    with caplog.at_level("WARNING", logger="producer"):
        monitor.report_broker_state(t0 + 10.0, connection)
        assert not monitor.outage_reported and "unreachable" not in caplog.text
        monitor.report_broker_state(t0 + 10.0 + producer.SILENCE_S + 1, connection)  # not acknowledged: a silence
    assert monitor.outage_reported and "no acknowledgement for 6s" in caplog.text
    healthy, why = monitor.health()
    assert healthy, why  # HEALTH_TIMEOUT (60 s) not reached: the slow stream's 10 s gap does not count


def paced_run(schedule: "producer.Schedule", stats, seconds: float, now: float, speed: float | None = None,
              room: bool = True) -> float:
    """The run loop's use of a schedule, in 10 ms steps of a clock of our own: each step the events due go (at most
    `speed` events/s, a client that cannot go faster), or, without room (in flight at MAX_IN_FLIGHT_EVENTS), none go
    and the schedule is told it paused. The clock at the end."""
    for _ in range(round(seconds / 0.01)):
        now += 0.01
        due = schedule.due(now)
        if not due:
            continue
        if not room:
            schedule.paused(now)
            continue
        n = min(due, int(speed * 0.01)) if speed else due
        stats.generated += n
        schedule.went(n)
    return now


def test_a_rate_held_back_by_the_broker_is_not_called_out_of_reach(caplog):
    """An outage long enough to fill MAX_IN_FLIGHT_EVENTS pauses generation: that is the broker's pace, and the
    "rate out of reach ... the client sets the pace" line would be false (it was said, 6 s into such a pause, in a
    fault test). A client too slow for the rate is still called out, pauses or not."""
    stats = producer.Statistics()
    schedule = producer.Schedule(0.001, stats, "the client sets the pace")
    with caplog.at_level("WARNING", logger="producer"):
        now = paced_run(schedule, stats, 10, stats.started)  # 1,000/s kept
        now = paced_run(schedule, stats, 60, now, room=False)  # a minute with no room
        now = paced_run(schedule, stats, 10, now)
        assert "out of reach" not in caplog.text
        assert 59 < schedule.held_s < 61
        paced_run(schedule, stats, 10, now, speed=500)  # the client now manages half the rate
    said = [r.getMessage() for r in caplog.records if "out of reach" in r.getMessage()]
    assert len(said) == 1 and "against EVENTS_PER_SECOND 1000/s" in said[0], said
    assert "not counting 60s waiting for room at MAX_IN_FLIGHT_EVENTS" in said[0], said


def test_back_pressure_at_an_unlimited_rate_is_no_warning(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--interval", "0", "--count",
                       "20000", "--max-in-flight", "50", "--client", "confluent-kafka")
    assert out.returncode == 0 and out.summary["sent"] == 20000, out.stderr[-2000:]
    paused = [line for line in out.stderr.splitlines() if "generation paused" in line]
    assert len(paused) >= 1 and all(" - INFO - " in line and "sets the pace" in line for line in paused), paused
    assert " - WARNING - " not in out.stderr, out.stderr[-2000:]


@pytest.mark.slow  # waits out the connect timeout
def test_absent_broker_gives_one_clear_error_and_exit_1_within_the_connect_timeout(client):
    port = free_port_block(1, 44000)
    started = time.monotonic()
    out = run_producer("--bootstrap-servers", f"127.0.0.1:{port}", "--client", client,
                       "--connect-timeout", "4", "--count", "1")
    elapsed = time.monotonic() - started
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and f"Cannot connect to Kafka at 127.0.0.1:{port} within 4s" in errors[0]
    assert elapsed < 4 + 10


def test_a_host_name_that_does_not_resolve_is_said_at_once():
    started = time.monotonic()
    out = run_producer("--bootstrap-servers", "kafka-that-is-not.invalid:9092", "--count", "1")
    assert out.returncode == 1 and time.monotonic() - started < 10 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "the host name 'kafka-that-is-not.invalid' does not resolve" in errors[0], errors


@pytest.mark.slow  # the first connection attempt's 3 s come first
@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_a_port_where_another_service_answers_is_said_at_once(client):
    """An SSH server, say: it answers the producer's Kafka request with its banner. Not worth 30 s of retries."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def banner() -> None:
        while True:
            try:
                peer, _ = server.accept()
            except OSError:
                return
            peer.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            peer.close()
    threading.Thread(target=banner, daemon=True).start()
    try:
        started = time.monotonic()
        out = run_producer("--bootstrap-servers", f"127.0.0.1:{server.getsockname()[1]}", "--count", "1",
                           "--client", client)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert out.returncode == 1 and elapsed < 20 and "Traceback" not in out.stderr, out.stderr
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "answers, but not as a Kafka broker's PLAINTEXT listener (b'SSH-2.0-" in errors[0]


def test_topic_creation_refused_is_said_clearly(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--count", "1",
                       "--topic-replication", "3")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"Topic '{topic}' does not exist and creating it was refused" in out.stderr
    assert "replication factor" in out.stderr.lower() or "InvalidReplicationFactor" in out.stderr


# --- the first hour: no surprises, no misleading figures ----------------------------------------------

def test_success_rate_is_acknowledged_over_generated(caplog):
    """Broker away, one Ctrl-C: events left unacknowledged at shutdown must lower the success rate (it said 100%
    next to '512 events were not acknowledged')."""
    p = ECommerceEventProducer(default_settings(log_file=""))
    p.stats.generated, p.stats.acked, p.stats.dropped_at_shutdown = 1000, 488, 512
    with caplog.at_level("INFO", logger="producer"):
        p.log_statistics()
    assert "Success Rate: 48.80% (acknowledged of generated)" in caplog.text
    assert "Events Unacknowledged at Shutdown: 512" in caplog.text


def test_failed_and_unacknowledged_events_are_not_called_lost(caplog):
    """Kafka cannot tell whether a request that timed out was written: the words say so."""
    p = ECommerceEventProducer(default_settings(log_file=""))
    p.stats.generated, p.stats.acked, p.stats.failed, p.stats.dropped_at_shutdown = 100, 80, 15, 5
    with caplog.at_level("INFO", logger="producer"):
        p.log_statistics()
    assert "Events Failed: 15 (not acknowledged; may or may not be in the topic)" in caplog.text
    assert "Events Unacknowledged at Shutdown: 5 (not acknowledged; may or may not be in the topic)" in caplog.text
    assert "lost" not in caplog.text


@pytest.mark.parametrize("acks, says", [("1", "the partition leader acknowledges alone"),
                                        ("0", "the broker acknowledges nothing")])
def test_acks_1_and_0_are_warned_at_start_naming_what_can_be_lost(acks, says):
    settings = load_settings(["--acks", acks, "--idempotence", "false"], environ={"ENV_FILE": os.devnull})
    assert any(w.startswith(f"--acks={acks}: {says}") and "acks=all" in w for w in settings.warnings)
    assert not load_settings([], environ={"ENV_FILE": os.devnull}).warnings


def test_a_delivery_timeout_one_request_could_outlast_is_refused_up_front():
    out = run_producer("--delivery-timeout-ms", "15000", "--bootstrap-servers", "localhost:1")
    assert out.returncode == 2 and out.summary is None
    assert out.stderr.count("\n") == 1
    assert ("--delivery-timeout-ms: 15000 is shorter than KAFKA_REQUEST_TIMEOUT_MS (30000) + KAFKA_LINGER_MS (5); "
            "expected at least 30005") in out.stderr


def test_acks_0_says_sent_not_acknowledged_and_gives_no_success_rate(kafka, topic, client):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--client", client, "--acks", "0",
                       "--idempotence", "false", "--interval", "0", "--count", "300")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Events Sent: 300 (sent, not acknowledged: acks=0)" in out.stderr
    assert "Success Rate" not in out.stderr and "WARNING - --acks=0:" in out.stderr
    assert out.summary["sent_means"] == "sent, not acknowledged (acks=0)" and out.summary["acks"] == 0
    assert len(consume_all(kafka.bootstrap, topic, expected=300, timeout=30)) == 300


def test_a_seeded_window_has_the_same_event_ids_on_every_run_and_others_do_not():
    window = ["--mode", "sessions", "--start-time", "2026-01-01T00:00:00Z", "--end-time", "2026-01-02T00:00:00Z",
              "--user-id-range", "1-500", "--dry-run"]
    ids = [producer.run_id_for(load_settings([*window, "--seed", seed], environ={"ENV_FILE": os.devnull}))
           for seed in ("1", "1", "2")]
    assert ids[0] == ids[1] != ids[2]
    shard = producer.run_id_for(load_settings([*window, "--seed", "1", "--shard", "1/2"], environ={"ENV_FILE": os.devnull}))
    assert shard not in ids
    random_mode = load_settings(["--seed", "1"], environ={"ENV_FILE": os.devnull})  # wall-clock timestamps
    assert producer.run_id_for(random_mode) != producer.run_id_for(random_mode)


def test_dry_run_prints_at_once_says_printed_and_shows_no_delivery_settings():
    out = run_producer("--dry-run", "--count", "5")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 5
    assert "Schedule: as fast as possible" in out.stderr  # no 3 s interval unless asked for
    assert "Events Printed: 5" in out.stderr and "Events Sent" not in out.stderr
    assert "Delivery:" not in out.stderr and "acks=" not in out.stderr
    paced = run_producer("--dry-run", "--count", "2", "--interval", "0.1")
    assert "Schedule: one event every 0.1s" in paced.stderr  # an explicit pace still applies


def test_abbreviated_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as exited:
        producer.load_settings(["--rat", "5"], environ={"ENV_FILE": os.devnull})
    assert exited.value.code == 2 and "unrecognized arguments: --rat" in capsys.readouterr().err


def test_rate_0_points_to_interval_0(capsys):
    assert producer.main(["--rate", "0", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--interval 0" in err, err


def test_misspelt_settings_get_a_warning_with_the_closest_name(tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_text("KAFKA_TOPC=orders\nCHURN_SIGNL=0.2\nOTHER_TOOL_SETTING=1\n")
    out = run_producer("--print-config", "--env-file", str(env_file), env={"PRODUCER_INTERVL": "2", "KAFKA_HOME": "/x"})
    assert out.returncode == 0, out.stderr
    warnings = out.stderr.strip().splitlines()
    assert any("KAFKA_TOPC" in w and "did you mean KAFKA_TOPIC?" in w for w in warnings), warnings
    assert any("CHURN_SIGNL" in w and "did you mean CHURN_SIGNAL?" in w for w in warnings), warnings
    assert any("PRODUCER_INTERVL (in the environment)" in w and "PRODUCER_INTERVAL" in w for w in warnings)
    assert not any("OTHER_TOOL_SETTING" in w or "KAFKA_HOME" in w for w in warnings), warnings
    assert len(warnings) == 3
    assert f"env file: {env_file}" in out.stdout
    assert "(no env file read)" in run_producer("--print-config").stdout  # run_producer points ENV_FILE at nothing


def test_outside_the_venv_a_missing_library_is_one_line_saying_what_to_do():
    """python3 producer.py without the project's packages (here: no site-packages at all)."""
    out = subprocess.run([sys.executable, "-S", str(ROOT / "producer.py"), "--count", "1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "make run" in out.stderr, out.stderr


def test_no_folder_of_the_project_shadows_a_python_package():
    """The broker's jars used to live in kafka/, which `import kafka` found first outside the venv."""
    probe = "import importlib.util as u; print([n for n in ('kafka', 'dotenv', 'prometheus_client') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]", out.stdout


def test_an_existing_topic_with_other_partitions_gets_a_warning(kafka, topic):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--topic-partitions", "3",
                       "--count", "1", "--interval", "0")
    assert out.returncode == 0, out.stderr
    assert re.search(rf"WARNING - Topic '{topic}' exists with 1 partitions, not the 3 of KAFKA_TOPIC_PARTITIONS",
                     out.stderr), out.stderr


# --- the original class API, unchanged, and one run's state per run -------------------------------------

class BooksProducer(ECommerceEventProducer):
    """The original README's way: _generate_metadata(self) returns the whole metadata."""

    def _generate_metadata(self):
        metadata = super()._generate_metadata()
        metadata["category"] = "books"
        return metadata


class CampaignProducer(ECommerceEventProducer):
    """Today's way: _generate_metadata(self, event_type) returns extra fields."""

    def _generate_metadata(self, event_type):
        return {"campaign": "winter"} if event_type == "checkout" else {}


def books(event: dict) -> bool:
    return event["metadata"]["category"] == "books" and set(event["metadata"]) == {"product_id", "session_length",
                                                                                    "category"}


def campaign(event: dict) -> bool:
    return (event["metadata"].get("campaign") == "winter") == (event["event_type"] == "checkout")


def test_the_original_test_flow_works_unchanged(kafka, topic, caplog):
    """connect, generate_event, send_event, log_event_details, log_statistics, stop (twice): as the original
    script's test used them; attributes edited after construction take effect."""
    p = ECommerceEventProducer()
    p.bootstrap_servers, p.topic = kafka.bootstrap, topic
    assert p.connect()
    event = p.generate_event()
    with caplog.at_level("INFO", logger="producer"):
        assert p.send_event(event) is True  # acknowledged, not merely handed over
        p.log_event_details(event)
        p.log_statistics()
    assert p.stats["events_sent"] == 1 and p.stats["events_failed"] == 0
    assert p.stats["start_time"] <= time.time()
    assert f"User: {event['user_id']}" in caplog.text and "PRODUCER STATISTICS" in caplog.text
    p.stop()
    p.stop()
    records = consume_all(kafka.bootstrap, topic, expected=1)
    assert [json.loads(r.value) for r in records] == [event]


ORIGINAL_SCRIPT = """
import json, sys
from producer import ECommerceEventProducer

producer = ECommerceEventProducer()  # as the original script: no arguments, settings from the environment or .env
assert producer.connect(), "no connection"
event = producer.generate_event()
assert set(event) == {"user_id", "event_type", "timestamp", "metadata"}, event  # the script validated its events
assert producer.send_event(event) is True
producer.stop()
stats = producer.stats
print(json.dumps({"bootstrap": producer.bootstrap_servers, "topic": producer.topic,
                  "interval": producer.producer_interval, "event": event, "stats": dict(stats),
                  "has_sent": "events_sent" in stats, "keys": sorted(stats.keys()),
                  "mapping": isinstance(stats, __import__("collections.abc").abc.Mapping)}))
"""


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_the_original_class_reads_its_settings_from_the_environment_or_dotenv(kafka, topic, tmp_path, where):
    """ECommerceEventProducer() with no arguments, as the original script built it, with the broker on a port
    other than 9092 and the topic given only by the environment, then only by ./.env."""
    settings = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "KAFKA_TOPIC": topic, "PRODUCER_INTERVAL": "0.5"}
    env = {k: v for k, v in os.environ.items() if k not in {o.env for o in producer.OPTIONS} and k != "ENV_FILE"}
    env["PYTHONPATH"] = str(ROOT)
    if where == "environment":
        env.update(settings)
    else:
        (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    out = subprocess.run([sys.executable, "-c", ORIGINAL_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout)
    assert (seen["bootstrap"], seen["topic"], seen["interval"]) == (kafka.bootstrap, topic, 0.5)
    assert seen["has_sent"] and seen["mapping"] and seen["keys"] == ["events_failed", "events_sent", "start_time"]
    assert seen["stats"]["events_sent"] == 1 and seen["stats"]["events_failed"] == 0
    records = consume_all(kafka.bootstrap, topic, expected=1)
    assert [json.loads(r.value) for r in records] == [seen["event"]]


def test_stats_is_the_original_read_only_dict():
    stats = make_producer().stats
    assert isinstance(stats, collections.abc.Mapping) and not isinstance(stats, collections.abc.MutableMapping)
    assert dict(stats).keys() == {"events_sent", "events_failed", "start_time"} and len(stats) == 3
    assert "events_sent" in stats and "acked" not in stats and stats.get("nothing", 7) == 7
    with pytest.raises(KeyError):
        stats["nothing"]
    with pytest.raises(TypeError):
        stats["events_sent"] = 5  # read-only


@pytest.mark.parametrize("cls, check", [(BooksProducer, books), (CampaignProducer, campaign)], ids=["whole", "extra"])
def test_both_subclass_styles_flow_into_kafka_and_dry_run(kafka, topic, cls, check, capsys):
    p = cls(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic, count=60, log_file="", seed=3))
    p.producer_interval = 0  # the original attribute, set after construction
    assert p.start_producing() == 0
    events = [json.loads(r.value) for r in consume_all(kafka.bootstrap, topic, expected=60)]
    assert len(events) == 60 and all(check(e) for e in events), events[:3]
    assert any(e["event_type"] == "checkout" for e in events)
    dry = cls(default_settings(dry_run=True, count=60, interval=0.0, log_file="", seed=3))
    assert dry.start_producing() == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 60 and all(check(e) for e in printed)


def test_sessions_mode_refuses_a_metadata_override_with_one_line(caplog):
    p = BooksProducer(default_settings(simulation_mode="sessions", dry_run=True, log_file=""))
    with caplog.at_level("ERROR", logger="producer"):
        assert p.start_producing() == 2
    assert len(caplog.records) == 1 and "SIMULATION_MODE=random" in caplog.records[0].getMessage()


class OversizeProducer(ECommerceEventProducer):
    def _generate_metadata(self, event_type):
        return {"blob": "x" * 2_000_000}  # over the client's max_request_size: refused at send()


def test_a_second_run_on_the_same_instance_counts_its_own_failures(kafka, topic, caplog):
    """The shutdown flag and the failure-report counters belong to one run: a second run on the same instance
    counted every failure as dropped at shutdown and never reported it."""
    p = OversizeProducer(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic, count=3, interval=0.0,
                                          log_file=""))
    assert p.start_producing() == 1 and p.stats.failed == 3
    with caplog.at_level("ERROR", logger="producer"):
        p.settings = replace(p.settings, count=2)
        assert p.start_producing() == 1
    assert p.stats.failed == 2 and p.stats.dropped_at_shutdown == 0
    assert "2 events failed since the last report (2 in all)" in caplog.text


def test_health_does_not_take_the_deliveries_resumed_signal_from_the_loop(caplog):
    settings = default_settings(log_file="")
    delivery, connection = DeliveryMonitor(settings), KafkaPythonConnection(settings, threading.Event(), time.time)
    delivery.outage_reported = True
    connection.watch.note("Unable to connect: Connection refused", serious=True)
    delivery.stats.generated = delivery.stats.acked = 10  # acknowledgements arrived
    assert delivery.health()[0]  # a scrape of /healthz comes first
    with caplog.at_level("INFO", logger="producer"):
        delivery.report_broker_state(time.monotonic(), connection)
    assert "reachable again" in caplog.text and not delivery.outage_reported
    assert connection.problem(time.monotonic() + 5) == ""  # the recovery cleared the connection's note


def test_the_topic_attribute_is_the_topic_created_and_written(kafka, topic):
    from kafka.admin import KafkaAdminClient

    p = ECommerceEventProducer(default_settings(bootstrap_servers=kafka.bootstrap, topic=topic + "-unused",
                                                count=5, interval=0.0, log_file=""))
    p.topic = topic
    assert p.start_producing() == 0
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        topics = admin.list_topics()
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    assert topic + "-unused" not in topics
    assert len(described[0]["partitions"]) == 3  # created by the producer (KAFKA_TOPIC_PARTITIONS), not by the broker
    assert len(consume_all(kafka.bootstrap, topic, expected=5)) == 5


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))


@pytest.mark.parametrize("path, reason", [("/dev/full", "No space left on device"),
                                          ("/proc/producer-test.log", "No such file or directory")])
def test_a_log_file_that_cannot_be_written_is_one_warning_then_the_console(path, reason):
    out = run_producer("--dry-run", "--count", "5", "--log-file", path)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 5
    assert "Traceback" not in out.stderr and "Logging error" not in out.stderr
    warnings = [line for line in out.stderr.splitlines() if "LOG_FILE" in line]
    assert len(warnings) == 1 and f"cannot be written ({reason})" in warnings[0], out.stderr
    assert "PRODUCER STATISTICS" in out.stderr  # logging went on, on the console


def test_the_default_log_file_in_a_read_only_folder_is_a_warning_not_a_refusal(monkeypatch, tmp_path):
    """A dry run in a read-only folder (a container's root, a CI checkout) prints its events; only a LOG_FILE the
    user named is refused there."""
    monkeypatch.chdir(tmp_path)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if os.path.abspath(path) == str(tmp_path)
                        else real_access(path, mode))
    settings = load_settings(["--dry-run", "--count", "3"], environ={"ENV_FILE": os.devnull})
    assert settings.log_file == "" and any("logging to the console only" in w for w in settings.warnings)
    with pytest.raises(SettingsError, match="LOG_FILE: cannot write in"):
        load_settings(["--dry-run"], environ={"ENV_FILE": os.devnull, "LOG_FILE": str(tmp_path / "mine.log")})


@pytest.mark.parametrize("argv, meant", [(["--rat", "5"], "--rate"), (["--topik=orders"], "--topic"),
                                         (["--labels-fil", "x.jsonl"], "--labels-file")])
def test_a_misspelt_flag_gets_did_you_mean(argv, meant):
    out = run_producer(*argv)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert f"did you mean {meant}?" in lines[0] and "unrecognized arguments" in lines[0]
