"""Faults a Jepsen tester would try, made for real: brokers in a network namespace of the suite's own (netfaults.py),
the producer and the reading consumer outside it, every byte between them on a link the suite cuts, thins or slows
with iptables and a TCP proxy; a broker disk that fills up; the producer killed with -9. Each test, with each
client, reads the topic back with an independent consumer and holds the producer to what it said:
- every acknowledged event is in the topic exactly once (no event id twice; as many as acknowledged, and no more
  than generated), in each user's send order;
- generated = acknowledged + failed + unacknowledged at shutdown, in the summary, and the statistics block agrees;
- the fault and the recovery are each reported once (read from the progress channel to wait, from the log to count).
Needs root, iproute2 and iptables: `make test` installs iptables; CI runs as root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import devkafka
import producer
from tests.support import (ROOT, Broker, ProducerProcess, consume_all, each_user_in_send_order, ended_after, event_seq,
                      free_port_block, leader_of, read_summary, run_producer, start_broker, stop_broker,
                      wait_for_progress)
from netfaults import FaultNet, SlowLink

UNREACHABLE, REACHABLE = "Kafka broker unreachable", "Kafka broker reachable again"
SLOW, KEEPING_UP = "Deliveries are slower than the rate", "Deliveries keep up with the rate again"


@pytest.fixture(scope="module")
def fault_net() -> FaultNet:
    problem = FaultNet.missing_tools()
    if problem:
        pytest.fail(problem)
    net = FaultNet(f"pf{os.getpid() % 100000}", 20 + os.getpid() % 200).open(nodes=3)
    try:
        yield net
    finally:
        net.close()


def broker_in(net: FaultNet, name: str, port: int, **where: str) -> Broker:
    """A broker in node 1's namespace, on its address (where: devkafka's --advertise)."""
    state = ROOT / name
    extra = [f"--{k}={v}" for k, v in where.items()]
    net.start(net.devkafka(1, "--state-dir", str(state), "--host", net.address(1), "--port", str(port), *extra, "up",
                           "--fresh", "--timeout", "120"))
    return Broker(bootstrap=f"{net.address(1)}:{port}", info={}, state_dir=state, port=port)


@pytest.fixture(scope="module")
def net_cluster(fault_net: FaultNet) -> str:
    """Three nodes, each in its own namespace with its own address (so one can be cut off from the others): the
    bootstrap servers; node i (its Kafka node id) is in the net's namespace i."""
    state, port = ROOT / ".devkafka-test-faults-cluster", free_port_block(24, 37000)
    addresses = ",".join(fault_net.address(i) for i in (1, 2, 3))
    fault_net.start(*(fault_net.devkafka(i, "--state-dir", str(state), "--port", str(port), "--brokers", "3",
                                         "--host", addresses, "--node", str(i), "up", "--fresh", "--timeout", "150")
                      for i in (1, 2, 3)))
    try:
        yield ",".join(f"{a}:{port + 10 * i}" for i, a in enumerate(addresses.split(",")))
    finally:
        devkafka.main(["--state-dir", str(state), "--port", str(port), "--brokers", "3", "down"])
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def single(fault_net: FaultNet) -> Broker:
    broker = broker_in(fault_net, ".devkafka-test-faults", free_port_block(4, 36000))
    try:
        yield broker
    finally:
        stop_broker(broker)


def reported(run: ProducerProcess) -> dict[str, int]:
    """How many times the run said each: the outage and its recovery, the slow link and its recovery."""
    return {line: run.text.count(line) for line in (UNREACHABLE, REACHABLE, SLOW, KEEPING_UP)}


def held_to_its_word(run: ProducerProcess, bootstrap: str, topic: str, outages: int | None = 1) -> dict:
    """The checks every fault ends with (see the module docstring); the summary. outages: how many times the outage
    and the recovery are each said (None: the test counts its own reports)."""
    summary = run.summary
    generated, sent, failed, dropped = (summary[k] for k in ("generated", "sent", "failed", "dropped_at_shutdown"))
    assert generated == sent + failed + dropped, summary
    assert f"Events Generated: {generated}" in run.text and f"Events Sent: {sent}" in run.text  # the block agrees
    records = consume_all(bootstrap, topic, expected=generated if failed + dropped == 0 else None, timeout=60)
    ids = Counter(dict(r.headers)[producer.EVENT_ID_HEADER] for r in records)
    assert not [i for i, n in ids.items() if n > 1], "an event is in the topic twice"
    assert sent <= len(ids) <= generated, (sent, len(ids), generated)  # every acknowledged event is there
    assert {i.rsplit(b"-", 1)[0] for i in ids} == {summary["run_id"].encode()}
    assert each_user_in_send_order(records)
    if outages is not None:
        assert run.text.count(UNREACHABLE) == outages and run.text.count(REACHABLE) == outages, run.text[-4000:]
    return summary


