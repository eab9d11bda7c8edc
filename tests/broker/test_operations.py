"""Running it in production: broker restarts and outages, shutdown under load, SASL/SSL against the real
broker, metrics and health, hostile settings. Every scenario runs against a real Kafka broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

import producer
from tests.support import (PROGRESS, ROOT, Broker, ProducerProcess, producer_env, consume_all, each_user_in_send_order,
                      ended_after, free_port_block, run_producer, start_broker, stop_broker, wait_for_progress,
                      wait_until)



def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture(scope="module")
def restartable() -> Broker:
    """A broker of this module's own, which the tests stop and start again (same data folder)."""
    broker = start_broker(".devkafka-test-ops")
    try:
        yield broker
    finally:
        stop_broker(broker)


def restart_after(broker: Broker, down_seconds: float) -> None:
    stop_broker(broker)
    time.sleep(down_seconds)  # the fault itself: the broker stays down this long
    restarted = start_broker(".devkafka-test-ops", port=broker.port, keep_data=True)
    assert restarted.bootstrap == broker.bootstrap


# --- broker faults --------------------------------------------------------------------------------

def test_broker_restart_loses_nothing_duplicates_nothing_reorders_nothing(restartable, topic, client):
    run = ProducerProcess("--bootstrap-servers", restartable.bootstrap, "--client", client,
                          "--topic", topic, "--rate", "500",
                          "--duration", "120", "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=3000)  # six seconds of events before the broker goes
        restart_after(restartable, 10)
        run.wait_until(lambda p: not p["outage"], 60, "the recovery reported")
        assert ended_after(run, 1500) == 0, run.text[-3000:]  # deliveries flow again; then SIGTERM
    finally:
        run.kill()
    out = run.text
    assert out.count("Kafka broker unreachable") == 1, out
    assert out.count("Kafka broker reachable again") == 1, out
    summary = run.summary
    generated, sent, failed, dropped = (summary[k] for k in ("generated", "sent", "failed", "dropped_at_shutdown"))
    assert generated == sent + failed + dropped
    assert sent >= 8_000 and failed == 0 and dropped == 0

    records = consume_all(restartable.bootstrap, topic, expected=sent, timeout=60)
    ids = [dict(r.headers)[producer.EVENT_ID_HEADER] for r in records]
    assert len(records) == sent and len(set(ids)) == sent  # every acknowledged event, exactly once
    assert each_user_in_send_order(records)


def test_a_new_producer_right_after_a_restart_on_kept_data_loses_nothing(restartable, topic, client):
    """Issue 10: after a restart on kept data, a new run failed 13 events with OutOfOrderSequenceNumberError.
    kafka-python fails every batch in flight when it bumps its epoch after such an error, and a partition
    without a leader yet right after the restart is what starts it; the producer now waits for the leaders."""
    first = run_producer("--bootstrap-servers", restartable.bootstrap, "--client", client,
                         "--topic", topic, "--interval", "0",
                         "--count", "5000")
    assert first.returncode == 0, first.stderr[-2000:]
    restart_after(restartable, 0)
    out = run_producer("--bootstrap-servers", restartable.bootstrap, "--client", client,
                       "--topic", topic, "--interval", "0",
                       "--count", "30000")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.summary["failed"] == 0 and "OutOfOrderSequence" not in out.stderr
    assert out.summary["sent"] == 30000
    assert len(consume_all(restartable.bootstrap, topic, expected=35000, timeout=60)) == 35000  # kept, and added


def test_long_outage_expires_events_as_failed_bounded_and_recovers(restartable, topic, client):
    port = free_port_block(1, 45000)
    cap = 400
    run = ProducerProcess("--bootstrap-servers", restartable.bootstrap, "--client", client,
                          "--topic", topic, "--rate", "200",
                          "--delivery-timeout-ms", "4000", "--request-timeout-ms", "2000", "--max-in-flight",
                          str(cap), "--stats-interval", "1", "--metrics-port", str(port),
                          "--metrics-address", "127.0.0.1", "--health-timeout", "2")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_progress(run, sent_over=400)
        assert http_get(base + "/healthz")[0] == 200 and http_get(base + "/readyz")[0] == 200
        stop_broker(restartable)
        outage_started = time.monotonic()
        run.wait_until(lambda p: p["outage"], 20, "the outage reported")
        # Liveness turns unhealthy once nothing was acknowledged for HEALTH_TIMEOUT (2 s) with events pending.
        health, health_text = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(base + "/healthz")),
                                         10, "/healthz unhealthy")
        ready = http_get(base + "/readyz")[0]
        metrics_during = http_get(base + "/metrics")[1]
        time.sleep(max(0.0, 12 - (time.monotonic() - outage_started)))  # the fault itself: 12 s without a broker
        start_broker(".devkafka-test-ops", port=restartable.port, keep_data=True)
        sent_at_recovery = run.wait_until(lambda p: not p["outage"], 60, "the recovery reported")["sent"]
        wait_for_progress(run, sent_over=sent_at_recovery + 400)
        assert http_get(base + "/healthz")[0] == 200
        run.proc.send_signal(signal.SIGTERM)
        code = run.finish(timeout=60)
    finally:
        run.kill()
    out = run.text
    assert health == 503 and "none acknowledged" in health_text, health_text
    assert ready == 503
    assert re.search(r'ecommerce_producer_broker_connected \S*0\.0', metrics_during)

    summary = run.summary
    generated, sent, failed, dropped = (summary[k] for k in ("generated", "sent", "failed", "dropped_at_shutdown"))
    assert failed > 0, "events older than the delivery timeout must be counted as failed"
    assert generated == sent + failed + dropped
    assert code == 1  # honest exit: not every event was acknowledged
    # Memory stays bounded: never more than the cap in flight (generation pauses at the cap).
    assert max(int(m[2]) for m in PROGRESS.findall(out)) <= cap
    assert "generation paused" in out
    # One summarised line per burst of failures, not one per event.
    failure_lines = [line for line in out.splitlines() if "events failed since the last report" in line]
    assert 1 <= len(failure_lines) <= 6, failure_lines
    assert "KafkaTimeoutError" in out or "expired" in out.lower() or "MSG_TIMED_OUT" in out
    assert "IllegalStateError" not in summary["failures_by_error"]  # a replaced client's failures: the timeout
    # librdkafka's own log comes through ours (never raw "%3|...|FAIL|" lines on stderr), once per change of state:
    # a reconnect attempt every 2 s for 12 s would otherwise repeat its line.
    assert "%3|" not in out and "%4|" not in out
    assert out.count("librdkafka FAIL") <= 4, [line for line in out.splitlines() if "librdkafka" in line]
    # Production resumed after the broker came back.
    assert sent > sent_at_recovery
    records = consume_all(restartable.bootstrap, topic, expected=sent, timeout=60)
    ids = [dict(r.headers)[producer.EVENT_ID_HEADER] for r in records]
    assert len(set(ids)) == len(ids)  # no duplicates
    assert len(ids) >= sent  # every acknowledged event is there


