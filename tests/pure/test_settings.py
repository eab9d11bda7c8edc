"""Settings: precedence, bad input in one line, pacing, the first hour's words (no broker).

Run with `make test` or `make test-pure` (see docs/tests.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import producer
from tests.support import ROOT, free_port_block, run_producer
from producer import (DeliveryMonitor, ECommerceEventProducer, KafkaPythonConnection, SettingsError, default_settings, load_settings)

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

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


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


def test_a_slow_client_is_called_out_at_once_when_a_wait_for_room_ends(caplog):
    """A client at half the rate whose in-flight cap fills now and then: a look at the pace that fell inside a wait
    for room was put off by a whole second, so in a short run every look could fall in one and nothing was said
    (CI: confluent-kafka, --rate 1000000 --duration 4, the cap filling twice, no warning). The pace is judged as
    soon as generation is free again."""
    stats = producer.Statistics()
    schedule = producer.Schedule(0.001, stats, "the client sets the pace")
    with caplog.at_level("WARNING", logger="producer"):
        now = paced_run(schedule, stats, 2.5, stats.started, speed=500)  # half the rate while there is room
        now = paced_run(schedule, stats, 0.7, now, room=False)  # the first look (at 3 s) falls in a wait
        now = paced_run(schedule, stats, 0.3, now, speed=500)
        paced_run(schedule, stats, 0.55, now, room=False)  # and the second (at 4 s) in another; the run ends
    said = [r.getMessage() for r in caplog.records if "out of reach" in r.getMessage()]
    assert len(said) == 1 and "against EVENTS_PER_SECOND 1000/s" in said[0], said


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


def test_a_host_name_that_cannot_be_resolved_now_is_named_not_a_generic_timeout(monkeypatch):
    """No DNS server answers (EAI_AGAIN): retried, as it may pass, but the lines say why, not the client's generic
    "Unable to bootstrap" timeout."""
    import socket
    import threading

    settings = producer.load_settings(["--bootstrap-servers", "kafka.example.com:9092"], environ={})
    connection = producer.connection_for(settings, threading.Event(), lambda: 0)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert connection._unknown_hosts() == ""  # not refused at once: a resolver away for now may come back
    error = connection._connection_error("connection", TimeoutError("Unable to bootstrap"))
    assert "the host name 'kafka.example.com' cannot be resolved now (Temporary failure in name resolution: is a " \
           "DNS server reachable from here?)" in error and "Unable to bootstrap" not in error


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


def test_a_seeded_windows_identity_is_every_option_that_shapes_it_and_the_profiles_contents(tmp_path):
    """run_id_for decides whether a rerun resumes: another session length range, or a profile refitted in place
    (same path, other contents), is another stream and must not resume the first."""
    window = ["--mode", "sessions", "--seed", "1", "--start-time", "2026-01-01T00:00:00Z",
              "--end-time", "2026-01-02T00:00:00Z", "--user-id-range", "1-500", "--dry-run"]
    env = {"ENV_FILE": os.devnull}
    ids = {producer.run_id_for(load_settings([*window, "--session-length-range", r], environ=env))
           for r in ("0.5-30", "1-20")}
    assert len(ids) == 2
    shaping = {o.name for o in producer.OPTIONS if o.shapes_stream}
    assert {"seed", "shard", "start_time", "end_time", "session_length_range", "user_id_range"} <= shaping
    assert not shaping & {"topic", "bootstrap_servers", "client", "dry_run", "labels_file", "shop_profile"}
    # a profile refitted in place: the same path, other contents
    path = tmp_path / "shop.json"
    base = producer.ShopProfile(
        customers=100, span_start_ms=1_767_225_600_000, span_end_ms=1_767_225_600_000 + 90 * 86_400_000,
        timezone="UTC", existing_customers=100, arrival_weeks=(1.0,), arrivals_after_per_day=0.0,
        first_visit_orders=True, activity_shape=1.0, activity_scale=0.05, decline_shape=1.0, decline_scale=0.01,
        fade_days_median=40.0, full_churn=0.7, reactivation_per_day=0.001, sessions_per_order=10.0, bounce=0.3,
        views=5.0, abandoned_carts_per_order=2.0, items=(1.0,), value_quantiles=((10.0, 20.0),),
        hourly=(1.0,) * 24, weekday=(1.0,) * 7)
    twin = ["--mode", "sessions", "--seed", "1", "--start-time", "2026-01-01T00:00:00Z",
            "--end-time", "2026-01-02T00:00:00Z", "--shop-profile", str(path), "--dry-run"]
    first_ids = []
    for shape in (1.0, 2.0):
        path.write_text(json.dumps(dataclasses.replace(base, activity_shape=shape).to_json()))
        first_ids.append(producer.run_id_for(producer.prepare(load_settings(twin, environ=env))))
    assert first_ids[0] != first_ids[1]
    path.write_text(json.dumps(dataclasses.replace(base, activity_shape=1.0).to_json()))
    assert producer.run_id_for(producer.prepare(load_settings(twin, environ=env))) == first_ids[0]


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


def test_help_says_where_to_start():
    """`producer.py --help` opens with the two first commands and where to read on (issue 31)."""
    out = subprocess.run([sys.executable, str(ROOT / "producer.py"), "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0
    start = out.stdout.index("Start here:")
    assert start < out.stdout.index("options:") and "make run" in out.stdout[start:start + 300] and \
        "--dry-run --count 5" in out.stdout[start:start + 300]


def test_a_junk_env_file_found_by_default_is_named_as_such(tmp_path):
    """A .env in the current folder that is not one: the error says it was read by default and how to leave it out,
    not that --env-file (never given) is wrong (issue 31)."""
    (tmp_path / ".env").write_text("this is not a dotenv line at all\n")
    out = subprocess.run([sys.executable, str(ROOT / "producer.py"), "--dry-run", "--count", "1"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k not in ("ENV_FILE", "LOG_FILE")} | {
                             "LOG_FILE": ""})
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "the .env of this folder, read by default" in out.stderr and "ENV_FILE=/dev/null" in out.stderr
    assert "--env-file:" not in out.stderr
    given = run_producer("--dry-run", "--count", "1", "--env-file", str(tmp_path / ".env"), cwd=tmp_path)
    assert given.returncode == 2 and f"--env-file: '{tmp_path / '.env'}' line 1 is not KEY=VALUE" in given.stderr


@pytest.mark.parametrize("args, counted", [
    (["--client", "confluent-kafka", "--interval", "0"], True),
    (["--client", "confluent-kafka", "--rate", "1000"], True),
    (["--interval", "0"], False),  # kafka-python reports every record
    (["--client", "confluent-kafka", "--interval", "0", "--metrics-port", "9200"], False),  # the latency histogram
    (["--client", "confluent-kafka", "--rate", "2"], False),  # a log line per acknowledged event
    (["--client", "confluent-kafka", "--rate", "1000", "--log-events", "true"], False),
    (["--client", "confluent-kafka", "--mode", "sessions", "--labels-topic", "labels"], False),
    (["--client", "confluent-kafka", "--mode", "sessions", "--truth-topic", "truth"], False),
])
def test_acknowledgements_are_counted_only_where_nothing_needs_each_one(args, counted):
    assert load_settings(args, environ={}).acks_counted is counted


@pytest.mark.parametrize("args, workers", [
    (["--interval", "0"], len(os.sched_getaffinity(0))),
    (["--mode", "sessions", "--seed", "1", "--start-time", "2026-11-01T00:00:00Z", "--end-time", "2026-11-02T00:00:00Z"],
     len(os.sched_getaffinity(0))),  # a backfill
    ([], 1),  # paced: one process keeps one event every 3 seconds
    (["--mode", "sessions"], 1),  # live
    (["--interval", "0", "--dry-run"], 1),  # one stream on stdout
])
def test_workers_auto_is_a_process_per_core_at_full_speed_and_one_otherwise(args, workers):
    assert load_settings(["--workers", "auto", *args], environ={}).workers == workers
    assert load_settings(["--workers", "auto", *args], environ={"WORKERS": "3"}).workers == workers  # the flag wins
