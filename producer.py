#!/usr/bin/env python3
"""eCommerce user-event producer: streams simulated shop behaviour into an Apache Kafka topic.

Each event is one user action (product_view, add_to_cart, checkout, bounce) serialized as compact JSON:

    {"user_id":456,"event_type":"product_view","timestamp":"2024-01-15T10:30:45.123Z",
     "metadata":{"product_id":234,"session_length":12.5}}

and sent to the `user-events` topic with the user id as record key (one user's events stay in one
partition, in order), the event's time as record timestamp and a unique `event_id` header.

    python producer.py                       # one event every 3 s to localhost:9092
    python producer.py --rate 2000 --duration 600
    python producer.py --dry-run --count 5   # JSON lines on stdout, no Kafka
    python producer.py --mode sessions --start-time 2026-11-01T00:00:00Z --follow --labels-file labels.jsonl
                                             # a simulated shop whose customers churn: backfill, then live
    python producer.py --help                # every flag, its environment variable and default

Settings come from CLI flags, then environment variables, then the `.env` file, then defaults; they are
listed with comments in `producer_config.env` and in README.md. Exit codes: 0 every generated event was
acknowledged, 1 runtime or connection failure (or events lost), 2 bad settings or usage.

How a run goes: `main(argv)` -> settings (`load_settings`: flags, environment, .env, validated once; `prepare`:
each part's own checks) -> the process (`run_process`: logging, signals, metrics, the summary; or `run_workers`)
-> `compose_run` (a sink, its `DeliveryMonitor`, a source and its pacing) -> `RunEngine.run` (one loop) -> the sink
(`KafkaSink` through a `KafkaConnection`, or `StdoutSink` for --dry-run) -> delivery (the client's callbacks count
what the broker acknowledged). The simulated shop (sessions mode, a real shop's twin) is the `shopsim` package
beside this file, a pure seeded model that never imports it; this file imports it (the event's JSON text is
written there, once), so the daemon is this file and that folder, side by side.

Public API (`__all__`), stable within a major version (a removal or an incompatible change only with a new major
version, said in the notes): `ECommerceEventProducer` (the original script's class and methods, see its
docstring), `main(argv) -> int`, `load_settings`, `prepare`, `default_settings`, `Settings`, `SettingsError`,
`JsonCodec` and `encode_event`, `EventGenerator`, `KafkaConnection` (and its two clients), `DeliveryMonitor`,
`RunEngine`, `simulator_for` (the shop the settings describe) and `os_reason`; `SessionSimulator`, `ShopProfile`,
`load_shop_profile` and `TwinSimulator` are re-exported from shopsim for code written before it. Everything else
is internal and may change in any release.

The sections, in this order; each uses only what is above it (tests/shape/test_layout.py keeps it so):
constants, exceptions and the event schema; settings; the wire format; random events; the simulated shop (the
shopsim model the settings describe); the Kafka connection; delivery accounting; the run engine; the producer
(the original class, a facade over the engine); metrics; the process (logging, signals, the summary); --workers;
main.

Where to change what:
- a setting: `OPTIONS` (flag, variable, default, parser, help; shapes_stream when a seeded window's events
  depend on it), then `Settings`; a rule between settings: `validate`; a check of the part a setting feeds (the
  population, a schema file, a client's options): that part's own (`size_population`, `check_schema`,
  `KafkaConnection`'s `check_options`), called by `prepare`;
- the record format (value, key, timestamp, event_id header): `JsonCodec` (the event's JSON text itself:
  `event_text` in shopsim/events.py); Avro, Protobuf and JSON Schema values and their registry: `RegistryCodec`
  and the files in schemas/;
- the random mode's events: the defaults at the top (`DEFAULT_EVENT_WEIGHTS`) and `EventGenerator`;
- the simulated shop: shopsim (its figures in shopsim/figures.py, `SessionSimulator` in shopsim/sessions.py, a
  real shop's `ShopProfile` and `TwinSimulator` in shopsim/twin.py); which simulator the settings describe:
  `simulator_for`;
- connecting, topic checks, outage and stall handling: `KafkaConnection`; a client library's settings and
  calls: `KafkaPythonConnection` (kafka-python) or `ConfluentConnection` (confluent-kafka); a rerun's resume:
  `read_last_sequences`;
- delivery accounting, progress, health and readiness, statistics, the run summary: `DeliveryMonitor`;
- the run: when events go (`Pacing`: `Schedule`, `SimulatedTime`, `Unlimited`), what makes them (`Source`:
  `RandomEvents`, `SimulatedShop`, with `TruthStream` and `write_labels`), where they go (`Sink`: `KafkaSink`,
  `StdoutSink`, chosen by `sink_for`; a new sink answers there what it needs and how it counts), how a run is put
  together (`compose_run`), the loop and its end (`RunEngine`); the original API over it: `ECommerceEventProducer`;
- metrics: `MetricsServer`; logging, signals, the summary file: `run_process`; several processes
  (--workers): `run_workers`; the command line: `main`.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import functools
import gc
import io
import json
import logging
import logging.handlers
import math
import os
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from heapq import merge
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator, Protocol

from shopsim import (DATA_FAULTS, DAY_MS, FUNNEL_TYPES, MAX_SIMULATED_USERS, SEGMENTS, Scenario, ScenarioError,
                     SessionSimulator, ShopProfile, StreamFaults, TimestampFormatter, TwinSimulator, event_text,
                     json_name, load_scenarios, load_shop_profile, merged, parse_time, parse_timezone, record_key,
                     scenario_shop, session_fields)

# kafka-python and python-dotenv are imported where they are used, so that `--help`, `--dry-run`,
# settings errors and the unit tests of generation work even before the client is installed.


# --- constants, exceptions and the event schema -------------------------------------------------------------

DEFAULT_EVENT_WEIGHTS = {"add_to_cart": 0.25, "bounce": 0.15, "checkout": 0.20, "product_view": 0.40}
DEFAULT_USER_ID_RANGE = (1, 1000)
DEFAULT_PRODUCT_ID_RANGE = (1, 500)
DEFAULT_SESSION_LENGTH_RANGE = (0.5, 30.0)  # minutes, 2 decimals
EVENT_ID_HEADER = "event_id"
# Sessions mode: the segments of the simulated population and the funnel it walks through.
DEFAULT_SEGMENT_MIX = "loyal=0.3,casual=0.4,at_risk=0.2,churning=0.1"
CLIENT_NAMES = ("kafka-python", "confluent-kafka")
VALUE_FORMATS = ("json", "avro", "protobuf", "json-schema")
SCHEMA_FILES = {"avro": "schemas/user_event.avsc", "protobuf": "schemas/user_event.proto",
                "json-schema": "schemas/user_event.schema.json"}
PROTOBUF_MODULE = "schemas/user_event_pb2.py"  # generated from user_event.proto by `make schemas`
# What a run imports beyond the default packages (requirements.txt), by setting: (module, package, the make target
# that installs it; `make run` does, reading the settings).
CLIENT_PACKAGES = {"kafka-python": ("kafka.errors", "kafka-python", "setup"),
                   "confluent-kafka": ("confluent_kafka", "confluent-kafka", "setup-confluent")}
FORMAT_PACKAGES = {"avro": ("fastavro", "fastavro", "setup-formats"),
                   "protobuf": ("google.protobuf", "protobuf", "setup-formats"),
                   "json-schema": ("jsonschema", "jsonschema", "setup-formats")}
CODEC_PACKAGES = {"snappy": ("snappy", "python-snappy", "setup-codecs"), "lz4": ("lz4.frame", "lz4", "setup-codecs"),
                  "zstd": ("zstandard", "zstandard", "setup-codecs")}  # kafka-python's; librdkafka has its own
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Above this rate per-event log lines would drown the terminal; the periodic progress line remains.
LOG_EVENTS_AUTO_MAX_RATE = 10.0
# Send latency (send() to broker acknowledgement) histogram buckets, seconds; every
# LATENCY_SAMPLE_EVERY-th event is timed, so full speed does not pay for a clock read per event.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
LATENCY_SAMPLE_EVERY = 16
# A client holding events this long past the delivery timeout with no completion is stalled.
STALL_GRACE_S = 10.0
# How often the partition count in the client's metadata (refreshed every metadata_max_age_ms) is compared.
PARTITION_CHECK_S = 5.0
SILENCE_S = 5.0  # events in flight and no acknowledgement nor error for this long: reported as an outage
# A rerun of a seeded window looks for its predecessor's events among this many last records of each partition.
RESUME_SCAN = 500_000
# A slow link, with a rate to keep: over SLOW_S, acknowledgements below SLOW_SHARE of the rate while more than
# SLOW_BACKLOG_S of events wait in flight (the backlog is the broker's, not a generation that cannot keep up).
SLOW_S, SLOW_SHARE, SLOW_BACKLOG_S = 5.0, 0.8, 2.0
BATCH = 512  # events per turn of the run loop at most: the clock, the stop flag and the progress line are seen often
# A rate out of reach: after PACE_GRACE_S, fewer than PACE_SHORTFALL of the events due were generated, over at
# least PACE_FREE_S of time not spent waiting for room at MAX_IN_FLIGHT_EVENTS.
PACE_GRACE_S, PACE_SHORTFALL, PACE_FREE_S = 3.0, 0.9, 1.0
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
# What the summary's "sent" is, by KAFKA_ACKS; and what a failed or unacknowledged event is: Kafka cannot tell
# whether a request that timed out was written, so neither is called lost.
SENT_MEANS = {"all": "acknowledged by the in-sync replicas", 1: "acknowledged by the partition leader alone",
              0: "sent, not acknowledged (acks=0)"}
UNCERTAIN = "not acknowledged; may or may not be in the topic"
# The summary's exit_reason while a run goes on; what a killed run (SIGKILL, out of memory) leaves.
RUNNING = "running, or killed before it could end (no figures)"


# What the serializer is first given, at start-up, to register its schema: an event of the contract's shape.
SAMPLE_EVENT = {"user_id": 1, "event_type": "product_view", "timestamp": "2026-01-01T00:00:00.000Z",
                "metadata": {"product_id": 1, "session_length": 1.0}}


POPULATION_PROBE = 20_000  # users simulated to learn the population's pace per user


class SettingsError(Exception):
    """Bad input: main() prints the message as one line and exits with code 2."""


class ConnectionFailed(Exception):
    """The broker could not be reached or refused us: one clear line, exit code 1."""


class DeliveryFailed(Exception):
    """A record the client reported as failed, named by the client's error (e.g. MSG_TIMED_OUT)."""

    def __init__(self, error_name: str, message: str) -> None:
        super().__init__(message)
        self.error_name = error_name


log = logging.getLogger("producer")
__version__ = "3.0.0"

__all__ = ["ConfluentConnection", "DeliveryMonitor", "ECommerceEventProducer", "EventGenerator", "JsonCodec",
           "KafkaConnection", "KafkaPythonConnection", "RunEngine", "SessionSimulator", "Settings", "SettingsError",
           "ShopProfile", "TwinSimulator", "default_settings", "encode_event", "load_settings", "load_shop_profile",
           "main", "os_reason", "prepare", "simulator_for"]


# --- settings -----------------------------------------------------------------------------------------------

def os_reason(exc: BaseException) -> str:
    """Why a file operation failed, for a one-line message: the system's words, else the exception's name."""
    return getattr(exc, "strerror", None) or type(exc).__name__


def _number(text: str, *, integer: bool = False, minimum: float | None = None, maximum: float | None = None,
            above: float | None = None, accepted: str) -> float | int:
    text = text.strip()
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"expected {accepted}") from None
    if not integer and not math.isfinite(value):
        raise ValueError(f"expected {accepted} (NaN and infinity are not)")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum) \
            or (above is not None and value <= above):
        raise ValueError(f"expected {accepted}")
    return value


def parse_seconds(text: str) -> float:
    return _number(text, minimum=0, maximum=86_400 * 365, accepted="seconds >= 0 (e.g. 3 or 0.5)")


def parse_optional_seconds(text: str) -> float | None:
    if not text.strip():
        return None
    return _number(text, above=0, maximum=86_400 * 365 * 10, accepted="seconds > 0 (e.g. 60 or 0.5), or empty")


def parse_rate(text: str) -> float | None:
    if not text.strip():
        return None
    if text.strip() in ("0", "0.0"):
        raise ValueError("0 events per second is no rate; for as fast as possible use --interval 0 "
                         "(PRODUCER_INTERVAL=0)")
    return _number(text, minimum=0.0001, maximum=1_000_000,
                   accepted="events per second from 0.0001 to 1000000 (e.g. 0.2 or 500)")


def parse_count(text: str) -> int | None:
    if not text.strip():
        return None
    return int(_number(text, integer=True, minimum=1, maximum=10**12, accepted="a whole number >= 1, or empty"))


def parse_seed(text: str) -> int | None:
    if not text.strip():
        return None
    return int(_number(text, integer=True, minimum=0, maximum=2**63, accepted="a whole number >= 0, or empty"))


def int_in(lo: int, hi: int, what: str = "a whole number") -> Callable[[str], int]:
    def parse(text: str) -> int:
        return int(_number(text, integer=True, minimum=lo, maximum=hi, accepted=f"{what} from {lo} to {hi}"))
    return parse


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def choice(options: Iterable[str], *, upper: bool = True) -> Callable[[str], str]:
    options = tuple(options)

    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value
    return parse


def parse_acks(text: str) -> int | str:
    value = text.strip().lower()
    if value in ("all", "-1"):
        return "all"
    if value in ("0", "1"):
        return int(value)
    raise ValueError("expected all (or -1), 1 or 0")


def parse_warm_start(text: str) -> str:
    value = text.strip().lower()
    if value == "auto":
        return "auto"
    try:
        return "on" if parse_bool(value) else "off"
    except ValueError:
        raise ValueError("expected auto (the default: live runs start warm, windows as before), on or off") from None


def parse_log_events(text: str) -> str:
    value = text.strip().lower()
    if value in ("auto",):
        return "auto"
    try:
        return "true" if parse_bool(value) else "false"
    except ValueError:
        raise ValueError("expected true, false or auto (the default: on up to "
                         f"{LOG_EVENTS_AUTO_MAX_RATE:g} events/s)") from None


def parse_topic(text: str) -> str:
    value = text.strip()
    if not TOPIC_NAME.match(value) or value in (".", ".."):
        raise ValueError("expected 1-249 characters from A-Z a-z 0-9 . _ - (Kafka's rule for topic names)")
    return value


def parse_bootstrap(text: str) -> str:
    servers = [s.strip() for s in text.split(",")]
    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or " " in host:
            raise ValueError("expected host:port[,host:port...] with ports 1-65535 (e.g. localhost:9092)")
    return ",".join(servers)


def parse_int_range(lo_limit: int, hi_limit: int) -> Callable[[str], tuple[int, int]]:
    def parse(text: str) -> tuple[int, int]:
        accepted = f"MIN-MAX whole numbers with {lo_limit} <= MIN <= MAX <= {hi_limit} (e.g. 1-1000)"
        m = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*", text)
        if not m:
            raise ValueError(f"expected {accepted}")
        lo, hi = int(m.group(1)), int(m.group(2))
        if not lo_limit <= lo <= hi <= hi_limit:
            raise ValueError(f"expected {accepted}")
        return lo, hi
    return parse


def parse_session_range(text: str) -> tuple[float, float]:
    accepted = "MIN-MAX minutes with 0 <= MIN <= MAX <= 100000, at most 2 decimals (e.g. 0.5-30)"
    m = re.fullmatch(r"\s*(\d+(?:\.\d{1,2})?)\s*-\s*(\d+(?:\.\d{1,2})?)\s*", text)
    if not m:
        raise ValueError(f"expected {accepted}")
    lo, hi = float(m.group(1)), float(m.group(2))
    if not 0 <= lo <= hi <= 100_000:
        raise ValueError(f"expected {accepted}")
    return lo, hi


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    accepted = "name=weight pairs separated by commas, names of letters, digits and _, weights >= 0 " \
               "summing to more than 0 (e.g. product_view=0.4,add_to_cart=0.25,checkout=0.2,bounce=0.15)"
    pairs: list[tuple[str, float]] = []
    for item in text.split(","):
        name, sep, weight = item.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", name):
            raise ValueError(f"expected {accepted}")
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(f"expected {accepted}") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected {accepted}")
        if any(name == seen for seen, _ in pairs):
            raise ValueError(f"event type '{name}' is listed twice; expected {accepted}")
        pairs.append((name, value))
    if sum(w for _, w in pairs) <= 0:
        raise ValueError(f"expected {accepted}")
    return tuple(pairs)


def parse_address(text: str) -> str:
    import ipaddress

    value = text.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("expected an IP address such as 0.0.0.0 or 127.0.0.1") from None
    return value


def parse_segment_mix(text: str) -> tuple[tuple[str, float], ...]:
    pairs = parse_weights(text)
    unknown = [name for name, _ in pairs if name not in SEGMENTS]
    if unknown:
        raise ValueError(f"unknown segment '{unknown[0]}'; expected weights of {', '.join(SEGMENTS)} "
                         f"(e.g. {DEFAULT_SEGMENT_MIX})")
    return pairs


def parse_optional_topic(text: str) -> str:
    return parse_topic(text) if text.strip() else ""


def parse_path(text: str) -> str:
    return text.strip()


WORKERS_AUTO = 0  # --workers auto, until validate() knows the run


def parse_workers(text: str) -> int:
    if text.strip().lower() == "auto":
        return WORKERS_AUTO
    return int(_number(text, integer=True, minimum=1, maximum=64, accepted="a whole number from 1 to 64, or auto"))


def parse_shard(text: str) -> tuple[int, int] | None:
    """'I/N' -> (I, N): this process is shard I (from 0) of N."""
    if not text.strip():
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)) <= 4096:
        raise ValueError("expected I/N with 0 <= I < N <= 4096, e.g. 0/4 for the first of four shards")
    return int(m.group(1)), int(m.group(2))


def parse_url(text: str) -> str:
    text = text.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise ValueError("expected an http:// or https:// URL, e.g. http://localhost:8081/apis/ccompat/v7")
    return text


def parse_producer_options(text: str) -> tuple[tuple[str, Any], ...]:
    """KEY=VALUE pairs (comma separated) passed to kafka-python's KafkaProducer as they are."""
    if not text.strip():
        return ()
    options = []
    for item in text.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError("expected key=value pairs separated by commas (e.g. max_in_flight_requests_per_connection=1)")
        options.append((key, _coerce_scalar(raw.strip())))
    return tuple(options)


