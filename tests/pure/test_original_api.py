"""The original class's API, without a broker: its statistics, its hooks, its logging.

Run with `make test` or `make test-pure` (see docs/tests.md).
"""

from __future__ import annotations

import collections.abc
import os
import threading
import time

import pytest

from tests.support import run_producer
from producer import (DeliveryMonitor, KafkaPythonConnection, SettingsError, default_settings, load_settings,
                      stop_from_signal_handler)
from tests.subclasses import BooksProducer, make_producer



def test_stats_is_the_original_read_only_dict():
    stats = make_producer().stats
    assert isinstance(stats, collections.abc.Mapping) and not isinstance(stats, collections.abc.MutableMapping)
    assert dict(stats).keys() == {"events_sent", "events_failed", "start_time"} and len(stats) == 3
    assert "events_sent" in stats and "acked" not in stats and stats.get("nothing", 7) == 7
    with pytest.raises(KeyError):
        stats["nothing"]
    with pytest.raises(TypeError):
        stats["events_sent"] = 5  # read-only


@pytest.mark.timeout(20)
def test_a_stop_signal_while_the_loop_is_inside_its_sleep_still_stops_it():
    """The signal handler runs in the main thread, which may be inside the run loop's Event.wait() holding the
    Event's lock (not reentrant): the handler's stop must not wait for it. Here the main thread holds that lock (the
    Event's private condition: the very situation) while the handler's stop is asked; it returns, and the run is
    stopping once the lock is let go. Setting the Event from the handler itself waits here forever."""
    p = make_producer()
    with p._stop._cond:
        stop_from_signal_handler(p)
        assert not p.stopping  # it cannot be set while the lock is held
    assert p._stop.wait(10) and p.stopping


def test_sessions_mode_refuses_a_metadata_override_with_one_line(caplog):
    p = BooksProducer(default_settings(simulation_mode="sessions", dry_run=True, log_file=""))
    with caplog.at_level("ERROR", logger="producer"):
        assert p.start_producing() == 2
    assert len(caplog.records) == 1 and "SIMULATION_MODE=random" in caplog.records[0].getMessage()


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