def producing(broker: Broker, topic: str, client: str, *args: str) -> ProducerProcess:
    return ProducerProcess("--bootstrap-servers", broker.bootstrap, "--client", client, "--topic", topic,
                           "--stats-interval", "0.5", "--duration", "120", *args)  # the duration: a bound only


# --- partitions -------------------------------------------------------------------------------------------

def test_a_partition_shorter_than_the_delivery_timeout_loses_nothing(fault_net, single, topic, client):
    run = producing(single, topic, client, "--rate", "500", "--delivery-timeout-ms", "40000", "--request-timeout-ms",
                    "10000")
    try:
        wait_for_progress(run, sent_over=1500)
        with fault_net.partition(1, single.port):
            run.wait_until(lambda p: p["outage"], 20, "the partition reported")
            time.sleep(3)  # the fault itself: the broker stays cut off a while longer
        run.wait_until(lambda p: not p["outage"], 40, "the recovery reported")
        code = ended_after(run, 1000)
    finally:
        run.kill()
    assert code == 0, run.text[-3000:]
    summary = held_to_its_word(run, single.bootstrap, topic)
    assert summary["failed"] == summary["dropped_at_shutdown"] == 0 and summary["sent"] > 4000


def test_a_partition_longer_than_the_delivery_timeout_fails_what_it_must_and_says_so(fault_net, single, topic,
                                                                                      client):
    """Events past the delivery timeout are counted failed (exit 1), as not acknowledged: they may or may not be in
    the topic. Production resumes after the partition heals."""
    run = producing(single, topic, client, "--rate", "300", "--delivery-timeout-ms", "8000", "--request-timeout-ms",
                    "3000")
    try:
        wait_for_progress(run, sent_over=900)
        with fault_net.partition(1, single.port):
            run.wait_until(lambda p: p["outage"], 20, "the partition reported")
            run.wait_until(lambda p: p["failed"] > 0, 30, "events past the delivery timeout counted failed")
            time.sleep(2)  # the fault itself: a while longer, so more expire
        run.wait_until(lambda p: not p["outage"], 60, "the recovery reported")
        code = ended_after(run, 300)  # production goes on
    finally:
        run.kill()
    assert code == 1, run.text[-3000:]
    summary = held_to_its_word(run, single.bootstrap, topic)
    assert summary["failed"] > 0 and "not acknowledged; may or may not be in the topic" in run.text


# --- a node of a cluster cut off -------------------------------------------------------------------------------

def test_the_leader_cut_off_from_its_followers_and_the_producer_loses_no_acknowledged_event(fault_net, net_cluster,
                                                                                            topic, client):
    """Three nodes, one address each, replication factor 3, min.insync.replicas 2, acks=all: the leader of one
    partition is cut off from the other two nodes and from the producer for 20 s. The cluster fences it and elects
    another leader; on healing, whatever it had written alone is truncated, but it had acknowledged none of it. The
    producer says each change it sees once, each with its end: an outage while nothing is acknowledged (every
    partition waits while the lost node is still in their in-sync replicas, about 9 s), a slow link while the other
    partitions' acknowledgements go on and partition 0's wait for its new leader; on healing, acknowledgements often
    stop once more for about 9 s with either client while the node rejoins, and that is said too, with its end. The
    run is ended only once it has caught up (nothing reported, under a second of events in flight): between one
    report's end and the next one's start (the slow link is judged over 5 s) the run is not yet settled."""
    bootstrap = net_cluster
    run = ProducerProcess("--bootstrap-servers", bootstrap, "--client", client, "--topic", topic, "--rate", "1000",
                          "--duration", "120", "--stats-interval", "0.5", "--topic-replication", "3",
                          "--user-id-range", "1-5000")
    try:
        wait_for_progress(run, sent_over=3000, timeout=90)
        with fault_net.isolate(leader_of(bootstrap, topic, 0)):
            run.wait_until(lambda p: p["outage"] or p["slow_link"], 30, "the lost leader reported")
            time.sleep(12)  # the fault itself: 20 s or so in all, past the cluster's fencing (9 s)
        run.wait_until(lambda p: not p["outage"] and not p["slow_link"] and p["in_flight"] < 1000, 120,
                       "the recovery reported and the backlog sent")
        code = ended_after(run, 2000)
    finally:
        run.kill()
    assert code == 0, run.text[-4000:]
    said = reported(run)
    assert said[UNREACHABLE] == said[REACHABLE] <= 2 and said[SLOW] == said[KEEPING_UP] <= 1, said
    assert said[UNREACHABLE] + said[SLOW] >= 1, said
    summary = held_to_its_word(run, bootstrap, topic, outages=None)
    assert summary["failed"] == summary["dropped_at_shutdown"] == 0 and summary["sent"] > 10_000