def _coerce_scalar(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


@dataclass(frozen=True)
class Option:
    """One setting: its field in Settings, its environment variable, its flag, default and parser."""

    name: str
    env: str | None
    flag: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False
    group: str = "producer"
    shapes_stream: bool = False  # a seeded window's events depend on it: part of the stream's identity (run_id_for)


OPTIONS: tuple[Option, ...] = (
    Option("bootstrap_servers", "KAFKA_BOOTSTRAP_SERVERS", "--bootstrap-servers", "localhost:9092", parse_bootstrap,
           "Kafka brokers to bootstrap from, host:port[,host:port]", group="kafka"),
    Option("topic", "KAFKA_TOPIC", "--topic", "user-events", parse_topic, "topic the events are sent to", group="kafka"),
    Option("interval", "PRODUCER_INTERVAL", "--interval", "3.0", parse_seconds,
           "seconds between events; 0 = as fast as possible"),
    Option("rate", "EVENTS_PER_SECOND", "--rate", "", parse_rate,
           "events per second (fractional allowed, e.g. 0.2); alternative to --interval"),
    Option("count", "MAX_EVENTS", "--count", "", parse_count, "stop after this many events (empty = no limit)"),
    Option("duration", "RUN_DURATION", "--duration", "", parse_optional_seconds,
           "stop after this many seconds (empty = no limit)"),
    Option("seed", "RANDOM_SEED", "--seed", "", parse_seed,
           "random seed: the same seed gives the same events apart from timestamps (empty = random)",
           shapes_stream=True),
    Option("workers", "WORKERS", "--workers", "1", parse_workers,
           "producer processes on this machine, one Kafka client each, splitting the users (as --shard does) and "
           "the rate; one combined progress line and statistics block; auto: one per core this process may use "
           "at full speed (INTERVAL 0, or a backfill), else one"),
    Option("shard", "SHARD", "--shard", "", parse_shard,
           "I/N: this process is shard I (from 0) of N that together produce one stream: random mode takes "
           "the I-th part of USER_ID_RANGE; sessions mode simulates the whole shop and sends the events of the "
           "users whose id mod N is I (needs RANDOM_SEED and START_TIME, the same in every shard)", shapes_stream=True),
    Option("dry_run", "DRY_RUN", "--dry-run", "false", parse_bool,
           "print JSON lines on stdout instead of sending (logs go to stderr); no Kafka needed"),
    Option("simulation_mode", "SIMULATION_MODE", "--mode", "random", choice(("random", "sessions"), upper=False),
           "random: independent events; sessions: a population with sessions, a funnel and churn", group="sessions",
           shapes_stream=True),
    Option("segment_mix", "SEGMENT_MIX", "--segment-mix", DEFAULT_SEGMENT_MIX,
           parse_segment_mix, "sessions mode: share of users in each segment", group="sessions", shapes_stream=True),
    Option("start_time", "START_TIME", "--start-time", "", parse_time,
           "sessions mode: start of a simulated window, produced as fast as possible (ISO 8601)", group="sessions",
           shapes_stream=True),
    Option("end_time", "END_TIME", "--end-time", "", parse_time,
           "sessions mode: end of the window (empty = now with --follow, else required with --start-time)",
           group="sessions", shapes_stream=True),
    Option("follow", "FOLLOW", "--follow", "false", parse_bool,
           "sessions mode: after the window (which then ends now), carry on live in real time", group="sessions",
           shapes_stream=True),
    Option("warm_start", "WARM_START", "--warm-start", "auto", parse_warm_start,
           "sessions mode: start with the customers who would be mid-session part-way through it, so the pace is "
           "the steady one from the first minute: auto (live runs), on (a window too; its events then differ from "
           "a cold start's), off", group="sessions"),
    Option("labels_file", "LABELS_FILE", "--labels-file", "", parse_path,
           "sessions mode: write the ground truth (segment, churn episodes, the benchmark label) as JSON lines "
           "here, when the stream ends",
           group="sessions"),
    Option("labels_topic", "LABELS_TOPIC", "--labels-topic", "", parse_optional_topic,
           "sessions mode: also send the ground truth to this topic", group="sessions"),
    Option("truth_file", "TRUTH_FILE", "--truth-file", "", parse_path,
           "sessions mode: write each change of a customer's hidden state (joined, decline_started, churned, "
           "returned, settled) as a JSON line here, as it happens in simulated time", group="sessions"),
    Option("truth_topic", "TRUTH_TOPIC", "--truth-topic", "", parse_optional_topic,
           "sessions mode: send those truth events to this topic as well, keyed by user id, timestamped at "
           "their moment", group="sessions"),
    Option("churn_cutoff", "CHURN_CUTOFF", "--churn-cutoff", "", parse_time,
           "sessions mode: the benchmark's cut-off T: labels say who, active before T and not churned at T, "
           "churned in (T, T+horizon] (empty = the window's end minus the horizon)", group="sessions"),
    Option("churn_horizon", "CHURN_HORIZON_DAYS", "--churn-horizon-days", "14", lambda t: _number(
           t, above=0, maximum=365, accepted="days > 0 and <= 365"), "sessions mode: the benchmark's horizon in days",
           group="sessions"),
    Option("churn_signal", "CHURN_SIGNAL", "--churn-signal", "0.7", lambda t: _number(
           t, minimum=0, maximum=1, accepted="a number from 0 to 1"),
           "sessions mode: how visible a user's decline before churning is (0 = hardly, 1 = plainly)",
           group="sessions", shapes_stream=True),
    Option("shop_timezone", "SHOP_TIMEZONE", "--timezone", "UTC", parse_timezone,
           "sessions mode: the shop's time zone, for its daily and weekly traffic cycle", group="sessions",
           shapes_stream=True),
    Option("shop_profile", "SHOP_PROFILE", "--shop-profile", "", parse_path,
           "sessions mode: a shop profile written by calibrate.py: the simulated shop is that shop's twin (its "
           "customers, arrivals, order rates, retention, order values, cycle); the window and seed as usual",
           group="sessions"),
    Option("scenarios", "SCENARIOS", "--scenarios", "", parse_path,
           "a scenarios file (TOML, docs/scenarios.md): incidents, drift and data faults in the stream, with their "
           "ground truth (random mode takes the data faults only)", group="scenarios"),
    Option("scenario_control_port", "SCENARIO_CONTROL_PORT", "--scenario-control-port", "",
           lambda t: int_in(1, 65535, "a port")(t) if t.strip() else None,
           "serve POST /scenarios/NAME/start and /stop to start and stop SCENARIOS on a running stream, and GET "
           "/scenarios (empty = off)", group="scenarios"),
    Option("scenario_control_address", "SCENARIO_CONTROL_ADDRESS", "--scenario-control-address", "127.0.0.1",
           parse_address, "address the scenario control server listens on (127.0.0.1: this machine only)",
           group="scenarios"),
    Option("zipf_exponent", "PRODUCT_ZIPF_EXPONENT", "--zipf-exponent", "1.0", lambda t: _number(
           t, minimum=0, maximum=5, accepted="a number from 0 to 5"),
           "sessions mode: product popularity, Zipf exponent (0 = all equal, 1 = the top 10%% of 500 products draw "
           "about two thirds of views)", group="sessions", shapes_stream=True),
    Option("event_weights", "EVENT_WEIGHTS", "--event-weights",
           ",".join(f"{k}={v}" for k, v in DEFAULT_EVENT_WEIGHTS.items()), parse_weights,
           "event types and their relative weights", group="events", shapes_stream=True),
    Option("user_id_range", "USER_ID_RANGE", "--user-id-range", "1-1000", parse_int_range(0, 2**53),
           "user ids, uniform MIN-MAX", group="events", shapes_stream=True),
    Option("product_id_range", "PRODUCT_ID_RANGE", "--product-id-range", "1-500", parse_int_range(0, 2**53),
           "product ids, uniform MIN-MAX", group="events", shapes_stream=True),
    Option("session_length_range", "SESSION_LENGTH_RANGE", "--session-length-range", "0.5-30", parse_session_range,
           "session length in minutes, uniform MIN-MAX, 2 decimals", group="events", shapes_stream=True),
    Option("acks", "KAFKA_ACKS", "--acks", "all", parse_acks, "acknowledgements the broker gives: all, 1 or 0",
           group="kafka"),
    Option("compression_type", "KAFKA_COMPRESSION_TYPE", "--compression", "none", choice(COMPRESSION_TYPES, upper=False),
           "batch compression: " + ", ".join(COMPRESSION_TYPES), group="kafka"),
    Option("linger_ms", "KAFKA_LINGER_MS", "--linger-ms", "5", int_in(0, 60_000),
           "ms a batch waits for more records (linger.ms)", group="kafka"),
    Option("batch_size", "KAFKA_BATCH_SIZE", "--batch-size", "65536", int_in(1, 16 * 1024 * 1024),
           "bytes per partition batch (batch.size)", group="kafka"),
    Option("max_in_flight", "MAX_IN_FLIGHT_EVENTS", "--max-in-flight", "50000", int_in(1, 10_000_000),
           "events handed to the client but not yet acknowledged, at most; at the limit generation pauses "
           "until acknowledgements come back, so memory stays bounded while the broker is away", group="kafka"),
    Option("max_block_ms", "KAFKA_MAX_BLOCK_MS", "--max-block-ms", "60000", int_in(0, 3_600_000),
           "ms send() waits for buffer space or metadata before the event is counted as failed", group="kafka"),
    Option("request_timeout_ms", "KAFKA_REQUEST_TIMEOUT_MS", "--request-timeout-ms", "30000", int_in(1000, 3_600_000),
           "ms to wait for one produce request (request.timeout.ms)", group="kafka"),
    Option("delivery_timeout_ms", "KAFKA_DELIVERY_TIMEOUT_MS", "--delivery-timeout-ms", "120000",
           int_in(1000, 86_400_000), "ms an event may take to be acknowledged, retries included; then it "
           "is counted as failed (delivery.timeout.ms)", group="kafka"),
    Option("enable_idempotence", "KAFKA_ENABLE_IDEMPOTENCE", "--idempotence", "true", parse_bool,
           "idempotent producer: retries never duplicate or reorder (needs acks=all)", group="kafka"),
    Option("client", "KAFKA_CLIENT", "--client", "kafka-python", choice(tuple(CLIENT_NAMES), upper=False),
           "the Kafka client library: kafka-python (pure Python) or confluent-kafka (librdkafka, several times "
           "faster); the same guarantees and behaviour with either", group="kafka"),
    Option("client_id", "KAFKA_CLIENT_ID", "--client-id", "ecommerce-event-producer", str.strip,
           "client.id seen in broker logs and quotas", group="kafka"),
    Option("producer_options", "KAFKA_PRODUCER_OPTIONS", "--producer-options", "", parse_producer_options,
           "other options of the client, key=value[,key=value]: kafka-python KafkaProducer arguments "
           "(max_in_flight_requests_per_connection=1) or, with confluent-kafka, librdkafka properties "
           "(message.max.bytes=2000000)", group="kafka"),
    Option("topic_partitions", "KAFKA_TOPIC_PARTITIONS", "--topic-partitions", "3", int_in(1, 10_000),
           "partitions of the topic when the producer creates it", group="kafka"),
    Option("topic_replication", "KAFKA_TOPIC_REPLICATION", "--topic-replication", "1", int_in(1, 32),
           "replication factor of the topic when the producer creates it", group="kafka"),
    Option("connect_timeout", "CONNECT_TIMEOUT", "--connect-timeout", "30", parse_seconds,
           "seconds to keep retrying the first connection (the broker may start after us)", group="kafka"),
    Option("flush_timeout", "FLUSH_TIMEOUT", "--flush-timeout", "10", parse_seconds,
           "seconds to wait at shutdown for in-flight events to be acknowledged", group="kafka"),
    Option("security_protocol", "KAFKA_SECURITY_PROTOCOL", "--security-protocol", "PLAINTEXT",
           choice(SECURITY_PROTOCOLS), "one of " + ", ".join(SECURITY_PROTOCOLS), group="security"),
    Option("sasl_mechanism", "KAFKA_SASL_MECHANISM", "--sasl-mechanism", "PLAIN", choice(SASL_MECHANISMS),
           "one of " + ", ".join(SASL_MECHANISMS), group="security"),
    Option("sasl_username", "KAFKA_SASL_USERNAME", "--sasl-username", "", str.strip, "SASL user name",
           group="security"),
    Option("sasl_password", "KAFKA_SASL_PASSWORD", "--sasl-password", "", str.strip,
           "SASL password (prefer the environment or .env to the command line)", secret=True, group="security"),
    Option("ssl_cafile", "KAFKA_SSL_CAFILE", "--ssl-cafile", "", parse_path, "CA certificate (PEM) to verify the broker",
           group="security"),
    Option("ssl_certfile", "KAFKA_SSL_CERTFILE", "--ssl-certfile", "", parse_path, "client certificate (PEM) for mTLS",
           group="security"),
    Option("ssl_keyfile", "KAFKA_SSL_KEYFILE", "--ssl-keyfile", "", parse_path, "client private key (PEM) for mTLS",
           group="security"),
    Option("value_format", "VALUE_FORMAT", "--format", "json", choice(VALUE_FORMATS, upper=False),
           "the record value: json (the contract's JSON text), or avro, protobuf or json-schema in the Confluent "
           "wire format with the schema registered in SCHEMA_REGISTRY_URL", group="format"),
    Option("value_schema", "VALUE_SCHEMA_FILE", "--schema-file", "", parse_path,
           "a schema of your own for avro or json-schema (empty = schemas/user_event.avsc or "
           "schemas/user_event.schema.json; protobuf uses the message generated from schemas/user_event.proto)",
           group="format"),
    Option("registry_url", "SCHEMA_REGISTRY_URL", "--schema-registry-url", "http://localhost:8081/apis/ccompat/v7",
           parse_url, "Schema Registry with the Confluent API (Confluent, Apicurio's /apis/ccompat/v7, Redpanda, "
           "Karapace)", group="format"),
    Option("registry_username", "SCHEMA_REGISTRY_USERNAME", "--schema-registry-username", "", str.strip,
           "basic-auth user of the registry (Confluent Cloud: the Schema Registry API key)", group="format"),
    Option("registry_password", "SCHEMA_REGISTRY_PASSWORD", "--schema-registry-password", "", str.strip,
           "basic-auth password of the registry (prefer the environment or .env)", secret=True, group="format"),
    Option("registry_cafile", "SCHEMA_REGISTRY_CAFILE", "--schema-registry-cafile", "", parse_path,
           "CA certificate (PEM) to verify an https registry (empty = the system's)", group="format"),
    Option("metrics_port", "METRICS_PORT", "--metrics-port", "", lambda t: int_in(1, 65535, "a port")(t) if t.strip()
           else None, "serve Prometheus metrics on /metrics and health on /healthz, /readyz (empty = off)",
           group="operations"),
    Option("metrics_address", "METRICS_ADDRESS", "--metrics-address", "0.0.0.0", parse_address,
           "address the metrics/health server listens on", group="operations"),
    Option("health_timeout", "HEALTH_TIMEOUT", "--health-timeout", "60", lambda t: _number(
           t, above=0, maximum=86_400, accepted="seconds > 0 and <= 86400"),
           "/healthz turns unhealthy when events are pending and none was acknowledged for this long",
           group="operations"),
    Option("log_level", "LOG_LEVEL", "--log-level", "INFO", choice(LOG_LEVELS), "one of " + ", ".join(LOG_LEVELS),
           group="logging"),
    Option("log_file", "LOG_FILE", "--log-file", "producer.log", parse_path,
           "rotating log file, 10 MB x 3 (empty = no file)", group="logging"),
    Option("log_events", "LOG_EVENTS", "--log-events", "auto", parse_log_events,
           f"one log line per acknowledged event: true, false or auto (on up to {LOG_EVENTS_AUTO_MAX_RATE:g} "
           "events/s, off during a backfill)",
           group="logging"),
    Option("stats_interval", "STATS_INTERVAL", "--stats-interval", "30", parse_seconds,
           "seconds between progress lines (sent, failed, in flight, rate); 0 = none", group="logging"),
    Option("summary_json", "SUMMARY_JSON", "--summary-json", "", parse_path,
           "the run's figures as one JSON object here (generated, sent, failed, dropped, runtime, rate, exit code "
           "and reason) for scripts and tests: rewritten as the run goes, at each progress line and each change of "
           "phase or outage (exit_code null), and final at the end", group="logging"),
)
OPTIONS_BY_NAME = {o.name: o for o in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Every setting, parsed and validated once. Build it with load_settings()."""

    bootstrap_servers: str
    topic: str
    interval: float
    rate: float | None
    count: int | None
    duration: float | None
    seed: int | None
    workers: int
    shard: tuple[int, int] | None
    dry_run: bool
    simulation_mode: str
    segment_mix: tuple[tuple[str, float], ...]
    start_time: int | None
    end_time: int | None
    follow: bool
    warm_start: str
    labels_file: str
    labels_topic: str
    truth_file: str
    truth_topic: str
    churn_cutoff: int | None
    churn_horizon: float
    churn_signal: float
    shop_timezone: str
    shop_profile: str
    scenarios: str
    scenario_control_port: int | None
    scenario_control_address: str
    zipf_exponent: float
    event_weights: tuple[tuple[str, float], ...]
    user_id_range: tuple[int, int]
    product_id_range: tuple[int, int]
    session_length_range: tuple[float, float]
    acks: int | str
    compression_type: str
    linger_ms: int
    batch_size: int
    max_in_flight: int
    max_block_ms: int
    request_timeout_ms: int
    delivery_timeout_ms: int
    enable_idempotence: bool
    client: str
    client_id: str
    producer_options: tuple[tuple[str, Any], ...]
    topic_partitions: int
    topic_replication: int
    connect_timeout: float
    flush_timeout: float
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: str = field(repr=False)
    ssl_cafile: str
    ssl_certfile: str
    ssl_keyfile: str
    value_format: str
    value_schema: str
    registry_url: str
    registry_username: str
    registry_password: str = field(repr=False)
    registry_cafile: str
    log_level: str
    log_file: str
    log_events: str
    stats_interval: float
    summary_json: str
    metrics_port: int | None
    metrics_address: str
    health_timeout: float
    print_config: bool = False
    env_file: str = ".env"
    env_file_read: bool = field(default=False, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)  # for main() to log once logging is set up
    # Where each setting given a value came from, as error messages name it ("--rate", "KAFKA_TOPIC (in .env)");
    # a setting not in it has its default. Sessions mode reads which were given; --print-config shows them.
    given: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)  # flag, environment, .env
    profile: ShopProfile | None = field(default=None, compare=False, repr=False)  # SHOP_PROFILE's, read once
    scenario_plan: tuple[Scenario, ...] = field(default=(), compare=False, repr=False)  # SCENARIOS', read once

    @property
    def explicit(self) -> frozenset[str]:
        """The settings given a value by flag, environment or .env file, not defaulted."""
        return frozenset(self.given)

    def name(self, option: str) -> str:
        """How a setting is named in a message: where its value came from, else its variable."""
        return self.given.get(option) or OPTIONS_BY_NAME[option].env or option

    @property
    def seconds_per_event(self) -> float:
        """The schedule: --rate wins over the interval when given; 0 means as fast as possible."""
        return 1.0 / self.rate if self.rate else self.interval

    @property
    def events_logged(self) -> bool:
        if self.log_events == "auto":
            spe = self.seconds_per_event
            return spe > 0 and 1.0 / spe <= LOG_EVENTS_AUTO_MAX_RATE
        return self.log_events == "true"

    @property
    def acks_counted(self) -> bool:
        """Whether the run's acknowledgements are counted rather than reported one by one (confluent-kafka: librdkafka
        reports only failures). Only where nothing needs each success: not for the latency histogram (METRICS_PORT),
        a log line per event, or ground truth sent to a topic (its acknowledgements are counted apart)."""
        return (self.client == "confluent-kafka" and self.metrics_port is None and not self.events_logged
                and not self.labels_topic and not self.truth_topic)

    def describe(self) -> list[tuple[str, str, str]]:
        """(variable, effective value, where it came from) rows for --print-config; secrets masked."""
        rows = []
        for option in OPTIONS:
            value = getattr(self, option.name)
            if option.secret:
                shown = "***" if value else "(not set)"
            elif option.name in ("event_weights", "segment_mix"):
                shown = ",".join(f"{k}={w:g}" for k, w in value)
            elif option.name in ("start_time", "end_time") and value is not None:
                shown = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value / 1000))
            elif option.name in ("user_id_range", "product_id_range", "session_length_range"):
                shown = f"{value[0]:g}-{value[1]:g}"
            elif option.name == "producer_options":
                shown = ",".join(f"{k}={v}" for k, v in value)
            elif value is None:
                shown = ""
            else:
                shown = str(value)
            rows.append((option.env or option.flag, shown, self.origins.get(option.name, "default")))
        return rows


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse's default prints the whole usage first), exit code 2."""

    def error(self, message: str):
        hint = ""
        if message.startswith("unrecognized arguments: "):
            import difflib

            flags = [f for action in self._actions for f in action.option_strings if f.startswith("--")]
            unknown = [a.split("=")[0] for a in message.split(": ", 1)[1].split() if a.startswith("--")]
            close = difflib.get_close_matches(unknown[0], flags, n=1, cutoff=0.6) if unknown else []
            hint = f"; did you mean {close[0]}?" if close else ""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}{hint} (accepted flags and values: --help)\n")


class _Version(argparse.Action):
    """--version: this file's version, the Kafka clients' (those installed) and Python's, for a bug report."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib import metadata

        found = []
        for package in ("kafka-python", "confluent-kafka"):
            try:
                found.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                found.append(f"{package} not installed")
        print(f"producer.py {__version__} ({', '.join(found)}; Python {sys.version.split()[0]})")
        parser.exit(EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    """The CLI: every setting as a flag whose help names its environment variable and default."""
    parser = _Parser(
        prog="producer.py", allow_abbrev=False,  # --rat must not silently mean --rate
        description="Stream simulated eCommerce user events (product_view, add_to_cart, checkout, bounce)\n"
                    "to a Kafka topic. Precedence: flag > environment variable > .env file > default.\n\n"
                    "Start here: `make run` starts a local Kafka broker and sends an event every 3 seconds;\n"
                    "`python producer.py --dry-run --count 5` prints five with no Kafka. More: README.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 every event acknowledged, 1 runtime/connection failure, 2 bad settings.\n"
               "Every setting is documented with comments in producer_config.env.")
    parser.add_argument("--env-file", metavar="PATH", default=None,
                        help="read settings from this .env file (default: .env in the current folder, if present)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective settings (secrets masked), each with where it came from, and exit")
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version (and the clients') and exit")
    groups = {name: parser.add_argument_group(title) for name, title in (
        ("producer", "producer"), ("events", "event shape"), ("sessions", "sessions mode (simulated users)"),
        ("scenarios", "what if: scenarios (docs/scenarios.md)"),
        ("kafka", "Kafka client"),
        ("security", "security"), ("format", "value format and schema registry"),
        ("logging", "logging and statistics"),
        ("operations", "metrics and health"))}
    for option in OPTIONS:
        default = option.default if not option.secret else "(empty)"
        text = f"{option.help} [{option.env}, default: {default or '(empty)'}]"
        if option.name in ("dry_run", "follow"):
            groups[option.group].add_argument(option.flag, dest=option.name, action="store_const", const="true",
                                              default=None, help=text)
        else:
            groups[option.group].add_argument(option.flag, dest=option.name, metavar=option.env or "VALUE",
                                              default=None, help=text)
    return parser


def read_env_file(path: str, named_by: str = "") -> dict[str, str]:
    """Key/values of a .env file, without touching os.environ; syntax errors are settings errors. named_by: the
    flag or variable that named it (it must then exist), or "" for the .env of the current folder, read if there."""
    from dotenv.parser import parse_stream

    # a .env found in the current folder was not asked for by name: say so, and how to leave it out
    source = named_by or \
        "the .env of this folder, read by default (--env-file names another; ENV_FILE=/dev/null reads none)"
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        if named_by:
            raise SettingsError(f"{named_by}: '{path}' does not exist; expected a readable .env file") from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{source}: '{path}' cannot be read ({os_reason(exc)}); expected a readable UTF-8 .env "
                            "file") from None
    values = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            raise SettingsError(f"{source}: '{path}' line {line} is not KEY=VALUE "
                                f"({binding.original.string.strip()[:40]!r}); expected KEY=VALUE lines and # comments")
        if binding.key is not None:
            values[binding.key] = binding.value or ""
    return values


def load_settings(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Parse flags, environment and .env into one validated Settings; raise SettingsError on bad input."""
    environ = dict(os.environ if environ is None else environ)
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    env_file = args.env_file if args.env_file is not None else environ.get("ENV_FILE", ".env")
    dotenv = read_env_file(env_file, "--env-file" if args.env_file is not None else
                           "ENV_FILE" if "ENV_FILE" in environ else "")

    values: dict[str, Any] = {}
    given: dict[str, str] = {}  # where each explicitly given setting came from, for error messages
    level: dict[str, int] = {}  # 3 flag, 2 environment, 1 .env file
    origins: dict[str, str] = {}
    for option in OPTIONS:
        raw, source = getattr(args, option.name), option.flag
        level[option.name] = 3
        if raw is None and option.env in environ:
            raw, source, level[option.name] = environ[option.env], option.env, 2
        if raw is None and option.env in dotenv:
            raw, source, level[option.name] = dotenv[option.env], f"{option.env} (in {env_file})", 1
        if raw is None:
            raw, source, level[option.name] = option.default, f"{option.env} (default)", 0
        else:
            origins[option.name] = ("", ".env", "environment", "flag")[level[option.name]]
            if raw.strip():
                given[option.name] = source
        try:
            values[option.name] = option.parse(raw)
        except ValueError as exc:
            shown = "***" if option.secret else repr(raw)
            raise SettingsError(f"{source}: {shown} is not valid; {exc}") from None
    if values["dry_run"] and values["simulation_mode"] == "random" and not {"rate", "interval"} & set(given):
        values["interval"] = 0.0  # a dry run prints as fast as it can unless a pace is asked for
    if "rate" in given and "interval" in given:
        # Both given: the more specific source wins (a --rate flag over PRODUCER_INTERVAL in .env);
        # at the same level it is a contradiction.
        if level["rate"] == level["interval"]:
            raise SettingsError(f"{given['rate']} and {given['interval']} are both set; expected only one of them")
        if level["interval"] > level["rate"]:
            values["rate"] = None
    warnings = unknown_settings(dotenv, f"in {env_file}", only_close=False) + \
        unknown_settings(environ, "in the environment", only_close=True)
    settings = Settings(**values, print_config=args.print_config, env_file=env_file,
                        env_file_read=os.path.isfile(env_file), given=given, origins=origins, warnings=tuple(warnings))
    return validate(settings)


def unknown_settings(names: Iterable[str], where: str, only_close: bool) -> list[str]:
    """Warnings for names that look like ours (a known setting's prefix, e.g. KAFKA_) but are not settings, with
    the closest known name: a misspelt KAFKA_TOPC would otherwise be ignored in silence. In the environment,
    only names close to a setting are reported (KAFKA_HOME and KAFKA_OPTS belong to Kafka's own scripts)."""
    import difflib

    known = [o.env for o in OPTIONS if o.env] + ["ENV_FILE"]
    prefixes = tuple({name.split("_")[0] + "_" for name in known})
    warnings = []
    for name in sorted(names):
        if name in known or not name.startswith(prefixes):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            warnings.append(f"{name} ({where}) is not a setting and is ignored; did you mean {close[0]}?")
        elif not only_close:
            warnings.append(f"{name} ({where}) is not a setting and is ignored; producer_config.env lists them all")
    return warnings


def validate(s: Settings) -> Settings:
    """The rules that involve more than one setting, or the file system. The checks of a part the run sets up (the
    simulated population, a schema file, a client's own options) are that part's, and run with it (prepare())."""
    name = s.name
    # Every setting of the sessions group but the mode itself is refused in random mode, when given a value of its own.
    sessions_only = [o.name for o in OPTIONS if o.group == "sessions" and o.name != "simulation_mode"
                     and o.name in s.given and getattr(s, o.name) != o.parse(o.default)]
    if s.simulation_mode == "random" and sessions_only:
        raise SettingsError(f"{name(sessions_only[0])}: only used in sessions mode; expected SIMULATION_MODE=sessions "
                            "(--mode sessions) as well")
    if s.simulation_mode == "sessions":
        types = {t for t, _ in s.event_weights}
        if types != set(FUNNEL_TYPES):
            raise SettingsError(f"{name('event_weights')}: sessions mode models exactly "
                                f"{', '.join(FUNNEL_TYPES)}; expected weights for those four (other types need "
                                "SIMULATION_MODE=random)")
        if s.seconds_per_event == 0:
            raise SettingsError(f"{name('interval')}: 0 has no meaning in sessions mode; expected a rate > 0 (the "
                                "population is sized to it) or USER_ID_RANGE (the population; its pace follows). "
                                "Windows (--start-time) run at full speed anyway")
        if s.end_time is not None and s.start_time is None:
            raise SettingsError(f"{name('end_time')}: needs START_TIME (--start-time) too")
        if s.start_time is not None and s.end_time is None and not s.follow:
            raise SettingsError(f"{name('start_time')}: needs END_TIME (--end-time), or --follow to run the "
                                "window up to now and carry on live")
        if s.follow and s.start_time is None:
            raise SettingsError(f"{name('follow')}: needs START_TIME (--start-time), the start of the backfill")
        if s.follow and s.end_time is not None:
            raise SettingsError(f"{name('end_time')}: with --follow the window ends now; expected no END_TIME")
        if s.start_time is not None and s.end_time is not None and s.end_time <= s.start_time:
            raise SettingsError(f"{name('end_time')}: must be after START_TIME; expected a later date-time")
        if s.churn_cutoff is not None:
            if s.start_time is not None and s.churn_cutoff <= s.start_time:
                raise SettingsError(f"{name('churn_cutoff')}: is not after START_TIME; expected a cut-off inside the "
                                    "window, with history before it")
            if s.end_time is not None and s.churn_cutoff >= s.end_time:
                raise SettingsError(f"{name('churn_cutoff')}: is not before END_TIME; expected a cut-off inside the "
                                    "window, with the horizon after it")
        if s.start_time is not None and s.start_time > time.time() * 1000 and s.follow:
            raise SettingsError(f"{name('start_time')}: is in the future; expected a past date-time with --follow")
        # A consumer of the events topic would parse truth or label records as events (one churn system posted 300
        # of them to its scoring API); two kinds of record in one side topic cannot be told apart by their readers.
        for option, kind in (("labels_topic", "label"), ("truth_topic", "truth")):
            if getattr(s, option) and getattr(s, option) == s.topic:
                raise SettingsError(f"{name(option)}: '{s.topic}' is the events topic ({name('topic')}); expected a "
                                    f"topic of its own, e.g. {s.topic}-{kind}, so that the events' consumers never "
                                    f"read {kind} records")
        if s.labels_topic and s.labels_topic == s.truth_topic:
            raise SettingsError(f"{name('labels_topic')} and {name('truth_topic')}: both are '{s.labels_topic}'; "
                                "expected a topic each")
    for option in ("labels_file", "truth_file", "summary_json"):
        path = getattr(s, option)
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and (os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK)):
            raise SettingsError(f"{name(option)}: cannot write '{path}'; expected a writable file path")
        if path:  # found out now, not after a whole backfill: open what the run will open, as it will
            # The labels and the summary are written beside a regular file and renamed over it (the truth file, and
            # anything not a regular file such as /dev/stdout, in place): the file the run will open is probed, and
            # the target itself is not touched, so a reader of the summary never sees it come and go.
            beside = option != "truth_file" and (not os.path.exists(path) or os.path.isfile(path))
            probe = f"{path}.partial" if beside else path
            existed = os.path.exists(probe)
            try:
                open(probe, "a", encoding="utf-8").close()
            except OSError as exc:
                raise SettingsError(f"{name(option)}: cannot write '{path}' ({os_reason(exc)}); "
                                    "expected a writable file path") from None
            if not existed:
                os.remove(probe)
    if s.delivery_timeout_ms < s.request_timeout_ms + s.linger_ms:
        raise SettingsError(f"{name('delivery_timeout_ms')}: {s.delivery_timeout_ms} is shorter than "
                            f"{name('request_timeout_ms')} ({s.request_timeout_ms}) + {name('linger_ms')} "
                            f"({s.linger_ms}); expected at least {s.request_timeout_ms + s.linger_ms}, or a shorter "
                            "request timeout (the clients refuse a delivery timeout that one request could outlast)")
    if s.enable_idempotence and s.acks != "all":
        raise SettingsError(f"{name('acks')}: {s.acks} is not valid with idempotence on; expected all, "
                            f"or {name('enable_idempotence')}=false")
    if s.acks in (0, 1) and not s.dry_run:  # allowed, and said plainly: what these settings can lose
        what = ("the partition leader acknowledges alone, so an acknowledged event is lost if the leader fails or "
                "is cut off from its followers before they copy it (a leader cut off for 30 s lost 21,699 of 110,000 "
                "acknowledged events: bench/run.py --only acks)" if s.acks == 1 else
                "the broker acknowledges nothing, so 'sent' counts events handed to the network, and any of them "
                "may be missing from the topic (a broker killed with -9 lost a few hundred in a probe)")
        s = replace(s, warnings=s.warnings + (f"{name('acks')}={s.acks}: {what}; acks=all on a replicated topic "
                                              "with min.insync.replicas=2 keeps every acknowledged event",))
    if s.security_protocol.startswith("SASL") and not (s.sasl_username and s.sasl_password):
        raise SettingsError(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD: both are required with "
                            f"{name('security_protocol')}={s.security_protocol}")
    for option in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(s, option)
        if path and not os.path.isfile(path):
            raise SettingsError(f"{name(option)}: '{path}' is not a readable file; expected a PEM file")
    if bool(s.ssl_certfile) != bool(s.ssl_keyfile):
        raise SettingsError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE: give both or neither")
    if s.log_file:
        folder = os.path.dirname(os.path.abspath(s.log_file))
        if os.path.isdir(s.log_file):
            raise SettingsError(f"{name('log_file')}: '{s.log_file}' is a directory; expected a file path, or empty")
        if (not os.path.isdir(folder) or not os.access(folder, os.W_OK)) and "log_file" not in s.given:
            # The default log file in a read-only folder (a container's, a dry run's): the console is enough.
            s = replace(s, log_file="", warnings=s.warnings + (
                f"LOG_FILE {s.log_file}: cannot write in '{folder}'; logging to the console only (set LOG_FILE "
                "to a writable path, or empty to say so)",))
        elif not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise SettingsError(f"{name('log_file')}: cannot write in '{folder}'; expected a writable path, or empty")
    if s.value_format == "json" and s.value_schema:
        raise SettingsError(f"{name('value_schema')}: only used with VALUE_FORMAT=avro or json-schema")
    if s.value_format == "protobuf" and s.value_schema:
        raise SettingsError(f"{name('value_schema')}: protobuf uses the message class generated from "
                            "schemas/user_event.proto (edit it, then `make schemas`); expected VALUE_SCHEMA_FILE "
                            "empty, or VALUE_FORMAT=avro or json-schema")
    if s.value_format != "json" and "topic" not in s.given and not s.dry_run:
        s = replace(s, warnings=s.warnings + (
            f"{name('value_format')}={s.value_format} sends to the default topic '{s.topic}', which the JSON demo "
            f"uses too: a reader of it then gets JSON and {s.value_format} records mixed; give this format a topic of "
            f"its own (--topic {s.topic}-{s.value_format})",))
    if s.scenario_control_port and not s.scenarios:
        raise SettingsError(f"{name('scenario_control_port')}: starts and stops the scenarios of SCENARIOS; expected "
                            "SCENARIOS (--scenarios FILE) too")
    if s.workers == WORKERS_AUTO:
        # A process per core only where one process is the limit: at full speed. A dry run is one stream, and a
        # scenario control server one process.
        full_speed = s.seconds_per_event == 0 if s.simulation_mode == "random" else s.start_time is not None
        cores = min(len(os.sched_getaffinity(0)), 64)
        s = replace(s, workers=cores if full_speed and not s.dry_run and not s.scenario_control_port else 1)
    if s.scenario_control_port and s.workers > 1:
        raise SettingsError(f"{name('scenario_control_port')}: one control server starts a scenario in one process; "
                            "expected WORKERS=1 (or shards, --shard I/N, each with a port of its own)")
    if s.workers > 1 and s.dry_run:
        raise SettingsError(f"{name('workers')}: a dry run is one stream on stdout; expected WORKERS=1 with --dry-run "
                            "(split a dry run with --shard I/N, one process each)")
    if s.shard and s.simulation_mode == "sessions" and (s.seed is None or s.start_time is None):
        raise SettingsError(f"{name('shard')}: in sessions mode every shard must simulate the same shop; expected "
                            "RANDOM_SEED and START_TIME too, the same in every shard (--follow carries on live)")
    if s.shard and s.workers == 1:
        s = with_shard(s, *s.shard)
    elif s.workers > 1:
        with_shard(s, 0, (s.shard or (0, 1))[1] * s.workers)  # the users must go round: refused here, not later
    return s


def with_shard(s: Settings, index: int, count: int) -> Settings:
    """The settings of shard `index` of `count`. Sessions mode: kept as they are (the simulator sends this shard's
    users' events). Random mode: the index-th of `count` equal parts of USER_ID_RANGE, and a seed of its own."""
    s = replace(s, shard=(index, count) if count > 1 else None)
    if s.simulation_mode == "sessions" or count == 1:
        return s
    lo, hi = s.user_id_range
    if hi - lo + 1 < count:
        raise SettingsError(f"USER_ID_RANGE: {lo}-{hi} has fewer users than the {count} shards; expected a wider range "
                            "or fewer shards")
    width = (hi - lo + 1) / count
    part = (lo + round(index * width), lo + round((index + 1) * width) - 1)
    return replace(s, user_id_range=part, seed=None if s.seed is None else s.seed * 4099 + index)


def default_settings(**overrides: Any) -> Settings:
    """Settings from defaults only (no flags, environment or .env), with keyword overrides."""
    settings = load_settings([], environ={"ENV_FILE": os.devnull})
    return replace(settings, **overrides) if overrides else settings


# --- the wire format ----------------------------------------------------------------------------------------

def seeded_window(s: Settings) -> bool:
    """A seeded window of sessions mode: its events are the same on every run, and so are their ids."""
    return s.simulation_mode == "sessions" and s.seed is not None and s.start_time is not None


