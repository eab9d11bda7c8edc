"""Network faults for the fault suite (test_faults.py), the way a Jepsen tester makes them on one machine.

A network namespace of the suite's own holds the brokers; a veth pair joins it to this namespace, where the
producer and the test's consumers run, so every byte between them crosses a link the suite controls:
- `partition(port)` cuts a broker off (iptables DROP both ways inside the namespace);
- `isolate(address)` cuts one node of a cluster off from the other nodes and from every client;
- `lossy(port, p)` drops a share p of the packets at random (iptables -m statistic);
- `SlowLink` is a TCP proxy (asyncio) in front of a broker that adds latency and a bandwidth cap (tc netem is not
  in this kernel); the broker advertises the proxy's address, so every request of the clients goes through it.
Each fault is undone when its `with` block ends; `close()` deletes the namespace, and with it every rule.
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
    """A namespace with addresses 10.231.<subnet>.2.. on its side of a veth pair; 10.231.<subnet>.1 on ours."""

    def __init__(self, name: str, subnet: int) -> None:
        self.name, self.subnet = name, subnet
        self.outside = f"veth-{name}"[:15]
        self.inside = f"vns-{name}"[:15]
        self.host = f"10.231.{subnet}.1"  # this side's address: where a proxy listens

    def address(self, i: int = 1) -> str:
        """The namespace's i-th address (from 1): one per broker."""
        return f"10.231.{self.subnet}.{i + 1}"

    @staticmethod
    def missing_tools() -> str:
        """Why the suite cannot make faults here, or ""."""
        if os.geteuid() != 0:
            return "the fault suite makes network namespaces and iptables rules: it must run as root (as CI does)"
        for tool in ("ip", "iptables"):
            if not shutil.which(tool):
                return f"'{tool}' is not installed: `make test` installs iptables (apt-get), iproute2 gives ip"
        return ""

    def open(self, addresses: int = 3) -> "FaultNet":
        self.close()  # left over by an interrupted run
        run("ip", "netns", "add", self.name)
        run("ip", "link", "add", self.outside, "type", "veth", "peer", "name", self.inside)
        run("ip", "link", "set", self.inside, "netns", self.name)
        run("ip", "addr", "add", f"{self.host}/24", "dev", self.outside)
        run("ip", "link", "set", self.outside, "up")
        for i in range(1, addresses + 1):
            self.inns("ip", "addr", "add", f"{self.address(i)}/24", "dev", self.inside)
        self.inns("ip", "link", "set", self.inside, "up")
        self.inns("ip", "link", "set", "lo", "up")
        self.inns("iptables", "-L", "-n")  # iptables works in this kernel and namespace
        return self

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.outside], capture_output=True)

    def inns(self, *command: str) -> str:
        """A command run inside the namespace, to its end; its output."""
        return run("ip", "netns", "exec", self.name, *command)

    def devkafka(self, *args: str, timeout: float = 180) -> None:
        """devkafka.py inside the namespace (the brokers it starts stay there)."""
        out = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, str(ROOT / "devkafka.py"), *args],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"devkafka {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")

    # faults: rules inside the namespace, removed when the block ends ----------------------------------------
    @contextlib.contextmanager
    def _rules(self, *rules: list[str]):
        for rule in rules:
            self.inns("iptables", "-I", *rule)
        try:
            yield
        finally:
            for rule in reversed(rules):
                self.inns("iptables", "-D", *rule)

    def partition(self, port: int):
        """Nothing reaches the broker's port, nothing leaves it: a broker cut off from its clients."""
        return self._rules(["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
                           ["OUTPUT", "-p", "tcp", "--sport", str(port), "-j", "DROP"])

    def isolate(self, address: str):
        """The node at this address talks to itself alone: cut off from the other nodes and from every client."""
        return self._rules(["INPUT", "-d", address, "!", "-s", address, "-j", "DROP"],
                           ["INPUT", "-s", address, "!", "-d", address, "-j", "DROP"],
                           ["OUTPUT", "-s", address, "!", "-d", address, "-j", "DROP"])

    def separate(self, address: str, *others: str):
        """The node at this address cut off from those nodes, but not from the clients (they reach it over the veth
        pair): a partition leader that goes on taking writes its followers never see."""
        rules = []
        for other in others:
            rules += [["INPUT", "-s", address, "-d", other, "-j", "DROP"],
                      ["INPUT", "-s", other, "-d", address, "-j", "DROP"]]
        return self._rules(*rules)

    def lossy(self, port: int, probability: float):
        """A share of the packets to and from the broker's port is dropped at random; TCP resends them, late."""
        chance = ["-m", "statistic", "--mode", "random", "--probability", str(probability), "-j", "DROP"]
        return self._rules(["INPUT", "-p", "tcp", "--dport", str(port), *chance],
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