# --- a lossy, slow link ------------------------------------------------------------------------------------

def test_a_lossy_slow_link_is_reported_once_with_its_recovery_and_loses_nothing(fault_net, topic, client):
    """The broker is reached only through a proxy that then adds 200 ms and a 60 KB/s cap, while 10% of the packets
    between it and the broker are dropped: at 2,000 events/s the acknowledgements fall behind the rate, and the
    producer says so once; when the link is good again, once more. With a tenth of the packets lost, a request can
    go unanswered past the client's timeout and the client drops its connection: then deliveries have really stopped,
    and the producer may say the broker is unreachable, once, with its recovery (seen once in CI with kafka-python)."""
    port, proxy_port = free_port_block(4, 38000), free_port_block(1, 38100, fault_net.host)
    link = SlowLink((fault_net.host, proxy_port), (fault_net.address(1), port)).start()
    broker = broker_in(fault_net, ".devkafka-test-faults-slow", port, advertise=f"{fault_net.host}:{proxy_port}")
    try:
        run = producing(broker, topic, client, "--rate", "2000")
        try:
            wait_for_progress(run, sent_over=4000)
            link.set(0.2, 60_000)
            with fault_net.lossy(1, port, 0.1):
                run.wait_until(lambda p: p["slow_link"], 25, "the slow link reported")
                link.set(0, 0)
            run.wait_until(lambda p: not p["slow_link"], 30, "deliveries keeping up again")
            code = ended_after(run, 2000)
        finally:
            run.kill()
        assert code == 0, run.text[-3000:]
        said = reported(run)
        assert said[SLOW] == said[KEEPING_UP] == 1 and said[UNREACHABLE] == said[REACHABLE] <= 1, said
        summary = held_to_its_word(run, broker.bootstrap, topic, outages=None)
        assert summary["failed"] == summary["dropped_at_shutdown"] == 0
    finally:
        stop_broker(broker)
        link.stop()


# --- a broker disk that fills up ---------------------------------------------------------------------------------