def run_id_for(s: Settings) -> str:
    """The run id that prefixes event ids: random, except for a seeded window of sessions mode, whose events are
    the same on every run. Its id comes from what makes the stream: the options that shape it (`shapes_stream` in
    OPTIONS) and the shop profile's contents (a profile refitted in place is another shop), so a rerun, e.g. a
    restarted pod, sends the same ids: it resumes where its predecessor stopped (KafkaSink.resume)."""
    if seeded_window(s):
        import hashlib

        stream = [(o.name, getattr(s, o.name)) for o in OPTIONS if o.shapes_stream]
        if s.warm_start == "on":  # a warm window is another stream (a cold one's id is as it was before the option)
            stream.append(("warm_start", True))
        profile = s.profile if s.profile is not None or not s.shop_profile else load_shop_profile(s.shop_profile)
        shop = json.dumps(profile.to_json(), sort_keys=True) if profile is not None else None
        if s.scenarios:  # what the file says, not where it is: another file is another stream
            scenarios = s.scenario_plan or load_scenarios(s.scenarios)
            return hashlib.sha256(repr((stream, shop, scenarios)).encode()).hexdigest()[:16]
        return hashlib.sha256(repr((stream, shop)).encode()).hexdigest()[:16]
    return os.urandom(8).hex()


def iso_to_epoch_ms(timestamp: str) -> int:
    """'2024-01-15T10:30:45.123Z' -> epoch ms (for events built by overridden generators)."""
    import calendar

    main, _, rest = timestamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1000 + int((rest or "0")[:3].ljust(3, "0"))


class JsonCodec:
    """The record format, in one place. Downstream consumers parse it: it is a contract.

    - value: the event as compact UTF-8 JSON, fields in this order, byte-identical to
      json.dumps(event, separators=(",", ":"), ensure_ascii=False):
      {"user_id":456,"event_type":"product_view","timestamp":"2024-01-15T10:30:45.123Z",
       "metadata":{"product_id":234,"session_length":12.5}}
      (sessions mode adds metadata fields after session_length: session_id, and order_value and
      items on a checkout);
    - key: the user id as decimal text, so that one user's events share a partition, in order;
    - timestamp: the event's time in epoch ms, as the record timestamp;
    - header `event_id`: "<random run prefix>-<sequence number>", unique per event.

    The generators' fast paths build values with `text()` from pieces they made once (numbers as
    text, names through `name()`); an event dict, e.g. one with overridden metadata, goes through
    `value()`.
    """

    takes_events = False  # its batches are JSON texts (encode_json); a schema format takes event dicts
    subject = ""  # the registry subject of its schema: none

    def __init__(self, run_id: str | None = None) -> None:
        # Unique event ids without uuid4's cost: a run prefix (random, or run_id_for's) plus a sequence number.
        self.run_prefix = (run_id or os.urandom(8).hex()).encode() + b"-"
        self.sequence = 0  # the last event's number

    def number(self, n: int) -> int:
        """Number the next n events (their event_id headers): the first one's number."""
        self.sequence += n
        return self.sequence - n + 1

    @property
    def run_id(self) -> str:
        return self.run_prefix[:-1].decode()

    text = staticmethod(event_text)  # the contract's JSON text is written in one place: shopsim.events
    name = staticmethod(json_name)

    @staticmethod
    def value(event: dict[str, Any]) -> bytes:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()

    key = staticmethod(record_key)

    @staticmethod
    def timestamp_ms(event: dict[str, Any]) -> int:
        return iso_to_epoch_ms(event["timestamp"])

    session_fields = staticmethod(session_fields)

    def headers(self, sequence: int) -> list[tuple[str, bytes]]:
        return [(EVENT_ID_HEADER, b"%b%d" % (self.run_prefix, sequence))]

    # Batches of (epoch ms, key, value) records, as the sources make them, to the record values of this format.
    def encode_json(self, records: list[tuple[int, bytes, bytes]]) -> list[tuple[int, bytes, bytes]]:
        """Records whose values are the events' JSON texts: this format's values are those texts."""
        return records

    def encode_events(self, records: list[tuple[int, bytes, dict[str, Any]]]) -> list[tuple[int, bytes, bytes]]:
        """Records whose values are event dicts."""
        value = self.value
        return [(epoch_ms, key, value(event)) for epoch_ms, key, event in records]


def encode_event(event: dict[str, Any]) -> bytes:
    """An event dict's record value (JsonCodec.value), kept under its original name."""
    return JsonCodec.value(event)


def schema_path(s: Settings) -> str:
    """The schema file of VALUE_FORMAT: VALUE_SCHEMA_FILE, or the one in schemas/ beside producer.py."""
    return s.value_schema or os.path.join(os.path.dirname(os.path.abspath(__file__)), SCHEMA_FILES[s.value_format])


def read_schema(path: str, value_format: str) -> str:
    """The schema file's text once it parses as its format's schema (fastavro, jsonschema; for protobuf, the
    generated module loads); ValueError saying what is wrong otherwise."""
    if value_format == "protobuf":
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            protobuf_message_class()
        except OSError as exc:
            raise ValueError(f"cannot read {path} ({exc.strerror})") from None
        except ImportError as exc:
            raise ValueError(f"{PROTOBUF_MODULE} does not load ({exc}); run `make schemas` and `make setup`") from None
        return text
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        parsed = json.loads(text)
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        if value_format == "avro":
            import fastavro

            fastavro.parse_schema(parsed)
        else:
            import jsonschema

            jsonschema.validators.validator_for(parsed).check_schema(parsed)
    except ImportError as exc:
        raise ValueError(f"{exc.name} is not installed; run `make setup`") from None
    except Exception as exc:  # noqa: BLE001 - each library's own schema errors
        raise ValueError(f"{path} is not a valid {value_format} schema ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]})") from None
    return text


def check_schema(s: Settings) -> None:
    """VALUE_FORMAT's schema file parses as that format's schema; SettingsError naming the setting otherwise."""
    if s.value_format == "json" or (s.value_format == "protobuf" and s.value_schema):
        return  # no schema; or refused by validate()
    import importlib.util

    if importlib.util.find_spec(FORMAT_PACKAGES[s.value_format][0].split(".")[0]) is None:
        return  # the format's library is not installed: main() says so, and how to get it
    try:
        read_schema(schema_path(s), s.value_format)
    except ValueError as exc:
        raise SettingsError(f"{s.name('value_schema') if s.value_schema else s.name('value_format')}: {exc}; "
                            f"expected a {s.value_format} schema of the event (see schemas/)") from None