def test_duration_holds_while_generation_is_paused_at_the_in_flight_cap(restartable, topic, client):
    """The broker goes away, generation pauses at MAX_IN_FLIGHT_EVENTS, and --duration still ends the run on time
    (the wait for room used to wait for the delivery timeout)."""
    run = ProducerProcess("--bootstrap-servers", restartable.bootstrap, "--client", client, "--topic", topic,
                          "--rate", "200", "--max-in-flight", "50", "--duration", "8", "--flush-timeout", "2",
                          "--delivery-timeout-ms", "120000", "--stats-interval", "1")
    try:
        wait_for_progress(run, sent_over=100)
        stop_broker(restartable)
        run.wait_until(lambda p: p["in_flight"] >= 50, 20, "generation paused at the cap")
        paused = time.monotonic()
        code = run.finish(timeout=60)
        ended = time.monotonic()
    finally:
        run.kill()
        start_broker(".devkafka-test-ops", port=restartable.port, keep_data=True)
    summary = run.summary
    assert summary["exit_reason"] == "duration reached" and code == 1
    assert summary["runtime_seconds"] < 8 + 2 + 5, summary  # the duration, the flush, the close
    assert ended - paused < 15
    assert summary["generated"] == summary["sent"] + summary["failed"] + summary["dropped_at_shutdown"]


