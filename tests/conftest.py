"""Shared pytest fixtures: a real Kafka broker for the test session, and helpers to read events back.

The `kafka` fixture starts the local broker (devkafka.py, with its SASL and SSL listeners) once for the session
on free ports and stops it at the end; it never adopts a broker it did not start (one on localhost:9092 may be a
user's, with topics of theirs). A test that needs Kafka fails, never skips, when no broker can be had.

Tests that use a broker (or the schema registry) are marked `broker` (and `registry`) from the fixtures they
take, so `pytest -m "not broker"` runs the pure tests alone, with no JVM; `slow` marks the pure tests that fit
models or wait on the wall clock for seconds, so `make test-pure` (-m "not broker and not slow") takes under a
minute. A test that starts a broker without the marker fails. Tests wait on what the producer
says in its progress channel (the --summary-json file, rewritten as the run goes: `ProducerProcess.wait_until`),
never on its log text or on a fixed sleep.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support import CLIENTS, Broker, running_test, start_broker, stop_broker


BROKER_FIXTURES = {"kafka", "secure_kafka", "restartable", "cluster", "fault_net", "kafka_3_9"}


REGISTRY_FIXTURES = {"registry", "guarded_registry"}
PURE_NICENESS = 5  # the pure tests' CPU priority under `make test` (pytest_runtest_setup)
LONGEST_FIRST = {"test_twin.py"}  # its slow tests fit twins: minutes each under load, the suite's longest


def folder_of(item) -> str:
    """The tests/ folder a test is in (broker, pure, shape): what it needs, and so where and how it runs."""
    return Path(str(item.path)).parent.name


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        kind = folder_of(item)
        if fixtures & (BROKER_FIXTURES | REGISTRY_FIXTURES):
            item.add_marker(pytest.mark.broker)
            if kind != "broker":  # the folders say what a test needs: tests/pure and tests/shape start no JVM
                raise pytest.UsageError(f"{item.nodeid} takes a broker: it belongs in tests/broker/")
        if kind == "broker":
            # `make test` runs two pytest-xdist workers (--dist loadgroup): every test of tests/broker in one of
            # them, one after the other, as in one process (one session broker; the fault suite's namespaces,
            # iptables rules and brokers of its own), while the other takes the pure tests.
            item.add_marker(pytest.mark.xdist_group("broker"))
        else:
            # the pure tests that share a module's fixture (a fitted twin, say) stay on one worker: it is made once
            shared = sorted(name for name, defs in getattr(item, "_fixtureinfo").name2fixturedefs.items()
                            if defs and defs[-1].scope in ("module", "package", "session")
                            and defs[-1].func.__module__.startswith("tests"))  # not pytest's own tmp_path_factory
            if shared:
                item.add_marker(pytest.mark.xdist_group(f"{item.module.__name__}:{'+'.join(shared)}"))
        if fixtures & REGISTRY_FIXTURES:
            item.add_marker(pytest.mark.registry)
    if hasattr(config, "workerinput"):
        # On the xdist workers, the slow pure tests first, the twin fits first of all (a stable sort: each file's
        # order kept otherwise): xdist hands out one-test units in this order once the groups are out, so the
        # longest start early and the run ends on short tests on both workers rather than one fit running on
        # alone (the event-export twin's 220 s and the seasonal twin's 95 s came last in file order).
        def order(item) -> tuple[bool, bool]:
            slow = folder_of(item) == "pure" and item.get_closest_marker("slow") is not None
            return not slow, Path(str(item.path)).name not in LONGEST_FIRST
        items.sort(key=order)


def pytest_runtest_setup(item) -> None:
    running_test[:] = [item]
    # The tests of tests/broker (and the brokers they start) wait on timings: a link judged slow over 5 s, a fencing
    # in 9 s; the folder, not the marker: a test there without a broker fixture runs in their group all the same.
    # The pure tests on the other worker are the CPU's main users; at a lower priority (their subprocesses
    # inherit it) they take what the broker side leaves. Raised once per worker: a worker runs its broker tests
    # first (their group is the largest, handed out first), and lowering a priority again needs root.
    if folder_of(item) != "broker" and os.getpriority(os.PRIO_PROCESS, 0) < PURE_NICENESS:
        os.setpriority(os.PRIO_PROCESS, 0, PURE_NICENESS)


@pytest.fixture(scope="session")
def kafka() -> Broker:
    broker = start_broker(".devkafka-test", security=True)
    try:
        yield broker
    finally:
        stop_broker(broker)


@pytest.fixture(scope="session")
def secure_kafka(kafka: Broker) -> Broker:
    """A broker with the SASL_PLAINTEXT and SSL listeners (the session broker when it has them)."""
    if kafka.security:
        yield kafka
        return
    broker = start_broker(".devkafka-test-secure", security=True)
    try:
        yield broker
    finally:
        stop_broker(broker)


@pytest.fixture(params=CLIENTS)
def client(request) -> str:
    """KAFKA_CLIENT: a test taking this runs with each client library (their guarantees are the same)."""
    return request.param


@pytest.fixture
def topic(request) -> str:
    """A topic name of this test's own."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")
    return f"test-{name}-{uuid.uuid4().hex[:8]}"