def protobuf_message_class():
    """UserEvent, the message class protoc generated from schemas/user_event.proto (schemas/user_event_pb2.py)."""
    import importlib.util

    module = sys.modules.get("user_event_pb2")
    if module is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), PROTOBUF_MODULE)
        spec = importlib.util.spec_from_file_location("user_event_pb2", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"no {PROTOBUF_MODULE}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["user_event_pb2"] = module
    return module.UserEvent


class RegistryCodec(JsonCodec):
    """VALUE_FORMAT avro, protobuf or json-schema: the value in the Confluent wire format (a magic byte, the
    schema id, the encoded event), made by confluent-kafka's serializers; the schema is registered under the topic's
    value subject ("<topic>-value", TopicNameStrategy) once, at start-up. Key, timestamp and headers are
    JsonCodec's. The sessions simulator still makes the JSON text (its fast path); `encode_json` turns it into the
    format, so every format carries the same events; random events come as dicts (`takes_events`)."""

    takes_events = True  # the serializers take dicts: making the JSON text first would cost 1.8 us per event

    def __init__(self, settings: Settings, run_id: str | None = None) -> None:
        super().__init__(run_id)
        self.settings = settings
        self.format = settings.value_format
        self.schema_text = read_schema(schema_path(settings), self.format)
        self.subject = ""
        self.schema_id: int | None = None
        self.serialize: Callable[[dict[str, Any]], bytes] | None = None  # an event -> its value, once registered
        self._decode = json.JSONDecoder().decode

    def open(self, topic: str, stop: threading.Event) -> None:
        """Register the schema and make the serializer; ConnectionFailed with one line when the registry cannot
        be reached within CONNECT_TIMEOUT, refuses the schema, or holds an incompatible one."""
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError
        from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

        s = self.settings
        conf: dict[str, Any] = {"url": s.registry_url, "timeout": max(1, min(10, int(s.connect_timeout))),
                                "max.retries": 0}
        if s.registry_username:
            conf["basic.auth.user.info"] = f"{s.registry_username}:{s.registry_password}"
        if s.registry_cafile:
            conf["ssl.ca.location"] = s.registry_cafile
        client = SchemaRegistryClient(conf)
        self.subject = f"{topic}-value"
        # The serializer registers its schema under the subject itself, on its first event (and looks it up
        # again never): that first event is a sample, here, so that a refusal comes before anything is sent.
        # (Given an id instead, use.schema.id, it takes a slower path for every event: 26 against 10 us.)
        to_object: Callable[[dict], Any] | None = None  # the Avro and JSON Schema serializers take the dict
        # TopicNameStrategy, said outright: confluent-kafka 2.16's default (ASSOCIATED) may pick another subject
        # from the registry's associations, and looks the topic up in a locked cache for every event (0.5-0.9 us).
        conf = {"subject.name.strategy.type": "TOPIC"}
        if self.format == "avro":
            from confluent_kafka.schema_registry.avro import AvroSerializer

            serializer = AvroSerializer(client, self.schema_text, conf=conf)
        elif self.format == "protobuf":
            from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
            from google.protobuf.json_format import ParseDict

            message = protobuf_message_class()
            serializer = ProtobufSerializer(message, client, {"use.deprecated.format": False, **conf})
            to_object = lambda event: ParseDict(event, message())  # noqa: E731 - the event as the message
        else:
            from confluent_kafka.schema_registry.json_schema import JSONSerializer

            serializer = JSONSerializer(self.schema_text, client, conf=conf)
        context = SerializationContext(topic, MessageField.VALUE)
        deadline = time.monotonic() + s.connect_timeout
        waiting = False
        while True:
            try:
                framed = serializer(to_object(SAMPLE_EVENT) if to_object else SAMPLE_EVENT, context)
                break
            except SchemaRegistryError as exc:
                if exc.http_status_code == 409:
                    raise ConnectionFailed(
                        f"The schema registry refuses {schema_path(s)} for subject '{self.subject}': it is not "
                        f"compatible with the schema registered there ({exc.error_message}); use a compatible "
                        "schema, another KAFKA_TOPIC, or change the subject's compatibility setting") from None
                if exc.http_status_code in (401, 403):
                    raise ConnectionFailed(f"The schema registry at {s.registry_url} refused the credentials "
                                           f"(HTTP {exc.http_status_code}); check SCHEMA_REGISTRY_USERNAME and "
                                           "SCHEMA_REGISTRY_PASSWORD") from None
                if exc.http_status_code not in (-1, 500, 502, 503, 504) or time.monotonic() >= deadline:
                    raise ConnectionFailed(f"The schema registry at {s.registry_url} refused to register "
                                           f"{schema_path(s)} under '{self.subject}' (HTTP {exc.http_status_code}: "
                                           f"{exc.error_message})") from None
            except SerializationError as exc:
                raise ConnectionFailed(f"{schema_path(s)} does not describe the events ({exc}); expected the "
                                       "fields of schemas/") from None
            except Exception as exc:  # noqa: BLE001 - the HTTP client's connection errors, whatever their class
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # waiting would not make the certificate trusted
                    raise ConnectionFailed(
                        f"The schema registry at {s.registry_url} has a certificate this machine does not trust "
                        f"({str(exc)[:200]}); set SCHEMA_REGISTRY_CAFILE to the CA file that signed it") from None
                if time.monotonic() + 0.5 >= deadline:
                    raise ConnectionFailed(
                        f"Cannot reach the schema registry at {s.registry_url} within {s.connect_timeout:g}s "
                        f"({type(exc).__name__}: {str(exc)[:200]}); check SCHEMA_REGISTRY_URL (local registry: "
                        "python devkafka.py registry up)") from None
                if not waiting:  # said once, at once: the wait may be CONNECT_TIMEOUT long
                    waiting = True
                    log.warning("The schema registry at %s does not answer yet (%s); retrying for up to %.0fs "
                                "(local registry: python devkafka.py registry up)", s.registry_url,
                                type(exc).__name__, s.connect_timeout)
            if stop.wait(0.5):
                raise ConnectionFailed("Stopped before the schema registry could be reached")
        self.schema_id = int.from_bytes(framed[1:5], "big")  # the wire format: a zero byte, the id, the event
        # The serializer bound to its context, no wrapper of ours for the dict formats: a Python call less per event.
        self.serialize = functools.partial(serializer, ctx=context) if to_object is None else \
            (lambda event: serializer(to_object(event), context))
        log.info("Values in %s, schema id %d registered under subject '%s' at %s", self.format, self.schema_id,
                 self.subject, s.registry_url)

    def value(self, event: dict[str, Any]) -> bytes:  # type: ignore[override] - an instance's, not static
        return self.serialize(event)

    def encode_json(self, records: list[tuple[int, bytes, bytes]]) -> list[tuple[int, bytes, bytes]]:
        # A decoder made once, given text: json.loads(bytes) first guesses the encoding and makes a decoder
        # each time (2.7 against 1.9 us per event, timeit).
        serialize, decode = self.serialize, self._decode
        return [(epoch_ms, key, serialize(decode(value.decode()))) for epoch_ms, key, value in records]

    def encode_events(self, records: list[tuple[int, bytes, dict[str, Any]]]) -> list[tuple[int, bytes, bytes]]:
        serialize = self.serialize
        return [(epoch_ms, key, serialize(event)) for epoch_ms, key, event in records]


# --- random events ------------------------------------------------------------------------------------------

class EventGenerator:
    """Pure, seeded generator of independent random events (the default `random` mode).

    No I/O and no clock: the caller passes the event time in epoch milliseconds. The same seed gives
    the same sequence of draws. `draw()` picks the numbers; `event()` makes the contract dict from
    them and `encode()` its JSON text (JsonCodec), from tables of texts built once, so that the hot
    path is a handful of random() calls, list look-ups and one string join.
    """

    def __init__(self, event_types: list[str], event_weights: list[float], user_id_range: tuple[int, int],
                 product_id_range: tuple[int, int], session_length_range: tuple[float, float],
                 seed: int | None = None) -> None:
        if len(event_types) != len(event_weights) or not event_types:
            raise ValueError("event_types and event_weights must be non-empty and of the same length")
        if any(w < 0 for w in event_weights) or sum(event_weights) <= 0:
            raise ValueError("event_weights must be >= 0 and sum to more than 0")
        self.event_types = list(event_types)
        self.rng = random.Random(seed)
        total = float(sum(event_weights))
        self._cumulative = []
        acc = 0.0
        for w in event_weights:
            acc += w
            self._cumulative.append(acc / total)
        self._cumulative[-1] = 1.0  # no float round-off may leave a gap above the last type
        self.user_lo, self.user_span = user_id_range[0], user_id_range[1] - user_id_range[0] + 1
        self.product_lo, self.product_span = product_id_range[0], product_id_range[1] - product_id_range[0] + 1
        # Session lengths are drawn in hundredths of a minute: uniform over the 2-decimal grid, and the
        # text of each value is looked up instead of formatted.
        self.centi_lo = round(session_length_range[0] * 100)
        self.centi_span = round(session_length_range[1] * 100) - self.centi_lo + 1
        self.timestamp = TimestampFormatter()
        # JSON fragments: small ranges get look-up tables, large ones are formatted per event.
        self._type_text = [JsonCodec.name(t) for t in self.event_types]
        self._user_text = self._table(user_id_range)
        self._product_text = self._table(product_id_range)
        self._session_text = [repr((self.centi_lo + i) / 100) for i in range(self.centi_span)] \
            if self.centi_span <= 1_000_000 else None
        self._keys: list[bytes] | None = None  # record keys, made on first use (record_keys)

    @staticmethod
    def _table(bounds: tuple[int, int]) -> list[str] | None:
        return [str(i) for i in range(bounds[0], bounds[1] + 1)] if bounds[1] - bounds[0] < 1_000_000 else None

    def draw(self) -> tuple[int, int, int, int]:
        """(user offset, event type index, product offset, session hundredths offset)."""
        r = self.rng.random
        return (int(r() * self.user_span), bisect.bisect_right(self._cumulative, r()),
                int(r() * self.product_span), int(r() * self.centi_span))

    def event(self, epoch_ms: int, drawn: tuple[int, int, int, int] | None = None) -> dict[str, Any]:
        user, etype, product, centi = drawn or self.draw()
        return {"user_id": self.user_lo + user,
                "event_type": self.event_types[etype],
                "timestamp": self.timestamp(epoch_ms),
                "metadata": {"product_id": self.product_lo + product,
                             "session_length": (self.centi_lo + centi) / 100}}

    def encode(self, epoch_ms: int, drawn: tuple[int, int, int, int]) -> str:
        """The drawn event's record value as text (JsonCodec.text)."""
        user, etype, product, centi = drawn
        u = self._user_text[user] if self._user_text else str(self.user_lo + user)
        p = self._product_text[product] if self._product_text else str(self.product_lo + product)
        s = self._session_text[centi] if self._session_text else repr((self.centi_lo + centi) / 100)
        return JsonCodec.text(u, self._type_text[etype], self.timestamp(epoch_ms), p, s)

    def record_keys(self) -> list[bytes] | None:
        """Each user offset's record key (JsonCodec.key), made once; None when the user range is too large for a
        table."""
        if self._keys is None and self._user_text:
            self._keys = [JsonCodec.key(text) for text in self._user_text]
        return self._keys

    def records(self, clock: Callable[[], int], n: int) -> list[tuple[int, bytes, bytes]]:
        """n events as (epoch ms, key, value) records, each stamped by clock() as it is made: the hot path of
        sending and of --dry-run. The same draws in the same order as draw() + encode(), inlined: at about a
        microsecond per event, the method calls and draw()'s tuple were a third of the cost. Falls back to those
        two when a range is too large for look-up tables."""
        users, products, sessions = self._user_text, self._product_text, self._session_text
        key = JsonCodec.key
        if not (users and products and sessions):
            out = []
            for _ in range(n):
                ms, drawn = clock(), self.draw()
                out.append((ms, key(self.user_lo + drawn[0]), self.encode(ms, drawn).encode()))
            return out
        keys = self.record_keys()
        r, cumulative, types, timestamp = self.rng.random, self._cumulative, self._type_text, self.timestamp
        user_span, product_span, centi_span = self.user_span, self.product_span, self.centi_span
        bisect_right, text = bisect.bisect_right, JsonCodec.text
        out = []
        append = out.append
        for _ in range(n):
            ms = clock()
            user = int(r() * user_span)
            append((ms, keys[user], text(users[user], types[bisect_right(cumulative, r())], timestamp(ms),
                                         products[int(r() * product_span)], sessions[int(r() * centi_span)]).encode()))
        return out

    def events(self, clock: Callable[[], int], n: int) -> list[tuple[int, bytes, dict[str, Any]]]:
        """n events as (epoch ms, key, event dict), with the same draws in the same order as records(): for the
        schema formats, whose serializers take the dict. Decoding records()' JSON text again cost 1.8 us per event:
        --format avro at full speed went from 36,600 to 39,400 events/s (medians of 4 alternating runs of 400,000;
        faster in each pair)."""
        key, keys, user_lo, draw, event = JsonCodec.key, self.record_keys(), self.user_lo, self.draw, self.event
        out = []
        for _ in range(n):
            ms, drawn = clock(), draw()
            out.append((ms, keys[drawn[0]] if keys else key(user_lo + drawn[0]), event(ms, drawn)))
        return out


# --- the simulated shop: the shopsim model the settings describe ------------------------------------------

def _days(ms: float) -> str:
    days = round(ms / DAY_MS, 1)
    return f"{days:g} day" if days == 1 else f"{days:g} days"


# The simulated shop the settings describe.

def simulator_for(s: Settings, user_id_range: tuple[int, int] | None = None, start_ms: int = 0,
                  orders_only: bool = False, warm_start: bool = False) -> "SessionSimulator":
    """The sessions-mode simulation the settings describe (EVENT_WEIGHTS only when given: otherwise the mix
    is the realistic funnel's outcome); with SHOP_PROFILE, that shop's twin (orders_only: its orders alone);
    warm_start: customers mid-session at the start (WARM_START, as the run applies it)."""
    weights = dict(s.event_weights) if "event_weights" in s.explicit else None
    cutoff = s.churn_cutoff
    if cutoff is None and s.end_time is not None and s.end_time - s.churn_horizon * DAY_MS > (s.start_time or 0):
        cutoff = int(s.end_time - s.churn_horizon * DAY_MS)
    shop = dict(weights=weights, segment_mix=dict(s.segment_mix), user_id_range=user_id_range or s.user_id_range,
                product_id_range=s.product_id_range, session_length_range=s.session_length_range, start_ms=start_ms,
                seed=s.seed, timezone_name=s.shop_timezone, zipf_exponent=s.zipf_exponent,
                churn_signal=s.churn_signal, cutoff_ms=cutoff, horizon_days=s.churn_horizon,
                shard=s.shard if s.workers == 1 else None, warm_start=warm_start)
    behaviour = tuple(sc for sc in s.scenario_plan if sc.behaviour)
    if behaviour:  # the shop lives through them: its hooks, the scenarios' (shopsim.scenarios)
        shop["scenarios"] = behaviour
    p = s.profile
    if p is None:
        return (scenario_shop(SessionSimulator) if behaviour else SessionSimulator)(**shop)
    # the twin takes the shop's time zone and products from its profile, unless the settings say otherwise
    if "shop_timezone" not in s.explicit:
        shop["timezone_name"] = p.timezone
    if p.products and "product_id_range" not in s.explicit:
        shop["product_id_range"] = (1, p.products)
    if p.zipf_exponent is not None and "zipf_exponent" not in s.explicit:
        shop["zipf_exponent"] = p.zipf_exponent
    return (scenario_shop(TwinSimulator) if behaviour else TwinSimulator)(profile=p, orders_only=orders_only, **shop)


def read_scenarios(s: Settings) -> Settings:
    """SCENARIOS read once and checked against the run: behaviour scenarios need sessions mode, a segment must have
    customers. SettingsError (one line naming the scenario and the field) otherwise."""
    if not s.scenarios:
        return s
    where = s.name("scenarios")
    try:
        plan = load_scenarios(s.scenarios)
    except ScenarioError as exc:
        raise SettingsError(f"{where}: {exc}") from None
    mix = dict(s.segment_mix)
    for sc in plan:
        if sc.behaviour and s.simulation_mode != "sessions":
            raise SettingsError(f"{where}: scenario '{sc.name}': field 'kind': {sc.kind} changes how the shop's "
                                f"customers behave and needs SIMULATION_MODE=sessions; random mode takes only the data "
                                f"faults ({', '.join(DATA_FAULTS)})")
        if sc.segment is not None and s.profile is None and not mix.get(sc.segment):
            raise SettingsError(f"{where}: scenario '{sc.name}': field 'segment': '{sc.segment}' has no customers in "
                                f"SEGMENT_MIX; accepted: {', '.join(k for k, v in mix.items() if v > 0)}")
    return replace(s, scenario_plan=plan)


def size_population(s: Settings) -> Settings:
    """Sessions mode's settings with the shop's population: users behave like a real shop's, so the pace is the
    population's. USER_ID_RANGE given: that population, its pace an outcome. SHOP_PROFILE: that shop's customers.
    Otherwise the population is sized to the rate (default 1 per 3 s). SettingsError when that cannot be."""
    if s.simulation_mode != "sessions":
        return s
    name, given = s.name, s.given
    pace = [o for o in ("rate", "interval") if o in given]
    lo = s.user_id_range[0]
    if s.shop_profile:
        try:
            profile = load_shop_profile(s.shop_profile)
        except ValueError as exc:
            raise SettingsError(f"{name('shop_profile')}: {exc}") from None
        clash = [o for o in ("event_weights", "segment_mix", *pace) if o in given]
        if clash:
            raise SettingsError(f"{name(clash[0])} and {name('shop_profile')}: a shop's twin takes its funnel, "
                                "customers and pace from the profile; expected only SHOP_PROFILE (USER_ID_RANGE "
                                "scales the shop)")
        if "user_id_range" not in given:
            s = replace(s, user_id_range=(lo, lo + profile.customers - 1))
        return replace(s, profile=profile)
    try:
        # a fixed seed: the same settings size the same population, seeded run or not
        probe_users = min(POPULATION_PROBE, s.user_id_range[1] - lo + 1)
        probe = simulator_for(replace(s, seed=s.seed or 0), (lo, lo + probe_users - 1))
    except ValueError as exc:
        raise SettingsError(f"{name('event_weights')}: {exc}") from None
    per_user = probe.expected_events_per_second() / len(probe.users)
    if "user_id_range" in given:
        if pace:
            raise SettingsError(f"{name(pace[0])} and {name('user_id_range')}: in sessions mode the pace comes from "
                                f"the population (here about {per_user * (s.user_id_range[1] - lo + 1):.3g} events/s); "
                                "expected only one of them")
        users = s.user_id_range[1] - lo + 1
        if users > MAX_SIMULATED_USERS:
            raise SettingsError(f"{name('user_id_range')}: {users} users is too many to simulate; expected at most "
                                f"{MAX_SIMULATED_USERS} users in sessions mode")
        return s
    users = max(1, round(1.0 / s.seconds_per_event / per_user))
    if users > MAX_SIMULATED_USERS:
        raise SettingsError(f"{name(pace[0]) if pace else 'EVENTS_PER_SECOND'}: {1.0 / s.seconds_per_event:g} events/s "
                            f"needs about {users} simulated customers; expected at most about "
                            f"{MAX_SIMULATED_USERS * per_user:.3g} events/s live ({MAX_SIMULATED_USERS} users; a "
                            "--start-time window runs at full speed whatever its population)")
    return replace(s, user_id_range=(lo, lo + users - 1))


# --- the Kafka connection -----------------------------------------------------------------------------------

class BrokerWatch(logging.Handler):
    """Receives the Kafka client's own log records (which would otherwise flood the log with one line per
    reconnect attempt) and keeps the connection problem, so the producer can report an outage once,
    with its cause, and its recovery. Authentication and TLS problems are kept apart: they are the
    cause the user needs to see, and later generic lines ("Unable to bootstrap") must not hide them."""

    AUTH = ("SaslAuthenticationFailed", "Authentication failed", "AuthenticationFailed", "_AUTHENTICATION")
    TLS = ("CERTIFICATE_VERIFY_FAILED", "SSLError", "Handshake failed", "handshake failed", "WRONG_VERSION_NUMBER",
           "certificate verify failed", "_SSL:")

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.last_problem = ""
        self.specific_problem = ""  # the last authentication or TLS failure
        self.problem_since: float | None = None
        self.last_seen = 0.0  # when the client last said something was wrong
        self.refused = threading.Event()  # set when the broker refused our credentials or certificate

    def emit(self, record: logging.LogRecord) -> None:
        self.note(record.getMessage(), serious=record.levelno >= logging.ERROR)

    def note(self, message: str, serious: bool) -> None:
        """What the client said; `serious`: an error, not a warning."""
        if any(m in message for m in self.AUTH + self.TLS):
            self.specific_problem = message
            self.refused.set()
        if serious or "failed" in message.lower():
            self.last_problem = message
            self.last_seen = time.monotonic()
            if self.problem_since is None:
                self.problem_since = self.last_seen

    def clear(self) -> None:
        self.problem_since = None
        self.specific_problem = ""
        self.refused.clear()

    def kind(self) -> str:
        text = self.specific_problem
        if any(marker in text for marker in self.AUTH):
            return "auth"
        if any(marker in text for marker in self.TLS):
            return "tls"
        return "connection"

    def reason(self) -> str:
        text = re.sub(r" \(backoff [\d.]+ secs\)$", "", self.specific_problem or self.last_problem)
        # Keep the meaningful tail ("SaslAuthenticationFailedError: ... invalid credentials"),
        # not the connection object's repr.
        m = re.search(r"((?:\[Error \d+\] )?\w+(?:Error|Failed)\w*: .*)$", text)
        return (m.group(1) if m else text)[-300:]


class KafkaConnection:
    """The Kafka client and everything that touches it: connecting (with retries, and a refusal of our
    credentials or certificate noticed at once), the admin checks (the topic, created when missing; its
    partitions' leaders; a backfill's timestamps against the topic's limits), sending, flushing and closing,
    replacing a stalled client, following the partition count, and every use of a client library.

    This class holds what every client shares; `KafkaPythonConnection` (kafka-python, the default) and
    `ConfluentConnection` (confluent-kafka, librdkafka) fill in the client's own parts, each mapping the
    settings to its client's configuration in one place. `connection_for(settings)` picks one. Delivery
    callbacks run in the client's I/O thread: `on_ack(*args, metadata)` (metadata has .partition and
    .offset) once the broker acknowledged a record, `on_failure(exception)` when it failed.
    """

    name = ""  # KAFKA_CLIENT's value for this client

    def __init__(self, settings: Settings, stop: threading.Event, clock: Callable[[], int]) -> None:
        self.settings = settings
        self.topic = settings.topic
        self.client = None  # the library's producer once open
        self.partitions: int | None = None
        self.created_topic = False  # this connection made the topic: it holds no earlier run's events
        self.watch = BrokerWatch()
        # Exceptions of send() meaning "not accepted" (e.g. too large, no metadata in time, closed).
        self.refused_errors: tuple[type[BaseException], ...] = (ValueError, TypeError)
        # A client that counts acknowledgements (settings.acks_counted, where it can) calls no on_ack per record:
        # on_acks(n) gets them n at a time, in its I/O thread or in flush() and close(). Whoever keeps the run's
        # accounting sets it.
        self.acks_counted = False
        self.on_acks: Callable[[int], None] = lambda n: None
        self._stop = stop  # the producer's stop request: ends every wait here
        self._clock = clock

    @property
    def connected(self) -> bool:
        return self.client is not None

    @classmethod
    def check_options(cls, s: Settings) -> None:
        """PRODUCER_OPTIONS are options of this client (when it is installed: main() says when it is not);
        SettingsError naming the setting otherwise."""
        problem = cls._unknown_option(dict(s.producer_options)) if s.producer_options else ""
        if problem:
            raise SettingsError(f"{s.name('producer_options')}: {problem}")

    @staticmethod
    def _unknown_option(options: dict[str, Any]) -> str:
        """Why these options do not suit the client, or ""."""
        raise NotImplementedError

    # connecting ----------------------------------------------------------------------------------
    def open(self, oldest_ms: int | None = None) -> None:
        """Connect (retrying with backoff for the connect timeout) and check the topic; ConnectionFailed
        with one clear line otherwise. oldest_ms: the oldest record timestamp the run will send (a backfill's
        window start), which the topic must accept and keep."""
        s = self.settings
        self._capture_client_logs()
        unknown = self._unknown_hosts()
        if unknown:  # a name that does not exist will not come to exist by retrying for CONNECT_TIMEOUT
            raise ConnectionFailed(f"Cannot connect to Kafka at {s.bootstrap_servers}: {unknown}; check "
                                   "KAFKA_BOOTSTRAP_SERVERS (host:port of the broker's listener)")
        deadline = time.monotonic() + s.connect_timeout
        backoff = 0.5
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                # Short attempts, so that "not reachable yet" is said early; a refusal ends one at once.
                admin = self._unless_refused(lambda: self._admin_client(max(1.0, min(remaining, 3.0))))
                try:
                    self.partitions = self._ensure_topic(admin, keep_old=oldest_ms is not None)
                    if oldest_ms is not None:
                        self._check_backfill_window(admin, s.topic, oldest_ms)
                    self._ensure_side_topics(admin, oldest_ms)
                finally:
                    self._close_admin(admin)
                self.client = self._new_client(max(1.0, remaining))
                break
            except ConnectionFailed:
                raise
            except self._transient_errors() as exc:
                kind = self.watch.kind()
                if kind in ("auth", "tls"):
                    raise ConnectionFailed(self._connection_error(kind)) from None
                if time.monotonic() + backoff >= deadline:
                    raise ConnectionFailed(self._connection_error("connection", exc)) from None
                if attempt == 1:
                    stranger = self._not_kafka()
                    if stranger:
                        raise ConnectionFailed(f"Cannot connect to Kafka at {s.bootstrap_servers}: {stranger}; check "
                                               "KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_PROTOCOL") from None
                    log.warning("Kafka at %s is not reachable yet (%s); retrying for up to %.0fs",
                                s.bootstrap_servers, self._unresolved() or self.watch.reason() or type(exc).__name__,
                                s.connect_timeout)
                if self._stop.wait(backoff):
                    raise ConnectionFailed("Stopped before Kafka could be reached") from None
                backoff = min(backoff * 2, 5.0)
        self.watch.clear()
        self._connected()
        log.info("Successfully connected to Kafka (%s). Topic '%s' has %d partitions", self.name, s.topic,
                 self.partitions)

    def _servers(self) -> list[tuple[str, int]]:
        return [(host.strip("[]"), int(port)) for host, _, port in
                (server.rpartition(":") for server in self.settings.bootstrap_servers.split(","))]

    def _unknown_hosts(self) -> str:
        """What is wrong when no bootstrap host name resolves because none exists, else "" (a resolver that is only
        unavailable for now is retried: _unresolved says so)."""
        for_good, reasons = self._name_trouble()
        return reasons if for_good else ""

    def _unresolved(self) -> str:
        """What is wrong when no bootstrap host name resolves now (no DNS server answers, say), else ""."""
        return self._name_trouble()[1]

    def _name_trouble(self) -> tuple[bool, str]:
        """(for good, why) when no bootstrap host name resolves: for good when the names do not exist; else the
        resolver cannot be asked now, which may pass. (False, "") when one resolves."""
        import socket

        reasons, for_good = [], True
        for host, port in self._servers():
            try:
                socket.getaddrinfo(host, port)
                return False, ""
            except socket.gaierror as exc:
                if exc.errno == socket.EAI_NONAME:
                    reasons.append(f"the host name '{host}' does not resolve ({exc.strerror})")
                else:
                    for_good = False
                    reasons.append(f"the host name '{host}' cannot be resolved now ({exc.strerror}: is a DNS server "
                                   "reachable from here?)")
        return for_good, "; ".join(reasons)

    def _not_kafka(self, silent_too: bool = False) -> str:
        """What is wrong when every bootstrap server answers, but not as a Kafka broker's plaintext listener does
        (an HTTP server's reply, another service's banner), else "": an ApiVersions request, which a broker answers
        before any authentication. A server that accepts and says nothing is no proof (a starting broker does
        that); silent_too: say it anyway (the final word, when retrying is over)."""
        import socket
        import struct

        if self.settings.security_protocol not in ("PLAINTEXT", "SASL_PLAINTEXT"):
            return ""
        strangers = []
        for host, port in self._servers():
            request = struct.pack(">hhih", 18, 0, 7, 8) + b"producer"  # ApiVersions v0, correlation id 7
            try:
                with socket.create_connection((host, port), timeout=2) as sock:
                    sock.settimeout(3)
                    sock.sendall(struct.pack(">i", len(request)) + request)
                    head = sock.recv(8)
            except TimeoutError:
                if not silent_too:
                    return ""
                strangers.append(f"{host}:{port} accepts connections but did not answer a Kafka request in 3 s")
                continue
            except OSError:
                return ""  # not listening (yet): nothing to say
            size, correlation = struct.unpack(">ii", head) if len(head) == 8 else (-1, -1)
            if 0 < size < 1 << 20 and correlation == 7:
                return ""  # a Kafka broker: the trouble is elsewhere
            if head:
                strangers.append(f"{host}:{port} answers, but not as a Kafka broker's "
                                 f"{self.settings.security_protocol} listener ({head!r})")
            elif not silent_too:
                return ""  # closed without a word: a broker shutting down may do that
        return "; ".join(strangers)

    def _unless_refused(self, connect: Callable[[], Any]) -> Any:
        """connect(), but stop waiting for it once the broker refuses our credentials or certificate: kafka-python
        goes on retrying its bootstrap until its own timeout even after reading the refusal, and under load a
        refusal often reaches it only as a dropped connection, so the first one it can read must count."""
        outcome: dict[str, Any] = {}

        def attempt() -> None:
            try:
                outcome["client"] = connect()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
                outcome["error"] = exc

        worker = threading.Thread(target=attempt, name="kafka-connect", daemon=True)  # daemon: may be abandoned
        worker.start()
        while worker.is_alive():
            if self.watch.refused.wait(0.05):
                raise ConnectionFailed(self._connection_error(self.watch.kind()))
        if "error" in outcome:
            raise outcome["error"]
        return outcome["client"]

    def _connection_error(self, kind: str, exc: Exception | None = None) -> str:
        s = self.settings
        # a name that cannot be resolved first: the client's own words for it are a generic timeout
        reason = self._unresolved() or self.watch.reason() or (f"{type(exc).__name__}: {exc}" if exc else "")
        if kind == "auth":
            return (f"Authentication to Kafka at {s.bootstrap_servers} failed ({reason}); check "
                    f"KAFKA_SASL_MECHANISM={s.sasl_mechanism}, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if kind == "tls":
            return (f"TLS handshake with Kafka at {s.bootstrap_servers} failed ({reason}); check KAFKA_SSL_CAFILE "
                    "(the CA that signed the broker certificate) and that the host name matches the certificate")
        stranger = self._not_kafka(silent_too=True)
        return (f"Cannot connect to Kafka at {s.bootstrap_servers} within {s.connect_timeout:g}s ({reason}"
                f"{'; ' + stranger if stranger else ''}); check that the broker is running and KAFKA_BOOTSTRAP_SERVERS "
                "/ KAFKA_SECURITY_PROTOCOL are right (local broker: make kafka-up)")

    # the topic -----------------------------------------------------------------------------------
    def _ensure_topic(self, admin, keep_old: bool) -> int:
        """Partitions of the topic, creating it when missing (keep_old: with retention.ms=-1, for a backfill)."""
        s = self.settings
        partitions, _ = self._describe_partitions(admin, s.topic)
        if partitions:
            self._wait_for_leaders(admin)
            if "topic_partitions" in s.explicit and partitions != s.topic_partitions:
                log.warning("Topic '%s' exists with %d partitions, not the %d of KAFKA_TOPIC_PARTITIONS, which applies "
                            "only when the producer creates the topic; to add partitions: python devkafka.py tool "
                            "topics --alter --topic %s --partitions %d", s.topic, partitions, s.topic_partitions,
                            s.topic, s.topic_partitions)
            return partitions
        self.created_topic = self._create_missing(admin, s.topic, "", "history" if keep_old else "")
        for _ in range(50):  # metadata of a new topic propagates within moments
            partitions, _ = self._describe_partitions(admin, s.topic)
            if partitions:
                self._wait_for_leaders(admin)
                serve_offsets(s, s.topic, partitions)
                return partitions
            time.sleep(0.1)
        raise ConnectionFailed(f"Topic '{s.topic}' was created but has no partitions yet; try again")

    def _wait_for_leaders(self, admin, timeout_s: float = 10.0) -> None:
        """Wait (bounded) until every partition has a leader, as after a broker restart it may not yet. The first
        batches sent to a partition without one fail retriably, those pipelined behind them get
        OutOfOrderSequenceNumber, and kafka-python's idempotent producer then bumps its epoch and fails every batch
        in flight (its documented KIP-360 handling; the Java client resends them): failed events at start."""
        deadline = time.monotonic() + timeout_s
        while (self._describe_partitions(admin, self.topic)[1] and time.monotonic() < deadline
               and not self._stop.wait(0.2)):
            pass

    @staticmethod
    def _not_authorized(topic: str) -> ConnectionFailed:
        return ConnectionFailed(f"Not authorized to use topic '{topic}'; check the ACLs of KAFKA_SASL_USERNAME")

    def _ensure_side_topics(self, admin, oldest_ms: int | None) -> None:
        """The topics beside the events (TRUTH_TOPIC, LABELS_TOPIC), created like the events topic when missing
        (KAFKA_TOPIC_PARTITIONS: their records are keyed by user id as the events are, so a stream join finds them
        co-partitioned), not left to the broker's automatic creation, which may be off and gives the broker's
        defaults. A backfill's truth events carry the simulated times, as its events do: a new truth topic keeps
        every record, an existing one gets the events topic's checks (left with the default 7 days, truth events
        read back minutes later were gone while the events they describe were still there). Labels are
        timestamped when they are sent."""
        s = self.settings
        for topic, setting, dated in ((s.truth_topic, "TRUTH_TOPIC", oldest_ms is not None),
                                      (s.labels_topic, "LABELS_TOPIC", False)):
            if not topic:
                continue
            created = (not self._describe_partitions(admin, topic)[0]
                       and self._create_missing(admin, topic, f" ({setting})", "truth" if dated else ""))
            if dated and not created:  # it was there (or someone else made it meanwhile): is it fit to keep?
                self._check_backfill_window(admin, topic, oldest_ms)

    def _create_missing(self, admin, topic: str, named: str, kept: str) -> bool:
        """Create a missing topic (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION): True when this producer made it,
        False when someone else did meanwhile; a refusal is one line (ConnectionFailed). kept: what a backfill's
        topic keeps, made with retention.ms=-1 (its records carry old timestamps, and brokers judge retention by
        them: with the default 7 days, what it was asked for would be deleted at the next retention check)."""
        s = self.settings
        refusal = self._create_topic(admin, topic, {"retention.ms": "-1"} if kept else {})
        if refusal:
            raise ConnectionFailed(
                f"Topic '{topic}'{named} does not exist and creating it was refused ({refusal}); create it yourself"
                f"{' with retention.ms=-1,' if kept else ''} or check KAFKA_TOPIC_PARTITIONS / KAFKA_TOPIC_REPLICATION "
                "and the user's CREATE permission")
        if refusal is not None:
            log.info("Created topic '%s' with %d partitions, replication factor %d%s", topic, s.topic_partitions,
                     s.topic_replication, f", retention.ms=-1 (a backfill's {kept} is kept)" if kept else "")
        return refusal is not None

    def _check_backfill_window(self, admin, topic: str, oldest_ms: int) -> None:
        """A backfill's records carry old timestamps, and the broker judges them by those: refuse to
        start if the topic rejects them, warn if it will delete them or overwrite their timestamps."""
        s = self.settings
        configs = self._topic_configs(admin, topic, ["retention.ms", "message.timestamp.before.max.ms",
                                                     "message.timestamp.type"])
        if configs is None:  # e.g. no DescribeConfigs permission: nothing to check
            return
        age_ms = self._clock() - oldest_ms
        oldest = TimestampFormatter()(oldest_ms)
        before_max = int(configs.get("message.timestamp.before.max.ms") or 2 ** 63 - 1)
        if age_ms > before_max:
            raise ConnectionFailed(
                f"Topic '{topic}' refuses records older than {_days(before_max)} "
                f"(message.timestamp.before.max.ms={before_max}) and --start-time is {oldest}; use a later "
                "--start-time or raise that setting of the topic")
        retention = int(configs.get("retention.ms") or -1)
        if 0 <= retention < age_ms:
            log.warning("Topic '%s' keeps records for %s (retention.ms=%d) judged by their timestamps, and the "
                        "window starts %s ago: the broker will delete the older backfilled records at its next "
                        "retention check, within minutes. Give the topic a longer retention.ms to keep them: "
                        "`python devkafka.py tool configs --bootstrap-server %s --alter --entity-type topics "
                        "--entity-name %s --add-config retention.ms=-1` (the local broker's Kafka tools; elsewhere "
                        "kafka-configs.sh with the same arguments)",
                        topic, _days(retention), retention, _days(age_ms), s.bootstrap_servers.split(",")[0], topic)
        if configs.get("message.timestamp.type") == "LogAppendTime":
            log.warning("Topic '%s' has message.timestamp.type=LogAppendTime: the broker replaces the simulated "
                        "record timestamps with the time of writing (the JSON timestamps stay simulated)", topic)

    # each client's own parts --------------------------------------------------------------------
    def _transient_errors(self) -> tuple[type[BaseException], ...]:
        """Errors of a connection attempt that mean "try again"."""
        raise NotImplementedError

    def _capture_client_logs(self) -> None:
        """Send what the client says about the broker to self.watch."""

    def _admin_client(self, timeout_s: float):
        raise NotImplementedError

    def _close_admin(self, admin) -> None:
        pass

    def _describe_partitions(self, admin, topic: str) -> tuple[int, int]:
        """(partitions of the topic, how many have no leader); (0, 0) when the topic does not exist."""
        raise NotImplementedError

    def _create_topic(self, admin, topic: str, config: dict[str, str]) -> str | None:
        """Create the topic (KAFKA_TOPIC_PARTITIONS, KAFKA_TOPIC_REPLICATION) with these configs: "" when created,
        None when someone else created it meanwhile, else the refusal."""
        raise NotImplementedError

    def _topic_configs(self, admin, topic: str, names: list[str]) -> dict[str, str] | None:
        raise NotImplementedError

    def _new_client(self, bootstrap_timeout_s: float):
        raise NotImplementedError

    def _connected(self) -> None:
        """After open(): the client is ready for send()."""

    def send(self, key: bytes, value: bytes, epoch_ms: int, headers: list[tuple[str, bytes]],
             on_ack: Callable[..., None], on_failure: Callable[[BaseException], None], *ack_args: Any) -> None:
        """Hand one record to the client: on_ack(*ack_args, metadata) or on_failure(exc) follows in the client's I/O
        thread (when acks_counted: on_failure(exc), or the acknowledgement counted to on_acks). Raises one of
        refused_errors when the client did not accept the record."""
        raise NotImplementedError

    def send_many(self, records: list[tuple[int, bytes, bytes]], first_seq: int,
                  headers: Callable[[int], list[tuple[str, bytes]]], on_ack: Callable[[Any], None],
                  on_ack_timed: Callable[[float, Any], None], on_failure: Callable[[BaseException], None]) -> None:
        """Records (epoch ms, key, value) numbered from first_seq: on_ack(metadata) follows for each, but for one in
        LATENCY_SAMPLE_EVERY, which is timed: on_ack_timed(sent_at, metadata). A record the client does not accept
        goes to on_failure at once."""
        send, on_timed = self.send, on_ack_timed
        send_acked = self._acked_sender(on_ack, on_failure)
        refused = self.refused_errors
        seq = first_seq
        for epoch_ms, key, value in records:
            try:
                if seq % LATENCY_SAMPLE_EVERY:
                    send_acked(key, value, epoch_ms, headers(seq))
                else:
                    send(key, value, epoch_ms, headers(seq), on_timed, on_failure, time.monotonic())
            except refused as exc:
                on_failure(exc)
            seq += 1

    def _acked_sender(self, on_ack: Callable[[Any], None], on_failure: Callable[[BaseException], None]
                      ) -> Callable[[bytes, bytes, int, list[tuple[str, bytes]]], None]:
        """send() for a record whose acknowledgement is counted, not timed (all but one in LATENCY_SAMPLE_EVERY),
        with those callbacks bound; a client may give a cheaper one."""
        return functools.partial(self.send, on_ack=on_ack, on_failure=on_failure)

    def send_label(self, topic: str, key: bytes, value: bytes, on_ack: Callable[[Any], None],
                   timestamp_ms: int | None = None) -> None:
        """A ground-truth row to its own topic (the client's default partitioner, no event id); its record
        timestamp is timestamp_ms when given, else the send time."""
        raise NotImplementedError

    def flush(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for every record handed over to complete."""
        raise NotImplementedError

    def close(self, timeout: float) -> None:
        """Flush for up to `timeout` seconds and close; records still pending then fail (their callbacks run)."""
        raise NotImplementedError

    def replace_stalled(self, while_waiting: Callable[[], None]) -> bool:
        """Replace a client that keeps records past the delivery timeout without completing any: the stuck
        records fail, a new client is connected (while_waiting() runs between attempts). False when stopped.
        Seen with kafka-python 3.0.12, whose idempotent producer stops for good once a batch it had sent expires
        (its producer id is reset but never requested again): only a new client sends again."""
        self.close(timeout=0)
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self.client = self._new_client(3.0)
                self._connected()
                log.info("Kafka client reconnected to %s", self.settings.bootstrap_servers)
                return True
            except Exception as exc:  # noqa: BLE001 - any failure here means "not yet": keep trying
                log.debug("reconnect failed: %s", exc)
                if self._stop.wait(backoff):
                    break
                backoff = min(backoff * 2, 5.0)
                while_waiting()
        return False

    def follow_partition_count(self) -> None:
        """Partitions added while running: keys move to the partition the default partitioner now picks."""

    def partition_for(self, key: bytes) -> int:
        """The partition a key's records go to: murmur2, as the Java client and both clients here pick it."""
        from kafka.partitioner.default import murmur2

        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    # what the client says about the broker (its watch is this connection's alone) ---------------------
    def problem(self, now: float) -> str:
        """What the client has been saying is wrong for over a second (an outage's cause), else ""."""
        watch = self.watch
        return watch.reason() if watch.problem_since is not None and now - watch.problem_since > 1.0 else ""

    def forget_hiccup(self, now: float) -> None:
        """A complaint not repeated for 10 s, while deliveries went on, was a passing hiccup."""
        if self.watch.problem_since is not None and now - self.watch.last_seen > 10.0:
            self.watch.clear()

    def recovered(self) -> None:
        """Deliveries resumed: the outage's cause is history."""
        self.watch.clear()


def kafka_python_connection(s: Settings) -> dict[str, Any]:
    """kafka-python's keyword arguments for where and how to connect: its producer, admin client and consumer's."""
    config: dict[str, Any] = {"bootstrap_servers": s.bootstrap_servers.split(","), "client_id": s.client_id,
                              "security_protocol": s.security_protocol}
    if s.security_protocol.startswith("SASL"):
        config.update(sasl_mechanism=s.sasl_mechanism, sasl_plain_username=s.sasl_username,
                      sasl_plain_password=s.sasl_password)
    if s.security_protocol in ("SSL", "SASL_SSL"):
        config.update(ssl_cafile=s.ssl_cafile or None, ssl_certfile=s.ssl_certfile or None,
                      ssl_keyfile=s.ssl_keyfile or None)
    return config


def serve_offsets(s: Settings, topic: str, partitions: int) -> None:
    """Wait (bounded by the request timeout) until the leader of each of a new topic's partitions answers for it: the
    metadata names a leader a moment before the leader serves the partition, and a record sent there in that moment
    is refused. With acks=0 the refusal is silent (the broker closes the connection, the records are gone): a topic
    just created lost its first 300 events that way, one run in four on a fresh broker. The leaders' end offsets
    (ListOffsets, which only a serving leader answers; kafka-python retries until then) are the sign."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    consumer = KafkaConsumer(**kafka_python_connection(s), enable_auto_commit=False,
                             request_timeout_ms=max(30_000, s.request_timeout_ms))
    try:
        consumer.end_offsets([TopicPartition(topic, partition) for partition in range(partitions)])
    except KafkaError as exc:  # not within the timeout: the sends find out, retriably unless acks=0
        log.debug("Topic '%s': its leaders did not answer for it yet (%s)", topic, type(exc).__name__)
    finally:
        consumer.close()


def read_last_sequences(s: Settings, topic: str, prefix: bytes, partitions: int) -> dict[int, int]:
    """A rerun of a seeded window: for each partition of the topic, the highest sequence number of the records whose
    event_id starts with prefix (a run id and "-"), among its last RESUME_SCAN records; partitions without one are
    left out. Each partition is read backwards from its end, in growing steps, until a record of the prefix is found
    (a partition's records of one run are in its send order: the last found is the highest). Read with kafka-python's
    consumer whatever the producing client (it is always installed)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_python_connection(s), enable_auto_commit=False, fetch_max_wait_ms=100,
                             request_timeout_ms=max(30_000, s.request_timeout_ms))
    found: dict[int, int] = {}
    try:
        for partition in range(partitions):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            first, end = consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
            high, step = end, 2_000
            while high > first and end - high < RESUME_SCAN and partition not in found:
                low = max(first, high - step, end - RESUME_SCAN)
                consumer.seek(tp, low)
                idle = 0
                while consumer.position(tp) < high and idle < 20:
                    batch = consumer.poll(timeout_ms=500, max_records=10_000).get(tp, [])
                    idle = 0 if batch else idle + 1
                    for record in batch:
                        event_id = dict(record.headers or ()).get(EVENT_ID_HEADER, b"")
                        if record.offset < high and event_id.startswith(prefix):
                            found[partition] = max(found.get(partition, 0), int(event_id[len(prefix):]))
                high, step = low, step * 4
    finally:
        consumer.close()
    return found


class KafkaPythonConnection(KafkaConnection):
    """kafka-python (pure Python), the default client."""

    name = "kafka-python"

    def __init__(self, settings: Settings, stop: threading.Event, clock: Callable[[], int]) -> None:
        super().__init__(settings, stop, clock)
        self._partition_of: dict[bytes, int] = {}
        self._partition_count = 0  # 0: leave partitioning to the client (a custom partitioner)

    # settings mapped to kafka-python's keyword arguments, in one place ----------------------------
    def _connection_config(self) -> dict[str, Any]:
        """The part shared by the producer and the admin client: where and how to connect."""
        return kafka_python_connection(self.settings)

    def _producer_config(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {
            "acks": s.acks,
            "compression_type": None if s.compression_type == "none" else s.compression_type,
            "linger_ms": s.linger_ms,
            "batch_size": s.batch_size,
            "max_block_ms": s.max_block_ms,
            "request_timeout_ms": s.request_timeout_ms,
            "delivery_timeout_ms": s.delivery_timeout_ms,
            "enable_idempotence": s.enable_idempotence,
            # kafka-python backs off up to 30 s between reconnects by default; after a broker restart
            # that leaves events waiting long after the broker is back.
            "reconnect_backoff_max_ms": 2000,
        }
        config.update(self._connection_config())
        config.update(dict(s.producer_options))
        return config

    @staticmethod
    def _unknown_option(options: dict[str, Any]) -> str:
        try:
            from kafka import KafkaProducer
        except ImportError:
            return ""
        unknown = [k for k in options if k not in KafkaProducer.DEFAULT_CONFIG]
        if unknown:
            return (f"unknown option '{unknown[0]}'; expected kafka-python KafkaProducer options such as "
                    "max_in_flight_requests_per_connection")
        return ""

    # connecting ----------------------------------------------------------------------------------
    def _transient_errors(self) -> tuple[type[BaseException], ...]:
        from kafka.errors import KafkaError

        return (KafkaError, OSError)

    def _capture_client_logs(self) -> None:
        """Route kafka-python's logs to BrokerWatch; at DEBUG they are shown as well."""
        client_log = logging.getLogger("kafka")
        if self.watch not in client_log.handlers:
            client_log.addHandler(self.watch)
        client_log.propagate = self.settings.log_level == "DEBUG"
        if client_log.level == logging.NOTSET or client_log.level > logging.WARNING:
            client_log.setLevel(logging.WARNING if self.settings.log_level != "DEBUG" else logging.DEBUG)

    def _admin_client(self, timeout_s: float):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(**self._connection_config(), bootstrap_timeout_ms=int(timeout_s * 1000),
                                request_timeout_ms=int(max(timeout_s, 5) * 1000))

    def _close_admin(self, admin) -> None:
        admin.close()

    def _describe_partitions(self, admin, topic_name: str) -> tuple[int, int]:
        from kafka.errors import TopicAuthorizationFailedError, UnknownTopicOrPartitionError

        try:
            described = admin.describe_topics([topic_name])
        except UnknownTopicOrPartitionError:
            return 0, 0
        except TopicAuthorizationFailedError:
            raise self._not_authorized(topic_name) from None
        for topic in described:
            if topic.get("error_code") == 29:
                raise self._not_authorized(topic_name) from None
            if topic.get("name") == topic_name and topic.get("error_code") == 0:
                partitions = topic.get("partitions") or []
                return len(partitions), sum(1 for p in partitions if p.get("leader_id", -1) < 0)
        return 0, 0

    def _create_topic(self, admin, topic: str, config: dict[str, str]) -> str | None:
        from kafka.admin import NewTopic
        from kafka.errors import KafkaError, TopicAlreadyExistsError

        s = self.settings
        try:
            admin.create_topics([NewTopic(topic, s.topic_partitions, s.topic_replication, topic_configs=config)])
        except TopicAlreadyExistsError:
            return None
        except KafkaError as exc:
            message = getattr(exc, "message", None) or str(exc)
            detail = re.search(r"error_message='([^']*)'", message)
            return f"{type(exc).__name__}: {detail.group(1) if detail else message[:200]}"
        return ""

    def _topic_configs(self, admin, topic: str, names: list[str]) -> dict[str, str] | None:
        from kafka.admin import ConfigResource, ConfigResourceType
        from kafka.errors import KafkaError

        try:
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, names)],
                                               config_filter="all")
            return {k: v["value"] for k, v in described["topic"][topic].items()}
        except (KafkaError, KeyError, TypeError) as exc:
            log.debug("Could not read the configuration of topic '%s': %s", topic, exc)
            return None

    def _new_client(self, bootstrap_timeout_s: float):
        from kafka import KafkaProducer

        return KafkaProducer(**self._producer_config(), bootstrap_timeout_ms=int(bootstrap_timeout_s * 1000))

    def _connected(self) -> None:
        from kafka.errors import KafkaError

        self.refused_errors = (KafkaError, ValueError, TypeError)
        if "partitioner" not in dict(self.settings.producer_options):
            self._partition_count = self.partitions
            self._partition_of.clear()

    # sending -------------------------------------------------------------------------------------
    def send(self, key: bytes, value: bytes, epoch_ms: int, headers: list[tuple[str, bytes]],
             on_ack: Callable[..., None], on_failure: Callable[[BaseException], None], *ack_args: Any) -> None:
        # The per-event path at full speed: every attribute look-up and call here costs on each event.
        partition = self._partition_of.get(key)
        if partition is None and self._partition_count:
            partition = self._partition_of[key] = self.keyed_partition(key)
        future = self.client.send(self.topic, value, key, headers, partition, epoch_ms)
        future.add_callback(on_ack, *ack_args)
        future.add_errback(on_failure)

    def send_label(self, topic: str, key: bytes, value: bytes, on_ack: Callable[[Any], None],
                   timestamp_ms: int | None = None) -> None:
        self.client.send(topic, value, key, timestamp_ms=timestamp_ms).add_callback(on_ack)

    def keyed_partition(self, key: bytes) -> int:
        """The partition kafka-python's default partitioner (murmur2, as in the Java client) picks for
        this key. Computed once per user and cached: the pure-Python hash was ~15% of the per-event
        cost at full speed. The partition count is the one read at connect."""
        from kafka.partitioner.default import murmur2

        return (murmur2(key) & 0x7FFFFFFF) % self._partition_count

    def flush(self, timeout: float) -> None:
        from kafka.errors import KafkaTimeoutError

        if self.client is not None:
            try:
                self.client.flush(timeout=timeout)
            except KafkaTimeoutError:
                pass  # what did not complete is the caller's to count

    def close(self, timeout: float) -> None:
        """kafka-python's close() flushes first and raises when records are still pending, so the I/O thread is
        then forced down: the pending records' futures fail, and their callbacks count them."""
        from kafka.errors import KafkaError

        client, self.client = self.client, None
        if client is None:
            return
        try:
            client.close(timeout=timeout)
        except KafkaError:
            sender = getattr(client, "_sender", None)  # private: no public force-close exists
            if sender is not None:
                sender.force_close()
                sender.join(5.0)

    def follow_partition_count(self) -> None:
        """Partitions added while running (seen at the client's next metadata refresh): keys move to
        the partition the default partitioner now picks, as the Java client's do."""
        if not self._partition_count or self.client is None:
            return  # a custom partitioner: the client decides
        # The client's cached metadata, not partitions_for(): that one blocks up to max_block_ms when
        # the topic is not known yet (a replaced client during an outage), and this runs in the loop.
        known = self.client._metadata.partitions_for_topic(self.topic)
        if not known:
            return  # unknown for now: the next check will tell
        count = len(known)
        if count != self._partition_count:
            log.info("Topic '%s' now has %d partitions (was %d): keys are spread over all of them from now on, so "
                     "a user's events from before and after this may sit in different partitions",
                     self.topic, count, self._partition_count)
            self.partitions = self._partition_count = count
            self._partition_of.clear()


class _Delivered:
    """What an acknowledgement callback may read of the record (as kafka-python's RecordMetadata)."""

    __slots__ = ("partition", "offset")

    def __init__(self, partition: int, offset: int) -> None:
        self.partition, self.offset = partition, offset


class _LibrdkafkaLog:
    """librdkafka's own log (the client's `logger`) into ours, once per change of state: a failing connection's line
    comes again on every reconnect attempt (hundreds in an outage), so a line is logged only when it differs from the
    last one of its broker thread, and forget() (deliveries resumed) starts afresh. At most a warning: the outage
    line is ours. Not fed to BrokerWatch: error_cb tells it, in the order librdkafka meant."""

    _NOISE = re.compile(r" \((after \d+ms in state \w+|\d+ identical error\(s\) suppressed)[^)]*\)")

    def __init__(self) -> None:
        self._last: dict[str, str] = {}

    def log(self, level: int, fmt: str, *args: Any) -> None:
        facility, text = (args[0], args[2]) if len(args) == 3 else ("", fmt % args)
        thread, _, said = text.partition("]: ")
        state = f"{facility} {self._NOISE.sub('', said)}"
        if self._last.get(thread) != state:
            self._last[thread] = state
            log.log(min(level, logging.WARNING), "librdkafka %s: %s", facility, text)

    def forget(self) -> None:
        self._last.clear()


class ConfluentConnection(KafkaConnection):
    """confluent-kafka (librdkafka, in C): several times kafka-python's speed, same guarantees.

    librdkafka runs delivery callbacks only inside poll() or flush(), in the calling thread. A thread of ours
    polls, so that, as with kafka-python, callbacks run in one I/O thread of the client's and the loop never
    serves them; flush() here waits for that thread's work instead of serving callbacks itself (two threads
    running callbacks would race on the counters).

    With settings.acks_counted, only failures are reported (delivery.report.only.error) and the acknowledgements
    are counted (`_Tally`): at full speed a Message and a Python call per record were the I/O thread's whole work.
    (confluent-kafka still takes the interpreter lock for each record's report, to skip a success: its
    dr_msg_cb, in C. That is what remains of that thread's cost: bench/README.md.)
    """

    name = "confluent-kafka"

    def __init__(self, settings: Settings, stop: threading.Event, clock: Callable[[], int]) -> None:
        super().__init__(settings, stop, clock)
        self._poller: threading.Thread | None = None
        self._adapter: tuple[Any, Any, Callable[[Any, Any], None]] | None = None
        self._client_log = _LibrdkafkaLog()
        self.acks_counted = settings.acks_counted
        self._tally: _Tally | None = None  # the open client's, when acks are counted

    # settings mapped to librdkafka's configuration properties, in one place -----------------------
    def _connection_config(self) -> dict[str, Any]:
        s = self.settings
        config: dict[str, Any] = {"bootstrap.servers": s.bootstrap_servers, "client.id": s.client_id,
                                  "security.protocol": s.security_protocol, "error_cb": self._on_client_error,
                                  "reconnect.backoff.max.ms": 2000,
                                  # its log through ours (LOG_FILE too), served by poll(), not straight to stderr
                                  "logger": self._client_log}
        if s.security_protocol.startswith("SASL"):
            config.update({"sasl.mechanism": s.sasl_mechanism, "sasl.username": s.sasl_username,
                           "sasl.password": s.sasl_password})
        if s.security_protocol in ("SSL", "SASL_SSL"):
            # librdkafka checks the broker's host name against its certificate by default, as kafka-python does.
            for name, path in (("ssl.ca.location", s.ssl_cafile), ("ssl.certificate.location", s.ssl_certfile),
                               ("ssl.key.location", s.ssl_keyfile)):
                if path:
                    config[name] = path
        return config

    def _producer_config(self) -> dict[str, Any]:
        s = self.settings
        config = self._connection_config()
        config.update({
            "acks": str(s.acks),
            "compression.type": s.compression_type,
            "linger.ms": s.linger_ms,
            "batch.size": s.batch_size,
            "request.timeout.ms": s.request_timeout_ms,
            "delivery.timeout.ms": s.delivery_timeout_ms,
            "enable.idempotence": s.enable_idempotence,
            # A key's partition as the Java client and kafka-python pick it (librdkafka's default is CRC32).
            "partitioner": "murmur2_random",
            # librdkafka's queue must hold MAX_IN_FLIGHT_EVENTS, so produce() does not run out of room first.
            "queue.buffering.max.messages": max(100_000, s.max_in_flight + 1_000),
            "delivery.report.only.error": self.acks_counted,
        })
        config.update(dict(s.producer_options))
        return config

    @staticmethod
    def _unknown_option(options: dict[str, Any]) -> str:
        try:
            from confluent_kafka import KafkaException, Producer
        except ImportError:
            return ""
        try:  # librdkafka checks its properties when a client is made; with no brokers it connects nowhere
            Producer({"bootstrap.servers": "", **options})
        except KafkaException as exc:
            return f"{exc.args[0].str()}; expected librdkafka properties such as message.max.bytes=2000000"
        return ""

    def _on_client_error(self, error) -> None:
        """librdkafka's error callback: connection problems, refusals; noted like kafka-python's log lines."""
        message = f"{error.name()}: {error.str()}"
        log.debug("confluent-kafka: %s", message)  # what kafka-python's own log lines show at DEBUG
        self.watch.note(message, serious=True)

    # connecting ----------------------------------------------------------------------------------
    def _transient_errors(self) -> tuple[type[BaseException], ...]:
        from confluent_kafka import KafkaException

        return (KafkaException, OSError)

    def _admin_client(self, timeout_s: float):
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self._connection_config())
        try:
            admin.list_topics(timeout=timeout_s)  # the first request: reachable, and let in?
        finally:
            admin.poll(0)  # serve error_cb: the cause of a failure, for the watch
        return admin

    def _describe_partitions(self, admin, topic_name: str) -> tuple[int, int]:
        from confluent_kafka import KafkaError

        # All topics, not this one by name: a metadata request naming a missing topic may create it with the
        # broker's defaults (auto.create.topics.enable), and the producer creates it with its own.
        metadata = admin.list_topics(timeout=10)
        topic = metadata.topics.get(topic_name)
        if topic is None:
            return 0, 0
        if topic.error is not None:
            if topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise self._not_authorized(topic_name)
            return 0, 0
        return len(topic.partitions), sum(1 for p in topic.partitions.values() if p.leader < 0)

    def _create_topic(self, admin, topic: str, config: dict[str, str]) -> str | None:
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        s = self.settings
        futures = admin.create_topics([NewTopic(topic, s.topic_partitions, s.topic_replication, config=config)],
                                      request_timeout=15)
        try:
            futures[topic].result(timeout=20)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return None
            return f"{error.name()}: {error.str()}"
        return ""

    def _topic_configs(self, admin, topic: str, names: list[str]) -> dict[str, str] | None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import ConfigResource, ResourceType

        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            entries = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=15)
        except (KafkaException, KeyError, TypeError) as exc:
            log.debug("Could not read the configuration of topic '%s': %s", topic, exc)
            return None
        return {name: entries[name].value for name in names if name in entries}

    def _new_client(self, bootstrap_timeout_s: float):
        from confluent_kafka import Producer

        return Producer(self._producer_config())

    def _connected(self) -> None:
        from confluent_kafka import KafkaException

        self.refused_errors = (KafkaException, BufferError, ValueError, TypeError)
        client = self.client
        tally = self._tally = _Tally(client, lambda n: self.on_acks(n)) if self.acks_counted else None
        self._poller = threading.Thread(target=self._serve, args=(client, tally), name="kafka-delivery", daemon=True)
        self._poller.start()

    def _serve(self, client, tally: _Tally | None) -> None:
        """The I/O thread: runs the delivery and error callbacks until this client is closed or replaced; counts the
        acknowledgements when they are counted (every 10 ms: at 300,000 records/s that is 3,000 of the 50,000 in
        flight MAX_IN_FLIGHT_EVENTS allows by default)."""
        if tally is None:
            while self.client is client:
                client.poll(0.05)
            return
        while self.client is client:
            client.poll(0.01)
            tally.count()

    # sending -------------------------------------------------------------------------------------
    def send(self, key: bytes, value: bytes, epoch_ms: int, headers: list[tuple[str, bytes]],
             on_ack: Callable[..., None], on_failure: Callable[[BaseException], None], *ack_args: Any) -> None:
        tally = self._tally
        if tally is not None:
            self._produce(key, value, epoch_ms, headers, self._failure_adapter(on_failure))
            tally.handed += 1
            return
        if ack_args:
            def delivered(error, message) -> None:
                if error is None:
                    on_ack(*ack_args, _Delivered(message.partition(), message.offset()))
                else:
                    on_failure(self._failure(error))
        else:
            delivered = self._plain_adapter(on_ack, on_failure)
        self._produce(key, value, epoch_ms, headers, delivered)

    def send_many(self, records: list[tuple[int, bytes, bytes]], first_seq: int,
                  headers: Callable[[int], list[tuple[str, bytes]]], on_ack: Callable[[Any], None],
                  on_ack_timed: Callable[[float, Any], None], on_failure: Callable[[BaseException], None]) -> None:
        tally = self._tally
        if tally is None:
            super().send_many(records, first_seq, headers, on_ack, on_ack_timed, on_failure)
            return
        # Acknowledgements counted: produce() with the failure report alone, and the batch's count at its end. No
        # record is timed (a success has no report to time): the latency histogram is METRICS_PORT's, which keeps
        # the reports (Settings.acks_counted).
        produce, topic, refused = self.client.produce, self.topic, self.refused_errors
        failed = self._failure_adapter(on_failure)
        handed = len(records)
        seq = first_seq
        for epoch_ms, key, value in records:
            try:
                # produce(topic, value, key, partition, callback, on_delivery, timestamp, headers), by position:
                # librdkafka's partitioner (-1), the failure report as `callback` (on_delivery's other name).
                # Against keywords: 3.4-3.75 against 3.8-3.96 s of user CPU for 1,000,000 records (4 alternating
                # runs), about a tenth of the process's CPU.
                produce(topic, value, key, -1, failed, None, epoch_ms, headers(seq))
            except BufferError:  # librdkafka's queue is full: wait for room as send() does
                try:
                    self._produce(key, value, epoch_ms, headers(seq), failed)
                except refused as exc:
                    on_failure(exc)
                    handed -= 1
            except refused as exc:
                on_failure(exc)
                handed -= 1
            seq += 1
        tally.handed += handed

    def _produce(self, key: bytes, value: bytes, epoch_ms: int, headers: list[tuple[str, bytes]],
                 on_delivery: Callable[[Any, Any], None]) -> None:
        """One record to the client; when librdkafka's queue is full, wait for room and try once more."""
        try:
            self.client.produce(self.topic, value, key, on_delivery=on_delivery, timestamp=epoch_ms, headers=headers)
        except BufferError:
            self._wait_for_queue_room()
            self.client.produce(self.topic, value, key, on_delivery=on_delivery, timestamp=epoch_ms, headers=headers)

    def _failure_adapter(self, on_failure: Callable[[BaseException], None]) -> Callable[[Any, Any], None]:
        """on_delivery when only failures are reported: one per on_failure, counted in the tally."""
        adapter = self._adapter
        if adapter is None or adapter[0] is not None or adapter[1] != on_failure:
            def failed(error, message) -> None:
                self._tally.failed += 1  # the open client's (close() serves the last reports before it goes)
                on_failure(self._failure(error))
            adapter = self._adapter = (None, on_failure, failed)
        return adapter[2]

    def _acked_sender(self, on_ack: Callable[[Any], None], on_failure: Callable[[BaseException], None]
                      ) -> Callable[[bytes, bytes, int, list[tuple[str, bytes]]], None]:
        # At librdkafka's speed the Python around produce() is most of the cost: one shared callback and produce()
        # bound once, instead of send() finding the callback for each record. Against send(): median 6.1 against
        # 6.7 us CPU per event (5 alternating runs of 300,000 each); this closure costs what the same lines inlined
        # in a loop of their own did (median 7.36 against 7.36 us, 6 alternating runs of 600,000 on a slower day).
        produce, topic, send = self.client.produce, self.topic, self.send
        delivered = self._plain_adapter(on_ack, on_failure)

        def send_acked(key: bytes, value: bytes, epoch_ms: int, headers: list[tuple[str, bytes]]) -> None:
            try:
                produce(topic, value, key, on_delivery=delivered, timestamp=epoch_ms, headers=headers)
            except BufferError:  # librdkafka's queue is full: send() waits for room
                send(key, value, epoch_ms, headers, on_ack, on_failure)
        return send_acked

    def _plain_adapter(self, on_ack: Callable[..., None],
                       on_failure: Callable[[BaseException], None]) -> Callable[[Any, Any], None]:
        """librdkafka's on_delivery(error, message) for callbacks without arguments, one for as long as they stay
        the same (one run): a closure per record would cost more than the comparison."""
        adapter = self._adapter
        if adapter is None or adapter[0] != on_ack or adapter[1] != on_failure:
            def plain(error, message) -> None:
                if error is None:
                    on_ack(message)
                else:
                    on_failure(self._failure(error))
            adapter = self._adapter = (on_ack, on_failure, plain)
        return adapter[2]

    def _wait_for_queue_room(self) -> None:
        """librdkafka's queue is full (PRODUCER_OPTIONS raised MAX_IN_FLIGHT_EVENTS past it): wait up to
        KAFKA_MAX_BLOCK_MS for the I/O thread to make room, as kafka-python's send() waits for buffer space."""
        deadline = time.monotonic() + self.settings.max_block_ms / 1000
        limit = self.settings.max_in_flight
        while len(self.client) >= limit and time.monotonic() < deadline and not self._stop.wait(0.005):
            pass

    @staticmethod
    def _failure(error) -> DeliveryFailed:
        return DeliveryFailed(error.name().lstrip("_"), f"{error.name()}: {error.str()}")

    def send_label(self, topic: str, key: bytes, value: bytes, on_ack: Callable[[Any], None],
                   timestamp_ms: int | None = None) -> None:
        if self._tally is not None:  # Settings.acks_counted is false with a side topic: a bug if it comes here
            raise RuntimeError("send_label: acknowledgements are counted on this client; side records need reports")
        self.client.produce(topic, value, key, on_delivery=lambda error, message: error is None and on_ack(message),
                            timestamp=timestamp_ms or 0)

    def flush(self, timeout: float) -> None:
        client = self.client
        if client is None:
            return
        # len(): records not yet completed, counting delivery reports the I/O thread has not served yet.
        deadline = time.monotonic() + timeout
        while len(client) and time.monotonic() < deadline:
            time.sleep(0.005)
        if self._tally is not None:
            self._tally.count()  # what completed since the I/O thread's last count: the figures are current

    def close(self, timeout: float) -> None:
        """Flush for up to `timeout` seconds, stop the I/O thread, and purge what is left: those records' callbacks
        report them failed (purged), here, in this thread."""
        client = self.client
        if client is None:
            return
        self.flush(timeout)
        self.client = None
        if self._poller is not None:
            self._poller.join()
            self._poller = None
        if len(client):
            client.purge(in_queue=True, in_flight=True)
        client.flush(5.0)  # serves the purged records' callbacks
        tally, self._tally = self._tally, None
        if tally is not None:
            tally.count()  # the last acknowledgements; the purged records were reported failed

    def follow_partition_count(self) -> None:
        """librdkafka follows a topic's partition count itself, at its metadata refresh
        (topic.metadata.refresh.interval.ms), and its murmur2 partitioner maps keys over all of them."""

    def recovered(self) -> None:
        super().recovered()
        self._client_log.forget()  # a later outage's lines are news again


