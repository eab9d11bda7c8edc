"""What tests and benchmarks share: a real Kafka broker started for them, topic readers, and a producer run
whose progress they wait on (its --summary-json file, rewritten as the run goes), never a fixed sleep.

conftest.py turns these into fixtures; bench/run.py and the tests import them from here."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

import devkafka
import producer

ROOT = Path(__file__).resolve().parent.parent  # the project's folder


PYTHON = sys.executable


def wait_until(predicate, timeout: float, what: str, poll: float = 0.05):
    """Wait until predicate() gives something true (and return it), polling; fail saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        time.sleep(poll)


running_test: list = []  # the test being set up or run (conftest.py keeps it), to check its broker mark


@dataclass
class Broker:
    bootstrap: str
    info: dict  # devkafka's instance.json when we started it (security listeners), else {}
    state_dir: Path | None = None
    port: int | None = None

    @property
    def security(self) -> bool:
        return bool(self.info.get("security"))


def free_port_block(count: int = 4, start: int = 19092, host: str = "127.0.0.1") -> int:
    """First port p such that p..p+count-1 are all free on host (the address the server will listen on: a port free
    on 127.0.0.1 may be a connection's own on another address of this machine)."""
    port = start
    while port < 60000:
        if all(_free(p, host) for p in range(port, port + count)):
            return port
        port += count + 6
    raise RuntimeError("no free port block found")


def _free(port: int, host: str) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def start_broker(state_name: str, security: bool = False, port: int | None = None,
                 keep_data: bool = False, data_dir: Path | None = None, kafka_version: str | None = None) -> Broker:
    if running_test and running_test[0].get_closest_marker("broker") is None:
        pytest.fail(f"{running_test[0].nodeid} starts a broker: mark it broker (pytest -m 'not broker' must start no JVM)")
    state = ROOT / state_name
    if not keep_data and devkafka.read_pid(devkafka.make_instance(state, 0, False)):
        devkafka.main(["--state-dir", str(state), "down"])  # left over by an interrupted run
    port = port or free_port_block()
    args = ["--state-dir", str(state), "--port", str(port)]
    if data_dir:
        args += ["--data-dir", str(data_dir)]
    if kafka_version:
        args += ["--kafka-version", kafka_version]
    args += ["up", "--timeout", "120"]
    if security:
        args.append("--security")
    if not keep_data:
        args.append("--fresh")  # a test session starts from empty storage; restarts keep it
    code = devkafka.main(args)
    if code != 0:
        pytest.fail(f"could not start the local Kafka broker ({state_name}); see the output above")
    info = json.loads((state / "instance.json").read_text())
    return Broker(bootstrap=info["bootstrap_servers"], info=info, state_dir=state, port=port)


def stop_broker(broker: Broker) -> None:
    if broker.state_dir is not None:
        devkafka.main(["--state-dir", str(broker.state_dir), "--port", str(broker.port), "down"])


CLIENTS = ("kafka-python", "confluent-kafka")


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    """The node id of the partition's leader, as the cluster says now."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)


def event_seq(record) -> int:
    """The sequence number in a record's event_id header ("<run prefix>-<n>"): the order the producer sent it."""
    return int(dict(record.headers)["event_id"].rsplit(b"-", 1)[1])


