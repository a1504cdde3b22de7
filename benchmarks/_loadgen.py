"""A lean open-loop HTTP/1.1 load generator for the serve benchmark (raw sockets, one thread).

httpx spends ~0.3-0.5 ms of CPU on a request; on a 2-core machine that shares the cores with
the server it measured the client, not the service. This sends pre-encoded requests over
``connections`` keep-alive sockets on a fixed schedule (request ``i`` is due at ``start +
i / rate``; it goes out on the first idle connection at or after its time) and measures each
latency from its *scheduled* time to the end of its response, so a server that falls behind
shows as queueing delay (no coordinated omission). Responses are framed by Content-Length.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["LoadResult", "open_loop", "request_bytes"]


def request_bytes(path: str, body: bytes, host: str = "127.0.0.1") -> bytes:
    """A keep-alive ``POST`` of a JSON body."""
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    latencies_s: list[float] = field(default_factory=list)  # from the scheduled send to the response's end
    statuses: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0
    sent_late: int = 0  # requests that found no idle connection at their time
    server_ms: list[float] = field(default_factory=list)  # the Server-Timing route;dur of each answer


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.buf = b""
        self.due: float | None = None  # the scheduled time of the request in flight


def _parse(buf: bytes) -> tuple[int, int, float | None] | None:
    """``(status, bytes consumed, server ms)`` of the first complete response in ``buf``."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length, server = 0, None
    for h in head[1:]:
        k, _, v = h.partition(":")
        k = k.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "server-timing" and "dur=" in v:
            server = float(v.split("dur=")[1].split(",")[0])
    total = end + 4 + length
    if len(buf) < total:
        return None
    return status, total, server


def open_loop(host: str, port: int, requests: list[bytes], n: int, rate: float, connections: int = 8) -> LoadResult:
    """Send ``n`` requests (cycling over ``requests``) at ``rate`` a second, open loop."""
    conns = [_Conn(host, port) for _ in range(connections)]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    idle = deque(conns)
    res = LoadResult()
    start = time.perf_counter()
    i = done = sent = 0
    backlog: deque[float] = deque()  # due times of requests waiting for an idle connection
    while done < n:
        now = time.perf_counter()
        while i < n and start + i / rate <= now:
            backlog.append(start + i / rate)
            i += 1
        while backlog and idle:
            c = idle.popleft()
            c.due = backlog.popleft()
            if now - c.due > 0.0005:
                res.sent_late += 1
            c.sock.sendall(requests[sent % len(requests)])
            sent += 1
        # While requests remain, poll without sleeping: epoll rounds a timeout up to whole
        # milliseconds, which sent about half the requests of a 1,000/s schedule up to 1 ms late
        # (measured: 2,300-2,600 of 5,000) and counted that delay as the server's. The client
        # spins on its own core (the benchmark pins it to core 0, the server to core 1).
        wait = 0.0 if i < n else 0.01
        for key, _ in sel.select(wait):
            c = key.data
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the server closed a connection")
            c.buf += chunk
            while (parsed := _parse(c.buf)) is not None:
                status, used, server = parsed
                c.buf = c.buf[used:]
                t = time.perf_counter()
                res.latencies_s.append(t - c.due)
                res.statuses[status] = res.statuses.get(status, 0) + 1
                if server is not None:
                    res.server_ms.append(server)
                done += 1
                idle.append(c)
    res.wall_s = time.perf_counter() - start
    for c in conns:
        sel.unregister(c.sock)
        c.sock.close()
    return res