class _Tally:
    """Acknowledgements counted on a client that reports only failures: a record it accepted (handed, counted by
    the loop), no longer holds (len(client): queued, in flight, or its report not yet served) and did not report
    failed was acknowledged. handed is read before len(client), so a record handed meanwhile is still held: the
    count can lag (by one poll), never run ahead of the broker."""

    def __init__(self, client, on_acks: Callable[[int], None]) -> None:
        self.client, self.on_acks = client, on_acks
        self.handed = 0  # the loop's thread
        self.failed = 0  # failure reports, served by the I/O thread (or close())
        self.acked = 0
        self._lock = threading.Lock()  # count() runs in the I/O thread, and in flush() and close()

    def count(self) -> None:
        with self._lock:
            handed = self.handed
            done = handed - len(self.client) - self.failed - self.acked
            if done > 0:
                self.acked += done
                self.on_acks(done)


CLIENTS = {"kafka-python": KafkaPythonConnection, "confluent-kafka": ConfluentConnection}


def connection_for(settings: Settings, stop: threading.Event, clock: Callable[[], int]) -> KafkaConnection:
    """The connection of the client KAFKA_CLIENT names."""
    return CLIENTS[settings.client](settings, stop, clock)


# --- delivery accounting ------------------------------------------------------------------------------------

class Statistics(Mapping):
    """Counts of the run. Each counter has one writer (the loop or the client's I/O thread; acknowledgements a
    client counts, `_Tally`, come from its I/O thread or its flush under one lock), so plain integer updates are
    safe under the GIL; in_flight is derived, never stored. As a read-only mapping it is
    the original script's stats dict: its three keys, `in`, `dict(stats)`, `.items()` and `.get()` work."""

    # The original script's stats dict: stats["events_sent"], ["events_failed"], ["start_time"] still work.
    _ORIGINAL_KEYS = ("events_sent", "events_failed", "start_time")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.start_time = time.time()  # epoch seconds, as the original stats["start_time"]
        self.generated = 0
        self.acked = 0
        self.failed = 0
        self.failed_by_error: dict[str, int] = {}
        self.last_error = ""
        self.dropped_at_shutdown = 0
        self.already_in_topic = 0  # a rerun's events its predecessor had sent: not sent again, not generated
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # last: +Inf
        self.latency_sum = 0.0
        self.latency_count = 0

    def observe_latency(self, seconds: float) -> None:
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    @property
    def in_flight(self) -> int:
        return self.generated - self.acked - self.failed - self.dropped_at_shutdown

    def runtime(self) -> float:
        return time.monotonic() - self.started

    def __getitem__(self, key: str) -> float | int:
        """events_sent: acknowledged; events_failed: failed or left unacknowledged at shutdown; start_time."""
        if key == "events_sent":
            return self.acked
        if key == "events_failed":
            return self.failed + self.dropped_at_shutdown
        if key == "start_time":
            return self.start_time
        raise KeyError(f"{key!r}: the statistics keys are {', '.join(self._ORIGINAL_KEYS)}")

    def __iter__(self) -> Iterator[str]:
        return iter(self._ORIGINAL_KEYS)

    def __len__(self) -> int:
        return len(self._ORIGINAL_KEYS)