def test_a_rate_out_of_reach_is_said_once_and_progress_and_duration_keep_time(kafka, topic, client):
    """One process cannot send a million events a second: the run says so once, with the rate it achieves, while
    its progress lines keep their interval and --duration ends it on time."""
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--rate", "1000000", "--duration",
                       "4", "--stats-interval", "1", env={"KAFKA_CLIENT": client})
    assert out.returncode == 0, out.stderr[-3000:]
    warnings = [line for line in out.stderr.splitlines() if "out of reach" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], out.stderr[-3000:]
    achieved = float(re.search(r"reach: (\d+) events/s generated against EVENTS_PER_SECOND 1e\+06/s", warnings[0])[1])
    assert achieved < 900_000 and "--workers" in warnings[0]
    times = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in out.stderr.splitlines()
             if "Progress: sent=" in line]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert len(times) >= 3 and max(gaps) < 1.5, gaps
    assert out.summary["runtime_seconds"] < 4.5, out.summary


# --- shutdown under load ----------------------------------------------------------------------------

@pytest.mark.parametrize("rate", ["full-speed", "1000"])
def test_sigterm_under_load_flushes_everything_and_exits_0(kafka, topic, rate, client):
    flush_timeout = 5
    args = ["--interval", "0"] if rate == "full-speed" else ["--rate", rate]
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, *args,
                          "--flush-timeout", str(flush_timeout), "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=2000 if rate == "1000" else 10_000, timeout=30)
        signalled = time.monotonic()
        run.proc.send_signal(signal.SIGTERM)
        code = run.finish(timeout=60)
        gone_after = time.monotonic() - signalled
    finally:
        run.kill()
    out = run.text
    assert code == 0, out[-2000:]
    assert gone_after <= flush_timeout + 1, gone_after
    assert "PRODUCER STATISTICS" in out
    sent = run.summary["sent"]
    assert sent == run.summary["generated"] and sent > (2000 if rate == "1000" else 10_000)
    assert run.summary["exit_reason"] == "stopped"
    records = consume_all(kafka.bootstrap, topic, expected=sent, timeout=60)
    assert len(records) == sent
    assert len({dict(r.headers)[producer.EVENT_ID_HEADER] for r in records}) == sent


def test_partitions_added_while_running_are_used_like_the_default_partitioner(kafka, topic):
    """A long-running producer follows the topic when partitions are added: from the client's next
    metadata refresh on, each key goes where murmur2 over the new count puts it; nothing is lost."""
    from kafka.admin import KafkaAdminClient, NewPartitions, NewTopic
    from kafka.partitioner.default import murmur2

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--rate", "200",
                              "--duration", "14", "--producer-options", "metadata_max_age_ms=1000",
                              "--stats-interval", "0.5")
        try:
            wait_for_progress(run, sent_over=400)  # two seconds into the one partition
            admin.create_partitions({topic: NewPartitions(total_count=3)})
            code = run.finish(timeout=60)
        finally:
            run.kill()
    finally:
        admin.close()
    assert code == 0, run.text[-2000:]
    sent = run.summary["sent"]
    records = consume_all(kafka.bootstrap, topic, expected=sent, timeout=60)
    assert len(records) == sent > 2000
    assert "now has 3 partitions (was 1)" in run.text
    later = [r for r in records if r.partition > 0]
    assert later, "nothing reached the new partitions"
    # Every record in a new partition is where the default partitioner puts its key over 3 partitions.
    assert all((murmur2(r.key) & 0x7FFFFFFF) % 3 == r.partition for r in later)
    assert {r.partition for r in records} == {0, 1, 2}


