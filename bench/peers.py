"""Benchmark peers, each run as its own process by bench/run.py so that its peak RSS is its own.

    python bench/peers.py confluent BOOTSTRAP TOPIC COUNT SIZE LINGER_MS BATCH_SIZE
    python bench/peers.py naive     BOOTSTRAP TOPIC COUNT SIZE LINGER_MS BATCH_SIZE   (LINGER_MS 0: its best case)
    python bench/peers.py floor     BOOTSTRAP TOPIC RECORDS_FILE LINGER_MS BATCH_SIZE
    python bench/peers.py obvious-generator COUNT        (JSON lines on stdout)

Each prints one line `RESULT <events acknowledged or written> <seconds>` on stdout (stderr for the
generator, whose stdout is the events).
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import datetime, timezone


def confluent(bootstrap: str, topic: str, count: int, size: int, linger_ms: int, batch_size: int) -> None:
    """librdkafka through confluent-kafka: the fastest Python client a user could pick instead."""
    from confluent_kafka import Producer

    acked = 0

    def on_delivery(err, msg) -> None:
        nonlocal acked
        if err is None:
            acked += 1

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": linger_ms, "batch.size": batch_size, "compression.type": "none",
                         "partitioner": "murmur2_random"})
    value = b"x" * size
    produce, poll = producer.produce, producer.poll
    prefix = b"0123456789abcdef-"
    started = time.monotonic()
    # The same records as producer.py's: a user-id key, the value, a timestamp and an event_id header.
    for i in range(count):
        while True:
            try:
                produce(topic, value, str(i % 1000).encode(), on_delivery=on_delivery,
                        timestamp=time.time_ns() // 1_000_000, headers=[("event_id", b"%b%d" % (prefix, i))])
                break
            except BufferError:  # librdkafka's local queue is full: serve callbacks, then retry
                poll(0.01)
        poll(0)
    producer.flush(60)
    print(f"RESULT {acked} {time.monotonic() - started:.4f}")


def floor(bootstrap: str, topic: str, records_file: str, linger_ms: int, batch_size: int) -> None:
    """The Python client's floor: producer.py's own records (a --dry-run's lines, read before the clock starts),
    each handed to librdkafka by one bare produce() call with its key, timestamp and an event_id header like
    producer.py's, and no Python per record beyond that call: delivery reports only for errors, acknowledgements
    counted as the records the client no longer holds. Prints `LOADED <seconds>` (reading the file: the harness
    takes it off the whole process's time) and `RESULT <acknowledged> <seconds>`."""
    from confluent_kafka import Producer

    loading = time.monotonic()
    with open(records_file, "rb") as lines:
        values = lines.read().splitlines()
    keys = [value[12:value.index(b",")] for value in values]  # {"user_id":N,... : the key is the user id
    print(f"LOADED {time.monotonic() - loading:.4f}", flush=True)
    failed = 0

    def on_error(err, msg) -> None:
        nonlocal failed
        failed += 1

    started = time.monotonic()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": linger_ms, "batch.size": batch_size, "compression.type": "none",
                         "partitioner": "murmur2_random", "delivery.report.only.error": True,
                         "queue.buffering.max.messages": 100_000})
    produce, poll = producer.produce, producer.poll
    prefix = b"0123456789abcdef-"
    now_ms = time.time_ns() // 1_000_000
    # produce() with its arguments by position (topic, value, key, partition, callback, on_delivery, timestamp,
    # headers): the cheapest call, as producer.py's counted path makes it.
    for i, (key, value) in enumerate(zip(keys, values)):
        try:
            produce(topic, value, key, -1, on_error, None, now_ms, [("event_id", b"%b%d" % (prefix, i))])
        except BufferError:  # librdkafka's local queue is full: serve it, then retry
            while True:
                poll(0.005)
                try:
                    produce(topic, value, key, -1, on_error, None, now_ms, [("event_id", b"%b%d" % (prefix, i))])
                    break
                except BufferError:
                    pass
    producer.flush(60)
    print(f"RESULT {len(values) - failed - len(producer)} {time.monotonic() - started:.4f}")


def naive(bootstrap: str, topic: str, count: int, size: int, linger_ms: int, batch_size: int) -> None:
    """How simple producers are written: send, then block on the result, one event at a time."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                             linger_ms=linger_ms, batch_size=batch_size)
    value = b"x" * size
    producer.send(topic, value).get(timeout=30)  # connection and metadata outside the timing
    started = time.monotonic()
    acked = 0
    for i in range(count):
        producer.send(topic, value, str(i % 1000).encode()).get(timeout=30)
        acked += 1
    elapsed = time.monotonic() - started
    producer.close()
    print(f"RESULT {acked} {elapsed:.4f}")


def obvious_generator(count: int) -> None:
    """The event generator written the obvious way: random.choices, datetime.now().isoformat(),
    json.dumps per event, one print per line."""
    types = ["add_to_cart", "bounce", "checkout", "product_view"]
    weights = [0.25, 0.15, 0.20, 0.40]
    started = time.monotonic()
    for _ in range(count):
        event = {
            "user_id": random.randint(1, 1000),
            "event_type": random.choices(types, weights=weights)[0],
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "metadata": {"product_id": random.randint(1, 500),
                         "session_length": round(random.uniform(0.5, 30.0), 2)},
        }
        print(json.dumps(event))
    sys.stdout.flush()
    print(f"RESULT {count} {time.monotonic() - started:.4f}", file=sys.stderr)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "obvious-generator":
        obvious_generator(int(args[0]))
    elif mode == "floor":
        bootstrap, topic, records_file, *numbers = args
        floor(bootstrap, topic, records_file, *map(int, numbers))
    else:
        bootstrap, topic, *numbers = args
        {"confluent": confluent, "naive": naive}[mode](bootstrap, topic, *map(int, numbers))