@pytest.mark.broker
def test_a_broker_whose_disk_fills_up_stops_and_nothing_acknowledged_is_lost(topic, client, tmp_path):
    """The broker's data lives on a 64 MB tmpfs, filled but for 2 MB: it halts when the disk is full (Kafka stops a
    broker whose only log folder fails). The producer reports it unreachable, keeps what is in flight, and once the
    disk has room and the broker is back, delivers it all."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True)
    name, port = ".devkafka-test-faults-disk", free_port_block(4, 39000)
    broker = None
    try:
        broker = start_broker(name, port=port, data_dir=disk / "data")
        filler = disk / "filler"
        with open(filler, "wb") as f:
            f.truncate(0)
            room = shutil.disk_usage(disk).free - 2 * 2 ** 20
            f.write(b"\0" * room)
        run = producing(broker, topic, client, "--rate", "2000")
        try:
            wait_for_progress(run, sent_over=1000)
            run.wait_until(lambda p: p["outage"], 60, "the broker gone with a full disk")
            assert not devkafka._alive(int((broker.state_dir / "broker.pid").read_text()))  # it halted
            filler.unlink()
            broker = start_broker(name, port=port, data_dir=disk / "data", keep_data=True)
            run.wait_until(lambda p: not p["outage"], 90, "the recovery reported")
            code = ended_after(run, 2000)
        finally:
            run.kill()
        assert code == 0, run.text[-3000:]
        summary = held_to_its_word(run, broker.bootstrap, topic)
        assert summary["failed"] == summary["dropped_at_shutdown"] == 0
    finally:
        if broker is not None:
            stop_broker(broker)
        subprocess.run(["umount", "-l", str(disk)], check=False)


# --- the producer killed -----------------------------------------------------------------------------------

def test_sigkill_loses_at_most_the_in_flight_events_of_its_last_progress(kafka, topic, client):
    """kill -9 gives no chance to flush: what can be missing is what was in flight. The progress channel's last
    figures (rewritten at each progress line) bound it: of the events generated by then, the ones missing from the
    topic are at most those in flight then, and everything acknowledged by then is there, once."""
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--rate",
                          "1000", "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=2000)
        run.proc.send_signal(signal.SIGKILL)
        run.finish(timeout=30)
    finally:
        run.kill()
    # The summary was replaced as the run began, then at each progress line: a killed run leaves the figures of its
    # last one, never those of an earlier run.
    left = read_summary(run.summary_path)
    assert left["exit_code"] is None and left["exit_reason"] == producer.RUNNING and left["started_at"]
    sent, failed, in_flight = left["sent"], left["failed"], left["in_flight"]
    assert sent > 2000 and failed == 0 and left["generated"] == sent + failed + in_flight
    records = consume_all(kafka.bootstrap, topic, timeout=30)
    assert {dict(r.headers)[producer.EVENT_ID_HEADER].rsplit(b"-", 1)[0] for r in records} == {left["run_id"].encode()}
    assert len(records) >= sent  # everything reported as sent is in the topic
    assert len({dict(r.headers)[producer.EVENT_ID_HEADER] for r in records}) == len(records)
    assert each_user_in_send_order(records)
    present = {event_seq(r) for r in records}
    missing = sum(1 for seq in range(1, left["generated"] + 1) if seq not in present)
    assert missing <= in_flight, (missing, in_flight)


def test_a_backfill_killed_and_run_again_has_each_event_of_its_window_once(kafka, topic, client):
    """A seeded window has the same events, with the same ids, on every run: killed with -9 part way (events in
    flight lost or not), the rerun finds what its predecessor put in each partition, sends the rest, and the topic
    then holds the window's events exactly once each, the ones the dry run prints, in each user's order."""
    window = ["--mode", "sessions", "--seed", "4", "--user-id-range", "1-20000", "--start-time",
              "2026-10-01T00:00:00Z", "--end-time", "2026-10-06T00:00:00Z", "--client", client]
    expected = run_producer(*window, "--dry-run").stdout.splitlines()
    assert len(expected) > 50_000
    target = ["--bootstrap-servers", kafka.bootstrap, "--topic", topic]
    first = ProducerProcess(*window, *target, "--stats-interval", "0.2")
    try:
        wait_for_progress(first, sent_over=len(expected) // 3)
        first.proc.send_signal(signal.SIGKILL)
        first.finish(timeout=30)
    finally:
        first.kill()
    again = run_producer(*window, *target)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = again.summary
    assert summary["already_in_topic"] > len(expected) // 3 and "are already in topic" in again.stderr
    assert summary["already_in_topic"] + summary["generated"] == len(expected) == \
        summary["already_in_topic"] + summary["sent"]
    records = consume_all(kafka.bootstrap, topic, expected=len(expected), timeout=90)
    by_seq = Counter(event_seq(r) for r in records)
    assert len(records) == len(expected) and set(by_seq) == set(range(1, len(expected) + 1))  # once each, no gap
    assert [r.value.decode() for r in sorted(records, key=event_seq)] == expected
    assert each_user_in_send_order(records)


def test_a_counted_window_run_again_sends_nothing_and_says_its_count_was_reached(kafka, topic):
    """A rerun of a finished --count window finds all its events in the topic: none generated, none sent, and it
    still ends because the count was reached (the events counted are the ones already there)."""
    window = ["--mode", "sessions", "--seed", "5", "--user-id-range", "1-2000", "--start-time", "2026-10-01T00:00:00Z",
              "--end-time", "2026-10-03T00:00:00Z", "--count", "3000", "--bootstrap-servers", kafka.bootstrap,
              "--topic", topic]
    first, again = run_producer(*window), run_producer(*window)
    assert first.returncode == 0 == again.returncode, again.stderr[-3000:]
    assert first.summary["sent"] == 3000 and first.summary["exit_reason"] == "count reached"
    assert again.summary["already_in_topic"] == 3000 and again.summary["sent"] == again.summary["generated"] == 0
    assert again.summary["exit_reason"] == "count reached"
    assert len(consume_all(kafka.bootstrap, topic, expected=3000)) == 3000


def test_the_fault_suite_can_run_here():
    """Root, ip and iptables: what the suite needs is on this machine (`make test` installs iptables)."""
    assert FaultNet.missing_tools() == ""
    assert Path("/proc/self/ns/net").exists()