def test_second_signal_during_a_stuck_flush_exits_at_once_and_says_what_was_left(restartable, topic):
    """The broker is gone with events in flight; the first SIGTERM starts a flush that could wait 60 s; the
    second one ends the process at once, saying how many events were left unacknowledged (exit 1)."""
    run = ProducerProcess("--bootstrap-servers", restartable.bootstrap, "--topic", topic, "--rate", "200",
                          "--flush-timeout", "60", "--stats-interval", "1")
    try:
        wait_for_progress(run, sent_over=100)
        stop_broker(restartable)
        run.wait_until(lambda p: p["outage"], 30, "the outage reported")
        run.proc.send_signal(signal.SIGTERM)
        run.wait_until(lambda p: p["phase"] == "flushing", 15, "the flush begun")
        run.proc.send_signal(signal.SIGTERM)
        code = run.finish(timeout=15)  # far inside the 60 s the flush would wait
    finally:
        run.kill()
        start_broker(".devkafka-test-ops", port=restartable.port, keep_data=True)
    assert code == 1, run.text[-2000:]
    left = re.search(r"Second signal: exiting now; (\d+) events left unacknowledged", run.text)
    assert left and int(left.group(1)) > 0, run.text[-2000:]
    assert "Ctrl-C again to quit now" in run.text  # the flush line said how to leave at once
    assert "Traceback" not in run.text
    assert "PRODUCER STATISTICS" in run.text  # the figures are still told
    figures = json.loads(run.summary_path.read_text())
    assert figures["exit_code"] == 1 and figures["exit_reason"] == "second signal"
    assert figures["generated"] == figures["sent"] + figures["failed"] + figures["dropped_at_shutdown"]
    assert figures["dropped_at_shutdown"] >= int(left.group(1))


# --- scale-out: shards and workers -------------------------------------------------------------------

SHOP = ["--mode", "sessions", "--seed", "5", "--user-id-range", "1-2000", "--start-time", "2026-11-01T00:00:00Z",
        "--end-time", "2026-11-05T00:00:00Z"]


def by_user(lines: list[str]) -> dict[int, list[str]]:
    """Each user's events in stream order, as their exact bytes."""
    users = defaultdict(list)
    for line in lines:
        users[json.loads(line)["user_id"]].append(line)
    return users


