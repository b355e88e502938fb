"""The load client of ``bench/fanout.py``: N SSE subscribers and one publisher, one epoll loop.

    python -m bench._fanout_client < spec.json        # prints one JSON result line

Lean on purpose: plain non-blocking sockets and ``select.epoll`` (no asyncio, no HTTP
library), one ``recvmsg`` per readable socket, one regular expression over the bytes
received to find each event's send timestamp. Events are not de-chunked: the published data
``T<send time ns>:<seq>:xxx...`` is found wherever it is (chunk-size lines never contain it).

**Timestamps.** Every subscriber socket has ``SO_TIMESTAMPNS``: the kernel stamps each
received segment when it arrives (on loopback: when the server's ``write`` delivers it), and
``recvmsg`` returns that stamp. Latency is *kernel arrival - publisher send*, both
``CLOCK_REALTIME``, so a busy client that reads late does not add its own delay to the
server's. The client's own delay is reported separately: *user-space read - kernel arrival*
(``client_delay``), with the client's CPU use. (When one read returns several events, the
stamp is the newest segment's: an older event then counts slightly late, never early.)

Modes (``spec["mode"]``):

* ``fanout``: open the subscribers (bounded concurrency), publish ``warmup`` events and wait
  for them everywhere, optionally watch Redis idle for ``idle_window`` s, then publish
  ``messages`` events of ``size`` bytes at ``rate``/s on one keep-alive connection (pipelined:
  a publish leaves on schedule whatever the previous one's answer) and wait until every
  subscriber has them all (bounded by ``drain_timeout``).
* ``idle``: open subscribers up to each of ``levels``; at each, let it settle, read the
  servers' RSS, then hold ``hold`` seconds and measure the heartbeats' lateness (gap between
  consecutive arrivals on a connection minus ``ping``).
* ``head``: sequential requests (blocking sockets), time from the request's write to the
  complete response head (and to the first event, where one comes), for each case in turn.
"""

from __future__ import annotations

import array
import contextlib
import errno
import gc
import json
import os
import re
import resource
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from typing import Any

from bench import _loop_lag as loop_lag

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
CMSG_SIZE = socket.CMSG_SPACE(16)
EVENT = re.compile(rb"data: T(\d+):(\d+):")
PING = b": ping"
LINGER_RST = struct.pack("ii", 1, 0)
EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT


def percentiles(samples: array.array[int] | list[int], scale: float = 1e6) -> dict[str, Any]:
    """p50/p90/p99/max/mean of nanosecond samples, in milliseconds."""
    if not samples:
        return {"samples": 0}
    ordered = sorted(samples)
    n = len(ordered)

    def at(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] / scale, 3)

    return {
        "samples": n,
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": round(ordered[-1] / scale, 3),
        "mean": round(sum(ordered) / n / scale, 3),
    }