class DeliveryMonitor:
    """One run's delivery accounting: the callbacks the client calls as records complete, the counters
    (`stats`), the progress, outage and failure lines, liveness and readiness, the final statistics and
    the run summary. A run gets a new one, so nothing carries over from the previous run.

    Only acknowledgements count as sent. The callbacks run in the client's I/O thread: they count and
    keep notes, never block; everything that logs runs in the loop's thread.
    """

    def __init__(self, settings: Settings, note: str = "", asked_rate: float | None = None,
                 window: tuple[int, Callable[[], float], Callable[[], int | None]] | None = None,
                 printed: bool = False) -> None:
        """note: said at the end of each progress line (the parent of --workers: how many); asked_rate: the events/s
        the run keeps to (a schedule's), for the slow-link report; window: a simulated window being produced (its
        start ms, its end ms now, the simulation's time now), for the progress lines, until window_ended();
        printed: the sink prints the events instead of sending them (--dry-run's), and the figures say so."""
        self.settings = settings
        self.note = note
        self.printed = printed
        self.stats = stats = Statistics()
        started = stats.started
        self._shutting_down = False  # from here on, failures are events the shutdown gave up on
        self.outage_reported = False
        self._outage_since = started
        self.next_report = started + settings.stats_interval if settings.stats_interval else math.inf
        self.label_acks = 0
        self.truth_acks = 0
        self._failure_cause: tuple[str, str] | None = None  # (error name, reason) that failures take for now
        self._failures_reported, self._last_failure_log = 0, -math.inf
        self._last_completion = (0, started)  # (acked + failed, when that count last changed)
        self._failed_at_replacement = 0  # failures before the last replaced client's own
        self._last_acked, self._last_ack_time = 0, started
        self._pending_since: float | None = None  # when events were last seen pending after none were
        self._loop_acked = 0  # the acknowledged count at the loop's last look (ack_progress)
        self._ack_lock = threading.Lock()
        self._last_report = (0.0, 0)  # (runtime, acked) at the previous progress line
        self._window, self._asked_rate = window, asked_rate
        self.slow_reported = False
        self._ack_samples: collections.deque[tuple[float, int]] = collections.deque()  # (when, acked), every second

    # what the run tells it as it goes ---------------------------------------------------------------
    def fail_as(self, cause: tuple[str, str] | None) -> None:
        """From now on, failures are counted under this (error name, reason): a stalled client's replacement gives
        the delivery timeout as theirs; None: each failure's own."""
        self._failure_cause = cause

    def shutdown_begins(self) -> None:
        """From now on, failures are events the shutdown gave up on."""
        self._shutting_down = True

    def window_ended(self) -> None:
        """The simulated window is produced (a backfill caught up and follows live): progress lines say no share."""
        self._window = None

    # callbacks: the client's I/O thread ------------------------------------------------------------
    def on_ack(self, metadata) -> None:
        self.stats.acked += 1

    def on_acks(self, n: int) -> None:
        """n acknowledgements, counted by a client that reports only failures (Settings.acks_counted)."""
        self.stats.acked += n

    def on_ack_timed(self, sent_at: float, metadata) -> None:
        self.stats.observe_latency(time.monotonic() - sent_at)
        self.stats.acked += 1

    def on_ack_logged(self, event: dict[str, Any], sent_at: float, metadata) -> None:
        self.on_ack_timed(sent_at, metadata)
        md = event["metadata"]
        log.info("Event sent successfully - User: %s, Event: %s, Product: %s, Session: %smin, "
                 "Partition: %d, Offset: %d", event["user_id"], event["event_type"], md.get("product_id"),
                 md.get("session_length"), metadata.partition, metadata.offset)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("EVENT DETAILS:\n%s", json.dumps(event, indent=2, ensure_ascii=False))

    def on_failure(self, exc: BaseException) -> None:
        stats = self.stats
        if self._shutting_down:
            stats.dropped_at_shutdown += 1
            return
        name = getattr(exc, "error_name", None) or type(exc).__name__
        if self._failure_cause is not None:
            name, exc = self._failure_cause
        stats.failed_by_error[name] = stats.failed_by_error.get(name, 0) + 1
        stats.last_error = f"{name}: {exc}"[:300]
        stats.failed += 1

    def on_label_ack(self, _metadata) -> None:
        self.label_acks += 1

    def on_truth_ack(self, _metadata) -> None:
        self.truth_acks += 1

    # the loop's thread ----------------------------------------------------------------------------
    def report_progress(self) -> bool:
        """The progress line, when due (every STATS_INTERVAL); True when it was."""
        now = time.monotonic()
        if now < self.next_report:
            return False
        stats = self.stats
        runtime, acked = stats.runtime(), stats.acked
        window = runtime - self._last_report[0]
        recent = (acked - self._last_report[1]) / window if window > 0 else 0.0
        self._last_report = (runtime, acked)
        # The figures go with the line (record.progress): on a terminal they draw the progress bar instead.
        figures = {"sent": acked, "failed": stats.failed, "in_flight": stats.in_flight, "rate": recent,
                   "total": self.settings.count, **self._window_progress(runtime)}
        window = f" simulated={figures['simulated']} done={figures['done']:.0%} eta={figures['eta']}" \
            if "done" in figures else ""
        log.info("Progress: sent=%d failed=%d in_flight=%d rate=%.1f/s (avg %.1f/s) runtime=%.1fs%s%s",
                 acked, stats.failed, stats.in_flight, recent, acked / runtime if runtime > 0 else 0.0, runtime,
                 window, self.note, extra={"progress": figures})
        self.next_report = max(self.next_report + self.settings.stats_interval, now)
        return True

    def _window_progress(self, runtime: float) -> dict[str, Any]:
        """For a simulated window (a backfill): where the simulation is, the share of the window done and the
        time left at the pace so far; {} otherwise."""
        if self._window is None:
            return {}
        start, end, reached = self._window[0], self._window[1](), self._window[2]()
        if reached is None or end <= start:
            return {}
        done = min(1.0, max(0.0, (reached - start) / (end - start)))
        return {"simulated": TimestampFormatter()(int(min(reached, end)))[:16] + "Z", "done": done,
                "eta": f"{runtime * (1 - done) / done:.0f}s" if done >= 0.01 else "unknown"}

    def report_broker_state(self, now: float, connection: KafkaConnection) -> None:
        """Log an outage once when it starts and once when deliveries resume; summarise failures
        in at most one line every 5 s instead of one per event."""
        stats = self.stats
        if self.ack_progress(now):
            if self.outage_reported:
                log.info("Kafka broker reachable again after %.1fs; deliveries resumed", now - self._outage_since)
                self.outage_reported = False
                connection.recovered()
        silent_for = self._silence(now)
        if not self.outage_reported and silent_for > 2.0:
            reason = connection.problem(now)
            if not reason and silent_for > SILENCE_S:
                # No error, no answer: a broker frozen or overloaded, or a cluster fencing a lost node.
                reason = f"no acknowledgement for {silent_for:.0f}s and no error from the client"
            if reason:
                self.outage_reported, self._outage_since = True, now - silent_for
                log.warning("Kafka broker unreachable (%s); %d events in flight are kept and retried for up "
                            "to KAFKA_DELIVERY_TIMEOUT_MS=%d", reason, stats.in_flight,
                            self.settings.delivery_timeout_ms)
        if not self.outage_reported:
            connection.forget_hiccup(now)
        if self._asked_rate and (not self._ack_samples or now - self._ack_samples[-1][0] >= 1.0):
            self._report_slow_link(now)
        if stats.failed > self._failures_reported and now - self._last_failure_log >= 5.0:
            self._last_failure_log = now
            log.error("%d events failed since the last report (%d in all); last error: %s",
                      stats.failed - self._failures_reported, stats.failed, stats.last_error)
            self._failures_reported = stats.failed

    def _report_slow_link(self, now: float) -> None:
        """With a rate to keep: acknowledgements come, but slower than the rate, while events pile up in flight (a
        slow or lossy link, or an overloaded broker). Said once when it starts and once when deliveries keep up again;
        an outage (no acknowledgement at all) has its own lines."""
        samples, stats, asked = self._ack_samples, self.stats, self._asked_rate
        samples.append((now, stats.acked))
        while now - samples[0][0] > SLOW_S:
            samples.popleft()
        if now - samples[0][0] < SLOW_S - 1.5 or self.outage_reported:
            return  # not enough seen yet
        acked_rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
        backlog = stats.in_flight / asked  # seconds of events waiting for the broker
        flowing = samples[-1][1] > samples[-2][1]  # acknowledged in the last second: slow, not cut off
        if not self.slow_reported and flowing and acked_rate < asked * SLOW_SHARE and backlog > SLOW_BACKLOG_S:
            self.slow_reported = True
            log.warning("Deliveries are slower than the rate: %.0f events/s acknowledged over the last %.0fs against "
                        "EVENTS_PER_SECOND %g, %d events in flight (%.1fs of them): a slow or lossy link, or an "
                        "overloaded broker; generation pauses at MAX_IN_FLIGHT_EVENTS=%d", acked_rate, SLOW_S, asked,
                        stats.in_flight, backlog, self.settings.max_in_flight)
        elif self.slow_reported and acked_rate >= asked * 0.95 and backlog < 1.0:
            self.slow_reported = False
            log.info("Deliveries keep up with the rate again: %.0f events/s acknowledged, %d events in flight",
                     acked_rate, stats.in_flight)

    def stalled(self, now: float) -> tuple[str, str] | None:
        """(error name, why) when events are pending and the client is stuck, else None. Stuck: none completed
        (acknowledged or failed) for longer than the delivery timeout allows, since every event must complete within
        it; or, once a delivery failed, none for a request timeout and STALL_GRACE_S (kafka-python's idempotent
        producer stops for good after a batch of it expires: waiting out the whole delivery timeout again would
        leave it dead for minutes after a long outage)."""
        stats, s = self.stats, self.settings
        completed = stats.acked + stats.failed
        if completed != self._last_completion[0] or not stats.in_flight:
            self._last_completion = (completed, now)
            return None
        quiet = now - self._last_completion[1]
        if quiet > s.delivery_timeout_ms / 1000 + STALL_GRACE_S:
            return "KafkaTimeoutError", "the delivery timeout passed and the stalled client was replaced"
        if stats.failed > self._failed_at_replacement and quiet > s.request_timeout_ms / 1000 + STALL_GRACE_S:
            return "ClientStalled", f"the client completed nothing for {quiet:.0f}s after a delivery failed, and was " \
                                    "replaced"
        return None

    def client_replaced(self) -> None:
        """A stalled client was replaced: its stuck records failed, and the stall clock starts again."""
        stats = self.stats
        self._failed_at_replacement = stats.failed
        self._last_completion = (stats.acked + stats.failed, time.monotonic())

    def ack_progress(self, now: float) -> bool:
        """For the loop: True when acknowledgements arrived since its last look (the "deliveries resumed" edge,
        which is the loop's alone); also notes when the count last changed."""
        with self._ack_lock:
            self._note_acks(now)
            if self.stats.acked != self._loop_acked:
                self._loop_acked = self.stats.acked
                return True
            return False

    def _note_acks(self, now: float) -> None:
        """When the acknowledged count was last seen to change, and since when events are pending; shared by the
        loop and the health endpoint."""
        if self.stats.acked != self._last_acked:
            self._last_acked, self._last_ack_time = self.stats.acked, now
        if not self.stats.in_flight:
            self._pending_since = None
        elif self._pending_since is None:
            self._pending_since = now

    def _silence(self, now: float) -> float:
        """How long events have waited with no acknowledgement: since the last one, or since events were pending
        again after none were (a slow stream's last acknowledgement may be long ago and say nothing)."""
        if not self.stats.in_flight or self._pending_since is None:
            return 0.0
        return now - max(self._last_ack_time, self._pending_since)

    # any thread (the metrics server's) ------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        """Liveness: unhealthy when events are pending and none was acknowledged for HEALTH_TIMEOUT. It reads
        the shared note of the last acknowledgement and leaves the loop's edge alone."""
        now = time.monotonic()
        with self._ack_lock:
            self._note_acks(now)
            stalled = self._silence(now)
        pending = self.stats.in_flight
        if pending and stalled > self.settings.health_timeout:
            return False, f"{pending} events pending, none acknowledged for {stalled:.0f}s"
        return True, f"ok: {self.stats.acked} acknowledged, {pending} in flight"

    def ready(self, connection: KafkaConnection | None) -> tuple[bool, str]:
        """Readiness: connected to the broker and not in a reported outage."""
        if connection is None or not connection.connected:
            return False, "not connected to Kafka"
        if self.outage_reported:
            return False, f"Kafka broker unreachable: {connection.problem(time.monotonic()) or 'no acknowledgement'}"
        return True, "ready"

    # the end of the run ----------------------------------------------------------------------------
    def summary(self, exit_code: int | None, reason: str) -> dict[str, Any]:
        """The run's figures for --summary-json: only acknowledged events count as sent."""
        stats, s = self.stats, self.settings
        runtime = stats.runtime()
        return {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stats.start_time)),
                "mode": s.simulation_mode, "dry_run": self.printed, "topic": None if self.printed else s.topic,
                "acks": s.acks, "sent_means": "printed" if self.printed else SENT_MEANS[s.acks],
                "generated": stats.generated, "sent": 0 if self.printed else stats.acked,
                "printed": stats.acked if self.printed else 0, "failed": stats.failed,
                "dropped_at_shutdown": stats.dropped_at_shutdown, "already_in_topic": stats.already_in_topic,
                "failures_by_error": dict(stats.failed_by_error),
                "runtime_seconds": round(runtime, 3),
                "events_per_second": round(stats.acked / runtime, 3) if runtime > 0 else 0.0,
                "exit_code": exit_code, "exit_reason": reason}

    def exit_code(self) -> int:
        stats = self.stats
        return EXIT_OK if stats.failed == 0 and stats.dropped_at_shutdown == 0 else EXIT_FAILURE

    def log_statistics(self) -> None:
        """The run's figures. Only what the broker acknowledged counts as sent, and the success rate is that over
        every event generated, so events failed or left unacknowledged at shutdown lower it."""
        stats = self.stats
        runtime = stats.runtime()
        rate = f"Events/Second: {stats.acked / runtime if runtime > 0 else 0.0:.2f}"
        if self.printed:  # nothing went to Kafka: the events were printed
            lines = ["=" * 50, "PRODUCER STATISTICS (dry run: printed, not sent)", f"Runtime: {runtime:.2f} seconds",
                     f"Events Printed: {stats.acked}", rate]
        else:
            unacknowledged = self.settings.acks == 0
            lines = [
                "=" * 50,
                "PRODUCER STATISTICS",
                f"Runtime: {runtime:.2f} seconds",
                f"Events Generated: {stats.generated}",
                f"Events Sent: {stats.acked}" + (" (sent, not acknowledged: acks=0)" if unacknowledged else ""),
                f"Events Failed: {stats.failed}" + (f" ({UNCERTAIN})" if stats.failed else ""),
            ]
            if stats.dropped_at_shutdown:
                lines.append(f"Events Unacknowledged at Shutdown: {stats.dropped_at_shutdown} ({UNCERTAIN})")
            if stats.already_in_topic:
                lines.append(f"Events Already in the Topic: {stats.already_in_topic} (sent by an earlier run of "
                             "this window: not sent again)")
            lines.append(rate)
            if not unacknowledged and stats.generated:  # with acks=0 there is no rate of acknowledgements to give
                lines.append(f"Success Rate: {100.0 * stats.acked / stats.generated:.2f}% (acknowledged of generated)")
            elif not unacknowledged:  # a rerun that rightly sent nothing is no failure
                lines.append("Success Rate: - (nothing generated to send)")
            if stats.failed_by_error:
                lines.append("Failures by error: " + ", ".join(f"{k}={v}" for k, v in
                                                                sorted(stats.failed_by_error.items())))
        lines.append("=" * 50)
        # the progress is over: a terminal's bar is drawn where the run ended (a window's 100%), and closes
        log.info("%s", lines[0], extra={"progress": None, "final": self._window_progress(stats.runtime())})
        for line in lines[1:]:
            log.info("%s", line)


# --- the run engine: pacing x source x sink, one loop ------------------------------------------------------

def prepare(s: Settings) -> Settings:
    """The checks of the parts a run sets up, each made by its owner, in the order the run sets them up: the
    simulated population (sessions mode sizes it to the rate), the schema file, the client's own options.
    load_settings() checks the settings against each other; main() and ECommerceEventProducer() call this before
    a run. SettingsError (one line, exit code 2) when a part refuses."""
    s = size_population(s)
    s = read_scenarios(s)
    check_schema(s)
    CLIENTS[s.client].check_options(s)
    return s


class Pacing(Protocol):
    """When events may go: Unlimited, Schedule (random mode at a rate) or SimulatedTime (sessions mode)."""

    done: bool  # the stream has ended
    rate: float | None  # the events/s it keeps to, if any (a slow link is judged against it)

    @property
    def wake_at(self) -> float: ...  # when due() may say more than 0 again (monotonic seconds)

    @property
    def until_ms(self) -> float: ...  # events due now are no later than this simulated time

    def due(self, now: float) -> int: ...  # how many may go now (0: none yet)

    def went(self, n: int) -> None: ...  # n went

    def paused(self, now: float) -> None: ...  # generation waited for room in the sink

    def reached_ms(self) -> int: ...  # the simulated time reached (0: none)


class Source(Protocol):
    """What makes the events: RandomEvents or SimulatedShop."""

    gives_events: bool  # take() gives event dicts (else JSON texts); the codec takes either

    def take(self, n: int, until_ms: float) -> list: ...  # the next events, (epoch ms, key, value) records

    def made(self, records: list) -> int: ...  # how many of them the source made (data faults add and drop records)

    def after(self, records: list, asked: int, until_ms: float) -> None: ...  # what goes beside a batch (truth)

    def drain(self, end_ms: int) -> list: ...  # events still owed at the end (late events held back): they go last

    def finish(self, end_ms: int) -> str: ...  # what goes beside the events at the end (labels); an error, or ""


class Sink(Protocol):
    """Where events go: KafkaSink, or StdoutSink for --dry-run. A sink answers for itself: whether it needs a
    connection to the broker, what its "sent" means, and why it may set the pace."""

    needs_connection: bool  # a connection to the broker first
    printed: bool  # the events are printed, not sent: the statistics and the summary say so
    side_topics: bool  # truth and labels may go to topics beside the events
    paced: bool  # a pause at its room limit falls behind a schedule (a warning) rather than set the pace
    pace_hint: str  # what to try when it cannot keep up with the rate

    @classmethod
    def target(cls, s: Settings) -> str: ...  # where the events go, for the banner

    @classmethod
    def delivery_settings(cls, s: Settings) -> list[str]: ...  # the banner's lines on how they are delivered

    @classmethod
    def packages(cls, s: Settings) -> list[tuple[str, str, str]]: ...  # (module, package, make target) it imports

    def room(self) -> int: ...  # how many records may be handed over now (0: wait)

    def send(self, records: list[tuple[int, bytes, bytes]]) -> None: ...

    def send_logged(self, records: list[tuple[int, bytes, bytes]], events: list[dict[str, Any]]) -> None: ...

    def housekeeping(self, now: float) -> None: ...  # every turn of the loop

    def close(self, stopped: bool) -> None: ...  # the end of the run's deliveries



class Unlimited:
    """As fast as the sink takes them (PRODUCER_INTERVAL=0)."""

    done, wake_at, until_ms, rate = False, 0.0, math.inf, None

    def due(self, now: float) -> int:
        return BATCH  # the clock and the stop flag are looked at every BATCH events

    def went(self, n: int) -> None:
        pass

    def paused(self, now: float) -> None:
        pass

    def reached_ms(self) -> int:
        return 0  # no simulated time


class Schedule:
    """Random mode at a rate: event k is due at start + k x PRODUCER_INTERVAL on the monotonic clock, so sending and
    logging never stretch the interval and nothing drifts. All events already due go at once (at 5,000/s several per
    wake-up), BATCH at a time when behind: a burst of tens of thousands would hold off the progress line, the stop
    flag and --duration for a second or more. A rate out of reach is said once, with what was achieved while
    generation was free to go: time spent waiting for room (MAX_IN_FLIGHT_EVENTS, the broker's pace) is left out."""

    done, until_ms = False, math.inf

    def __init__(self, seconds_per_event: float, stats: Statistics, hint: str) -> None:
        self.spe, self.stats, self.hint = seconds_per_event, stats, hint
        self.rate = 1 / seconds_per_event  # events/s to keep to
        self.anchor, self.scheduled = stats.started, 0
        self._next_check = stats.started + PACE_GRACE_S
        self.held_s = 0.0  # seconds generation waited for room, before the present wait
        self._held: tuple[float, float] | None = None  # the present wait: (began, last seen)

    @property
    def wake_at(self) -> float:
        return self.anchor + self.scheduled * self.spe

    def due(self, now: float) -> int:
        due = int((now - self.anchor) / self.spe) + 1 - self.scheduled
        if due <= 0:
            return 0
        if now >= self._next_check:
            self._check_pace(now)
        return min(due, BATCH)

    def went(self, n: int) -> None:
        self.scheduled += n
        if self._held is not None:  # a wait for room has ended
            self.held_s += self._held[1] - self._held[0]
            self._held = None

    def paused(self, now: float) -> None:
        """Generation waited for room: the schedule starts again from now instead of bursting to catch up."""
        self.anchor, self.scheduled = now, 0
        self._held = (self._held[0] if self._held else now, now)

    def reached_ms(self) -> int:
        return 0  # no simulated time

    def _check_pace(self, now: float) -> None:
        # Judged on the time generation was free to go: while events wait for the broker (an outage, a slow link)
        # the broker sets the pace, and blaming the client for it would be false.
        free = now - self.stats.started - self.held_s
        if self._held is not None:  # a wait for room is ending (went() closes it): judge at the next due()
            return
        if free < PACE_FREE_S:
            self._next_check = now + 1.0
            return
        achieved, asked = self.stats.generated / free, self.rate
        if achieved >= asked * PACE_SHORTFALL:
            self._next_check = now + 1.0
            return
        self._next_check = math.inf
        held = f", not counting {self.held_s:.0f}s waiting for room at MAX_IN_FLIGHT_EVENTS" if self.held_s >= 0.5 \
            else ""
        log.warning("The rate asked for is out of reach: %.0f events/s generated against EVENTS_PER_SECOND %g/s "
                    "(%.0f%%%s); %s", achieved, asked, 100 * achieved / asked, held, self.hint)


class SimulatedTime:
    """Sessions mode: the simulation's clock sets the pace. A window (--start-time) goes as fast as the sink takes it,
    each event stamped with its simulated time; live, and after the window with --follow, an event goes when the wall
    clock reaches its time: the simulation simply carries on, so the hand-over has no gap, no burst and no stall."""

    def __init__(self, shop: "SimulatedShop", clock: Callable[[], int], live: bool, end_ms: float,
                 on_live: Callable[[int], None] | None = None) -> None:
        """live: events wait for the wall clock (after the window, if any); on_live(now_ms): called once when a
        window before now (--follow) has caught up with the wall clock."""
        self.shop, self.clock, self.live, self.end_ms, self.on_live = shop, clock, live, end_ms, on_live
        self.done, self.wake_at, self.until_ms = False, 0.0, 0.0
        self.rate = None  # the simulation's own: no rate to keep to

    def due(self, now: float) -> int:
        due = self.shop.peek_ms()
        if due is None or due >= self.end_ms:
            self.done = True  # the window is done (or every customer has gone)
            return 0
        limit = self.clock() if self.live else self.end_ms
        if due > limit:
            if self.on_live is not None:
                self.on_live, on_live = None, self.on_live
                on_live(limit)
            self.wake_at = now + (due - limit) / 1000
            return 0
        self.until_ms = min(limit, self.end_ms - 1)
        return BATCH

    def went(self, n: int) -> None:
        pass

    def paused(self, now: float) -> None:
        pass

    def reached_ms(self) -> int:
        """Where the stream ends: the wall clock when live, else the window's end or its last event."""
        if self.live:
            return min(self.clock(), int(self.end_ms)) if self.end_ms < math.inf else self.clock()
        return int(min(self.end_ms, self.shop.peek_ms() or self.end_ms))


_DONE = {"start": "started", "stop": "stopped"}


class ScenarioControl:
    """SCENARIOS started and stopped on demand (POST /scenarios/NAME/start or /stop): asked from the control server's
    thread, done by the run's source in the run's thread before its next batch (the simulation is not thread-safe),
    the answer handed back to the asker."""

    def __init__(self, plan: tuple[Scenario, ...]) -> None:
        import queue

        self.plan = {sc.name: sc for sc in plan}
        self._asked: "queue.SimpleQueue[tuple[str, str, threading.Event, list[str]]]" = queue.SimpleQueue()
        self.done: dict[str, str] = {}  # name -> what was last done to it on demand, for GET /scenarios

    def ask(self, name: str, action: str, timeout: float = 5.0) -> tuple[int, str]:
        """(HTTP status, text): 200 done, 409 refused (why), 404 no such scenario, 202 asked (the run has not
        taken it up within the timeout: it will at its next batch)."""
        if name not in self.plan:
            return 404, f"no scenario '{name}' in SCENARIOS; declared: {', '.join(self.plan) or '(none)'}"
        answered, answer = threading.Event(), []
        self._asked.put((name, action, answered, answer))
        if not answered.wait(timeout):
            return 202, f"scenario '{name}': {action} asked; the run takes it up at its next batch"
        return (409, f"scenario '{name}' cannot {action}: {answer[0]}") if answer[0] else             (200, f"scenario '{name}' ({self.plan[name].kind}): {_DONE[action]}")

    def apply(self, now_ms: int, parts: list[Any]) -> None:
        """What was asked, done at now_ms (simulated time) by whichever part runs the scenario (the shop, the data
        faults)."""
        while not self._asked.empty():
            name, action, answered, answer = self._asked.get()
            sc = self.plan[name]
            part = next((p for p in parts if p is not None and hasattr(p, "on_demand")
                         and (sc.behaviour == (not isinstance(p, StreamFaults)))), None)
            why = "not part of this run" if part is None else part.on_demand(name, action, now_ms)
            if not why:
                self.done[name] = f"{_DONE[action]} at {TimestampFormatter()(now_ms)}"
                log.info("Scenario '%s' (%s) %s on demand at %s", name, sc.kind, _DONE[action],
                         TimestampFormatter()(now_ms))
            answer.append(why)
            answered.set()

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": sc.name, "kind": sc.kind, "start": sc.start[0] if sc.start[0] == "on_demand" else "scheduled",
                 "on_demand": self.done.get(sc.name, "")} for sc in self.plan.values()]


class RandomEvents:
    """Random mode: independent events, each stamped by the clock as it is made; SCENARIOS' data faults on them."""

    def __init__(self, make: Callable[[Callable[[], int], int], list], clock: Callable[[], int],
                 gives_events: bool) -> None:
        self.make, self.clock, self.gives_events = make, clock, gives_events
        self.faults: StreamFaults | None = None
        self.control: ScenarioControl | None = None

    def take(self, n: int, until_ms: float) -> list:
        if self.faults is None:
            return self.make(self.clock, n)
        if self.control is not None:
            self.control.apply(self.clock(), [self.faults])
        records = self.make(self.clock, n)
        self._made = len(records)
        return self.faults.apply(records, records[-1][0] if records else self.clock())

    def made(self, records: list) -> int:
        return len(records) if self.faults is None else self._made

    def after(self, records: list, asked: int, until_ms: float) -> None:
        pass

    def drain(self, end_ms: int) -> list:
        return self.faults.finish(self.clock()) if self.faults is not None else []

    def finish(self, end_ms: int) -> str:
        return ""  # nothing beside the events


class SimulatedShop:
    """Sessions mode: the simulated shop's events in simulated time, its truth events as they happen
    (--truth-file, --truth-topic) and, at the end, its labels (--labels-file, --labels-topic)."""

    gives_events = False

    def __init__(self, s: Settings, sim: SessionSimulator, sink: "KafkaSink | StdoutSink",
                 faults: StreamFaults | None = None, control: ScenarioControl | None = None,
                 clock: Callable[[], int] = lambda: 0, live: bool = False) -> None:
        self.settings, self.sim, self.sink, self.faults, self.control = s, sim, sink, faults, control
        self.clock, self.live = clock, live  # for what is asked on demand: done at the wall clock's time, live
        # Without data faults or scenario control, the simulator's own methods: nothing between the loop and the
        # hot path.
        self.take, self.peek_ms = (self._faulted, self._faulted_peek) if faults or control else (sim.take,
                                                                                                  sim.peek_ms)
        self._reached, self._made = 0.0, 0  # with faults: how far the last batch went in simulated time, its size
        fmt = TimestampFormatter()
        # Live from the start, the pace to expect is this hour's (the shop's daily and weekly cycle); a window's is
        # its average.
        pace = (f"about {sim.expected_events_per_second_at(sim.start_ms):.3g} events/s at this hour of the shop's "
                f"week ({sim.expected_events_per_second():.3g} on average)" if s.start_time is None else
                f"about {sim.expected_events_per_second():.3g} events/s")
        log.info("Simulating %s from %s%s: %s%s",
                 sim.describe(", ".join(f"{seg} {share:g}" for seg, share in s.segment_mix)), fmt(sim.start_ms),
                 " to now, then live" if s.follow else f" to {fmt(s.end_time)}" if s.end_time else ", live",
                 pace,
                 "; mix " + ", ".join(f"{t} {share:.1%}" for t, share in sim.expected_mix.items())
                 if sim.expected_mix else "")
        self.truth = TruthStream(s, sim, sink, faults) if s.truth_file or s.truth_topic else None

    def made(self, records: list) -> int:
        return self._made if self.faults else len(records)

    def _faulted(self, n: int, until_ms: float) -> list:
        records = self.sim.take(n, until_ms)
        self._made = len(records)
        self._reached = records[-1][0] if len(records) == n else until_ms
        return self.faults.apply(records, self._reached) if self.faults else records

    def _faulted_peek(self) -> int | None:
        """What is due next; first, what was asked on demand, done at the moment the stream has reached (the wall
        clock, live): the pacing asks this on every turn, events due or not."""
        if self.control is not None:
            due = self.sim.peek_ms()
            now = due if due is not None else self._reached
            self.control.apply(int(min(now, self.clock()) if self.live else now), [self.sim, self.faults])
        due = [t for t in (self.sim.peek_ms(), self.faults.peek_ms() if self.faults else None) if t is not None]
        return int(min(due)) if due else None

    def after(self, records: list, asked: int, until_ms: float) -> None:
        """The truth up to the last of these events, or the whole span taken when it held fewer than asked."""
        if self.truth is not None:
            self.truth.write(self._reached if self.faults or self.control else records[-1][0] if len(records) == asked
                             else until_ms)

    def drain(self, end_ms: int) -> list:
        return self.faults.finish(end_ms) if self.faults else []

    def finish(self, end_ms: int) -> str:
        """The truth and the labels as of the end of the stream: "" when both were written (or not asked for), else
        what was not ("labels not written", "truth not written")."""
        truth_error = self.truth.close(end_ms) if self.truth is not None else ""
        labels_error = write_labels(self.settings, self.sim, end_ms, self.sink)
        return "labels not written" if labels_error else "truth not written" if truth_error else ""


class TruthStream:
    """The truth events of a sessions run, handed out as simulated time passes them: each batch after the events
    that came before it, so a reader of both sees them interleaved."""

    def __init__(self, s: Settings, sim: SessionSimulator, sink: "KafkaSink | StdoutSink",
                 faults: StreamFaults | None = None) -> None:
        self.sim, self.sink, self.faults = sim, sink, faults  # the data faults' truth merges with the shop's
        self.path, self.error, self.count = s.truth_file, "", 0  # count: truth events handed out
        self.topic = s.truth_topic if sink.side_topics else ""
        self.acked = [0]
        try:  # checked writable by validate(); still, a run must not die on it
            self.file = open(s.truth_file, "w", encoding="utf-8") if s.truth_file else None
        except OSError as exc:
            self.file = None
            self._failed(exc)
        sim.record_truth()
        self.write(sim.start_ms)  # the customers there are at the start

    def write(self, until_ms: float) -> None:
        records = self.sim.truth(until_ms) if not self.faults else merged(self.sim.truth(until_ms),
                                                                          self.faults.truth(until_ms))
        if not records:
            return
        self.count += len(records)
        if self.file is not None:
            try:
                self.file.write("".join(value.decode() + "\n" for _, _, value in records))
                self.file.flush()  # a live reader of the file sees each batch as it is written
            except OSError as exc:
                self._failed(exc)
        if self.topic:
            self.sink.send_side(self.topic, records, self.acked)

    def _failed(self, exc: OSError) -> None:
        self.error = f"the truth events could not be written to {self.path} ({os_reason(exc)})"
        log.error("%s; the events go on; the truth file is incomplete", self.error)
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        self.file = None

    def close(self, end_ms: int) -> str:
        """The changes up to the end of the stream; on the topic, every one of them acknowledged. Returns why the
        truth is incomplete, or ""."""
        self.write(end_ms)
        if self.file is not None:
            try:
                self.file.close()
            except OSError as exc:
                self._failed(exc)
            else:
                log.info("Wrote %d truth events to %s", self.count, self.path)
        if self.topic:
            unacknowledged = self.sink.settle_side(self.topic, self.count, self.acked, "truth events",
                                                   f"{self.count} truth events")
            self.error = self.error or unacknowledged
        return self.error


def write_labels(s: Settings, sim: SessionSimulator, end_ms: int, sink: "KafkaSink | StdoutSink") -> str:
    """Ground truth, kept aside from the events, as of the end of the simulated stream: a JSON-lines file and/or a
    topic of its own. Returns why it could not be written, or ""."""
    if not (s.labels_file or s.labels_topic):
        return ""
    topic = s.labels_topic if sink.side_topics else ""
    rows, error, acked = 0, "", [0]
    # A regular file is written beside itself and renamed: a full disk leaves the previous file, not half of a new
    # one. Anything else (a pipe, /dev/stdout) is written as it is.
    target = s.labels_file
    regular = bool(target) and (not os.path.exists(target) or os.path.isfile(target))
    path = f"{target}.partial" if regular else target or os.devnull
    try:
        with open(path, "w", encoding="utf-8") as out:
            for row in sim.labels(end_ms):
                text = json.dumps(row, separators=(",", ":"))
                out.write(text + "\n")
                rows += 1
                if topic:
                    sink.send_side(topic, [(None, JsonCodec.key(row["user_id"]), text.encode())], acked)
        if regular:
            os.replace(path, target)
    except OSError as exc:
        if regular and os.path.exists(path):
            os.remove(path)
        error = f"the ground truth could not be written to {target} ({os_reason(exc)})"
        log.error("%s; the events went out; the labels file is %s", error,
                  "as it was before the run" if regular else "incomplete")
        target = ""
    if target:
        log.info("Wrote ground truth of %d users to %s", rows, target)
    if topic:
        unacknowledged = sink.settle_side(topic, rows, acked, "labels", f"ground truth of {rows} users")
        error = error or unacknowledged
    return error