def each_user_in_send_order(records: list) -> bool:
    """Whether every key's records, in partition order, were sent in that order (one producer's records)."""
    per_user: dict[bytes, list[int]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        per_user.setdefault(r.key, []).append(event_seq(r))
    return all(seq == sorted(seq) for seq in per_user.values())


def consume_all(bootstrap: str, topic: str, expected: int | None = None, timeout: float = 30.0,
                **config) -> list:
    """Every record of the topic (from the beginning) as kafka-python ConsumerRecords.

    Stops when `expected` records were read, or when nothing new arrived for a few seconds after
    the end of every partition was reached, or at the timeout.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=1000, **config)
    try:
        deadline = time.monotonic() + timeout
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if partitions is None:
                time.sleep(0.2)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=100_000)
            for recs in batch.values():
                records.extend(recs)
            if expected is not None and len(records) >= expected:
                break
            if expected is None and all(consumer.position(tp) >= end[tp] for tp in tps):
                break
        return records
    finally:
        consumer.close()


SETTINGS = {o.env for o in producer.OPTIONS if o.env} | {"ENV_FILE"}


def producer_env(env: dict | None, summary: Path) -> dict:
    """The caller's environment without any of the producer's settings (they would change what a test runs), then
    the test's own."""
    full_env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    full_env.update({"LOG_FILE": "", "ENV_FILE": os.devnull, "PYTHONUNBUFFERED": "1", "SUMMARY_JSON": str(summary)})
    full_env.update(env or {})
    return full_env


# One folder for the runs' summaries, removed when the test process ends (TemporaryDirectory's finalizer): a folder
# of its own per run was left in /tmp, over a thousand a session.
summaries: list = []


def _new_summary_path() -> Path:
    import tempfile

    if not summaries:
        summaries.append(tempfile.TemporaryDirectory(prefix="producer-summaries-"))
    return Path(tempfile.mkdtemp(dir=summaries[0].name)) / "summary.json"


def read_summary(path: Path) -> dict | None:
    """The run's --summary-json (what tests read instead of parsing log lines), None when none was written."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def run_producer(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path = ROOT
                 ) -> subprocess.CompletedProcess:
    """Run producer.py as a user would, in a subprocess with a clean environment (no .env); the result has the
    run's summary as `.summary` (None when the run wrote none, e.g. bad settings)."""
    summary = _new_summary_path()
    out = subprocess.run([PYTHON, str(ROOT / "producer.py"), *args], env=producer_env(env, summary), cwd=cwd,
                         capture_output=True, text=True, timeout=timeout)
    out.summary = read_summary(summary)
    return out


def spawn_producer(*args: str, env: dict | None = None, summary: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, str(ROOT / "producer.py"), *args],
                            env=producer_env(env, summary or _new_summary_path()), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class ProducerProcess:
    """producer.py running in the background, its stderr collected line by line as it comes."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        import threading

        self.summary_path = _new_summary_path()
        self.proc = spawn_producer(*args, env=env, summary=self.summary_path)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def progress(self) -> dict | None:
        """The run's figures so far (its --summary-json, rewritten at each progress line and each change of phase
        or outage; `phase`: starting, running, backfill, live, flushing, done), None before the first."""
        try:
            return read_summary(self.summary_path)
        except ValueError:  # replaced atomically, so never half-written; an empty file is not ours
            return None

    def wait_until(self, predicate, timeout: float = 60.0, what: str = "the awaited state") -> dict:
        """Until predicate(progress) holds for the run's progress; fails when the run ends first."""
        def holds():
            progress = self.progress()
            if progress is not None and progress.get("exit_code") is None and predicate(progress):
                return progress
            assert self.proc.poll() is None, f"the run ended before {what}; output:\n{self.text[-3000:]}"
            return None
        try:
            return wait_until(holds, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last progress {self.progress()}; output:\n{self.text[-3000:]}") from None

    def running(self, timeout: float = 60.0) -> dict:
        """Until the run is connected and producing."""
        return self.wait_until(lambda p: p["phase"] not in ("starting",), timeout, "connected and producing")

    def finish(self, timeout: float = 60.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the run did not end within {timeout:g} s; last progress {self.progress()}; "
                                 f"output:\n{self.text[-4000:]}") from None
        self._reader.join(timeout=5)
        return code

    @property
    def summary(self) -> dict:
        """The finished run's --summary-json."""
        summary = read_summary(self.summary_path)
        assert summary is not None, f"no summary was written; output:\n{self.text[-3000:]}"
        return summary

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def ended_after(run: ProducerProcess, more: int) -> int:
    """Once `more` further events are acknowledged (after a fault, say), SIGTERM: the graceful end, which flushes;
    the exit code."""
    import signal

    wait_for_progress(run, sent_over=run.progress()["sent"] + more)
    run.proc.send_signal(signal.SIGTERM)
    # FLUSH_TIMEOUT, then the client's own teardown (librdkafka's waits on its brokers' sockets): one clean-clone CI
    # run of the partition test went past 90 s once, in 40 runs here never past 20 s; its output, if it recurs, says
    return run.finish(timeout=180)


PROGRESS = re.compile(r"Progress: sent=(\d+) failed=(\d+) in_flight=(\d+)")  # what the progress lines say


def wait_for_progress(run: ProducerProcess, sent_over: int, timeout: float = 60.0) -> dict:
    """Until the run's progress shows more than `sent_over` events acknowledged (give it a short --stats-interval:
    its figures are rewritten at each progress line)."""
    return run.wait_until(lambda p: p["sent"] > sent_over, timeout, f"more than {sent_over} acknowledged")


def evening_zone() -> str:
    """A fixed-offset time zone where it is now about 8 pm: live tests then see the shop at its busiest hours,
    whatever time CI runs (the daily cycle would otherwise make their pace depend on it)."""
    offset = (20 - datetime.now(timezone.utc).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS and k != "ENV_FILE"}
    return {**env, "ENV_FILE": os.devnull, **extra}
