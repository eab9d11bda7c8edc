"""A partition leader lost in a three-broker cluster while the producer writes 1,000 events/s, with each client:
killed (SIGKILL) or frozen for 15 s (SIGSTOP, then SIGCONT). The producer keeps running and says so once; at the
end every acknowledged event is in the topic exactly once (by event_id), in order per user, and nothing
acknowledged is missing. The cluster is devkafka's (`up --brokers 3`): three KRaft broker+controller nodes, the
topic with replication factor 3 and the cluster's min.insync.replicas=2, so one node may go while writes with acks=all go on."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest

import devkafka
import producer
from tests.support import (ROOT, ProducerProcess, consume_all, each_user_in_send_order, ended_after, free_port_block,
                      leader_of, wait_for_progress, wait_until)

STATE = ROOT / ".devkafka-test-cluster"


@dataclass
class Cluster:
    bootstrap: str
    port: int

    def up(self, fresh: bool = False) -> None:
        """Every node running (a node a test killed is started again, on its kept data)."""
        args = ["--state-dir", str(STATE), "--port", str(self.port), "up", "--brokers", "3", "--timeout", "180"]
        assert devkafka.main(args + (["--fresh"] if fresh else [])) == 0, "the cluster did not start"

    def pid(self, node_id: int) -> int:
        return int((STATE / f"node-{node_id}" / "broker.pid").read_text())


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    port = free_port_block(24, 29092)
    running = Cluster(",".join(f"127.0.0.1:{port + devkafka.NODE_PORT_STEP * i}" for i in range(3)), port)
    running.up(fresh=True)
    try:
        yield running
    finally:
        devkafka.main(["--state-dir", str(STATE), "--port", str(port), "down", "--brokers", "3"])


def replicated_topic(cluster: Cluster, topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    try:
        # No min.insync.replicas of its own: the cluster's default must be 2, as the docs say, or acks=all
        # would be acknowledged by one node alone.
        admin.create_topics([NewTopic(topic, 3, 3)])

        def served() -> str | None:  # a new topic's configs may not be served at once
            described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                               ["min.insync.replicas"])], config_filter="all")
            return described["topic"].get(topic, {}).get("min.insync.replicas", {}).get("value")
        assert wait_until(served, 30, "the topic's min.insync.replicas served") == "2"
    finally:
        admin.close()


def produce_through(cluster: Cluster, topic: str, client: str, fault) -> ProducerProcess:
    """1,000 events/s; fault(leader node id) is applied to partition 0's leader once 3,000 are sent; 2,000 more once
    deliveries flow again, then SIGTERM."""
    cluster.up()
    replicated_topic(cluster, topic)
    run = ProducerProcess("--bootstrap-servers", cluster.bootstrap, "--client", client, "--topic", topic, "--rate",
                          "1000", "--duration", "120", "--stats-interval", "0.5", "--user-id-range", "1-5000")
    try:
        wait_for_progress(run, sent_over=3000, timeout=90)
        fault(leader_of(cluster.bootstrap, topic, 0))
        # No acknowledgement comes until the cluster has fenced the node and moved the leadership (about 9 s): the
        # 2,000 more come after the outage and its recovery (said once each: assert_said_once).
        run.wait_until(lambda p: not p["outage"], 90, "the recovery reported")
        code = ended_after(run, 2000)
    finally:
        run.kill()
    assert code == 0, run.text[-4000:]
    return run


def assert_said_once(run: ProducerProcess) -> None:
    """With acks=all every partition waits while the lost node is still in its in-sync replicas (until the cluster
    fences it, about 9 s): the producer reports one outage and one recovery, whatever the client said or not."""
    assert run.text.count("Kafka broker unreachable") == 1, run.text[-4000:]
    assert run.text.count("Kafka broker reachable again") == 1, run.text[-4000:]
    assert "Traceback" not in run.text


def assert_exactly_once_in_order(cluster: Cluster, topic: str, run: ProducerProcess) -> None:
    summary = run.summary
    assert summary["failed"] == 0 and summary["dropped_at_shutdown"] == 0, summary
    sent = summary["sent"]
    assert sent == summary["generated"] > 5_000
    records = consume_all(cluster.bootstrap, topic, expected=sent, timeout=90)
    ids = [dict(r.headers)[producer.EVENT_ID_HEADER] for r in records]
    assert len(set(ids)) == len(ids) == sent  # every acknowledged event, exactly once
    assert each_user_in_send_order(records)  # a user's events in the order they were sent


def test_a_killed_partition_leader_loses_nothing(cluster, topic, client):
    killed = []

    def kill(node_id: int) -> None:
        os.kill(cluster.pid(node_id), signal.SIGKILL)
        killed.append(node_id)

    run = produce_through(cluster, topic, client, kill)
    assert_said_once(run)
    assert_exactly_once_in_order(cluster, topic, run)
    assert leader_of(cluster.bootstrap, topic, 0) != killed[0]  # partition 0 was written on its new leader


def test_a_frozen_partition_leader_loses_nothing(cluster, topic, client):
    def freeze(node_id: int) -> None:
        pid = cluster.pid(node_id)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(15)  # the fault itself: the node is frozen for 15 s (the session timeout fences it at 9 s)
        finally:
            os.kill(pid, signal.SIGCONT)

    run = produce_through(cluster, topic, client, freeze)
    assert_said_once(run)
    assert_exactly_once_in_order(cluster, topic, run)