class StdoutSink:
    """--dry-run: the events as JSON lines on stdout, one write per batch (one per event would dominate); nothing
    waits for an answer, so a line written counts as delivered ("printed")."""

    needs_connection, printed, side_topics, paced = False, True, False, False
    pace_hint = "stdout sets the pace; for more, run shards (--shard I/N), one process each"

    @classmethod
    def target(cls, s: Settings) -> str:
        return "stdout (dry run)"

    @classmethod
    def delivery_settings(cls, s: Settings) -> list[str]:
        return []  # a dry run delivers nothing

    @classmethod
    def packages(cls, s: Settings) -> list[tuple[str, str, str]]:
        return []  # JSON on stdout: nothing else

    def __init__(self, stream, stats: Statistics) -> None:
        self._out = getattr(stream, "buffer", stream)
        self.stats = stats

    def room(self) -> int:
        return BATCH

    def send(self, records: list[tuple[int, bytes, bytes]]) -> None:
        values = [value for _, _, value in records]
        if values:
            values.append(b"")
            self._out.write(b"\n".join(values))
            self._out.flush()  # one flush per batch: live readers see events at once, at little cost
        self.stats.generated += len(records)
        self.stats.acked += len(records)

    def send_logged(self, records: list[tuple[int, bytes, bytes]], events: list[dict[str, Any]]) -> None:
        self.send(records)  # the events are the output

    def housekeeping(self, now: float) -> None:
        pass

    def close(self, stopped: bool) -> None:
        self._out.flush()


class KafkaSink:
    """Records to Kafka through the connection, with the delivery monitor's callbacks, each numbered for its
    event_id header; back-pressure at MAX_IN_FLIGHT_EVENTS (kafka-python has no memory limit of its own); and the
    connection's upkeep: outage and failure lines, the partition count, a stalled client replaced."""

    needs_connection, printed, side_topics = True, False, True

    @classmethod
    def target(cls, s: Settings) -> str:
        return f"{s.bootstrap_servers} ({s.security_protocol}) -> topic '{s.topic}', client {s.client}"

    @classmethod
    def delivery_settings(cls, s: Settings) -> list[str]:
        return [f"Delivery: acks={s.acks}, idempotence {'on' if s.enable_idempotence else 'off'}, "
                f"compression {s.compression_type}, linger {s.linger_ms} ms, batch {s.batch_size} B"]

    @classmethod
    def packages(cls, s: Settings) -> list[tuple[str, str, str]]:
        """The client, a schema format's serializer and registry client, kafka-python's codec."""
        needs = [CLIENT_PACKAGES[s.client]]
        if s.value_format != "json":
            needs += [("confluent_kafka.schema_registry", "confluent-kafka", "setup-formats"),
                      FORMAT_PACKAGES[s.value_format]]
        if s.client == "kafka-python" and s.compression_type in CODEC_PACKAGES:
            needs.append(CODEC_PACKAGES[s.compression_type])
        return needs

    def __init__(self, s: Settings, connection: KafkaConnection, codec: JsonCodec, delivery: DeliveryMonitor) -> None:
        self.settings, self.connection, self.codec, self.delivery = s, connection, codec, delivery
        self.stats = delivery.stats
        connection.on_acks = delivery.on_acks  # where a client that counts them puts the acknowledgements
        self.pace_hint = f"the client ({s.client}) sets the pace; for more, try " + (
            "--workers N (a client per process)" if s.client == "confluent-kafka" else
            "KAFKA_CLIENT=confluent-kafka (faster), or --workers N (a client per process)")
        self.paced = s.seconds_per_event > 0  # whether a pause at the in-flight cap falls behind a schedule
        # A rerun of a seeded window: per partition, the last event its predecessor's run put there (see resume()).
        self.resumed: dict[int, int] | None = None
        self._resumed_to = 0
        self._partition_of: dict[bytes, int] = {}
        self._paused_reported = False
        self._pace_said = False  # at an unlimited rate, the pause is said once a run
        self._next_partition_check = 0.0
        self._finding: threading.Thread | None = None
        if seeded_window(s) and "start_time" in s.explicit and not connection.created_topic:  # the user's window
            # Read in the background while the simulation builds its shop; the first batch waits for it.
            self.resumed = {}
            self._finding = threading.Thread(target=self.resume, name="resume", daemon=True)
            self._finding.start()

    def room(self) -> int:
        s, stats = self.settings, self.stats
        room = s.max_in_flight - stats.in_flight
        if room > 0 and self.connection.connected:
            if self._paused_reported and stats.in_flight < s.max_in_flight * 0.5:
                self._paused_reported = False
            return room
        if not self._paused_reported and self.connection.connected:
            self._paused_reported = True
            # At an unlimited rate (a backfill's too) the broker's acknowledgements set the pace: the pause is the
            # expected back-pressure, not a fault, said once a run (it comes back every few seconds). With a rate to
            # keep, each fall behind it is worth a warning.
            if self.paced or not self._pace_said:
                log.log(logging.WARNING if self.paced else logging.INFO,
                        "%d events in flight (MAX_IN_FLIGHT_EVENTS=%d): generation paused until the broker "
                        "acknowledges%s", stats.in_flight, s.max_in_flight,
                        "" if self.paced else " (at an unlimited rate the broker sets the pace; said once)")
                self._pace_said = self._pace_said or not self.paced
        return 0

    def resume(self) -> None:
        """A seeded window's events are the same on every run, numbered the same (run_id_for): a rerun (a pod
        restarted, a backfill killed and run again) finds in the topic, partition by partition, the last event its
        predecessor put there, and sends only the events after it. A partition's events of one run are in their
        send order (an idempotent producer), so what is there is a prefix: neither duplicates nor gaps."""
        try:
            last = read_last_sequences(self.settings, self.connection.topic, self.codec.run_prefix,
                                       self.connection.partitions)
        except Exception as exc:  # noqa: BLE001 - any failure to read: send it all, and say so
            log.warning("Could not read topic '%s' for an earlier run of this window (%s: %s): its events are all "
                        "sent", self.settings.topic, type(exc).__name__, str(exc)[:200])
            return
        self.resumed, self._resumed_to = last, max(last.values(), default=0)
        if last:
            log.info("A rerun of this window (run id %s): its events up to #%d are already in topic '%s' (the last "
                     "of each partition: %s); they are not sent again", self.codec.run_id, self._resumed_to,
                     self.settings.topic, ", ".join(f"{p}: #{n}" for p, n in sorted(last.items())))

    def send(self, records: list[tuple[int, bytes, bytes]]) -> None:
        """The path at full speed: the whole batch to the connection in one call."""
        d = self.delivery
        first = self.codec.number(len(records))
        if self.resumed is not None:
            self._send_the_rest(records, first)
            return
        self.stats.generated += len(records)
        self.connection.send_many(records, first, self.codec.headers, d.on_ack, d.on_ack_timed, d.on_failure)

    def _send_the_rest(self, records: list[tuple[int, bytes, bytes]], first: int) -> None:
        """A rerun: of events numbered from first, those after the last one its predecessor put in their
        partition."""
        d, connection = self.delivery, self.connection
        kept = [(seq, record) for seq, record in enumerate(records, first) if not self._already_sent(record[1], seq)]
        self.stats.already_in_topic += len(records) - len(kept)
        self.stats.generated += len(kept)
        for seq, (epoch_ms, key, value) in kept:
            try:
                connection.send(key, value, epoch_ms, self.codec.headers(seq), d.on_ack, d.on_failure)
            except connection.refused_errors as exc:
                d.on_failure(exc)
        if first + len(records) > self._resumed_to:
            self.resumed = None  # past the last event its predecessor sent: the full-speed path again

    def _already_sent(self, key: bytes, seq: int) -> bool:
        """Whether event #seq is in the topic already: at or before the last one of its run in its partition."""
        if self._finding is not None:  # the first batch: wait for what the predecessor sent
            self._finding.join()
            self._finding = None
        partition = self._partition_of.get(key)
        if partition is None:
            partition = self._partition_of[key] = self.connection.partition_for(key)
        return seq <= self.resumed.get(partition, 0)

    def send_logged(self, records: list[tuple[int, bytes, bytes]], events: list[dict[str, Any]]) -> None:
        """At the low rates where each acknowledged event gets a log line: one send each, the event for the line."""
        d, stats, connection, codec = self.delivery, self.stats, self.connection, self.codec
        for (epoch_ms, key, value), event in zip(records, events):
            seq = codec.number(1)
            if self.resumed is not None:
                if self._already_sent(key, seq):
                    stats.already_in_topic += 1
                    continue
                if seq > self._resumed_to:
                    self.resumed = None
            stats.generated += 1
            try:
                connection.send(key, value, epoch_ms, codec.headers(seq), d.on_ack_logged, d.on_failure, event,
                                time.monotonic())
            except connection.refused_errors as exc:
                d.on_failure(exc)

    def send_side(self, topic: str, records: list[tuple[int | None, bytes, bytes]], acked: list[int]) -> None:
        """Records beside the events (truth events, labels) to a topic of their own; acked[0] counts the
        acknowledgements."""
        def on_ack(_metadata) -> None:
            acked[0] += 1
        for when, key, value in records:
            self.connection.send_label(topic, key, value, on_ack, timestamp_ms=when)

    def settle_side(self, topic: str, sent: int, acked: list[int], noun: str, what_was_sent: str) -> str:
        """Wait for the side records' acknowledgements and say how it went: "Sent <what_was_sent> to topic ...", or
        (returned too) how many of the `sent` <noun> have none; "" when none is missing."""
        self.connection.flush(timeout=max(30.0, self.settings.flush_timeout))
        failed = sent - acked[0]
        if not failed:
            log.info("Sent %s to topic '%s'", what_was_sent, topic)
            return ""
        error = f"{failed} of {sent} {noun} were not acknowledged by topic '{topic}'"
        log.error("%s", error)
        return error

    def housekeeping(self, now: float) -> None:
        """Outage and failure reports, the partition count, the stalled-client check: at most ~1 ms of work."""
        delivery, connection = self.delivery, self.connection
        if not connection.connected:
            return
        delivery.report_broker_state(now, connection)
        if now >= self._next_partition_check:
            self._next_partition_check = now + PARTITION_CHECK_S
            connection.follow_partition_count()
        stuck = delivery.stalled(now)
        if stuck is not None:
            log.error("Kafka client stalled with %d events in flight (%s); replacing it: those events are counted as "
                      "failed, %s", self.stats.in_flight, stuck[1], UNCERTAIN)
            # The stuck records fail as the old client is forced closed; their cause is the stall, not the "closed
            # forcefully" the client gives them.
            delivery.fail_as(stuck)
            try:
                replaced = connection.replace_stalled(while_waiting=delivery.report_progress)
            finally:
                delivery.fail_as(None)
            if replaced:
                delivery.client_replaced()

    def close(self, stopped: bool) -> None:
        """Flush what is in flight for up to FLUSH_TIMEOUT, close; what never completed is counted unacknowledged."""
        s, stats, delivery, connection = self.settings, self.stats, self.delivery, self.connection
        if not connection.connected:
            return
        if stats.in_flight:
            log.info("Flushing %d in-flight events (up to %gs)...%s", stats.in_flight, s.flush_timeout,
                     " Ctrl-C again to quit now" if stopped else "")
        connection.flush(timeout=s.flush_timeout)
        delivery.shutdown_begins()
        connection.close(timeout=0 if stats.in_flight else 1.0)
        stats.dropped_at_shutdown += stats.in_flight  # never completed at all
        delivery.report_broker_state(time.monotonic(), connection)


def sink_for(s: Settings) -> type[StdoutSink] | type[KafkaSink]:
    """The sink the settings ask for: stdout for --dry-run, else Kafka. The one place a run reads DRY_RUN (the rules
    between settings aside); the rest asks the sink what it needs and how it counts."""
    return StdoutSink if s.dry_run else KafkaSink


class RunEngine:
    """One run: a pacing, a source and a sink in one loop, until the stop flag, --count, --duration or the end of
    the stream; then the sink's flush and close, the statistics, and the exit code. Every mode is the same loop:
    random or sessions is the source (and its pacing), Kafka or --dry-run's stdout the sink."""

    def __init__(self, s: Settings, pacing: Pacing, source: Source, codec: JsonCodec, sink: Sink,
                 delivery: DeliveryMonitor, stop: threading.Event, log_events: bool) -> None:
        self.settings, self.pacing, self.source, self.codec, self.sink = s, pacing, source, codec, sink
        self.delivery, self.stats, self._stop = delivery, delivery.stats, stop
        self.log_events = log_events  # one log line per acknowledged event
        self.phase = "running"  # for the progress channel: running, backfill, live, flushing, done
        self.ended_by = ""
        # --workers, the parent's view: on_progress(stats, ahead) at each turn of the loop and before each batch goes
        # to the sink, `ahead` the events of the batch (a worker killed while sending them has them counted).
        self.on_progress: Callable[[Statistics, int], None] | None = None
        self.on_report: Callable[[], None] | None = None  # at each progress line and each change of phase or outage
        self._reported: tuple[str, bool, bool] = ("", False, False)

    def run(self) -> int:
        s, stats, delivery, pacing, sink = self.settings, self.stats, self.delivery, self.pacing, self.sink
        deadline = stats.started + s.duration if s.duration else math.inf
        remaining = s.count if s.count is not None else math.inf
        # The loop at full speed: what it calls, bound once (each attribute look-up costs on every turn).
        take, after, send, wait, stopped = self.source.take, self.source.after, sink.send, self._stop.wait, \
            self._stop.is_set
        made = self.source.made
        publish = self.on_progress
        encode = self.codec.encode_events if self.source.gives_events else self.codec.encode_json
        unwritten = ""
        try:
            while not stopped() and remaining > 0:
                now = time.monotonic()
                if now >= deadline:
                    break
                self._housekeeping(now)
                n = pacing.due(now)
                if not n:
                    if pacing.done:
                        break
                    wait(max(0.0, min(pacing.wake_at, deadline, delivery.next_report, now + 1.0) - now))
                    continue
                n = int(min(n, remaining, sink.room()))
                if not n:  # back-pressure: wait for acknowledgements; then the schedule restarts instead of bursting
                    pacing.paused(now)
                    wait(0.01)
                    continue
                records = take(n, pacing.until_ms)
                if publish is not None:
                    publish(stats, len(records))
                if self.log_events:
                    sink.send_logged(encode(records), [value if self.source.gives_events else json.loads(value)
                                                       for _, _, value in records])
                else:
                    send(encode(records))
                # --count and the rate count what the source made: a data fault's copies and bots come on top
                went = made(records)
                remaining -= went
                pacing.went(went)
                after(records, n, pacing.until_ms)
            owed = self.source.drain(pacing.reached_ms())
            if owed:
                send(encode(owed))
            unwritten = self.source.finish(pacing.reached_ms())
        finally:
            self.phase = "flushing"
            self._tell()
            sink.close(stopped())
        return self._end(unwritten, remaining <= 0)

    def _housekeeping(self, now: float) -> None:
        reported = self.delivery.report_progress()
        if self.on_progress is not None:
            self.on_progress(self.stats, 0)  # acknowledgements that came while no batch went
        self.sink.housekeeping(now)
        if reported or self._reported != self._state():
            self._tell()

    def _state(self) -> tuple[str, bool, bool]:
        return self.phase, self.delivery.outage_reported, self.delivery.slow_reported

    def _tell(self) -> None:
        self._reported = self._state()
        if self.on_report is not None:
            self.on_report()

    def _end(self, unwritten: str, counted: bool) -> int:
        """Why the run ended, the statistics, the exit code (1 also when the labels or truth were not written).
        counted: --count events were made (a rerun's already in the topic too)."""
        s, stats = self.settings, self.stats
        if self._stop.is_set():
            self.ended_by = "stopped"
        elif counted:
            self.ended_by = "count reached"
        elif s.duration and stats.runtime() >= s.duration:
            self.ended_by = "duration reached"
        else:
            self.ended_by = "window done"  # sessions mode: the window's end, or every customer gone
        self.phase = "done"
        if self.on_progress is not None:
            self.on_progress(stats, 0)  # the final figures; the parent of --workers logs the statistics
        else:
            self.delivery.log_statistics()
        if stats.dropped_at_shutdown:
            log.error("%d events were not acknowledged before shutdown: they may or may not be in the topic",
                      stats.dropped_at_shutdown)
        if unwritten:
            self.ended_by = unwritten
            return EXIT_FAILURE
        return self.delivery.exit_code()


def compose_run(s: Settings, codec: JsonCodec, connection: KafkaConnection | None,
                random_events: Callable[[bool], RandomEvents], clock: Callable[[], int],
                stop: threading.Event, control: ScenarioControl | None = None) -> RunEngine:
    """One run, composed from the settings: the sink (sink_for: Kafka, or stdout for --dry-run), the delivery monitor,
    the source and its pacing. random_events(as_dicts) is random mode's source (the
    facade's, which honours an overridden _generate_metadata); a dry run prints JSON whatever VALUE_FORMAT says."""
    kind = sink_for(s)
    if kind.printed and s.value_format != "json":
        log.info("VALUE_FORMAT=%s: a dry run prints the events as JSON, as the %s deserializer gives them back "
                 "(nothing is registered or sent)", s.value_format, s.value_format)
    codec = JsonCodec(codec.run_id) if kind.printed else codec

    def sink_of(delivery: DeliveryMonitor) -> Sink:
        return StdoutSink(sys.stdout, delivery.stats) if kind.printed else KafkaSink(s, connection, codec, delivery)
    if s.simulation_mode == "random":
        spe = s.seconds_per_event
        delivery = DeliveryMonitor(s, asked_rate=1 / spe if spe > 0 else None, printed=kind.printed)
        sink = sink_of(delivery)
        pacing: Pacing = Schedule(spe, delivery.stats, sink.pace_hint) if spe > 0 else Unlimited()
        source = random_events(codec.takes_events)
        source.faults = stream_faults(s, codec, clock(), math.inf, sessions=False, as_dicts=source.gives_events)
        source.control = control
        return RunEngine(s, pacing, source, codec, sink, delivery, stop, s.events_logged)
    # sessions mode: a simulated population in simulated time (a window at full speed, then or else live)
    start_ms = s.start_time if s.start_time is not None else clock()
    backfill = s.start_time is not None
    sim = simulator_for(s, start_ms=start_ms, warm_start=s.warm_start == "on" or s.warm_start == "auto" and not backfill)
    end_ms = s.end_time if s.end_time is not None else math.inf
    window = (start_ms, (lambda: end_ms) if s.end_time is not None else clock, sim.peek_ms) if backfill else None
    delivery = DeliveryMonitor(s, window=window, printed=kind.printed)  # a backfill's progress says how far it is
    sink = sink_of(delivery)
    live = s.start_time is None or s.follow
    shop = SimulatedShop(s, sim, sink, stream_faults(s, codec, start_ms, end_ms, sessions=True, as_dicts=False),
                         control, clock, live)

    def on_live(now_ms: int) -> None:
        log.info("Backfill caught up with the wall clock at %s; following live", TimestampFormatter()(now_ms))
        engine.phase, engine.log_events, sink.paced = "live", s.events_logged, True
        delivery.window_ended()
    pacing = SimulatedTime(shop, clock, live, end_ms, on_live if s.follow else None)
    # LOG_EVENTS=auto judges by the configured rate, but a backfill goes as fast as the client allows: one line per
    # event there only when asked for explicitly; live, the setting applies.
    engine = RunEngine(s, pacing, shop, codec, sink, delivery, stop, s.log_events == "true" if backfill else
                       s.events_logged)
    engine.phase, sink.paced = ("backfill", False) if backfill else ("live", True)
    return engine


def stream_faults(s: Settings, codec: JsonCodec, start_ms: int, end_ms: float, sessions: bool,
                  as_dicts: bool) -> StreamFaults | None:
    """SCENARIOS' data faults on this run's stream, or None. A duplicate carries its original's event_id header:
    the codec numbers the stream's records in order, the faults say which position copies which."""
    faults = StreamFaults(s.scenario_plan, start_ms=start_ms, seed=s.seed, product_id_range=s.product_id_range,
                          sessions=sessions, as_dicts=as_dicts, shard=s.shard, end_ms=end_ms)
    if not faults:
        return None
    if any(sc.kind == "duplicates" for sc in s.scenario_plan):
        first, numbered, originals = codec.sequence, codec.headers, faults.originals

        def headers(sequence: int) -> list[tuple[str, bytes]]:
            position = sequence - first
            return numbered(first + originals.pop(position, position))
        codec.headers = headers  # type: ignore[method-assign]
    return faults


# --- the producer: the original class, a facade over the run engine ----------------------------------------

class ECommerceEventProducer:
    """Generates weighted random eCommerce events and sends them to Kafka on a fixed schedule.

    The original script's API works as it did: `ECommerceEventProducer()`, `connect()`, `generate_event()`,
    `send_event(event)` (True once the broker acknowledged it), `log_event_details(event)`, `log_statistics()`,
    `start_producing()`, `stop()`; the attributes `bootstrap_servers`, `topic`, `producer_interval`,
    `user_id_range`, `product_id_range`, `session_length_range`, `event_types`, `event_weights` are read when
    connecting and when production starts, so edits made after construction take effect; `running`;
    `stats`, a read-only mapping of "events_sent", "events_failed" and "start_time"; `producer`, the Kafka client
    once connected. Constructed with no settings, it reads KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC,
    PRODUCER_INTERVAL and every other setting from the environment, then ./.env, as the original did.

    Customise the metadata by overriding `_generate_metadata` either way: `_generate_metadata(self)` returns
    the whole metadata (the original form; `super()._generate_metadata()` gives the default one), or
    `_generate_metadata(self, event_type)` returns extra fields merged into it. Random mode and --dry-run
    honour both; sessions mode builds its own metadata and refuses an override with one line.

    Each run is composed by compose_run (a pacing, a source, a codec, a sink); it holds what lasts between runs:
    the settings, the codec (event ids go on), the connection, the last run's DeliveryMonitor.
    """

    def __init__(self, settings: Settings | None = None, clock: Callable[[], int] | None = None) -> None:
        # No settings: read as the original did in __init__, and as main() does less the flags: the environment,
        # then ./.env, then the defaults (bad values raise SettingsError naming the variable).
        self.settings = settings if settings is not None else prepare(load_settings([]))
        s = self.settings
        self.bootstrap_servers = s.bootstrap_servers
        self.topic = s.topic
        self.event_types = [name for name, _ in s.event_weights]
        self.event_weights = [weight for _, weight in s.event_weights]
        self.user_id_range, self.product_id_range = s.user_id_range, s.product_id_range
        self.session_length_range = s.session_length_range
        self.producer_interval = s.seconds_per_event  # seconds between events (the original attribute)
        # Wall clock in epoch ms for event timestamps; injectable so tests and backfills control time.
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.codec, self.connection = JsonCodec(run_id_for(s)), None
        self.delivery = DeliveryMonitor(s, printed=sink_for(s).printed)
        self.running = False
        self.ended_by = "not started"  # why the last run ended, for the summary
        self.engine: RunEngine | None = None  # the current (or last) run
        # SCENARIOS started and stopped on demand (the control server asks it; each run's source does it)
        self.scenario_control = ScenarioControl(s.scenario_plan) if s.scenario_plan else None
        self.on_progress: Callable[[Statistics, int], None] | None = None  # see RunEngine
        self.on_report: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._generator: EventGenerator | None = None
        self._drawn_metadata: dict[str, Any] = {}

    @property
    def stats(self) -> Statistics:
        """The current (or last) run's counts; the original stats dict's keys work on it."""
        return self.delivery.stats

    @property
    def producer(self):
        """The Kafka client (kafka.KafkaProducer) once connected, else None: the original attribute."""
        return self.connection.client if self.connection is not None else None

    # generation -------------------------------------------------------------------------------
    def _compiled_generator(self) -> EventGenerator:
        if self._generator is None:
            self._generator = EventGenerator(self.event_types, self.event_weights, tuple(self.user_id_range),
                                             tuple(self.product_id_range), tuple(self.session_length_range),
                                             seed=self.settings.seed)
        return self._generator

    def _generate_metadata(self, event_type: str | None = None) -> dict[str, Any]:
        """The event's metadata, for overriding (see the class docstring): without an event type (the original
        form) the whole metadata of the event being generated; with one, extra fields (default: none)."""
        if event_type is None:
            return dict(self._drawn_metadata)
        return {}

    def _metadata_overridden(self) -> bool:
        return type(self)._generate_metadata is not ECommerceEventProducer._generate_metadata

    def generate_event(self, epoch_ms: int | None = None) -> dict[str, Any]:
        """One event as the contract dict; `epoch_ms` defaults to the producer's clock."""
        import inspect

        event = self._compiled_generator().event(self.clock() if epoch_ms is None else epoch_ms)
        if self._metadata_overridden() and not inspect.signature(self._generate_metadata).parameters:
            self._drawn_metadata = event["metadata"]  # the original form returns the whole metadata
            event["metadata"] = self._generate_metadata()
        else:
            extra = self._generate_metadata(event["event_type"])
            if extra:
                event["metadata"].update(extra)
        return event

    def log_event_details(self, event: dict[str, Any]) -> None:
        """One log line describing an event (the original script's), its JSON at DEBUG."""
        md = event.get("metadata") or {}
        log.info("Event - User: %s, Event: %s, Product: %s, Session: %smin, Time: %s", event.get("user_id"),
                 event.get("event_type"), md.get("product_id"), md.get("session_length"), event.get("timestamp"))
        log.debug("EVENT DETAILS:\n%s", json.dumps(event, indent=2))

    def next_record(self, epoch_ms: int) -> tuple[bytes, bytes, dict[str, Any]]:
        """(key, JSON value, event) of the next event."""
        event = self.generate_event(epoch_ms)
        return JsonCodec.key(event["user_id"]), JsonCodec.value(event), event

    def _random_events(self, as_dicts: bool) -> RandomEvents:
        """Random mode's source: the generator's fast paths (JSON from look-up tables, or dicts for a schema
        format), or generate_event() one by one when _generate_metadata is overridden."""
        if self._metadata_overridden():
            generate, key = self.generate_event, JsonCodec.key

            def custom(clock: Callable[[], int], n: int) -> list[tuple[int, bytes, dict[str, Any]]]:
                records = []
                for _ in range(n):
                    epoch_ms = clock()
                    event = generate(epoch_ms)
                    records.append((epoch_ms, key(event["user_id"]), event))
                return records
            return RandomEvents(custom, self.clock, gives_events=True)
        generator = self._compiled_generator()
        return RandomEvents(generator.events if as_dicts else generator.records, self.clock, gives_events=as_dicts)

    # connection -------------------------------------------------------------------------------
    def connect(self) -> bool:
        """Connect (retrying with backoff for the connect timeout), make sure the topic exists: True when connected;
        on failure one clear error line and False."""
        s = self._apply_attribute_edits()
        try:
            if s.value_format != "json" and self.codec.subject != f"{s.topic}-value":
                # The schema first: a refusal (unreachable, incompatible) ends the run before Kafka is touched.
                codec = RegistryCodec(s, self.codec.run_id)
                codec.sequence = self.codec.sequence
                codec.open(s.topic, self._stop)
                self.codec = codec
            if self.connection is not None:
                self.connection.close(timeout=s.flush_timeout)
            self.connection = connection_for(s, self._stop, self.clock)
            # A backfill's records are as old as its window: the topic must accept and keep them.
            self.connection.open(oldest_ms=s.start_time if s.simulation_mode == "sessions" else None)
            return True
        except ConnectionFailed as exc:
            self.connection = None
            log.error("%s", exc)
            return False

    def _apply_attribute_edits(self) -> Settings:
        """The original API lets users set bootstrap_servers, topic and producer_interval after construction:
        fold them into the settings, so that every part (connection, topic creation, sends) uses the same."""
        s, changes = self.settings, {}
        if self.bootstrap_servers != s.bootstrap_servers:
            changes["bootstrap_servers"] = parse_bootstrap(self.bootstrap_servers)
        if self.topic != s.topic:
            changes["topic"] = parse_topic(self.topic)
        if self.producer_interval != s.seconds_per_event:
            changes.update(interval=parse_seconds(str(self.producer_interval)), rate=None)
        if changes:
            self.settings = replace(s, **changes)
        return self.settings

    def send_event(self, event: dict[str, Any]) -> bool:
        """Send one event dict and wait for the broker (the original API): True once it acknowledged the event,
        False with one error line when it was refused or failed (counted as failed either way). The produce loop
        does not wait like this; it counts acknowledgements as they come."""
        if self.connection is None and not self.connect():
            return False
        codec, delivery = self.codec, self.delivery
        done, outcome = threading.Event(), []

        def acked(metadata) -> None:
            delivery.on_ack(metadata)
            done.set()

        def failed(exc: BaseException) -> None:
            delivery.on_failure(exc)
            outcome.append(exc)
            done.set()

        delivery.stats.generated += 1
        connection = self.connection
        connection.on_acks = delivery.on_acks
        acked_before = delivery.stats.acked  # before the send: its acknowledgement may be counted at once
        try:
            connection.send(codec.key(event["user_id"]), codec.value(event), codec.timestamp_ms(event),
                            codec.headers(codec.number(1)), acked, failed)
        except connection.refused_errors as exc:
            delivery.on_failure(exc)
            log.error("Event of user %s not sent: %s", event["user_id"], self.stats.last_error)
            return False
        if connection.acks_counted:  # no report of its own: acknowledged once the client holds it no more, unfailed
            connection.flush(self.settings.delivery_timeout_ms / 1000 + 5)
            if delivery.stats.acked > acked_before or outcome:
                done.set()
        if not done.wait(0 if connection.acks_counted else self.settings.delivery_timeout_ms / 1000 + 5):
            log.error("Event of user %s not acknowledged within KAFKA_DELIVERY_TIMEOUT_MS", event["user_id"])
            return False
        if outcome:
            log.error("Event of user %s not acknowledged: %s", event["user_id"], self.stats.last_error)
            return False
        return True

    # the run ----------------------------------------------------------------------------------
    def start_producing(self) -> int:
        """Run until stop(), --count, --duration or the end of the window; flush, close, log statistics. Returns
        the exit code."""
        s = self._apply_attribute_edits()
        if self._metadata_overridden() and (s.simulation_mode == "sessions" or s.value_format != "json"):
            log.error("%s overrides _generate_metadata, %s; expected %s for custom metadata", type(self).__name__,
                      "which sessions mode does not use (it builds the metadata of its simulated shop)"
                      if s.simulation_mode == "sessions" else f"whose fields the {s.value_format} schema "
                      f"({schema_path(s)}) does not describe", "SIMULATION_MODE=random" if s.simulation_mode ==
                      "sessions" else "VALUE_FORMAT=json")
            return EXIT_USAGE
        # Connect unless connected to the same target (connect() may have been called first, as the original
        # script did; a previous run closed its client; the target's attributes may have been edited since).
        connection = self.connection
        connected = connection is not None and connection.connected and \
            (connection.settings.bootstrap_servers, connection.topic) == (s.bootstrap_servers, s.topic)
        if sink_for(s).needs_connection and not connected and not self.connect():
            self.ended_by = "connection failed"
            return EXIT_FAILURE
        self._generator = None  # pick up attribute edits made since construction
        s = replace(s, user_id_range=tuple(self.user_id_range), product_id_range=tuple(self.product_id_range),
                    session_length_range=tuple(self.session_length_range))
        self.engine = engine = compose_run(s, self.codec, self.connection, self._random_events, self.clock, self._stop,
                                           self.scenario_control)
        self.delivery = engine.delivery
        engine.on_progress, engine.on_report = self.on_progress, self.on_report
        self.running = True
        try:
            return engine.run()
        finally:
            self.running = False
            self.ended_by = engine.ended_by
            self._stop.clear()  # the stop request is served; the same instance may run again

    # operations -------------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        """Liveness (/healthz): unhealthy when events are pending and none was acknowledged for HEALTH_TIMEOUT."""
        return self.delivery.health()

    def ready(self) -> tuple[bool, str]:
        """Readiness (/readyz): connected to the broker and not in a reported outage."""
        return self.delivery.ready(self.connection)

    def stop(self) -> None:
        """Ask the loop to stop; from any thread, and again. A signal handler calls stop_from_signal_handler()."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """stop() was asked for and the run has not ended yet."""
        return self._stop.is_set()

    def summary(self, exit_code: int | None, reason: str) -> dict[str, Any]:
        """The run's figures for --summary-json (only acknowledged events count as sent), and where it is."""
        engine = self.engine
        return {"run_id": self.codec.run_id} | self.delivery.summary(exit_code, reason) | {
            "phase": engine.phase if engine is not None else "starting", "outage": self.delivery.outage_reported,
            "slow_link": self.delivery.slow_reported, "in_flight": self.stats.in_flight}

    def log_statistics(self) -> None:
        """The run's figures (see DeliveryMonitor.log_statistics)."""
        self.delivery.log_statistics()


