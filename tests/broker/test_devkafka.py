"""The local broker helper: it starts a real Kafka broker, talks Kafka, and cleans up after itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

import devkafka
from tests.support import ROOT, consume_all, free_port_block, start_broker, stop_broker


def test_broker_answers_a_real_metadata_request(kafka):
    host, _, port = kafka.bootstrap.split(",")[0].rpartition(":")
    assert devkafka.metadata_request(host, int(port)) == 1
    assert devkafka.broker_answers(host, int(port))
    # A port with no Kafka behind it does not count as a broker.
    assert not devkafka.broker_answers("127.0.0.1", free_port_block(1, 41000))


def test_second_up_on_a_running_broker_is_a_no_op(kafka, capsys):
    port = kafka.bootstrap.split(",")[0].rpartition(":")[2]
    assert devkafka.main(["--port", port, "up"]) == 0
    assert "already answers" in capsys.readouterr().out


def test_kafka_python_records_read_back_by_kafkas_java_console_consumer(kafka, topic):
    """Produce with kafka-python, consume with Kafka's own ConsoleConsumer (a client nobody here wrote)."""
    from kafka import KafkaProducer

    sent = {f"key-{i}": f"value-{i}-{uuid.uuid4().hex}" for i in range(20)}
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for key, value in sent.items():
        producer.send(topic, value=value.encode(), key=key.encode())
    producer.flush()
    producer.close()

    out = subprocess.run(
        [sys.executable, str(ROOT / "devkafka.py"), "tool", "console-consumer", "--bootstrap-server", kafka.bootstrap,
         "--topic", topic, "--from-beginning", "--max-messages", str(len(sent)), "--timeout-ms", "20000",
         "--property", "print.key=true"],
        capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    got = dict(line.split("\t", 1) for line in out.stdout.splitlines() if "\t" in line)
    assert got == sent


def test_topic_tool_describes_partitions(kafka, topic):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    out = subprocess.run([sys.executable, str(ROOT / "devkafka.py"), "tool", "topics", "--bootstrap-server",
                          kafka.bootstrap, "--describe", "--topic", topic], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "PartitionCount: 2" in out.stdout


@pytest.mark.broker
def test_down_stops_the_jvm_and_leaves_no_process(tmp_path):
    broker = start_broker(".devkafka-test-down")
    pid = int((broker.state_dir / "broker.pid").read_text())
    assert devkafka._alive(pid)
    stop_broker(broker)
    assert not devkafka._alive(pid)
    assert not devkafka.broker_answers("127.0.0.1", broker.port)
    leftover = subprocess.run(["pgrep", "-f", f"devkafka.state={broker.state_dir}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""
    shutil.rmtree(broker.state_dir, ignore_errors=True)


def test_missing_java_is_one_clear_line_not_a_traceback(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no java, no mvn
    port = free_port_block(4, 42000)
    out = subprocess.run([sys.executable, str(ROOT / "devkafka.py"), "--state-dir", str(tmp_path / "s"),
                          "--port", str(port), "up"], capture_output=True, text=True, env=env, timeout=30)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "not found on PATH: install" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_port_taken_by_something_else_is_reported(tmp_path):
    port = free_port_block(4, 43000)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        inst = devkafka.make_instance(tmp_path, port, security=False)
        with pytest.raises(devkafka.DevKafkaError, match=f"port {port} .* not a Kafka broker"):
            devkafka.up(inst)


def test_asking_for_another_port_than_the_running_brokers_names_the_port_it_answers_on(kafka, capsys):
    """`make run KAFKA_BOOTSTRAP_SERVERS=localhost:9999` with the local broker on its own port: not "stop it" as if
    it were broken, but where it answers."""
    other = free_port_block(4, 46000)
    code = devkafka.main(["--state-dir", str(kafka.state_dir), "--port", str(other), "up"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert f"answers on {kafka.bootstrap}, not on 127.0.0.1:{other}" in err
    assert f"KAFKA_BOOTSTRAP_SERVERS=localhost:{kafka.port}" in err
    assert devkafka.broker_answers("127.0.0.1", kafka.port)  # left running


def test_consume_all_helper_reads_what_was_written(kafka, topic):
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap)
    for i in range(5):
        producer.send(topic, f"{i}".encode())
    producer.flush()
    producer.close()
    assert sorted(r.value for r in consume_all(kafka.bootstrap, topic, expected=5)) == [b"0", b"1", b"2", b"3", b"4"]


@pytest.mark.broker
def test_racing_starts_share_one_broker_which_keeps_its_data_until_reset():
    """Two `make run` at once on a cold machine: one starts the broker, the other waits and uses it. A restart
    keeps every topic and event; only `reset` wipes them. (Options also work after the command.)"""
    from kafka import KafkaAdminClient, KafkaProducer

    state = ROOT / ".devkafka-test-keep"
    devkafka.main(["reset", "--state-dir", str(state)])
    port = free_port_block()
    where = ["--state-dir", str(state), "--port", str(port)]
    up = [sys.executable, str(ROOT / "devkafka.py"), "up", *where, "--timeout", "120"]
    try:
        racers = [subprocess.Popen(up, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outs = [racer.communicate(timeout=200)[0] for racer in racers]
        assert [racer.returncode for racer in racers] == [0, 0], outs
        assert sum(f"Kafka {devkafka.DEFAULT_KAFKA_VERSION} broker up" in out for out in outs) == 1, outs
        assert sum("already answers" in out for out in outs) == 1, outs
        assert "Traceback" not in "".join(outs)

        bootstrap, topic = f"127.0.0.1:{port}", f"kept-{uuid.uuid4().hex[:8]}"
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(5):
            producer.send(topic, f"{i}".encode()).get(timeout=30)
        producer.close()
        assert devkafka.main(["down", *where]) == 0
        assert devkafka.main(["up", *where]) == 0
        assert sorted(r.value for r in consume_all(bootstrap, topic, expected=5)) == [b"0", b"1", b"2", b"3", b"4"]

        assert devkafka.main(["reset", *where]) == 0
        assert devkafka.main(["up", *where]) == 0
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            assert topic not in admin.list_topics()
        finally:
            admin.close()
    finally:
        devkafka.main(["reset", *where])
        shutil.rmtree(state, ignore_errors=True)


def test_options_go_before_or_after_the_command():
    parser = devkafka.build_parser()
    for argv in (["--port", "19999", "status"], ["status", "--port", "19999"], ["up", "--port", "19999", "--fresh"]):
        args = parser.parse_args(argv)
        assert args.port == 19999, argv
    assert parser.parse_args(["status"]).port == int(os.environ.get("DEVKAFKA_PORT", devkafka.DEFAULT_PORT))


def test_configs_tool_sets_a_topics_retention(kafka, topic):
    """README's fix for a backfill that retention would delete runs with the helper."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        out = subprocess.run([sys.executable, str(ROOT / "devkafka.py"), "tool", "configs", "--bootstrap-server",
                              kafka.bootstrap, "--alter", "--entity-type", "topics", "--entity-name", topic,
                              "--add-config", "retention.ms=-1"], capture_output=True, text=True, timeout=90)
        assert out.returncode == 0, out.stderr
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, ["retention.ms"])])
        assert described["topic"][topic]["retention.ms"]["value"] == "-1"
    finally:
        admin.close()