def test_shards_together_are_the_one_process_stream_byte_for_byte(tmp_path):
    whole = run_producer(*SHOP, "--dry-run", "--labels-file", str(tmp_path / "all.jsonl"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    shards = [run_producer(*SHOP, "--dry-run", "--shard", f"{i}/3", "--labels-file", str(tmp_path / f"{i}.jsonl"))
              for i in range(3)]
    assert all(out.returncode == 0 for out in shards), [out.stderr[-500:] for out in shards]
    expected = by_user(whole.stdout.splitlines())
    got = [by_user(out.stdout.splitlines()) for out in shards]
    assert all(len(part) > 100 for part in got)  # each shard has a third of the users or so
    assert sorted(u for part in got for u in part) == sorted(expected)  # each user in exactly one shard
    assert all(part[u] == expected[u] for part in got for u in part)  # a user's events, in order, to the byte
    labels = sorted((tmp_path / "all.jsonl").read_text().splitlines())
    assert sorted(line for i in range(3) for line in (tmp_path / f"{i}.jsonl").read_text().splitlines()) == labels


def test_a_random_mode_shard_takes_its_part_of_the_user_range():
    out = run_producer("--dry-run", "--count", "2000", "--user-id-range", "1-100", "--shard", "1/4", "--seed", "1")
    assert out.returncode == 0, out.stderr
    users = {json.loads(line)["user_id"] for line in out.stdout.splitlines()}
    assert users == set(range(26, 51))


def test_two_workers_produce_one_stream_with_one_progress_line_and_combined_statistics(kafka, topic):
    out = run_producer("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--workers", "2", "--count", "60000",
                       "--interval", "0", "--stats-interval", "0.5", "--user-id-range", "1-1000")
    assert out.returncode == 0, out.stderr[-3000:]
    summary = out.summary
    assert summary["sent"] == summary["generated"] == 60000 and summary["worker_exit_codes"] == [0, 0]
    assert "workers=2" in out.stderr and "worker 1/2: Progress" not in out.stderr
    assert out.stderr.count("PRODUCER STATISTICS") == 1  # one block, the parent's
    records = consume_all(kafka.bootstrap, topic, expected=60000, timeout=60)
    assert len({dict(r.headers)[producer.EVENT_ID_HEADER] for r in records}) == 60000
    # The workers split the users: a user's events come from one worker (one event-id prefix), in order.
    prefixes = defaultdict(set)
    for r in records:
        prefixes[r.key].add(dict(r.headers)[producer.EVENT_ID_HEADER].rsplit(b"-", 1)[0])
    assert len({p for ps in prefixes.values() for p in ps}) == 2 and all(len(ps) == 1 for ps in prefixes.values())


# Where tempfile and multiprocessing look for a folder to write: each bound read-only onto itself, in a mount
# namespace of the run's own, and the working folder too: a container with readOnlyRootFilesystem. (Bound, not
# covered with an empty tmpfs: a checkout under /tmp, as CI's clone may be, must stay readable.)
NO_WRITABLE_FOLDER = """set -e
for d in /tmp /var/tmp /usr/tmp /dev/shm "$PWD"; do if [ -d "$d" ]; then mount --bind -o ro "$d" "$d"; fi; done
python -c 'import tempfile
try:
    tempfile.mkdtemp()
except OSError:
    pass
else:
    raise SystemExit("a temporary folder is still writable")'
exec "$@"
"""


def test_workers_need_no_temporary_folder(kafka, topic):
    """The shipped k8s manifests set readOnlyRootFilesystem with nothing mounted on /tmp: --workers works there."""
    command = ["unshare", "--mount", "sh", "-c", NO_WRITABLE_FOLDER.replace("python", sys.executable), "sh",
               sys.executable, "producer.py", "--bootstrap-servers", kafka.bootstrap, "--topic", topic,
               "--workers", "2", "--count", "600", "--interval", "0"]
    out = subprocess.run(command, env=producer_env({"SUMMARY_JSON": "", "LOG_FILE": ""}, Path(os.devnull)),
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "Events Sent: 600" in out.stderr, out.stderr[-3000:]
    records = consume_all(kafka.bootstrap, topic, expected=600, timeout=60)
    assert len({dict(r.headers)[producer.EVENT_ID_HEADER] for r in records}) == len(records) == 600


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_to_the_parent_stops_and_flushes_every_worker(kafka, topic, signum):
    """The workers stop at the parent's word; after a Ctrl-C nothing says SIGTERM (issue 31)."""
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--workers", "2", "--rate",
                          "2000", "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=2000)
        run.proc.send_signal(signum)
        code = run.finish(timeout=60)
    finally:
        run.kill()
    assert code == 0, run.text[-3000:]
    name = signal.Signals(signum).name
    assert f"Received {name}, stopping the 2 workers gracefully" in run.text
    assert run.text.count("asked to stop by the parent, shutting down gracefully") == 2
    assert ("SIGTERM" in run.text) == (signum == signal.SIGTERM), run.text[-3000:]
    summary = run.summary
    assert summary["exit_reason"] == "stopped" and summary["worker_exit_codes"] == [0, 0]
    assert summary["sent"] == summary["generated"] > 2000
    records = consume_all(kafka.bootstrap, topic, expected=summary["sent"], timeout=60)
    assert len({dict(r.headers)[producer.EVENT_ID_HEADER] for r in records}) == len(records) == summary["sent"]


def test_a_worker_killed_with_minus_9_has_every_event_it_generated_accounted_for(kafka, topic):
    """A worker dies without its summary: the parent counts its events from the counters it shared before each
    batch, so the run's figures cover every event in the topic (the topic never holds more than was generated),
    and what it had in flight is counted as not acknowledged."""
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--workers", "2", "--rate",
                          "3000", "--duration", "10", "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=3000)
        workers = Path(f"/proc/{run.proc.pid}/task/{run.proc.pid}/children").read_text().split()
        assert len(workers) == 2
        os.kill(int(workers[0]), signal.SIGKILL)
        code = run.finish(timeout=60)
    finally:
        run.kill()
    assert code == 1, run.text[-3000:]
    summary = run.summary
    assert sorted(summary["worker_exit_codes"]) == [-9, 0]
    generated, sent = summary["generated"], summary["sent"]
    assert generated == sent + summary["failed"] + summary["dropped_at_shutdown"]
    assert "died without its summary" in run.text and "may or may not be in the topic" in run.text
    records = consume_all(kafka.bootstrap, topic, timeout=30)
    ids = {dict(r.headers)[producer.EVENT_ID_HEADER] for r in records}
    assert len(ids) == len(records) and sent <= len(ids) <= generated, (sent, len(ids), generated)


def test_a_sessions_shop_sent_by_two_workers_is_the_one_process_stream(kafka, topic, tmp_path):
    whole = run_producer(*SHOP, "--dry-run", "--labels-file", str(tmp_path / "all.jsonl"))
    out = run_producer(*SHOP, "--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--workers", "2",
                       "--client", "confluent-kafka", "--labels-file", str(tmp_path / "labels.jsonl"))
    assert out.returncode == 0, out.stderr[-3000:]
    expected = whole.stdout.splitlines()
    assert out.summary["sent"] == len(expected)
    records = consume_all(kafka.bootstrap, topic, expected=len(expected), timeout=60)
    in_kafka = by_user([r.value.decode() for r in sorted(records, key=lambda r: (r.partition, r.offset))])
    assert in_kafka == by_user(expected)
    assert sorted((tmp_path / "labels.jsonl").read_text().splitlines()) == \
        sorted((tmp_path / "all.jsonl").read_text().splitlines())


# --- security ---------------------------------------------------------------------------------------

def sasl_args(broker: Broker, mechanism: str, user: list[str]) -> tuple[list[str], dict]:
    return (["--bootstrap-servers", broker.info["sasl_plaintext_bootstrap"], "--security-protocol", "SASL_PLAINTEXT",
             "--sasl-mechanism", mechanism, "--sasl-username", user[0]], {"KAFKA_SASL_PASSWORD": user[1]})


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_sasl_plaintext_delivers_and_never_shows_the_password(secure_kafka, topic, mechanism, client):
    user = secure_kafka.info["plain_user" if mechanism == "PLAIN" else "scram_user"]
    args, env = sasl_args(secure_kafka, mechanism, user)
    out = run_producer(*args, "--client", client,
                       "--topic", topic, "--count", "50", "--interval", "0", "--log-level", "DEBUG",
                       env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.summary["sent"] == 50
    assert user[1] not in out.stdout + out.stderr
    assert len(consume_all(secure_kafka.bootstrap, topic, expected=50)) == 50
    shown = run_producer(*args, "--print-config", env=env)
    assert shown.returncode == 0 and user[1] not in shown.stdout + shown.stderr


def test_ssl_with_the_ca_file_verifies_the_host_and_delivers(secure_kafka, topic, client):
    out = run_producer("--bootstrap-servers", secure_kafka.info["ssl_bootstrap"], "--client", client,
                       "--security-protocol", "SSL",
                       "--ssl-cafile", secure_kafka.info["ssl_cafile"], "--topic", topic, "--count", "40",
                       "--interval", "0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(consume_all(secure_kafka.bootstrap, topic, expected=40)) == 40


def test_ssl_checks_the_host_name_against_the_certificate(secure_kafka, topic, client):
    """The same broker and CA, reached as 127.1 (the same address, a name the certificate does not carry: it
    names localhost and 127.0.0.1): refused as a TLS error, nothing sent."""
    port = secure_kafka.info["ssl_bootstrap"].rsplit(":", 1)[1]
    out = run_producer("--bootstrap-servers", f"127.1:{port}", "--client", client,
                       "--security-protocol", "SSL", "--ssl-cafile",
                       secure_kafka.info["ssl_cafile"], "--topic", topic, "--count", "1", "--connect-timeout", "20")
    assert out.returncode == 1, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "TLS handshake" in errors[0] and "host name" in errors[0], out.stderr[-2000:]
    assert "CERTIFICATE_VERIFY_FAILED" in errors[0] or "certificate verify failed" in errors[0], errors[0]


def test_wrong_password_is_one_clear_authentication_error_exit_1(secure_kafka, topic, client):
    user = secure_kafka.info["scram_user"]
    args, _ = sasl_args(secure_kafka, "SCRAM-SHA-512", user)
    secret = "Wr0ng-Passw0rd-XYZ"
    # What the producer controls is its reaction to the first refusal the client library can read; how soon
    # that comes is up to the broker and kafka-python (which often reads a refusal only as a dropped connection).
    # So: a connect timeout far longer than the test, and the client's own log lines (LOG_LEVEL=DEBUG) to time
    # the reaction against, on the log's clock.
    out = run_producer(*args, "--client", client,
                       "--topic", topic, "--count", "1", "--connect-timeout", "120", "--log-level", "DEBUG",
                       env={"KAFKA_SASL_PASSWORD": secret})
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    reported = [line for line in lines if " - ERROR - Authentication to Kafka" in line]
    assert len(reported) == 1 and "KAFKA_SASL_PASSWORD" in reported[0], out.stderr[-3000:]
    said = {"kafka-python": "SaslAuthenticationFailedError", "confluent-kafka": "_AUTHENTICATION"}[client]
    refused = next(line for line in lines if said in line)

    def at(line: str) -> datetime:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

    assert (at(reported[0]) - at(refused)).total_seconds() < 0.5, (refused, reported[0])  # not waited out
    assert secret not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_ca_that_does_not_match_is_a_clear_tls_error(secure_kafka, topic, tmp_path, client):
    other_ca = tmp_path / "other-ca.pem"
    keystore = tmp_path / "other.p12"
    subprocess.run(["keytool", "-genkeypair", "-alias", "x", "-keyalg", "RSA", "-keysize", "2048", "-dname", "CN=other",
                    "-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", "changeit", "-keypass",
                    "changeit"], check=True, capture_output=True)
    subprocess.run(["keytool", "-exportcert", "-rfc", "-alias", "x", "-file", str(other_ca), "-keystore", str(keystore),
                    "-storetype", "PKCS12", "-storepass", "changeit"], check=True, capture_output=True)
    out = run_producer("--bootstrap-servers", secure_kafka.info["ssl_bootstrap"], "--client", client,
                       "--security-protocol", "SSL",
                       "--ssl-cafile", str(other_ca), "--topic", topic, "--count", "1", "--connect-timeout", "15")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "TLS handshake" in errors[0] and "KAFKA_SSL_CAFILE" in errors[0], out.stderr
    assert "Traceback" not in out.stderr


def test_secret_never_in_settings_errors(capsys):
    secret = "p@ss-in-error-XYZ"
    code = producer.main(["--security-protocol", "SASL_SSL", "--sasl-password", secret, "--ssl-cafile", "/nope"])
    err = capsys.readouterr().err
    assert code == 2 and secret not in err


# --- metrics and health -------------------------------------------------------------------------------

def test_metrics_and_health_endpoints_during_a_real_run(kafka, topic, client):
    port = free_port_block(1, 47000)
    run = ProducerProcess("--bootstrap-servers", kafka.bootstrap, "--client", client, "--topic", topic, "--rate", "200",
                          "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--stats-interval", "0.5")
    try:
        wait_for_progress(run, sent_over=600)  # three seconds of events
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        health = http_get(f"http://127.0.0.1:{port}/healthz")
        ready = http_get(f"http://127.0.0.1:{port}/readyz")
        missing = http_get(f"http://127.0.0.1:{port}/nope")[0]
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish() == 0
    finally:
        run.kill()
    assert status == 200
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(ecommerce_producer_\w+(?:\{[^}]*\})?) (\S+)$",
                                                                    body, re.M)}
    assert values["ecommerce_producer_events_generated_total"] >= 400
    assert values["ecommerce_producer_events_sent_total"] >= 400
    assert values["ecommerce_producer_events_in_flight"] >= 0
    assert values["ecommerce_producer_broker_connected"] == 1.0
    assert values["ecommerce_producer_send_latency_seconds_count"] >= 20
    assert 100 <= values["ecommerce_producer_events_per_second"] <= 300
    assert health[0] == 200 and ready[0] == 200 and missing == 404


# --- hostile settings -----------------------------------------------------------------------------------

def hostile_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    bad_env = tmp_path / "bad.env"
    bad_env.write_text("KAFKA_TOPIC=ok\nthis line is not a setting\n")
    return [
        (["--interval", "nan"], "--interval"),
        (["--interval", "inf"], "--interval"),
        (["--interval", "1e309"], "--interval"),
        (["--interval", "99999999999"], "--interval"),
        (["--rate", "1e-300"], "--rate"),
        (["--rate", "1e12"], "--rate"),
        (["--count", "1e3"], "--count"),
        (["--count", "99999999999999999999"], "--count"),
        (["--duration", "-5"], "--duration"),
        (["--topic", "user events"], "--topic"),
        (["--topic", "événements"], "--topic"),
        (["--topic", "x" * 250], "--topic"),
        (["--topic", ".."], "--topic"),
        (["--topic", ""], "--topic"),
        (["--event-weights", "checkout=0.5,checkout=0.5"], "--event-weights"),
        (["--event-weights", "checkout=nan"], "--event-weights"),
        (["--event-weights", "checkout=inf,bounce=1"], "--event-weights"),
        (["--event-weights", "checkout=-1,bounce=2"], "--event-weights"),
        (["--user-id-range", "1-99999999999999999999"], "--user-id-range"),
        (["--product-id-range=-5-10"], "--product-id-range"),
        (["--no-such-flag", "1"], "--no-such-flag"),
        (["--session-length-range", "0.5-30.125"], "--session-length-range"),
        (["--log-file", str(tmp_path)], "--log-file"),
        (["--env-file", str(bad_env)], "--env-file"),
        (["--linger-ms", "-1"], "--linger-ms"),
        (["--batch-size", "0"], "--batch-size"),
        (["--bootstrap-servers", "localhost"], "--bootstrap-servers"),
        (["--bootstrap-servers", "localhost:99999"], "--bootstrap-servers"),
        (["--metrics-port", "70000"], "--metrics-port"),
        (["--acks", "2"], "--acks"),
        (["--log-level", "verbose"], "--log-level"),
        (["--connect-timeout", "-3"], "--connect-timeout"),
        (["--seed", "-1"], "--seed"),
        (["--producer-options", "acks"], "--producer-options"),
        (["--max-in-flight", "0"], "--max-in-flight"),
        (["--stats-interval", "often"], "--stats-interval"),
        (["--metrics-address", "everywhere"], "--metrics-address"),
        (["--shard", "4/4"], "--shard"),
        (["--shard", "half"], "--shard"),
        (["--mode", "sessions", "--shard", "0/2", "--user-id-range", "1-100"], "--shard"),  # no seed, no start
        (["--workers", "2", "--dry-run"], "--workers"),
        (["--workers", "0"], "--workers"),
        (["--workers", "4", "--user-id-range", "1-2"], "USER_ID_RANGE"),
        (["--client", "librdkafka"], "--client"),
        (["--client", "confluent-kafka", "--producer-options", "no.such.property=1"], "--producer-options"),
    ]


def test_at_least_twenty_kinds_of_hostile_settings_end_in_one_line_and_exit_2(tmp_path, capsys):
    cases = hostile_cases(tmp_path)
    assert len(cases) >= 20
    for argv, name in cases:
        started = time.monotonic()
        # An unreachable broker: if anything tried to connect, the call would take the connect timeout.
        try:
            code = producer.main(argv + ["--connect-timeout", "20"] if "--connect-timeout" not in argv else argv)
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert len(err.splitlines()) == 1, (argv, err)
        assert err.startswith("producer.py: error: ") and name in err, (argv, err)
        assert "expected" in err or "accepted flags and values: --help" in err, (argv, err)
        assert "Traceback" not in err
        assert time.monotonic() - started < 5