# --- metrics ------------------------------------------------------------------------------------------------

def http_server(address: str, port: int, what: str, setting: str, get: Callable[[str], tuple[int, bytes, str]],
                post: Callable[[str], tuple[int, bytes, str]] | None = None) -> tuple[Any, threading.Thread]:
    """A small HTTP server in a daemon thread (not started): get(path) and post(path) answer (status, body, content
    type); its requests are not logged (scrapes every few seconds would flood the log). ConnectionFailed naming the
    setting when the port cannot be had."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(get(self.path.split("?")[0]))

        def do_POST(self) -> None:  # noqa: N802
            self._answer(post(self.path.split("?")[0]) if post is not None else
                         (405, b"only GET here\n", "text/plain"))

        def _answer(self, reply: tuple[int, bytes, str]) -> None:
            code, body, content_type = reply
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((address, port), Handler)
    except OSError as exc:
        raise ConnectionFailed(f"Cannot serve {what} on {address}:{port} ({exc.strerror}); choose another "
                               f"{setting}") from None
    server.daemon_threads = True
    return server, threading.Thread(target=server.serve_forever, name=what, daemon=True)


class HttpService:
    """A server made by http_server: started and stopped with the run."""

    server: Any
    thread: threading.Thread

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MetricsServer(HttpService):
    """Prometheus metrics on /metrics, liveness on /healthz, readiness on /readyz.

    Metrics are read from the producer's counters when scraped (a custom collector), so the hot
    path pays nothing for them.
    """

    def __init__(self, producer: "ECommerceEventProducer", address: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_StatsCollector(producer))

        def get(path: str) -> tuple[int, bytes, str]:
            if path == "/metrics":
                return 200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"
            if path in ("/healthz", "/readyz"):
                ok, text = producer.health() if path == "/healthz" else producer.ready()
                return 200 if ok else 503, (text + "\n").encode(), "text/plain; charset=utf-8"
            return 404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain"
        self.server, self.thread = http_server(address, port, "metrics", "METRICS_PORT", get)


class ControlServer(HttpService):
    """SCENARIOS on demand: POST /scenarios/NAME/start and /scenarios/NAME/stop; GET /scenarios lists them. Bound to
    127.0.0.1 unless SCENARIO_CONTROL_ADDRESS says otherwise: whoever reaches it changes the stream."""

    def __init__(self, control: ScenarioControl, address: str, port: int) -> None:
        text = "text/plain; charset=utf-8"

        def get(path: str) -> tuple[int, bytes, str]:
            if path.rstrip("/") == "/scenarios":
                return 200, (json.dumps(control.describe(), indent=1) + "\n").encode(), "application/json"
            return 404, b"not found: try GET /scenarios, POST /scenarios/NAME/start or /stop\n", text

        def post(path: str) -> tuple[int, bytes, str]:
            m = re.fullmatch(r"/scenarios/([^/]+)/(start|stop)/?", path)
            if not m:
                return 404, b"not found: try POST /scenarios/NAME/start or /scenarios/NAME/stop\n", text
            code, answer = control.ask(m.group(1), m.group(2))
            return code, (answer + "\n").encode(), text
        self.server, self.thread = http_server(address, port, "scenario control", "SCENARIO_CONTROL_PORT", get, post)


class _StatsCollector:
    def __init__(self, producer: "ECommerceEventProducer") -> None:
        self.producer = producer

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        p, stats = self.producer, self.producer.stats
        prefix = "ecommerce_producer_"
        yield CounterMetricFamily(prefix + "events_generated", "Events generated and handed to the client",
                                  value=stats.generated)
        yield CounterMetricFamily(prefix + "events_sent", "Events acknowledged by the broker", value=stats.acked)
        failed = CounterMetricFamily(prefix + "events_failed", f"Events that failed, by error type: {UNCERTAIN}",
                                     labels=["error"])
        for error, count in sorted(stats.failed_by_error.items()):
            failed.add_metric([error], count)
        yield failed
        yield GaugeMetricFamily(prefix + "events_in_flight", "Events sent but not yet acknowledged or failed",
                                value=stats.in_flight)
        runtime = stats.runtime()
        yield GaugeMetricFamily(prefix + "events_per_second", "Acknowledged events per second since start",
                                value=stats.acked / runtime if runtime > 0 else 0.0)
        ready, _ = p.ready()
        yield GaugeMetricFamily(prefix + "broker_connected", "1 when connected to Kafka and deliveries flow",
                                value=1.0 if ready else 0.0)
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, math.inf), list(stats.latency_buckets)):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
        yield HistogramMetricFamily(prefix + "send_latency_seconds",
                                    f"send() to acknowledgement, 1 in {LATENCY_SAMPLE_EVERY} events sampled",
                                    buckets=buckets, sum_value=stats.latency_sum)


# --- the process: logging, signals, the run summary ---------------------------------------------------------

class SecretFilter(logging.Filter):
    """Masks secrets in every log record, whoever logs them (kafka-python at DEBUG logs its config)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [x for x in secrets if x]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(x in message for x in self.secrets):
                for x in self.secrets:
                    message = message.replace(x, "***")
                record.msg, record.args = message, ()
        return True


class _LogFile(logging.handlers.RotatingFileHandler):
    """LOG_FILE, 10 MB x 3. When it can no longer be written (a full disk), one warning, and the console carries
    on alone: a log line that fails is no reason to stop producing, nor to print a traceback per line."""

    def handleError(self, record: logging.LogRecord) -> None:
        logging.getLogger().removeHandler(self)
        reason = os_reason(sys.exc_info()[1])
        try:
            self.close()
        except OSError:
            pass
        log.warning("LOG_FILE %s cannot be written (%s); logging to the console only from here", self.baseFilename,
                    reason)


class _TerminalConsole(logging.StreamHandler):
    """The console on a terminal: the progress lines become one bar (tqdm) that redraws in place, with the share of a
    window done, the simulated time and the time left; every other line prints above it. (In logs, files and
    containers the progress stays plain lines.)"""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.bar = None

    def emit(self, record: logging.LogRecord) -> None:
        if not hasattr(record, "progress"):
            if self.bar is None:
                super().emit(record)
            else:
                self.bar.write(self.format(record), file=self.stream)
            return
        figures = record.progress
        if figures is None:  # the run's statistics follow: the bar shows where the run ended, and stays
            if self.bar is not None:
                final = getattr(record, "final", None) or {}
                if "done" in final and self.bar.total == 100:  # a window's bar: its last share done
                    self.bar.n = round(final["done"] * 100)
                    self.bar.refresh()
                self.bar.close()
                self.bar = None
            super().emit(record)
            return
        from tqdm import tqdm

        window = "done" in figures
        if self.bar is None:
            self.bar = tqdm(total=100 if window else figures["total"], file=self.stream, dynamic_ncols=True,
                            desc="backfill" if window else "sent", unit="%" if window else " events",
                            bar_format="{desc} {percentage:3.0f}%|{bar}|{postfix}" if window else None)
        self.bar.n = round(figures["done"] * 100) if window else figures["sent"]
        postfix = f"sent={figures['sent']} failed={figures['failed']} {figures['rate']:.0f}/s"
        self.bar.set_postfix_str(f"simulated {figures['simulated']}, eta {figures['eta']}, {postfix}" if window
                                 else postfix)  # also redraws


def setup_logging(settings: Settings, prefix: str = "") -> None:
    fmt = logging.Formatter(f"%(asctime)s - %(levelname)s - {prefix}%(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    # Logs go to stderr so that --dry-run's stdout carries nothing but events.
    secrets = SecretFilter([settings.sasl_password, settings.registry_password])
    terminal = sys.stderr.isatty() and not prefix  # one bar: a worker's progress is the parent's
    console = _TerminalConsole(sys.stderr) if terminal else logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [console]
    unwritable = ""
    if settings.log_file:
        try:
            handlers.append(_LogFile(settings.log_file, maxBytes=10 * 1024 * 1024, backupCount=3, encoding="utf-8"))
        except OSError as exc:
            unwritable = os_reason(exc)
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(secrets)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    if unwritable:
        log.warning("LOG_FILE %s cannot be written (%s); logging to the console only", settings.log_file, unwritable)
    # The registry serializers' HTTP client logs every request at INFO ("HTTP Request: POST ..."): not ours.
    for chatty in ("httpx", "httpx2", "httpcore", "httpcore2"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    # kafka-python's own INFO lines (its IO loop, bootstrap, transport: about 20 a consumer) come from the readers of
    # a topic's offsets too, whatever the client: shown only at DEBUG.
    if root.level > logging.DEBUG:
        logging.getLogger("kafka").setLevel(logging.WARNING)


def print_config(settings: Settings) -> None:
    """--print-config: each setting's effective value and where it came from (flag, environment, .env, default)."""
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    print(f"# effective settings (env file: {settings.env_file})" if settings.env_file_read
          else "# effective settings (no env file read)")
    for name, value, origin in rows:
        print(f"{name:<{width}} = {value}".ljust(width + 40) + f"  # {origin}")


def missing_dependency(needs: list[tuple[str, str, str]]) -> str | None:
    """One line saying how to get what the run needs when a module of it is not installed for this Python (python3
    outside .venv, or a setting whose extra is not installed yet); None when all import."""
    import importlib

    for module, package, target in needs:
        try:
            importlib.import_module(module)
        except ImportError:
            return (f"{package} is not installed for {sys.executable}; `make run ARGS=...` installs what the settings "
                    f"need into .venv (or `make {target}`, then .venv/bin/python producer.py)")
    return None


def stop_from_signal_handler(producer: ECommerceEventProducer) -> None:
    """producer.stop() on a thread of its own. A handler runs in the main thread between two of its bytecodes,
    and stop() sets a threading.Event, whose lock is not reentrant: when the signal comes while the main thread
    is inside that Event's wait() (the run loop's sleep) and holds the lock, stop() there waits for it forever (a
    SIGTERM left a test run hung after its last progress line). The thread takes the lock once the handler has
    returned and the main thread let it go."""
    threading.Thread(target=producer.stop, name="stop-on-signal", daemon=True).start()


def run_process(settings: Settings, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
                on_progress: Callable[[Statistics, int], None] | None = None,
                on_summary: Callable[[dict[str, Any]], None] | None = None, asked_by: str = "") -> int:
    """One producer in this process, from start to exit code: signals, metrics, the run, its summary (to
    settings.summary_json and, at the end, to on_summary). asked_by: what a stop signal means here, said instead of
    the signal's name (a worker's: its parent asked)."""
    producer = ECommerceEventProducer(settings)
    producer.on_progress = on_progress

    def tell(summary: dict[str, Any]) -> None:
        if settings.summary_json:
            write_summary(settings.summary_json, summary)
        if on_summary is not None:
            on_summary(summary)
    if settings.summary_json:
        # The progress channel for scripts and tests: the summary, with the figures so far, rewritten at each progress
        # line (STATS_INTERVAL) and whenever the phase or the broker's reachability changes.
        producer.on_report = lambda: write_summary(settings.summary_json, producer.summary(None, RUNNING))
    # Every event leaves a few short-lived containers behind (kafka-python's futures and their
    # callback lists). With the default threshold of 700 the collector runs every few hundred events
    # and walks them all; at 50,000 it runs a hundred times less often: 10-20% more events per second
    # at full speed, measured by bench/run.py. Reference cycles are still collected.
    gc.set_threshold(50_000, 20, 20)

    def on_signal(signum: int, _frame) -> None:
        if producer.stopping:
            # Second signal: the user wants out now, even if a flush is still waiting on the broker. The figures
            # are cheap and still told: the statistics block and the summary, with what was left counted.
            stats = producer.stats
            left = stats.in_flight
            os.write(2, f"Second signal: exiting now; {left} events left unacknowledged\n".encode())
            stats.dropped_at_shutdown += left
            code = EXIT_FAILURE if left else EXIT_OK
            producer.delivery.log_statistics()
            tell(producer.summary(code, "second signal"))
            os._exit(code)
        log.info("%s, shutting down gracefully...", asked_by or f"Received {signal.Signals(signum).name}")
        stop_from_signal_handler(producer)

    for signum in signals:
        signal.signal(signum, on_signal)
    if settings.summary_json:  # replaced at once: a run that is killed leaves this, not the previous run's figures
        write_summary(settings.summary_json, producer.summary(None, RUNNING))
    metrics = control = None
    try:
        if settings.metrics_port:
            metrics = MetricsServer(producer, settings.metrics_address, settings.metrics_port)
            metrics.start()
            log.info("Metrics on http://%s:%d/metrics, health on /healthz and /readyz",
                     settings.metrics_address, settings.metrics_port)
        if settings.scenario_control_port and producer.scenario_control is not None:
            control = ControlServer(producer.scenario_control, settings.scenario_control_address,
                                    settings.scenario_control_port)
            control.start()
            log.info("Scenario control on http://%s:%d/scenarios (POST /scenarios/NAME/start or /stop)",
                     settings.scenario_control_address, settings.scenario_control_port)
        code, reason = producer.start_producing(), producer.ended_by
    except ConnectionFailed as exc:
        log.error("%s", exc)
        code, reason = EXIT_FAILURE, "connection failed"
    except BrokenPipeError:
        # stdout was closed by its reader (`--dry-run | head`): stop quietly, as command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code, reason = EXIT_OK, "stdout closed"
    except KeyboardInterrupt:
        code, reason = EXIT_FAILURE, "interrupted"
    finally:
        if metrics is not None:
            metrics.stop()
        if control is not None:
            control.stop()
    tell(producer.summary(code, reason))
    return code


def write_summary(path: str, summary: dict[str, Any]) -> None:
    """The run summary, written whole or not at all (a reader never sees half a file)."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        json.dump(summary, out, indent=2)
        out.write("\n")
    os.replace(partial, path)


def log_banner(s: Settings) -> None:
    sink = sink_for(s)
    mix = ", ".join(f"{name}={weight:g}" for name, weight in s.event_weights)
    lines = [
        "=" * 50,
        "eCommerce Event Producer starting",
        f"Kafka: {sink.target(s)}",
        *sink.delivery_settings(s),
        f"Schedule: {_describe_schedule(s)}" + (f", seed {s.seed}" if s.seed is not None else ""),
        f"Events: {mix}; users {s.user_id_range[0]}-{s.user_id_range[1]}, "
        f"products {s.product_id_range[0]}-{s.product_id_range[1]}" if s.simulation_mode == "random" else
        f"Shop: {s.user_id_range[1] - s.user_id_range[0] + 1} customers (ids from {s.user_id_range[0]}; newcomers "
        f"after), products {s.product_id_range[0]}-{s.product_id_range[1]}, time zone {s.shop_timezone}, "
        f"churn signal {s.churn_signal:g}",
        "=" * 50,
    ]
    for line in lines:
        log.info("%s", line)


def _describe_schedule(s: Settings) -> str:
    spe = s.seconds_per_event
    if s.simulation_mode == "sessions":
        return "simulated time" + (" (windows as fast as possible)" if s.start_time is not None else ", live")
    what = "as fast as possible" if spe == 0 else (f"{s.rate:g} events/s" if s.rate else f"one event every {spe:g}s")
    limits = [f"{s.count} events" if s.count else "", f"{s.duration:g}s" if s.duration else ""]
    limits = [x for x in limits if x]
    return what + (f", stopping after {' or '.join(limits)}" if limits else "")


# --- several producer processes: --workers ------------------------------------------------------------------

def worker_settings(s: Settings, worker: int, seed: int | None, start_ms: int) -> Settings:
    """What worker `worker` of s.workers runs: its shard of the users (within s.shard when given), its share of
    --count and, in random mode, of the rate; one shop (seed and start) in sessions mode; ports and files of its
    own."""
    n = s.workers
    index, count = s.shard or (0, 1)
    w = replace(s, workers=1, seed=seed, stats_interval=0, summary_json="", print_config=False,
                metrics_port=s.metrics_port + worker if s.metrics_port else None,
                labels_file=f"{s.labels_file}.part{worker}" if s.labels_file else "",
                truth_file=f"{s.truth_file}.part{worker}" if s.truth_file else "")
    if s.count is not None:
        w = replace(w, count=s.count // n + (1 if worker < s.count % n else 0))
    if s.simulation_mode == "sessions":
        if s.start_time is None:  # live: every worker simulates the same shop from the same instant
            w = replace(w, start_time=start_ms, follow=True)
    elif s.seconds_per_event > 0:
        w = replace(w, rate=1 / s.seconds_per_event / n, interval=s.seconds_per_event * n)
    return with_shard(w, index * n + worker, count * n)


def run_workers(s: Settings) -> int:
    """s.workers producer processes, one Kafka client each, as shards of one stream. The parent logs one
    combined progress line and statistics block, forwards SIGINT/SIGTERM (a second one: the workers exit at
    once), merges the labels, and exits 0 only when every worker did."""
    import ctypes
    import mmap
    import multiprocessing
    import multiprocessing.connection

    n = s.workers
    seed = s.seed
    if seed is None and s.simulation_mode == "sessions":
        seed = random.SystemRandom().randrange(2 ** 31)  # one shop: every worker must simulate the same
        log.info("Sessions mode with %d workers: seed %d (RANDOM_SEED) for the shop they simulate together", n, seed)
    started, start_ms = time.monotonic(), time.time_ns() // 1_000_000
    # fork: the workers start from this process's state (settings, logging), nothing to pickle.
    context = multiprocessing.get_context("fork")
    # Per worker: generated, acked, failed, dropped_at_shutdown, in an anonymous shared mapping that the forked
    # workers inherit (multiprocessing.Array would put a file in /dev/shm or the temporary folder).
    counts = (ctypes.c_int64 * (n * 4)).from_buffer(mmap.mmap(-1, n * 4 * 8))
    # Each worker's summary comes back through a pipe, not a file: no temporary folder is needed (a container
    # with a read-only root file system has none), and a few KB fit in the pipe's buffer, so the worker's
    # last write never waits for the parent.
    pipes = [context.Pipe(duplex=False) for _ in range(n)]
    workers = []
    for w in range(n):
        settings = worker_settings(s, w, seed, start_ms)
        process = context.Process(target=_worker_main, args=(settings, w, n, counts, pipes[w][1], os.getpid()),
                                  name=f"producer-worker-{w}")
        process.start()
        pipes[w][1].close()  # the worker's end: closed here, so a dead worker reads as end of file
        workers.append(process)
    signalled = []

    def on_signal(signum: int, _frame) -> None:
        signalled.append(signum)
        if len(signalled) == 1:
            log.info("Received %s, stopping the %d workers gracefully...", signal.Signals(signum).name, n)
        for process in workers:  # a second signal reaches them as their second: they exit at once
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # The workers' counts as one run's: the progress lines, and the progress channel (--summary-json) as one
    # process writes it.
    delivery = DeliveryMonitor(s, note=f" workers={n}")
    stats = delivery.stats
    stats.started = started

    def progress() -> dict[str, Any]:
        return delivery.summary(None, RUNNING) | {"phase": "running", "outage": False, "in_flight": stats.in_flight,
                                                  "workers": n}
    if s.summary_json:
        write_summary(s.summary_json, progress())
    while any(process.is_alive() for process in workers):
        multiprocessing.connection.wait([process.sentinel for process in workers], timeout=0.2)
        stats.generated, stats.acked, stats.failed, stats.dropped_at_shutdown = (
            sum(counts[w * 4 + i] for w in range(n)) for i in range(4))
        if delivery.report_progress() and s.summary_json:
            write_summary(s.summary_json, progress())
    codes = [process.exitcode for process in workers]
    summaries = []
    for receive, _ in pipes:
        try:
            summaries.append(receive.recv() if receive.poll() else None)
        except (EOFError, OSError):  # died before it could tell
            summaries.append(None)
        receive.close()
    return _combine_workers(s, summaries, counts, codes, started, "stopped" if signalled else "")


def _worker_main(s: Settings, worker: int, n: int, counts, summary_pipe, parent: int) -> None:
    """A worker process: Ctrl-C reaches it through the parent (as SIGTERM), never twice. It never outlives the
    parent (killed with -9, say): it is sent SIGTERM then, and stops as for Ctrl-C, flushing what it has in flight."""
    import ctypes

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_logging(s, prefix=f"worker {worker + 1}/{n}: ")
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux): SIGTERM when the parent dies
    except (AttributeError, OSError):
        pass
    if os.getppid() != parent:  # it died before that was set
        os.kill(os.getpid(), signal.SIGTERM)

    def publish(stats: Statistics, ahead: int) -> None:  # four integers into shared memory, before each batch
        counts[worker * 4:worker * 4 + 4] = [stats.generated + ahead, stats.acked, stats.failed,
                                             stats.dropped_at_shutdown]

    # the parent tells its workers to stop with SIGTERM, whatever it received itself (it says which)
    sys.exit(run_process(s, signals=(signal.SIGTERM,), on_progress=publish, on_summary=summary_pipe.send,
                         asked_by=f"Worker {worker}: asked to stop by the parent"))


def _combine_workers(s: Settings, summaries: list[dict[str, Any] | None], counts, codes: list[int | None],
                     started: float, ended_by: str) -> int:
    """The workers' statistics as one run: counts from their summaries (or, for a worker that died without
    one, its shared counters), the labels merged, the exit code of the worst."""
    delivery = DeliveryMonitor(s)
    stats = delivery.stats
    stats.started = started
    reasons = []
    for w, summary in enumerate(summaries):
        if summary is None:
            generated, acked, failed, _ = counts[w * 4:w * 4 + 4]
            summary = {"generated": generated, "sent": acked, "printed": 0, "failed": failed,
                       "dropped_at_shutdown": generated - acked - failed, "failures_by_error": {},
                       "exit_reason": f"worker died (exit code {codes[w]})"}
            log.error("Worker %d died without its summary (exit code %s): its events are counted from the counters it "
                      "shared at each turn of its loop: %d generated (its last batch included), %d acknowledged, %d "
                      "failed, and %d not acknowledged (in flight when it died, or acknowledged in its last moment: "
                      "they may or may not be in the topic)",
                      w + 1, codes[w], generated, acked, failed, generated - acked - failed)
        stats.generated += summary["generated"]
        stats.acked += summary["sent"] + summary["printed"]
        stats.failed += summary["failed"]
        stats.dropped_at_shutdown += summary["dropped_at_shutdown"]
        for error, k in summary["failures_by_error"].items():
            stats.failed_by_error[error] = stats.failed_by_error.get(error, 0) + k
        reasons.append(summary["exit_reason"])
    if s.labels_file:
        with open(s.labels_file, "w", encoding="utf-8") as out:
            for w in range(len(summaries)):
                part = f"{s.labels_file}.part{w}"
                if os.path.exists(part):
                    with open(part, encoding="utf-8") as f:
                        out.writelines(f)
                    os.unlink(part)
    if s.truth_file:  # each worker's truth is in time order: merged, the shop's is too
        parts = [f"{s.truth_file}.part{w}" for w in range(len(summaries))]
        files = [open(part, encoding="utf-8") for part in parts if os.path.exists(part)]
        with open(s.truth_file, "w", encoding="utf-8") as out:
            out.writelines(merge(*files, key=lambda line: json.loads(line)["time"]))
        for f in files:
            f.close()
            os.unlink(f.name)
    delivery.log_statistics()
    code = EXIT_USAGE if EXIT_USAGE in codes else EXIT_OK if all(c == EXIT_OK for c in codes) else EXIT_FAILURE
    if s.summary_json:
        reason = ended_by or (reasons[0] if len(set(reasons)) == 1 else "; ".join(sorted(set(reasons))))
        write_summary(s.summary_json, delivery.summary(code, reason) | {"workers": len(summaries),
                                                                      "worker_exit_codes": codes})
    return code


# --- main ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    problem = missing_dependency([("dotenv", "python-dotenv", "setup")])
    if problem:
        print(f"producer.py: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings(argv)
        problem = None if settings.print_config else missing_dependency(sink_for(settings).packages(settings))
        if problem:
            print(f"producer.py: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        settings = prepare(settings)
    except SettingsError as exc:
        print(f"producer.py: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.print_config:
        for warning in settings.warnings:
            print(f"producer.py: warning: {warning}", file=sys.stderr)
        try:
            print_config(settings)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    setup_logging(settings)
    for warning in settings.warnings:
        log.warning("%s", warning)
    log_banner(settings)
    if settings.workers > 1:
        return run_workers(settings)
    return run_process(settings)


if __name__ == "__main__":
    sys.exit(main())
