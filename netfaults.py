"""Network faults for the fault suite (tests/broker/test_faults.py), the way a Jepsen tester makes them on one machine.

Each broker runs in a network namespace of its own; a bridge (in a hub namespace) joins them and, through a veth
pair, this namespace, where the producer and the test's consumers run, so every byte between two brokers or
between a broker and a client crosses a link the suite controls:
- `partition(i, port)` cuts broker i off from its clients (iptables DROP both ways in its namespace);
- `isolate(i)` cuts node i off from the other nodes and from every client; `separate(i, *others)` from some nodes
  only (a leader its followers cannot reach, that its producer still can);
- `lossy(i, port, p)` drops a share p of the packets at random (iptables -m statistic);
- `SlowLink` is a TCP proxy (asyncio) in front of a broker that adds latency and a bandwidth cap (tc netem is not
  in this kernel); the broker advertises the proxy's address, so every request of the clients goes through it.
Each fault is undone when its `with` block ends; `close()` deletes the namespaces, and with them every rule.
Needs root, iproute2 and iptables (`make test` installs iptables where it is missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


class FaultNet:
    """A small network of the suite's own: node namespaces (one per broker, one address each, 10.231.<subnet>.2..),
    joined by a bridge in a hub namespace, which a veth pair joins to this namespace (10.231.<subnet>.1, where the
    producer, the consumers and a proxy are). Every byte between two brokers, or between a broker and a client,
    crosses a link the suite controls; a fault is iptables rules inside one node's namespace, so a node can be cut
    off from some peers and not others (on one namespace's loopback, every address is local and a rule cannot tell
    the nodes apart)."""

    def __init__(self, name: str, subnet: int) -> None:
        self.name, self.subnet = name, subnet
        self.hub = f"{name}-hub"
        self.outside = f"vo-{name}"[:15]
        self.host = f"10.231.{subnet}.1"  # this side's address: where the producer and a proxy are
        self.nodes = 0

    def address(self, i: int = 1) -> str:
        """Node i's address (from 1)."""
        return f"10.231.{self.subnet}.{i + 1}"

    def node(self, i: int = 1) -> str:
        """Node i's namespace."""
        return f"{self.name}-{i}"

    @staticmethod
    def missing_tools() -> str:
        """Why the suite cannot make faults here, or ""."""
        if os.geteuid() != 0:
            return "the fault suite makes network namespaces and iptables rules: it must run as root (as CI does)"
        for tool in ("ip", "iptables"):
            if not shutil.which(tool):
                return f"'{tool}' is not installed: `make test` installs iptables (apt-get), iproute2 gives ip"
        return ""

    def open(self, nodes: int = 3) -> "FaultNet":
        self.close(nodes)  # left over by an interrupted run
        self.nodes = nodes
        run("ip", "netns", "add", self.hub)
        self._in(self.hub, "ip", "link", "add", "br0", "type", "bridge")
        self._in(self.hub, "ip", "link", "set", "br0", "up")
        self._plug(self.outside, None, f"{self.host}/24")
        for i in range(1, nodes + 1):
            run("ip", "netns", "add", self.node(i))
            self._plug(f"vo-{self.name}-{i}"[:15], self.node(i), f"{self.address(i)}/24")
            self.inns(i, "iptables", "-L", "-n")  # iptables works in this kernel and namespace
        return self

    def _plug(self, name: str, namespace: str | None, address: str) -> None:
        """A veth pair from the hub's bridge to a namespace (None: this one), with the address on that end."""
        run("ip", "link", "add", name, "type", "veth", "peer", "name", f"h{name}"[:15])
        run("ip", "link", "set", f"h{name}"[:15], "netns", self.hub)
        self._in(self.hub, "ip", "link", "set", f"h{name}"[:15], "master", "br0", "up")
        if namespace is None:
            run("ip", "addr", "add", address, "dev", name)
            run("ip", "link", "set", name, "up")
        else:
            run("ip", "link", "set", name, "netns", namespace)
            self._in(namespace, "ip", "addr", "add", address, "dev", name)
            self._in(namespace, "ip", "link", "set", name, "up")
            self._in(namespace, "ip", "link", "set", "lo", "up")

    def close(self, nodes: int | None = None) -> None:
        for namespace in [self.node(i) for i in range(1, (nodes or self.nodes) + 1)] + [self.hub]:
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.outside], capture_output=True)

    @staticmethod
    def _in(namespace: str, *command: str) -> str:
        return run("ip", "netns", "exec", namespace, *command)

    def inns(self, i: int, *command: str) -> str:
        """A command run in node i's namespace, to its end; its output."""
        return self._in(self.node(i), *command)

    def devkafka(self, i: int, *args: str) -> subprocess.Popen:
        """devkafka.py in node i's namespace (the broker it starts stays there), started; wait() for its end."""
        return subprocess.Popen(["ip", "netns", "exec", self.node(i), sys.executable, str(ROOT / "devkafka.py"),
                                 *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def start(self, *launches: subprocess.Popen, timeout: float = 240) -> None:
        """Wait for devkafka launches (started together, as a cluster's nodes must be); fail with their output."""
        outputs = [launch.communicate(timeout=timeout)[0] for launch in launches]
        failed = [out for launch, out in zip(launches, outputs) if launch.returncode != 0]
        if failed:
            raise RuntimeError("devkafka failed:\n" + "\n".join(failed))

    # faults: rules inside a node's namespace, removed when the block ends -------------------------------
    @contextlib.contextmanager
    def _rules(self, i: int, *rules: list[str]):
        for rule in rules:
            self.inns(i, "iptables", "-I", *rule)
        try:
            yield
        finally:
            for rule in reversed(rules):
                self.inns(i, "iptables", "-D", *rule)

    def partition(self, i: int, port: int):
        """Nothing reaches node i's port, nothing leaves it: a broker cut off from its clients."""
        return self._rules(i, ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
                           ["OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"])

    def isolate(self, i: int):
        """Node i talks to itself alone: cut off from the other nodes and from every client."""
        return self._rules(i, ["INPUT", "!", "-i", "lo", "-j", "DROP"], ["OUTPUT", "!", "-o", "lo", "-j", "DROP"])

    def separate(self, i: int, *others: int):
        """Node i cut off from those nodes, but not from the clients: a partition leader that goes on taking writes
        its followers never see."""
        rules = []
        for other in others:
            rules += [["INPUT", "-s", self.address(other), "-j", "DROP"],
                      ["OUTPUT", "-d", self.address(other), "-j", "DROP"]]
        return self._rules(i, *rules)

    def lossy(self, i: int, port: int, probability: float):
        """A share of the packets to and from node i's port is dropped at random; TCP resends them, late."""
        chance = ["-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP"]
        return self._rules(i, ["INPUT", "-p", "tcp", "--dport", str(port), *chance],
                           ["OUTPUT", "-p", "tcp", "--sport", str(port), *chance])


def run(*command: str) -> str:
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


class SlowLink:
    """A TCP proxy from (listen_host, listen_port) to (target_host, target_port), in a thread of its own: each chunk
    is delivered `delay` seconds after it was read (latency, not a pause of the stream), at most `rate` bytes per
    second each way; set(0, 0) makes it a plain pipe again."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.listen, self.target = listen, target
        self.delay, self.rate = 0.0, 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="slow-link", daemon=True)

    def start(self) -> "SlowLink":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the proxy could not listen on {self.listen}")
        return self

    def set(self, delay_s: float, bytes_per_s: float) -> None:
        self.delay, self.rate = delay_s, bytes_per_s

    def stop(self) -> None:
        async def end() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            self._loop.stop()
        asyncio.run_coroutine_threadsafe(end(), self._loop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._connect, *self.listen))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _connect(self, client_reader, client_writer) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, broker_writer), self._pipe(broker_reader, client_writer),
                             return_exceptions=True)

    async def _pipe(self, reader, writer) -> None:
        """Chunks are read as they come and queued with the time they are due; a second task writes them then, no
        faster than the rate."""
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if chunk is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
                if self.rate:
                    await asyncio.sleep(len(chunk) / self.rate)

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                chunk = await reader.read(16384)
                if not chunk:
                    break
                await queue.put((time.monotonic() + self.delay, chunk))
        except OSError:
            pass
        finally:
            await queue.put((0.0, None))
            with contextlib.suppress(Exception):
                await sender
            writer.close()
