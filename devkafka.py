#!/usr/bin/env python3
"""devkafka: a real single-node Apache Kafka broker for local runs, tests and CI.

Kafka's release tarball is not needed: the broker and its Java tools are resolved by Maven from
`broker/pom.xml` into `broker/lib` (once; later runs reuse the jars and the ~/.m2 cache) and run in one
JVM as a KRaft broker+controller listening on 127.0.0.1.

    python devkafka.py up [--port 9092] [--security]   # start (keeping its data), return once it serves clients
    python devkafka.py status | logs [-n 50] | down
    python devkafka.py up --kafka-version 3.9          # another Kafka release (env KAFKA_VERSION): 3.x for old clients
    python devkafka.py up --brokers 3                  # a 3-node KRaft cluster on 9192, 9202, 9212 (.devkafka-cluster)
    python devkafka.py up --host 10.0.0.2 --advertise 10.0.0.1:29092   # another address; clients through a proxy
    python devkafka.py down --brokers 3
    python devkafka.py registry up | status | down     # Apicurio Registry, the Confluent-compatible API on 8081
    python devkafka.py reset                           # stop and wipe the data: every topic and event
    python devkafka.py tool configs --alter --entity-type topics --entity-name user-events \
        --add-config retention.ms=-1
    python devkafka.py tool console-consumer --topic user-events --from-beginning --max-messages 5
    python devkafka.py tool perf --topic t --num-records 100000 --record-size 150 --throughput -1 \
        --producer-props bootstrap.servers=127.0.0.1:9092 acks=all
    python devkafka.py tool topics --describe --topic user-events

Only the standard library is used, so the helper runs before any virtualenv exists. Everything a
broker instance owns (config, data, logs, pid, certificates) lives in its state folder
(`--state-dir`, default `.devkafka/`), so several instances can run side by side on other ports.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent
POM = ROOT / "broker" / "pom.xml"
LIB = ROOT / "broker" / "lib"  # the default release's jars; another release's go beside it, in lib-VERSION
DEFAULT_KAFKA_VERSION = "4.1.1"  # broker/pom.xml's kafka.version (a test holds them together)
# Short names for the releases documented (docs/churn-system.md); any full version Maven Central has works too.
# 3.9 is the last release line with the old protocol versions (Kafka 4.0 removed them: KIP-896) and ZooKeeper-free
# KRaft mode as ours; clients pinned to api_version=(0, 10, 1) fetch from it.
KAFKA_RELEASES = {"4.1": DEFAULT_KAFKA_VERSION, "3.9": "3.9.1"}
RESOLVED_MARKER = LIB / ".resolved"
DEFAULT_STATE_DIR = ROOT / ".devkafka"
DEFAULT_PORT = 9092
LOCALHOST = "127.0.0.1"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
HEAP = ["-Xms256m", "-Xmx512m", "-XX:+UseG1GC"]
# A cluster's nodes share 2 cores and the tests' clients: smaller heaps, fewer threads each.
CLUSTER_HEAP = ["-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-XX:ActiveProcessorCount=1"]
CLUSTER_STATE_DIR = ROOT / ".devkafka-cluster"
REGISTRY_POM = ROOT / "registry" / "pom.xml"
REGISTRY_LIB = ROOT / "registry" / "lib"
REGISTRY_STATE_DIR = ROOT / ".devkafka-registry"
REGISTRY_PORT = 8081
REGISTRY_API = "/apis/ccompat/v7"  # Apicurio's Confluent-compatible Schema Registry API
CLUSTER_PORT = 9192
NODE_PORT_STEP = 10  # node i listens on port + 10 * (i - 1), its controller on that + 3

# Accounts of the security listeners. This broker is for local tests only: the secrets are fixed
# so tests and README can name them; never reuse them anywhere else.
SASL_ADMIN = ("admin", "admin-secret")
SASL_PLAIN_USER = ("alice", "alice-secret")
SCRAM_USER = ("scram-alice", "scram-alice-secret")
KEYSTORE_PASSWORD = "devkafka-keystore"

TOOLS = {
    "perf": "org.apache.kafka.tools.ProducerPerformance",
    "console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "topics": "org.apache.kafka.tools.TopicCommand",
    "configs": "kafka.admin.ConfigCommand",
    "consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
}
FORMAT_NOTE = "devkafka-format.json"  # in the data folder: what its storage was formatted for


def make_instance(state_dir: Path, port: int, security: bool, data_dir: Path | None = None, host: str = LOCALHOST,
                  advertise: str = "", kafka_version: str = DEFAULT_KAFKA_VERSION) -> "Instance":
    # Another release keeps its data apart: a newer release's storage cannot be read by an older one.
    data = data_dir or state_dir / ("data" if kafka_version == DEFAULT_KAFKA_VERSION else f"data-{kafka_version}")
    return Instance(state_dir=state_dir, port=port, controller_port=port + 3, sasl_port=port + 1,
                    ssl_port=port + 2, security=security, data_dir=data.resolve(), host=host, advertise=advertise,
                    kafka_version=kafka_version)


def kafka_version(asked: str) -> str:
    """The full version of a release asked for (--kafka-version, KAFKA_VERSION): a short name or a version."""
    version = KAFKA_RELEASES.get(asked.strip(), asked.strip())
    numbers = tuple(int(n) for n in version.split(".")) if re.fullmatch(r"\d+\.\d+\.\d+", version) else ()
    if not numbers or numbers < (3, 9, 0):  # a standalone KRaft quorum (format --standalone): 3.9 on
        raise DevKafkaError(f"--kafka-version/KAFKA_VERSION={asked!r}: expected {' or '.join(KAFKA_RELEASES)}, or "
                            "the full version of a Kafka release from 3.9 on, such as 3.9.1")
    return version


def make_cluster(state_dir: Path, port: int, brokers: int, hosts: list[str] | None = None) -> list["Instance"]:
    """The nodes of a KRaft cluster: each a broker and a voter of the controller quorum (so that losing any one
    node leaves a majority), in folders node-1, node-2... of state_dir; node i on hosts[i] (default 127.0.0.1)."""
    ports = [port + NODE_PORT_STEP * i for i in range(brokers)]
    hosts = hosts or [LOCALHOST] * brokers
    voters = ",".join(f"{i + 1}@{hosts[i]}:{p + 3}" for i, p in enumerate(ports))
    return [Instance(state_dir=state_dir / f"node-{i + 1}", port=p, controller_port=p + 3, sasl_port=p + 1,
                     ssl_port=p + 2, security=False, data_dir=(state_dir / f"node-{i + 1}" / "data").resolve(),
                     node_id=i + 1, voters=voters, replicas=brokers, host=hosts[i]) for i, p in enumerate(ports)]


class DevKafkaError(Exception):
    """An expected failure: printed as one line (plus context) with exit code 1."""


@dataclass(frozen=True)
class Instance:
    """One broker: where its files are and which ports it listens on."""

    state_dir: Path
    port: int
    controller_port: int
    sasl_port: int
    ssl_port: int
    security: bool
    data_dir: Path
    node_id: int = 1
    voters: str = ""  # a cluster's controller quorum; empty: a single node, its own quorum
    replicas: int = 1  # nodes in the cluster: the replication of the internal topics and the default
    # The address it listens on (another loopback address, or one in a network namespace of a fault test's), and
    # the host:port it tells clients to use instead of its own (a proxy in front of it); empty: its own.
    host: str = LOCALHOST
    advertise: str = ""
    kafka_version: str = DEFAULT_KAFKA_VERSION

    @property
    def lib(self) -> Path:
        return LIB if self.kafka_version == DEFAULT_KAFKA_VERSION else LIB.with_name(f"lib-{self.kafka_version}")

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / "server.log"

    @property
    def jvm_out(self) -> Path:
        return self.state_dir / "logs" / "jvm.out"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def describe(self) -> dict:
        """What a client needs to know; written to <state>/instance.json for tests and tools."""
        info = {
            "bootstrap_servers": self.bootstrap,
            "state_dir": str(self.state_dir),
            "data_dir": str(self.data_dir),
            "log_file": str(self.log_file),
            "security": self.security,
            "kafka_version": self.kafka_version,
        }
        if self.security:
            info.update(
                sasl_plaintext_bootstrap=f"127.0.0.1:{self.sasl_port}",
                ssl_bootstrap=f"localhost:{self.ssl_port}",
                ssl_cafile=str(self.state_dir / "security" / "ca.pem"),
                plain_user=list(SASL_PLAIN_USER),
                scram_user=list(SCRAM_USER),
            )
        return info


# --- jars -------------------------------------------------------------------------------------

def require(program: str, what: str) -> str:
    path = shutil.which(program)
    if not path:
        raise DevKafkaError(f"'{program}' not found on PATH: install {what}")
    return path


def resolve_jars(quiet: bool = False, version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Copy a Kafka release's jars from Maven into broker/lib (broker/lib-VERSION for another release than the
    pom's); a no-op (no network) once done for this pom and release. Returns the folder."""
    lib = make_instance(DEFAULT_STATE_DIR, DEFAULT_PORT, False, kafka_version=version).lib
    marker = lib / RESOLVED_MARKER.name
    digest = hashlib.sha256(POM.read_bytes()).hexdigest() + ("" if version == DEFAULT_KAFKA_VERSION else f" {version}")
    if marker.exists() and marker.read_text().strip() == digest:
        return lib
    mvn = require("mvn", "Maven 3.8+ (Debian/Ubuntu: apt-get install maven)")
    require("java", "Java 17+ (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)")
    if not quiet:
        print(f"devkafka: resolving Apache Kafka {version} jars with Maven (first time only)...", file=sys.stderr)
    if lib.exists():
        shutil.rmtree(lib)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={lib}", "-DincludeScope=runtime", f"-Dkafka.version={version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DevKafkaError(f"Maven could not resolve the jars of Kafka {version} (exit {proc.returncode}):\n{tail}")
    marker.write_text(digest + "\n")
    return lib


def java_cmd(main_class: str, log4j_config: Path, *args: str, heap: list[str] | None = None,
             lib: Path = LIB) -> list[str]:
    java = require("java", "Java 17+ (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)")
    # The quoted wildcard is expanded by the JVM, not the shell.
    return [java, *(heap or []), f"-Dlog4j2.configurationFile={log4j_config}",
            "-cp", str(lib / "*"), main_class, *args]


# --- probing ---------------------------------------------------------------------------------

def _kafka_string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def metadata_request(host: str, port: int, timeout: float = 2.0) -> int:
    """Send a Kafka Metadata v4 request; return the number of brokers in the answer.

    Raises OSError (or ValueError on a malformed answer) when no Kafka broker answers there. This is
    a real client request, so "answers" means "serves clients", not just "the port is open".
    """
    correlation_id = 7
    header = struct.pack(">hhi", 3, 4, correlation_id) + _kafka_string("devkafka")
    body = struct.pack(">i", -1) + b"\x00"  # all topics, no auto-creation
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        size_raw = _recv_exact(sock, 4)
        (size,) = struct.unpack(">i", size_raw)
        payload = _recv_exact(sock, size)
    got_id, _throttle, broker_count = struct.unpack(">iii", payload[:12])
    if got_id != correlation_id:
        raise ValueError("unexpected Kafka response")
    return broker_count


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        chunks += chunk
    return bytes(chunks)


def broker_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        return metadata_request(host, port, timeout) >= 1
    except (OSError, ValueError, struct.error):
        return False


def read_pid(inst: Instance) -> int | None:
    """The broker's pid if its pid file names a live kafka.Kafka JVM of this state folder."""
    try:
        pid = int(inst.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return None
    if "kafka.Kafka" not in cmdline or str(inst.state_dir) not in cmdline:
        return None
    return pid


# --- configuration ---------------------------------------------------------------------------

BROKER_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="{log}" filePattern="{log}.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="20 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""

# Kafka's tools log "Registered ... MBean" at INFO; WARN keeps their stdout to the records.
TOOLS_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="err" target="SYSTEM_ERR"><PatternLayout pattern="%p %m%n"/></Console></Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="err"/></Root></Loggers>
</Configuration>
"""


def server_properties(inst: Instance) -> str:
    listeners = [f"PLAINTEXT://{inst.host}:{inst.port}"]
    advertised = [f"PLAINTEXT://{inst.advertise or inst.bootstrap}"]
    protocol_map = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    replicas, min_isr = inst.replicas, min(2, inst.replicas)
    lines = [
        "process.roles=broker,controller",
        f"node.id={inst.node_id}",
        "controller.listener.names=CONTROLLER",
        f"controller.quorum.voters={inst.voters}" if inst.voters else
        f"controller.quorum.bootstrap.servers={inst.host}:{inst.controller_port}",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={inst.data_dir}",
        "num.partitions=3",
        f"default.replication.factor={replicas}",
        f"offsets.topic.replication.factor={replicas}",
        "offsets.topic.num.partitions=1",
        f"transaction.state.log.replication.factor={replicas}",
        f"min.insync.replicas={min_isr}",  # a cluster's topics: acks=all survives one node (docs/operations.md)
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={replicas}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        "group.initial.rebalance.delay.ms=0",
        "num.network.threads=2",
        "num.io.threads=2",
        "auto.create.topics.enable=true",
    ]
    if inst.security:
        sec = inst.state_dir / "security"
        listeners += [f"SASL_PLAINTEXT://127.0.0.1:{inst.sasl_port}", f"SSL://127.0.0.1:{inst.ssl_port}"]
        # The SSL listener is advertised as "localhost" so the client's hostname check runs against
        # the certificate's SAN (dns:localhost, ip:127.0.0.1).
        advertised += [f"SASL_PLAINTEXT://127.0.0.1:{inst.sasl_port}", f"SSL://localhost:{inst.ssl_port}"]
        protocol_map += ["SASL_PLAINTEXT:SASL_PLAINTEXT", "SSL:SSL"]
        users = " ".join(f'user_{u}="{p}"' for u, p in (SASL_ADMIN, SASL_PLAIN_USER))
        lines += [
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{SASL_ADMIN[0]}" password="{SASL_ADMIN[1]}" {users};',
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.ssl.ssl.keystore.type=PKCS12",
            f"listener.name.ssl.ssl.keystore.location={sec / 'broker.p12'}",
            f"listener.name.ssl.ssl.keystore.password={KEYSTORE_PASSWORD}",
            f"listener.name.ssl.ssl.key.password={KEYSTORE_PASSWORD}",
        ]
    listeners.append(f"CONTROLLER://{inst.host}:{inst.controller_port}")
    lines += [
        f"listeners={','.join(listeners)}",
        f"advertised.listeners={','.join(advertised + [f'CONTROLLER://{inst.host}:{inst.controller_port}'])}",
        f"listener.security.protocol.map={','.join(protocol_map)}",
    ]
    return "\n".join(lines) + "\n"


def make_certificate(inst: Instance) -> None:
    """Self-signed broker certificate (keytool) and its PEM export, the client's CA file."""
    sec = inst.state_dir / "security"
    keystore, ca = sec / "broker.p12", sec / "ca.pem"
    if keystore.exists() and ca.exists():
        return
    sec.mkdir(parents=True, exist_ok=True)
    keytool = require("keytool", "Java 17+ (keytool comes with the JDK/JRE)")
    common = ["-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", KEYSTORE_PASSWORD]
    subprocess.run([keytool, "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
                    "-validity", "3650", "-dname", "CN=localhost", "-ext", "SAN=dns:localhost,ip:127.0.0.1",
                    "-keypass", KEYSTORE_PASSWORD, *common], check=True, capture_output=True)
    subprocess.run([keytool, "-exportcert", "-rfc", "-alias", "broker", "-file", str(ca), *common],
                   check=True, capture_output=True)


def cluster_id() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


# --- commands --------------------------------------------------------------------------------

def up(inst: Instance, fresh: bool = False, timeout: float = START_TIMEOUT_S, asked_version: bool = True) -> int:
    """Start the broker on its kept storage (formatted the first time; wiped first with fresh=True). Two starts
    at once (two `make run` in two shells) take turns on a lock: the second finds the first's broker and uses it."""
    inst.state_dir.mkdir(parents=True, exist_ok=True)
    with open(inst.state_dir / "up.lock", "w") as lock:
        if not _try_lock(lock):
            print(f"devkafka: another start of the broker of {inst.state_dir} is under way; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _up(inst, fresh, timeout, asked_version)


def _try_lock(lock) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _up(inst: Instance, fresh: bool, timeout: float, asked_version: bool = True) -> int:
    if inst.security and inst.host != LOCALHOST:
        raise DevKafkaError("--security listens on 127.0.0.1 (its certificate names it); expected no --host with it")
    if broker_answers(inst.host, inst.port):
        running = running_version(inst)
        if asked_version and running and running != inst.kafka_version:  # asked for another: refused, not swapped
            raise DevKafkaError(f"the local broker on {inst.bootstrap} is Kafka {running}, not {inst.kafka_version}: "
                                f"stop it first (make kafka-down) to start Kafka {inst.kafka_version}; its data is kept")
        print(f"devkafka: a Kafka broker{f' ({running})' if running else ''} already answers on {inst.bootstrap}; "
              "nothing to do")
        return 0
    stale = read_pid(inst)
    if stale:
        described = inst.state_dir / "instance.json"
        running = json.loads(described.read_text()).get("bootstrap_servers", "") if described.exists() else ""
        host, _, port = running.rpartition(":")
        if running and running != inst.bootstrap and port.isdigit() and broker_answers(host, int(port)):
            raise DevKafkaError(f"the local broker of {inst.state_dir} (pid {stale}) answers on {running}, not on "
                                f"{inst.bootstrap}: use KAFKA_BOOTSTRAP_SERVERS=localhost:{port}, or stop it first "
                                f"(make kafka-down) to start one on port {inst.port}")
        raise DevKafkaError(f"a broker of {inst.state_dir} is running (pid {stale}) but does not answer on "
                            f"{inst.bootstrap}; run 'python devkafka.py down' first")
    for port in {inst.port, inst.controller_port} | ({inst.sasl_port, inst.ssl_port} if inst.security else set()):
        if _port_in_use(port, inst.host):
            raise DevKafkaError(f"port {port} on {inst.host} is taken by something that is not a Kafka broker; "
                                "choose another with --port")
    started = time.monotonic()
    proc, log_offset = _spawn(inst, fresh, cluster_id())
    _await_started(inst, proc, log_offset, started, started + timeout)
    return 0


def running_version(inst: Instance) -> str | None:
    """The Kafka release of this state folder's broker, when it is running (None: not ours, or not running)."""
    described = inst.state_dir / "instance.json"
    if read_pid(inst) is None or not described.exists():
        return None
    return json.loads(described.read_text()).get("kafka_version", DEFAULT_KAFKA_VERSION)


def _spawn(inst: Instance, fresh: bool, new_cluster_id: str, heap: list[str] | None = None):
    """Write the node's configuration, format its storage when new (with new_cluster_id), start its JVM:
    (the process, where this run's part of the log starts)."""
    resolve_jars(version=inst.kafka_version)
    (inst.state_dir / "logs").mkdir(parents=True, exist_ok=True)
    if inst.security:
        make_certificate(inst)
    props = inst.state_dir / "server.properties"
    props.write_text(server_properties(inst))
    log4j = inst.state_dir / "log4j2.xml"
    log4j.write_text(BROKER_LOG4J.format(log=inst.log_file))
    tools_log4j = inst.state_dir / "tools-log4j2.xml"
    tools_log4j.write_text(TOOLS_LOG4J)

    formatted = (inst.data_dir / "meta.properties").exists()
    if formatted and fresh:
        shutil.rmtree(inst.data_dir)
        formatted = False
    made_for = {"controller_port": inst.controller_port, "security": inst.security}
    if inst.voters:
        made_for["voters"] = inst.voters
    if inst.host != LOCALHOST:  # the controller's address is in the formatted storage
        made_for["host"] = inst.host
    if inst.kafka_version != DEFAULT_KAFKA_VERSION:  # an older release cannot read a newer one's storage
        made_for["kafka_version"] = inst.kafka_version
    note = inst.data_dir / FORMAT_NOTE
    was = json.loads(note.read_text()) if formatted and note.exists() else made_for
    if was != made_for:
        raise DevKafkaError(f"the data in {inst.data_dir} was formatted for port {was['controller_port'] - 3}"
                            f"{' with --security' if was['security'] else ' without --security'} by Kafka "
                            f"{was.get('kafka_version', DEFAULT_KAFKA_VERSION)}; start it that way to keep its "
                            "topics, or wipe them with 'python devkafka.py reset'")
    if formatted:
        print(f"devkafka: keeping the broker's data in {inst.data_dir} (wipe it: python devkafka.py reset)")
    else:
        # A cluster's quorum is in its configuration (controller.quorum.voters); a single node is its own.
        fmt = ["format", *([] if inst.voters else ["--standalone"]), f"--cluster-id={new_cluster_id}", "-c",
               str(props)]  # --cluster-id=...: ids may start with "-"
        if inst.security:
            fmt += ["--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER[0]},password={SCRAM_USER[1]}]"]
        proc = subprocess.run(java_cmd("kafka.tools.StorageTool", tools_log4j, *fmt, lib=inst.lib),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise DevKafkaError(f"formatting the storage failed:\n{(proc.stdout + proc.stderr).strip()}")
        note.write_text(json.dumps(made_for) + "\n")

    # Start from the end of the (possibly kept) log so the "started" line we wait for is this run's.
    log_offset = inst.log_file.stat().st_size if inst.log_file.exists() else 0
    tmp = inst.state_dir / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(inst.jvm_out, "ab") as out:
        proc = subprocess.Popen(
            java_cmd("kafka.Kafka", log4j, str(props), heap=(heap or HEAP) + [
                f"-Ddevkafka.state={inst.state_dir}",
                # snappy-java and zstd-jni unpack their native libraries into the temp folder when
                # first used; a folder of this broker's own keeps /tmp clean-ups from breaking them.
                f"-Djava.io.tmpdir={tmp}"], lib=inst.lib),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in `make run` must not kill the broker
            cwd=inst.state_dir)
    inst.pid_file.write_text(f"{proc.pid}\n")
    (inst.state_dir / "instance.json").write_text(json.dumps(inst.describe(), indent=2) + "\n")
    return proc, log_offset


def _await_started(inst: Instance, proc, log_offset: int, started: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevKafkaError(f"the broker exited with code {proc.returncode} during start-up\n"
                                + _tail(inst, 30))
        if _log_says_started(inst, log_offset) and broker_answers(inst.host, inst.port):
            elapsed = time.monotonic() - started
            print(f"devkafka: Kafka {inst.kafka_version} broker up on {inst.bootstrap} in {elapsed:.1f}s "
                  f"(pid {proc.pid}, state {inst.state_dir})")
            if inst.security:
                d = inst.describe()
                print(f"devkafka: SASL_PLAINTEXT on {d['sasl_plaintext_bootstrap']} (PLAIN {SASL_PLAIN_USER[0]}, "
                      f"SCRAM-SHA-512 {SCRAM_USER[0]}), SSL on {d['ssl_bootstrap']} (CA {d['ssl_cafile']})")
            return
        time.sleep(0.25)
    _stop_pid(proc.pid)
    raise DevKafkaError(f"the broker did not serve clients on {inst.bootstrap} within {deadline - started:.0f}s; "
                        "it was stopped\n" + _tail(inst, 30))


def cluster_up(nodes: list[Instance], fresh: bool = False, timeout: float = START_TIMEOUT_S,
               only: int | None = None) -> int:
    """Start the nodes of a cluster that are not running (all at once: a node waits for a quorum of
    controllers), formatting new storage with one cluster id, and wait until each serves clients. only: node
    `only` alone (each node started by a devkafka of its own, in a network namespace of its own, say: started at
    about the same time, they wait for each other; their cluster id comes from the state folder)."""
    state = nodes[0].state_dir.parent
    state.mkdir(parents=True, exist_ok=True)
    if only is not None:
        node = nodes[only - 1]
        node.state_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            down(node, quiet=True)
            shutil.rmtree(node.data_dir, ignore_errors=True)
        shared_id = base64.urlsafe_b64encode(hashlib.sha256(str(state).encode()).digest()[:16]).decode().rstrip("=")
        started = time.monotonic()
        proc, offset = _spawn(node, False, shared_id, heap=CLUSTER_HEAP)
        _await_started(node, proc, offset, started, started + timeout)
        return 0
    with open(state / "up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh:
            for node in nodes:
                down(node, quiet=True)
                shutil.rmtree(node.data_dir, ignore_errors=True)
        formatted = [(node.data_dir / "meta.properties").exists() for node in nodes]
        if any(formatted) and not all(formatted):
            raise DevKafkaError(f"only some nodes of the cluster in {state} have data; wipe it with "
                                f"'python devkafka.py reset --brokers {len(nodes)}'")
        started = time.monotonic()
        new_id = cluster_id()
        waiting = []
        for node in nodes:
            if read_pid(node) and broker_answers(node.host, node.port):
                continue
            if read_pid(node):
                down(node, quiet=True)
            waiting.append((node, *_spawn(node, False, new_id, heap=CLUSTER_HEAP)))
        for node, proc, offset in waiting:
            _await_started(node, proc, offset, started, started + timeout)
        bootstrap = ",".join(node.bootstrap for node in nodes)
        (state / "cluster.json").write_text(json.dumps(
            {"bootstrap_servers": bootstrap, "nodes": [{"node_id": n.node_id, "bootstrap": n.bootstrap,
                                                        "pid": read_pid(n)} for n in nodes]}, indent=2) + "\n")
        started_now = "" if len(waiting) == len(nodes) else f" ({len(waiting)} nodes started, the others were running)"
        print(f"devkafka: {len(nodes)}-node Kafka cluster up on {bootstrap}{started_now}")
        return 0


def _port_in_use(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _log_says_started(inst: Instance, offset: int) -> bool:
    try:
        with open(inst.log_file, "rb") as f:
            f.seek(offset)
            return b"Kafka Server started" in f.read()
    except OSError:
        return False


def _tail(inst: Instance, lines: int) -> str:
    out = []
    for path in (inst.jvm_out, inst.log_file):
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"--- last lines of {path} ---\n" + "\n".join(text))
    return "\n".join(out) or "(no broker log was written)"


def _stop_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> str:
    """SIGTERM (the JVM's shutdown hook stops the broker cleanly), SIGKILL after the timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return "stopped"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.1)
    return f"killed (did not stop within {timeout:.0f}s of SIGTERM)"


def _alive(pid: int) -> bool:
    # A child we started ourselves must be reaped, or it lingers as a zombie that still "exists".
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"


def down(inst: Instance, quiet: bool = False) -> int:
    pid = read_pid(inst)
    if pid is None:
        if not quiet:
            print(f"devkafka: no broker of {inst.state_dir} is running")
        inst.pid_file.unlink(missing_ok=True)
        return 0
    started = time.monotonic()
    how = _stop_pid(pid)
    inst.pid_file.unlink(missing_ok=True)
    print(f"devkafka: broker (pid {pid}) {how} in {time.monotonic() - started:.1f}s")
    return 0


def reset(inst: Instance) -> int:
    """Stop the broker and delete its data: the one command that loses topics and events, on purpose."""
    down(inst)
    if inst.data_dir.exists():
        shutil.rmtree(inst.data_dir)
        print(f"devkafka: deleted the broker's data in {inst.data_dir}; the next 'up' starts empty")
    else:
        print(f"devkafka: no data in {inst.data_dir}")
    return 0


def status(inst: Instance) -> int:
    pid = read_pid(inst)
    answers = broker_answers(inst.host, inst.port)
    print(f"devkafka: {inst.bootstrap} {'answers' if answers else 'does not answer'}; "
          f"broker of {inst.state_dir}: {f'running, Kafka {inst.kafka_version}, pid {pid}' if pid else 'not running'}")
    return 0 if answers else 1


def logs(inst: Instance, lines: int) -> int:
    print(_tail(inst, lines))
    return 0


def tool(inst: Instance, name: str, args: list[str]) -> int:
    resolve_jars(version=inst.kafka_version)
    log4j = inst.state_dir / "tools-log4j2.xml"
    if not log4j.exists():
        inst.state_dir.mkdir(parents=True, exist_ok=True)
        log4j.write_text(TOOLS_LOG4J)
    if name in ("console-consumer", "topics", "configs", "consumer-groups") and "--bootstrap-server" not in args:
        args = ["--bootstrap-server", inst.bootstrap, *args]
    return subprocess.call(java_cmd(TOOLS[name], log4j, *args, heap=["-Xmx256m"], lib=inst.lib))


def ensure(inst: Instance, bootstrap: str, asked_version: bool = False) -> int:
    """For `make run`: start the local broker only when the target is local and nothing answers; a release asked
    for (KAFKA_VERSION) that is not the one running is refused, not silently swapped."""
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if host.strip("[]") not in ("localhost", "127.0.0.1", "::1", ""):
        print(f"devkafka: {first} is not a local address; not starting a broker")
        return 0
    if broker_answers("127.0.0.1", int(port)):
        running = running_version(replace(inst, port=int(port)))
        if asked_version and running and running != inst.kafka_version:
            raise DevKafkaError(f"KAFKA_VERSION={inst.kafka_version}, but the local broker on {first} is Kafka "
                                f"{running}: stop it first (make kafka-down) to start Kafka {inst.kafka_version}")
        return 0
    return up(make_instance(inst.state_dir, int(port), inst.security, inst.data_dir, kafka_version=inst.kafka_version))


def _instance_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--state-dir, --port, --data-dir: accepted before the command and after it (`up --port 19092`)."""
    def default(value):
        return value if defaults else argparse.SUPPRESS  # after the command: only when given

    parser.add_argument("--state-dir", type=Path,
                        default=default(Path(os.environ.get("DEVKAFKA_STATE_DIR", DEFAULT_STATE_DIR))),
                        help="folder of this broker instance (default .devkafka, env DEVKAFKA_STATE_DIR)")
    parser.add_argument("--port", type=int, default=default(int(os.environ.get("DEVKAFKA_PORT", DEFAULT_PORT))),
                        help="PLAINTEXT listener on 127.0.0.1 (default 9092, env DEVKAFKA_PORT); the controller "
                             "uses port+3, SASL_PLAINTEXT port+1 and SSL port+2")
    parser.add_argument("--data-dir", type=Path, default=default(None),
                        help="log.dirs of the broker (default <state-dir>/data; data-VERSION for another release)")
    parser.add_argument("--kafka-version", metavar="VERSION", default=default(os.environ.get("KAFKA_VERSION") or None),
                        help=f"the Kafka release to run: {', '.join(f'{k} ({v})' for k, v in KAFKA_RELEASES.items())} "
                             f"or a full version, 3.9 or later (default {DEFAULT_KAFKA_VERSION}, env KAFKA_VERSION); "
                             "3.9 serves clients pinned to old protocol versions, which 4.x refuses")
    parser.add_argument("--host", default=default(LOCALHOST),
                        help="the address to listen on (default 127.0.0.1); with --brokers, one per node, "
                             "comma-separated (e.g. 127.0.0.2,127.0.0.3,127.0.0.4)")
    parser.add_argument("--advertise", default=default(""), metavar="HOST:PORT",
                        help="the address clients are told to use (a proxy in front of the broker); default its own")
    parser.add_argument("--node", type=int, metavar="I", default=default(None),
                        help="with --brokers: node I (from 1) alone, e.g. one per network namespace")
    parser.add_argument("--brokers", type=int, choices=range(1, 10), metavar="N", default=default(1),
                        help="1 (default): a single broker; more: a KRaft cluster of N broker+controller nodes, "
                             f"by default in {CLUSTER_STATE_DIR.name} on port {CLUSTER_PORT} and every "
                             f"{NODE_PORT_STEP}th port after it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="devkafka.py", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    _instance_options(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _instance_options(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, parents=[common], allow_abbrev=False)

    p_up = command("up", "start the broker, keeping its data, and wait until it serves clients")
    p_up.add_argument("--security", action="store_true",
                      help="also open SASL_PLAINTEXT (PLAIN, SCRAM-SHA-512) and SSL listeners")
    p_up.add_argument("--fresh", action="store_true", help="wipe the data first (every topic and event)")
    p_up.add_argument("--keep-data", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for scripts
    p_up.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait (default 90)")
    command("down", "stop the broker: SIGTERM, SIGKILL after 30 s; its data stays")
    command("reset", "stop the broker and delete its data (every topic and event)")
    command("status", "exit 0 when a broker answers on the port")
    p_logs = command("logs", "print the end of the broker log")
    p_logs.add_argument("-n", type=int, default=50)
    p_ensure = command("ensure", "start a broker if BOOTSTRAP is local and nothing answers")
    p_ensure.add_argument("bootstrap")
    command("setup", "resolve the Kafka jars with Maven (no-op when done)")
    p_registry = command("registry", "a schema registry (Apicurio, Confluent-compatible API): up, down or status")
    p_registry.add_argument("action", choices=("up", "down", "status"))
    p_registry.add_argument("--registry-port", type=int, default=int(os.environ.get("DEVKAFKA_REGISTRY_PORT",
                                                                                     REGISTRY_PORT)),
                            help=f"its port on 127.0.0.1 (default {REGISTRY_PORT}, env DEVKAFKA_REGISTRY_PORT)")
    p_registry.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait (default 90)")
    p_tool = command("tool", "run one of Kafka's Java tools: " + ", ".join(TOOLS))
    p_tool.add_argument("name", choices=sorted(TOOLS))
    p_tool.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.brokers > 1:
        return cluster_main(args, argv or sys.argv[1:])
    if args.command == "registry":
        try:
            return registry_main(args)
        except DevKafkaError as exc:
            print(f"devkafka: error: {exc}", file=sys.stderr)
            return 1
    state = args.state_dir.resolve()
    security = getattr(args, "security", False)
    described = json.loads((state / "instance.json").read_text()) if (state / "instance.json").exists() else {}
    if not security and args.command != "up":
        security = described.get("security", False)
    try:
        # Asked for, or (down, status, logs...) the release last started here.
        version = kafka_version(args.kafka_version) if args.kafka_version else \
            described.get("kafka_version", DEFAULT_KAFKA_VERSION) if args.command not in ("up", "ensure", "setup") \
            else DEFAULT_KAFKA_VERSION
        inst = make_instance(state, args.port, security, args.data_dir, host=args.host, advertise=args.advertise,
                             kafka_version=version)
        if args.command == "up":
            return up(inst, fresh=args.fresh, timeout=args.timeout, asked_version=bool(args.kafka_version))
        if args.command == "down":
            return down(inst)
        if args.command == "reset":
            return reset(inst)
        if args.command == "status":
            return status(inst)
        if args.command == "logs":
            return logs(inst, args.n)
        if args.command == "ensure":
            return ensure(inst, args.bootstrap, asked_version=bool(args.kafka_version))
        if args.command == "setup":
            print(f"devkafka: Kafka {version} jars ready in {resolve_jars(version=version)}")
            return 0
        return tool(inst, args.name, args.args)
    except DevKafkaError as exc:
        print(f"devkafka: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


# --- the schema registry ----------------------------------------------------------------------

def resolve_registry() -> Path:
    """Apicurio Registry's runnable jar, fetched by Maven (once) and unpacked into registry/lib/app."""
    import tarfile

    app = REGISTRY_LIB / "app"
    jars = sorted(app.glob("*-runner.jar")) if app.exists() else []
    if jars:
        return jars[0]
    mvn = require("mvn", "Maven 3.8+ (Debian/Ubuntu: apt-get install maven)")
    print("devkafka: fetching Apicurio Registry with Maven (first time only, 142 MB)...", file=sys.stderr)
    proc = subprocess.run([mvn, "-q", "-B", "-f", str(REGISTRY_POM), "dependency:copy"], capture_output=True,
                          text=True)
    archives = sorted(REGISTRY_LIB.glob("apicurio-registry-app-*-all.tar.gz"))
    if proc.returncode != 0 or not archives:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DevKafkaError(f"Maven could not fetch Apicurio Registry (exit {proc.returncode}):\n{tail}")
    partial = REGISTRY_LIB / "app.partial"
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(archives[-1]) as archive:
        archive.extractall(partial, filter="data")
    partial.rename(app)
    archives[-1].unlink()  # unpacked: the archive is not needed again
    return sorted(app.glob("*-runner.jar"))[0]


def registry_answers(port: int, timeout: float = 2.0) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{REGISTRY_API}/subjects", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def registry_main(args: argparse.Namespace) -> int:
    """registry up | down | status: Apicurio Registry (in-memory storage) on 127.0.0.1."""
    state = REGISTRY_STATE_DIR if args.state_dir.resolve() == DEFAULT_STATE_DIR.resolve() else args.state_dir
    state = state.resolve()
    port = args.registry_port
    pid_file = state / "registry.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() and pid_file.read_text().strip() else None
    pid = pid if pid and _alive(pid) else None
    url = f"http://127.0.0.1:{port}{REGISTRY_API}"
    if args.action == "status":
        answers = registry_answers(port)
        print(f"devkafka: schema registry {url} {'answers' if answers else 'does not answer'}"
              f"{f' (pid {pid})' if pid else ''}")
        return 0 if answers else 1
    if args.action == "down":
        if pid is None:
            print(f"devkafka: no schema registry of {state} is running")
        else:
            print(f"devkafka: schema registry (pid {pid}) {_stop_pid(pid)}")
        pid_file.unlink(missing_ok=True)
        return 0
    if registry_answers(port):
        print(f"devkafka: a schema registry already answers on {url}; nothing to do")
        return 0
    if _port_in_use(port):
        raise DevKafkaError(f"port {port} on 127.0.0.1 is taken by something that is not a schema registry; "
                            "choose another with --registry-port")
    jar = resolve_registry()
    started = time.monotonic()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "QUARKUS_HTTP_PORT": str(port), "QUARKUS_HTTP_HOST": "127.0.0.1"}
    with open(state / "logs" / "registry.out", "ab") as out:
        proc = subprocess.Popen([require("java", "Java 17+"), "-Xms64m", "-Xmx384m", "-jar", str(jar)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=state)
    pid_file.write_text(f"{proc.pid}\n")
    while time.monotonic() < started + args.timeout:
        if proc.poll() is not None:
            raise DevKafkaError(f"the schema registry exited with code {proc.returncode} during start-up; see "
                                f"{state / 'logs' / 'registry.out'}")
        if registry_answers(port):
            print(f"devkafka: schema registry up on {url} in {time.monotonic() - started:.1f}s (pid {proc.pid}, "
                  "in-memory storage)")
            return 0
        time.sleep(0.2)
    _stop_pid(proc.pid)
    raise DevKafkaError(f"the schema registry did not answer on {url} within {args.timeout:.0f}s; it was stopped")


def cluster_main(args: argparse.Namespace, argv: list[str]) -> int:
    """up, down, reset, status of a cluster (--brokers N)."""
    given = " ".join(argv)
    state = (args.state_dir if "--state-dir" in given or "DEVKAFKA_STATE_DIR" in os.environ
             else CLUSTER_STATE_DIR).resolve()
    port = args.port if "--port" in given or "DEVKAFKA_PORT" in os.environ else CLUSTER_PORT
    hosts = args.host.split(",")
    if len(hosts) not in (1, args.brokers):
        print(f"devkafka: error: --host names {len(hosts)} addresses for {args.brokers} nodes; expected one for all, "
              "or one per node", file=sys.stderr)
        return 1
    nodes = make_cluster(state, port, args.brokers, hosts * args.brokers if len(hosts) == 1 else hosts)
    try:
        if args.kafka_version and kafka_version(args.kafka_version) != DEFAULT_KAFKA_VERSION:
            raise DevKafkaError(f"--kafka-version is for the single broker; a cluster runs Kafka {DEFAULT_KAFKA_VERSION}")
        if args.command == "up":
            if getattr(args, "security", False):
                raise DevKafkaError("--security is for the single broker; a cluster has PLAINTEXT listeners only")
            return cluster_up(nodes, fresh=args.fresh, timeout=args.timeout, only=args.node)
        if args.command in ("down", "reset"):
            nodes = [nodes[args.node - 1]] if args.node else nodes
            # All at once: the last node of a quorum would wait for its gone peers before a clean shutdown.
            for pid in filter(None, (read_pid(node) for node in nodes)):
                os.kill(pid, signal.SIGTERM)
            for node in nodes:
                (reset if args.command == "reset" else down)(node)
            return 0
        if args.command == "status":
            return max(status(node) for node in nodes)
        raise DevKafkaError(f"'{args.command}' is for the single broker; with --brokers: up, down, reset, status")
    except DevKafkaError as exc:
        print(f"devkafka: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