class Sub:
    """One subscriber connection."""

    __slots__ = (
        "buffer",
        "closed",
        "got",
        "head",
        "head_ns",
        "last_ns",
        "next_seq",
        "pings",
        "port",
        "request",
        "sock",
        "state",
    )

    def __init__(self, sock: socket.socket, port: int, request: bytes) -> None:
        self.sock = sock
        self.port = port
        self.request = request
        self.state = 0  # 0 connecting, 1 waiting for the head, 2 streaming
        self.buffer = b""
        self.head = b""
        self.head_ns = 0
        self.last_ns = 0  # kernel time of the last bytes received
        self.next_seq = 0
        self.got = 0
        self.pings = 0
        self.closed = False


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host = spec.get("host", "127.0.0.1")
        self.epoll = select.epoll()
        self.subs: dict[int, Sub] = {}
        self.pending: list[tuple[int, str]] = []  # (port, path) still to open
        self.connecting = 0
        self.errors: list[str] = []
        self.warmup = int(spec.get("warmup", 0))
        self.lat_kernel = array.array("q")
        self.lat_seq = array.array("i")  # the event of each latency sample
        self.delay_client = array.array("q")
        self.first_arrival: dict[int, int] = {}
        self.last_arrival: dict[int, int] = {}
        self.send_ns: dict[int, int] = {}
        self.out_of_order = 0
        self.ping_interval = float(spec.get("ping", 0.0))
        self.lateness = array.array("q")  # ns, heartbeat gap minus the interval
        self.publisher: socket.socket | None = None
        self.pub_buffer = b""
        self.pub_status: dict[str, int] = {}
        self.opened = 0  # subscribers that have their response head

    # -- subscribers ----------------------------------------------------------------------------
    def queue_subscribers(self) -> None:
        for group in self.spec["subscribers"]:
            self.pending += [(group["port"], group["path"])] * int(group["count"])

    def _open_one(self, port: int, path: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        sub = Sub(sock, port, request)
        code = sock.connect_ex((self.host, port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, f"connect to {port}: {errno.errorcode.get(code, code)}")
        self.subs[sock.fileno()] = sub
        self.epoll.register(sock.fileno(), EPOLLOUT)
        self.connecting += 1

    def open_until(self, target: int, concurrency: int, deadline: float) -> None:
        """Open pending subscribers until ``target`` have their response head."""
        while self.streaming() < target:
            while self.pending and self.connecting < concurrency:
                port, path = self.pending.pop()
                self._open_one(port, path)
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.streaming()} of {target} subscribers opened")
            if self.errors:
                raise RuntimeError("; ".join(self.errors[:5]))
            self.poll(0.05)

    def streaming(self) -> int:
        return self.opened

    def _writable(self, fd: int, sub: Sub) -> None:
        code = sub.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.errors.append(f"connect: {errno.errorcode.get(code, code)}")
            self._drop(fd, sub)
            return
        sub.sock.send(sub.request)
        sub.state = 1
        self.epoll.modify(fd, EPOLLIN)

    def _drop(self, fd: int, sub: Sub) -> None:
        if not sub.closed:
            sub.closed = True
            with contextlib.suppress(OSError):
                self.epoll.unregister(fd)
            if sub.state < 2:
                self.connecting -= 1

    def _readable(self, fd: int, sub: Sub) -> None:
        try:
            data, ancillary, _, _ = sub.sock.recvmsg(65536, CMSG_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self.errors.append(f"recv: {exc!r}")
            self._drop(fd, sub)
            return
        now = time.time_ns()
        kernel = now
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanos = struct.unpack("qq", raw[:16])
                kernel = seconds * 1_000_000_000 + nanos
        if not data:
            if sub.state == 2 or not self.errors:
                self.errors.append(f"closed by the server (state {sub.state})")
            self._drop(fd, sub)
            return
        if sub.state == 1:
            data = sub.head + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                sub.head = data
                return
            head = data[:end]
            if not head.startswith(b"HTTP/1.1 200"):
                self.errors.append(f"head: {head[:200]!r}")
                self._drop(fd, sub)
                return
            sub.head = b""
            sub.state = 2
            sub.head_ns = sub.last_ns = kernel
            self.connecting -= 1
            self.opened += 1
            data = data[end + 4 :]
            if not data:
                return
        self._body(sub, data, kernel, now)

    def _body(self, sub: Sub, data: bytes, kernel: int, now: int) -> None:
        if sub.buffer:
            data = sub.buffer + data
        end = data.rfind(b"\n")  # complete lines only (a heartbeat comment is one line)
        if end < 0:
            sub.buffer = data
            return
        complete, sub.buffer = data[: end + 1], data[end + 1 :]
        warmup = self.warmup
        for sent, seq_bytes in EVENT.findall(complete):
            seq = int(seq_bytes)
            if seq != sub.next_seq:
                self.out_of_order += 1
            sub.next_seq = seq + 1
            sub.got += 1
            if seq >= warmup:
                self.lat_kernel.append(kernel - int(sent))
                self.lat_seq.append(seq)
                self.delay_client.append(now - kernel)
                if kernel > self.last_arrival.get(seq, 0):
                    self.last_arrival[seq] = kernel
                if kernel < self.first_arrival.get(seq, 1 << 62):
                    self.first_arrival[seq] = kernel
        if PING in complete:
            sub.pings += complete.count(PING)
            if self.ping_interval:
                self.lateness.append(kernel - sub.last_ns - int(self.ping_interval * 1e9))
        sub.last_ns = kernel

    # -- the loop ---------------------------------------------------------------------------------
    def poll(self, timeout: float) -> None:
        subs = self.subs
        for fd, mask in self.epoll.poll(timeout, 4096):
            sub = subs.get(fd)
            if sub is None:
                if self.publisher is not None and fd == self.publisher.fileno():
                    self._publisher_readable()
                continue
            if sub.state == 0:
                if mask & (EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                    self._writable(fd, sub)
            else:
                self._readable(fd, sub)

    def close_all(self) -> None:
        for fd, sub in self.subs.items():
            with contextlib.suppress(OSError):
                if not sub.closed:
                    self.epoll.unregister(fd)
                sub.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
                sub.sock.close()
        self.subs.clear()
        if self.publisher is not None:
            with contextlib.suppress(OSError):
                self.publisher.close()
        self.epoll.close()

    # -- publisher ------------------------------------------------------------------------------
    def connect_publisher(self) -> None:
        pub = self.spec["publish"]
        sock = socket.create_connection((self.host, pub["port"]), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.publisher = sock
        self.epoll.register(sock.fileno(), EPOLLIN)

    def publish(self, seq: int) -> None:
        """Send one publish (pipelined: its answer is read whenever it comes). A connection
        the server closed meanwhile (keep-alive timeout) is replaced first."""
        pub = self.spec["publish"]
        size = int(self.spec.get("size", 100))
        if self.publisher is None:
            self.connect_publisher()
        assert self.publisher is not None
        sent = time.time_ns()
        body = f"T{sent}:{seq}:".encode().ljust(size, b"x")
        request = (
            f"POST {pub['path']} HTTP/1.1\r\nHost: {self.host}:{pub['port']}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            self.publisher.sendall(request)
        except OSError:  # closed by the server since the last look: once more, on a new one
            self.close_publisher()
            self.connect_publisher()
            assert self.publisher is not None
            self.publisher.sendall(request)
        self.send_ns[seq] = sent

    def close_publisher(self) -> None:
        if self.publisher is not None:
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(self.publisher.fileno())
            self.publisher.close()
            self.publisher = None
            self.pub_buffer = b""

    def _publisher_readable(self) -> None:
        assert self.publisher is not None
        try:
            data = self.publisher.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the server closed it (idle keep-alive timeout): reconnect on next use
            self._count_statuses(self.pub_buffer)
            self.close_publisher()
            return
        data = self.pub_buffer + data
        cut = data.rfind(b"HTTP/1.1 ")
        self._count_statuses(data[:cut] if cut > 0 else b"")
        self.pub_buffer = data[cut:] if cut >= 0 else b""

    def _count_statuses(self, data: bytes) -> None:
        for status in re.findall(rb"HTTP/1\.1 (\d{3})", data):
            key = status.decode()
            self.pub_status[key] = self.pub_status.get(key, 0) + 1

    def _publisher_statuses(self) -> dict[str, int]:
        counts = dict(self.pub_status)
        for status in re.findall(rb"HTTP/1\.1 (\d{3})", self.pub_buffer):
            key = status.decode()
            counts[key] = counts.get(key, 0) + 1
        return counts

    def publish_series(self, first: int, count: int, rate: float) -> None:
        start = time.monotonic()
        for i in range(count):
            due = start + i / rate
            while (wait := due - time.monotonic()) > 0:
                self.poll(wait)
            self.publish(first + i)

    def wait_delivered(self, total: int, deadline: float) -> bool:
        expected = self.opened
        while time.monotonic() < deadline:
            if sum(1 for s in self.subs.values() if s.got >= total) >= expected:
                return True
            self.poll(0.05)
        return False


# -- server-side readings ---------------------------------------------------------------------
def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def runqueue_wait_seconds(pids: list[int]) -> float:
    """Time the processes' threads were runnable but waiting for a CPU (``schedstat``): how
    much other work on the machine held them back."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[1])
    return total / 1e9


def rss_kib(pids: list[int]) -> float:
    import psutil

    return sum(psutil.Process(pid).memory_info().rss for pid in pids) / 1024


def redis_commandstats(port: int) -> dict[str, int]:
    """``INFO commandstats`` as {command: calls}."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"INFO commandstats\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                size = int(data[1 : data.find(b"\r\n")])
                if len(data) >= data.find(b"\r\n") + 2 + size:
                    break
    stats = {}
    for name, calls in re.findall(rb"cmdstat_([^:]+):calls=(\d+)", data):
        stats[name.decode()] = int(calls)
    return stats


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


# -- profiling ---------------------------------------------------------------------------------
def start_profiler(
    profile: dict[str, Any] | None, pids: list[int], seconds: float
) -> subprocess.Popen[bytes] | None:
    """``py-spy record`` on the first server for the publish window (it runs on this client's
    CPU; ``--nonblocking``: the server is not paused for the samples)."""
    if not profile:
        return None
    cmd = [
        "py-spy", "record", "--pid", str(pids[0]), "--format", "raw", "--output",
        profile["output"], "--rate", str(profile.get("rate", 100)), "--duration",
        str(max(1, round(seconds))), "--function",
    ] + (["--idle"] if profile.get("idle", True) else []) + (
        [] if profile.get("native") else ["--nonblocking"]  # native stacks need pauses
    ) + (
        ["--native"] if profile.get("native") else []
    )  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_profiler(profiler: subprocess.Popen[bytes], client: Client) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while profiler.poll() is None and time.monotonic() < deadline:
        client.poll(0.1)  # keep reading the subscribers meanwhile
    if profiler.poll() is None:
        profiler.kill()
    _, err = profiler.communicate(timeout=10)
    return {"returncode": profiler.returncode, "stderr": err.decode(errors="replace")[-500:]}


# -- modes --------------------------------------------------------------------------------------
def run_fanout(spec: dict[str, Any]) -> dict[str, Any]:
    client = Client(spec)
    n = sum(int(g["count"]) for g in spec["subscribers"])
    messages, rate, warmup = int(spec["messages"]), float(spec["rate"]), client.warmup
    pids = spec.get("server_pids", [])
    redis_port = spec.get("redis_port")
    out: dict[str, Any] = {"subscribers": n, "messages": messages, "rate": rate}
    try:
        t0 = time.monotonic()
        client.queue_subscribers()
        client.open_until(n, int(spec.get("concurrency", 200)), t0 + spec["open_timeout"])
        out["open_seconds"] = round(time.monotonic() - t0, 2)
        if warmup:
            client.publish_series(0, warmup, rate)
            if not client.wait_delivered(warmup, time.monotonic() + spec["drain_timeout"]):
                raise TimeoutError("warm-up events did not reach every subscriber")
        if redis_port and spec.get("idle_window"):
            before = redis_commandstats(redis_port)
            idle_end = time.monotonic() + spec["idle_window"]
            while (left := idle_end - time.monotonic()) > 0:
                client.poll(left)
            out["redis_idle"] = {
                "seconds": spec["idle_window"],
                "calls": delta(redis_commandstats(redis_port), before),
            }
        client.close_publisher()  # a fresh connection for the measured series
        client.pub_status = {}  # answers to the measured publishes only
        redis_before = redis_commandstats(redis_port) if redis_port else None
        cpu0, own0, wall0 = cpu_seconds(pids), time.process_time(), time.monotonic()
        wait0, own_wait0 = runqueue_wait_seconds(pids), runqueue_wait_seconds([os.getpid()])
        profiler = start_profiler(spec.get("profile"), pids, messages / rate + 2)
        client.publish_series(warmup, messages, rate)
        publish_end = time.monotonic()
        complete = client.wait_delivered(warmup + messages, publish_end + spec["drain_timeout"])
        if profiler is not None:
            out["profile"] = finish_profiler(profiler, client)
        wall = time.monotonic() - wall0
        used = cpu_seconds(pids) - cpu0
        out["server_cpu_percent"] = round(100 * used / wall, 1)
        # server CPU per delivered event (one event to one subscriber): the efficiency, which
        # other work on a shared machine hardly changes (unlike the latencies)
        # (deliveries made in the window: an overloaded server may not finish them all)
        out["server_cpu_us_per_delivery"] = round(1e6 * used / max(1, len(client.lat_kernel)), 2)
        out["client_cpu_percent"] = round(100 * (time.process_time() - own0) / wall, 1)
        waited = runqueue_wait_seconds(pids) - wait0
        out["server_runqueue_wait_percent"] = round(100 * waited / wall, 1)
        own_waited = runqueue_wait_seconds([os.getpid()]) - own_wait0
        out["client_runqueue_wait_percent"] = round(100 * own_waited / wall, 1)
        out["window_seconds"] = round(wall, 2)
        if redis_before is not None:
            out["redis_window"] = {
                "seconds": round(wall, 2),
                "calls": delta(redis_commandstats(redis_port), redis_before),
            }
        out["complete"] = complete
        out["latency_ms"] = percentiles(client.lat_kernel)
        out["client_delay_ms"] = percentiles(client.delay_client)
        spans = [
            client.last_arrival[s] - client.first_arrival[s]
            for s in client.last_arrival
            if s in client.first_arrival
        ]
        lasts = [client.last_arrival[s] - client.send_ns[s] for s in client.last_arrival]
        out["fanout_span_ms"] = percentiles(spans)  # first to last subscriber, per message
        out["last_subscriber_ms"] = percentiles(lasts)  # send to the last subscriber
        by_seq: dict[int, list[int]] = {}
        for seq, lat in zip(client.lat_seq, client.lat_kernel, strict=True):
            by_seq.setdefault(seq, []).append(lat)
        out["per_event_ms"] = [  # [seq, p50, max] of each event, in publish order
            [seq, round(statistics.median(lats) / 1e6, 2), round(max(lats) / 1e6, 2)]
            for seq, lats in sorted(by_seq.items())
        ]
        expected = n * messages
        out["missing"] = expected - len(client.lat_kernel)
        out["out_of_order"] = client.out_of_order
        out["publish_statuses"] = client._publisher_statuses()
        out["errors"] = client.errors[:10]
        return out
    finally:
        client.close_all()


def run_idle(spec: dict[str, Any]) -> dict[str, Any]:
    client = Client(spec)
    pids = spec["server_pids"]
    warm = Client({**spec, "subscribers": [{**spec["subscribers"][0], "count": 1}]})
    warm.queue_subscribers()
    warm.open_until(1, 1, time.monotonic() + 30)
    warm.close_all()
    time.sleep(1.0)  # the server notices the reset and frees that stream
    base = rss_kib(pids)
    levels = []
    total = max(spec["levels"])
    groups = spec["subscribers"]
    per_level = []
    for level in spec["levels"]:  # spread every level over the groups like the largest
        per_level.append([(g["port"], g["path"], int(g["count"]) * level // total) for g in groups])
    try:
        start = time.monotonic()
        for shares in per_level:
            have: dict[tuple[int, str], int] = {}
            for sub in client.subs.values():
                key = (sub.port, sub.request.split(b" ")[1].decode())
                have[key] = have.get(key, 0) + 1
            for port, path, count in shares:
                client.pending += [(port, path)] * (count - have.get((port, path), 0))
            target = sum(count for _, _, count in shares)
            client.open_until(
                target, int(spec.get("concurrency", 200)), start + spec["open_timeout"]
            )
            settle_end = time.monotonic() + spec["settle"]
            while (left := settle_end - time.monotonic()) > 0:
                client.poll(left)
            rss = rss_kib(pids)
            client.lateness = array.array("q")
            before = {fd: s.pings for fd, s in client.subs.items()}
            lag_ports = list(spec.get("metrics_ports") or [])  # mianzhang servers' /metrics
            lag_before = loop_lag.first_scrape(lag_ports)
            hold_end = time.monotonic() + spec["hold"]
            while (left := hold_end - time.monotonic()) > 0:
                client.poll(left)
            lag = loop_lag.lag_window(lag_ports, lag_before)  # after the observation window
            pings = sum(s.pings - before.get(fd, 0) for fd, s in client.subs.items())
            due = int(spec["hold"] // spec["ping"]) if spec.get("ping") else 0
            short = sum(
                1 for fd, s in client.subs.items() if not s.closed and s.pings - before[fd] < due
            )
            late = percentiles(client.lateness)
            levels.append(
                {
                    "connections": client.opened,
                    "server_rss_mib": round(rss / 1024, 1),
                    "kib_per_connection": round((rss - base) / client.opened, 2),
                    "rss_after_hold_kib_per_connection": round(
                        (rss_kib(pids) - base) / client.opened, 2
                    ),
                    "pings_in_hold": pings,
                    # connections that got fewer heartbeats than hold // ping in the hold
                    "connections_short_of_heartbeats": short,
                    "heartbeat_lateness_ms": late,
                    # the servers' event-loop lag (mianzhang only): over the hold, max since start
                    "server_loop_lag": lag,
                    "seconds_to_open": round(time.monotonic() - start, 1),
                    "errors": client.errors[:5],
                }
            )
    finally:
        client.close_all()
    return {"baseline_rss_mib": round(base / 1024, 1), "levels": levels}


def one_head(port: int, path: str, expect_event: bool) -> tuple[float, float | None]:
    """Milliseconds from the request's write to the complete head, and to the first event
    (``None`` if none arrives within 2 s after the head)."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        sock.sendall(request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before the head: {data[:200]!r}")
            data += chunk
        head_ms = (time.perf_counter() - t0) * 1000
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected head: {data[:300]!r}")
        first: float | None = None
        sock.settimeout(2.0)
        with contextlib.suppress(TimeoutError):
            while expect_event and b"data: " not in data[end:]:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            else:
                if expect_event:
                    first = (time.perf_counter() - t0) * 1000
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
    return head_ms, first


def run_head(spec: dict[str, Any]) -> dict[str, Any]:
    cases = spec["cases"]
    heads: dict[str, list[float]] = {c["name"]: [] for c in cases}
    firsts: dict[str, list[float]] = {c["name"]: [] for c in cases}
    for case in cases:  # warm-up
        one_head(case["port"], case["path"], case.get("event", False))
    block = int(spec.get("block", 10))
    for _ in range(0, int(spec["samples"]), block):
        for case in cases:
            for _ in range(block):
                head, first = one_head(case["port"], case["path"], case.get("event", False))
                heads[case["name"]].append(head)
                if first is not None:
                    firsts[case["name"]].append(first)
    out = {}
    for case in cases:
        name = case["name"]
        out[name] = {
            "path": case["path"],
            "head_ms": percentiles([int(x * 1e6) for x in heads[name]]),
            "first_event_ms": percentiles([int(x * 1e6) for x in firsts[name]]),
        }
    return out


def main() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(sys.stdin.read())
    gc.disable()  # no collector pauses in the client (kernel stamps make them harmless anyway)
    mode = spec["mode"]
    runner = {"fanout": run_fanout, "idle": run_idle, "head": run_head}[mode]
    result = runner(spec)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
