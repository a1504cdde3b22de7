"""How fast the routing service decides: in process, over HTTP on loopback, and on the bus.

``python benchmarks/serve_speed.py PACKAGE [--seconds 10] [--kafka-seconds 20] [--sustained 600 --rate 5000]``

1. In process: ``Router.decide`` on one order at a time (decisions/s, p50/p99 per decision) and
   on batches of 100 (decisions/s); the ONNX actor alone on batches of 1 and 100.
2. HTTP on loopback: the service under uvicorn (one worker, a subprocess pinned to one CPU)
   and a raw-socket load generator (``benchmarks/_loadgen.py``, pinned to the other CPU:
   httpx's own ~0.4 ms a request measured the client) sending single-order requests at 1,000
   requests/s over 8 keep-alive connections (open loop: a request is due on its schedule;
   latency from its scheduled time), p50/p99/p99.9; then batches of 100 orders with 2
   connections kept busy (decisions/s on the server's one core).
3. The bus on librdkafka's mock cluster: orders produced ahead (unkeyed: the mock keeps about
   5 MB a partition), the loop consuming, deciding, producing, auditing and committing (orders/s
   end to end, and after the consumer group's join), with the duplicate/lost check on the audit
   log (the decisions topic may have dropped its oldest decisions: how many it held is shown).

4. ``--sustained S``: the bus for ``S`` seconds against a producer process sending ``--rate``
   orders/s alongside (unique ids; lz4, since the mock keeps only ~5 MB a partition), started
   once the loop holds its partitions: orders/s over the window, the slowest 10 s, the drain,
   and every produced id checked on the audit log (lost, duplicated).

Prints Markdown. Figures depend on the machine's load (two shared cores here).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

W = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]
REGIONS = ["Beijing", "Hubei", "Guangdong", "Zhejiang", "Sichuan", "Shanghai", "Henan"]


def order(i: int) -> dict:
    rng = np.random.default_rng(i)
    skus = [f"sku-{int(k)}" for k in rng.integers(0, 200, 2)]
    return {"order_id": f"o-{i}", "destination": {"region": REGIONS[i % len(REGIONS)]},
            "lines": [{"sku": s, "qty": 1} for s in skus], "service_level": "express" if i % 3 == 0 else "standard",
            "candidates": [{"warehouse_id": w, "available": {s: int(rng.integers(0, 5)) for s in skus},
                            "remaining_capacity_orders": 100, "backlog_orders": int(rng.integers(0, 300))}
                           for w in W]}


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def in_process(pkg: str, seconds: float) -> dict:
    from twin.serve.router import Router
    from twin.serve.wire import decode_order

    r = Router(pkg)
    orders = [decode_order(json.dumps(order(i))) for i in range(2000)]  # as the service decodes them
    for o in orders[:50]:
        r.decide_raw([o])
    lat, n, t_end = [], 0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        o = orders[n % len(orders)]
        t0 = time.perf_counter()
        r.decide_raw([o])
        lat.append(time.perf_counter() - t0)
        n += 1
    single = {"decisions_per_s": n / sum(lat), "p50_us": pct(lat, 50) * 1e6, "p99_us": pct(lat, 99) * 1e6}
    batches = [orders[i:i + 100] for i in range(0, len(orders), 100)]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        r.decide_raw(batches[n % len(batches)], batch=True)
        n += 1
    batch = {"decisions_per_s": 100 * n / (time.perf_counter() - t0)}
    actor = {}
    if r.actor is not None:
        F = r.actor.n_features
        for b in (1, 100):
            x, m = np.random.default_rng(0).random((b, F), dtype=np.float32), np.ones((b, 8), bool)
            k, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 2.0:
                r.actor(x, m)
                k += 1
            dt = (time.perf_counter() - t0) / k
            actor[b] = {"us_per_call": dt * 1e6, "decisions_per_s": b / dt}
    return {"single": single, "batch100": batch, "actor": actor}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_cpu_s(pid: int, system: bool = False) -> float:
    """A process's CPU seconds so far (all its threads: user + system, or system only)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[12]) + (0 if system else int(f[11]))) / os.sysconf("SC_CLK_TCK")


def _cpus() -> tuple[int, int]:
    """``(server CPU, client CPU)``: the last and the first this process may use."""
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[-1], cpus[0]) if len(cpus) > 1 else (cpus[0], cpus[0])


def _singles() -> list[bytes]:
    """2,000 single-order ``POST /v1/route`` requests, encoded."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _loadgen import request_bytes

    return [request_bytes("/v1/route", json.dumps({"order": order(i)}).encode()) for i in range(2000)]


def http(pkg: str, seconds: float, rate: float = 1000.0) -> dict:
    """The service in a subprocess pinned to CPU 1 (``one core``), the load generator
    (:mod:`_loadgen`, raw sockets) pinned to CPU 0."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _loadgen import open_loop, request_bytes

    port = _free_port()
    audit = Path(tempfile.mkdtemp()) / "audit.jsonl"
    server_cpu, client_cpu = _cpus()
    code = (f"import os; os.sched_setaffinity(0, {{{server_cpu}}}); from twin.serve.app import serve; "
            f"serve({pkg!r}, port={port}, audit={str(audit)!r})")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)

    def server_cpu_s(system: bool = False) -> float:
        return _proc_cpu_s(proc.pid, system)

    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {client_cpu})
    try:
        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sk:
                    sk.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                    if b" 200 " in sk.recv(4096):
                        break
            except OSError:
                pass
            time.sleep(0.1)
        singles = _singles()
        open_loop("127.0.0.1", port, singles, 500, 500.0)  # warm
        c0, s0 = server_cpu_s(), server_cpu_s(True)
        r = open_loop("127.0.0.1", port, singles, int(seconds * rate), rate, connections=8)
        single_cpu, single_sys = server_cpu_s() - c0, server_cpu_s(True) - s0
        lat = r.latencies_s
        single = {"requests": len(lat), "target_rps": rate, "achieved_rps": len(lat) / r.wall_s,
                  "p50_ms": pct(lat, 50) * 1e3, "p99_ms": pct(lat, 99) * 1e3, "p999_ms": pct(lat, 99.9) * 1e3,
                  "server_p50_ms": pct(r.server_ms, 50), "server_p99_ms": pct(r.server_ms, 99),
                  "non_200": sum(v for k, v in r.statuses.items() if k != 200), "sent_late": r.sent_late,
                  "server_cpu_busy": single_cpu / r.wall_s, "server_cpu_us_per_request": 1e6 * single_cpu / len(lat),
                  "server_system_share": single_sys / single_cpu}
        batches = [request_bytes("/v1/route", json.dumps({"orders": [order(i * 100 + k) for k in range(100)]})
                                 .encode()) for i in range(20)]
        open_loop("127.0.0.1", port, batches, 20, 50.0, connections=2)  # warm
        # a rate beyond what the server can answer: 2 connections always have a request waiting
        n = max(20, int(seconds * 150))
        c0, s0 = server_cpu_s(), server_cpu_s(True)
        rb = open_loop("127.0.0.1", port, batches, n, 10_000.0, connections=2)
        batch_cpu, batch_sys = server_cpu_s() - c0, server_cpu_s(True) - s0
        batch = {"decisions_per_s": 100 * len(rb.latencies_s) / rb.wall_s,
                 # the server's own rate: decisions per CPU-second of its process (one core's
                 # worth; equals the wall rate when the load generator keeps it 100% busy)
                 "decisions_per_server_cpu_s": 100 * len(rb.latencies_s) / batch_cpu,
                 "server_cpu_busy": batch_cpu / rb.wall_s, "server_system_share": batch_sys / batch_cpu,
                 "server_p50_ms": pct(rb.server_ms, 50),
                 "non_200": sum(v for k, v in rb.statuses.items() if k != 200)}
        return {"single": single, "batch100": batch, "server_cpu": server_cpu, "client_cpu": client_cpu}
    finally:
        os.sched_setaffinity(0, mine)
        proc.terminate()
        proc.wait(10)


#: A server that does nothing: the same HTTP answer to every request (``raw``: an asyncio
#: protocol with httptools under uvloop; ``uvicorn``: a bare ASGI app under uvicorn). Its tail
#: under the same load is this host's floor (the VM takes a core away for milliseconds at times).
NOOP_SERVER = r"""
import os, sys
os.sched_setaffinity(0, {int(sys.argv[3])})
kind, port = sys.argv[1], int(sys.argv[2])
BODY = b'{"decisions":[]}' if len(sys.argv) < 5 else b"x" * int(sys.argv[4])
if kind == "uvicorn":
    import uvicorn
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            m = await receive()
            more = m.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False)
else:
    import asyncio, httptools, uvloop
    RESP = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY
    class P(asyncio.Protocol):
        def connection_made(self, t):
            self.t, self.p = t, httptools.HttpRequestParser(self)
        def data_received(self, d):
            self.p.feed_data(d)
        def on_message_complete(self):
            self.t.write(RESP)
    async def main():
        s = await asyncio.get_running_loop().create_server(P, "127.0.0.1", port)
        await s.serve_forever()
    uvloop.run(main())
"""


def floor(seconds: float, rate: float = 1000.0) -> dict:
    """The HTTP loads of :func:`http` against the do-nothing servers (``NOOP_SERVER``), pinned
    as the service is: single orders at ``rate`` (p50/p99 from the schedule) and 100-order
    batches answered with 150 KB (a batch's answer is ~150 KB) on 2 busy connections, each
    with the server's CPU per request: what this host and the HTTP stack cost any server."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _loadgen import open_loop, request_bytes

    server_cpu, client_cpu = _cpus()
    singles = _singles()
    batches = [request_bytes("/v1/route", json.dumps({"orders": [order(i * 100 + k) for k in range(100)]}).encode())
               for i in range(5)]
    out = {}
    mine = os.sched_getaffinity(0)
    for kind in ("raw", "uvicorn"):
        for load in ("single", "batch100"):
            port = _free_port()
            size = "16" if load == "single" else "150000"
            proc = subprocess.Popen([sys.executable, "-c", NOOP_SERVER, kind, str(port), str(server_cpu), size])
            os.sched_setaffinity(0, {client_cpu})
            try:
                for _ in range(300):
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                reqs, n, r_, conns = ((singles, int(seconds * rate), rate, 8) if load == "single" else
                                      (batches, int(seconds * 500), 100_000.0, 2))
                open_loop("127.0.0.1", port, reqs, 200, 200.0, connections=conns)  # warm
                c0 = _proc_cpu_s(proc.pid)
                r = open_loop("127.0.0.1", port, reqs, n, r_, connections=conns)
                cpu_us = 1e6 * (_proc_cpu_s(proc.pid) - c0) / len(r.latencies_s)
                out.setdefault(kind, {})[load] = (
                    {"p50_ms": pct(r.latencies_s, 50) * 1e3, "p99_ms": pct(r.latencies_s, 99) * 1e3,
                     "p999_ms": pct(r.latencies_s, 99.9) * 1e3, "sent_late": r.sent_late,
                     "server_cpu_us_per_request": cpu_us} if load == "single" else
                    {"requests_per_s": len(r.latencies_s) / r.wall_s, "server_cpu_us_per_request": cpu_us})
            finally:
                os.sched_setaffinity(0, mine)
                proc.terminate()
                proc.wait(10)
    return out


def bus(pkg: str, seconds: float) -> dict:
    from confluent_kafka import Consumer, Producer, TopicPartition

    from twin.serve.app import Service
    from twin.serve.bus import BusRouter, decisions_by_order, order_event

    p = Producer({"test.mock.num.brokers": 1, "linger.ms": 5})
    brokers = ",".join(f"{b.host}:{b.port}" for b in p.list_topics(timeout=10).brokers.values())
    # The mock cluster keeps about 5 MB a partition (4 partitions a topic) and deletes the oldest
    # messages beyond it: keyed by region (on 3 of the 4 partitions) a sixth of 9,000 orders were
    # gone before the loop could read them, and it waited for them until its time limit (the
    # "245 orders/s" of the first runs). The orders go unkeyed (spread over the 4 partitions; the
    # decisions stay keyed by region) and the bench reports how many the cluster held.
    n = int(seconds * 3000)
    t0 = time.perf_counter()
    for i in range(n):
        h, _, v = order_event(order(i))
        p.produce("orders", value=v, headers=h)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(60)
    produce_s = time.perf_counter() - t0
    wm = Consumer({"bootstrap.servers": brokers, "group.id": "bench-watermarks"})
    held = 0
    for part in wm.list_topics("orders", timeout=10).topics["orders"].partitions:
        lo, hi = wm.get_watermark_offsets(TopicPartition("orders", part), timeout=10)
        held += hi - lo
    wm.close()
    from twin.serve.audit import DECISION_TYPE, read_events

    audit = Path(tempfile.mkdtemp()) / "audit.jsonl"
    svc = Service(pkg, audit=audit, warmup=5)
    b = BusRouter(svc, brokers, "orders", "decisions", group_id="bench", batch=1000)
    t0 = time.perf_counter()
    first = None  # after the group join: the first poll with messages, and the orders it decided
    while b.processed + b.rejected < n and time.perf_counter() - t0 < 10 * seconds:
        b.step(0.5)
        if first is None and b.processed:
            first = (time.perf_counter(), b.processed)
    wall = time.perf_counter() - t0
    b.close()
    svc.close()
    # every decision produced is audited first; the decisions topic (keyed by region, on the
    # mock's 5 MB partitions) may have dropped its oldest ones, so the audit log is counted
    per_order: dict[str, int] = {}
    for ev in read_events(audit):
        if ev["type"] == DECISION_TYPE:
            per_order[ev["data"]["order_id"]] = per_order.get(ev["data"]["order_id"], 0) + 1
    on_topic = decisions_by_order(brokers, "decisions", timeout_s=60)
    steady = (b.processed - first[1]) / (time.perf_counter() - first[0]) if first and b.processed > first[1] else 0.0
    return {"orders": n, "held_by_the_cluster": held, "produce_s": produce_s, "orders_per_s": b.processed / wall,
            "orders_per_s_after_join": steady, "wall_s": wall,
            "decided": len(per_order), "duplicated": sum(v - 1 for v in per_order.values()),
            "undecided_at_time_limit": n - len(per_order), "decisions_on_topic": sum(on_topic.values()),
            "duplicated_on_topic": sum(v - 1 for v in on_topic.values())}


PRODUCER = r"""
import json, sys, time
from confluent_kafka import Producer
brokers, topic, rate, seconds, tpl_path, out_path = sys.argv[1:7]
rate, seconds = float(rate), float(seconds)
tpls = [(json.loads(line)["headers"], json.loads(line)["value"].encode()) for line in open(tpl_path)]
p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "queue.buffering.max.messages": 2_000_000,
              "compression.type": "lz4"})
n_total = int(rate * seconds)
start = time.perf_counter()
i = 0
while i < n_total:
    due = min(n_total, int((time.perf_counter() - start) * rate) + 1)
    while i < due:
        hs, v = tpls[i % len(tpls)]
        oid = f"o-{i}".encode()
        headers = [(k, oid.join(x.encode().split(b"@@"))) for k, x in hs]
        p.produce(topic, value=oid.join(v.split(b"@@")), headers=headers)
        i += 1
    p.poll(0)
    time.sleep(0.005)
p.flush(120)
json.dump({"produced": i, "seconds": time.perf_counter() - start}, open(out_path, "w"))
"""


def bus_sustained(pkg: str, seconds: float, rate: float) -> dict:
    """The bus loop for ``seconds`` against a producer process sending ``rate`` orders/s
    (unique ids) alongside, on librdkafka's mock cluster (held by this process): orders/s
    decided over the production window, the lag, and lost/duplicated decisions counted on the
    audit log (every produced id exactly once)."""
    import msgspec
    from confluent_kafka import Producer

    from twin.serve.app import Service
    from twin.serve.bus import BusRouter, order_event

    mock = Producer({"test.mock.num.brokers": 1})
    brokers = ",".join(f"{b.host}:{b.port}" for b in mock.list_topics(timeout=10).brokers.values())
    tmp = Path(tempfile.mkdtemp())
    with open(tmp / "tpl.jsonl", "w") as f:  # order events with "@@" where the order id goes
        for i in range(500):
            o = order(i)
            o["order_id"] = "@@"
            h, _, v = order_event(o)
            hs = [[k, x.decode().replace("order/@@", "order/@@")] for k, x in h.items() if k != "ce_id"]
            hs.append(["ce_id", "id-@@"])
            f.write(json.dumps({"headers": hs, "value": v.decode()}) + "\n")
    # The mock keeps about 5 MB a partition (4 a topic) and deletes the oldest messages beyond
    # it: at 5,000 orders/s (~1.2 kB each) that is ~3 s of orders, less than the consumer
    # group's join. So the producer compresses (lz4, as Kafka producers commonly do: ~5x on
    # these JSON orders) and production starts once the loop holds its partitions (a real
    # broker retains for days).
    svc = Service(pkg, audit=tmp / "audit.jsonl", warmup=5)
    svc.warm_up()
    b = BusRouter(svc, brokers, "orders", "decisions", group_id="sustained", batch=2000)
    t_join = time.perf_counter()
    while not b.consumer.assignment() and time.perf_counter() - t_join < 60:
        mock.produce("orders", value=b"warm-up: not an order")  # creates the topic; rejected, committed past
        mock.flush(5)
        b.step(0.5)
    join_s = time.perf_counter() - t_join
    prod = subprocess.Popen([sys.executable, "-c", PRODUCER, brokers, "orders", str(rate), str(seconds),
                             str(tmp / "tpl.jsonl"), str(tmp / "produced.json")])
    t0 = time.perf_counter()
    timeline = [(0.0, 0)]
    cpu_marks = [(time.thread_time(), time.process_time())]  # this (the loop's) thread, the whole process
    next_mark = 10.0
    while True:
        b.step(0.2)
        t = time.perf_counter() - t0
        if t >= next_mark:
            timeline.append((t, b.processed))
            cpu_marks.append((time.thread_time(), time.process_time()))
            next_mark += 10.0
        if prod.poll() is not None:
            produced = json.loads((tmp / "produced.json").read_text())["produced"]
            if b.processed + b.rejected + b.skipped >= produced or t > seconds + 180:
                break
    wall = time.perf_counter() - t0
    timeline.append((wall, b.processed))
    b.close()
    svc.close()
    prod_info = json.loads((tmp / "produced.json").read_text())

    data_t = msgspec.defstruct("Data", [("order_id", str)])
    dec = msgspec.json.Decoder(msgspec.defstruct("Ev", [("type", str), ("data", data_t)]))
    per: dict[str, int] = {}
    with open(tmp / "audit.jsonl", "rb") as f:
        for line in f:
            ev = dec.decode(line)
            if ev.type.endswith("decision.v1"):
                per[ev.data.order_id] = per.get(ev.data.order_id, 0) + 1
    expected = {f"o-{i}" for i in range(prod_info["produced"])}
    # the rate over the production window (after the first 10 s mark, up to the last mark within it)
    inside = [(t, n) for t, n in timeline if 10.0 <= t <= prod_info["seconds"]]
    steady = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else 0.0
    rates = [(b2 - a2) / (tb - ta) for (ta, a2), (tb, b2) in zip(timeline, timeline[1:]) if tb > ta]
    shutil_rm(tmp)
    return {"target_rate": rate, "seconds": seconds, "produced": prod_info["produced"], "join_s": join_s,
            "production_s": prod_info["seconds"], "decided": b.processed, "wall_s": wall,
            "orders_per_s_steady": steady, "orders_per_s_overall": b.processed / wall,
            "min_10s_rate": min(rates[1:-1]) if len(rates) > 2 else None,
            "drain_after_production_s": wall - prod_info["seconds"],
            "lost": len(expected - per.keys()), "duplicated": sum(v - 1 for v in per.values()),
            "unexpected": len(per.keys() - expected), "rates_10s": [round(r) for r in rates],
            # per 10 s: the loop thread's CPU µs per order decided, and the other threads' CPU
            # (librdkafka's, the mock cluster's) in cores
            "loop_cpu_us_per_order_10s": [round(1e6 * (c1[0] - c0[0]) / max(1, n1 - n0)) for (c0, c1), (_, n0), (_, n1)
                                          in zip(zip(cpu_marks, cpu_marks[1:]), timeline, timeline[1:])],
            "other_threads_cores_10s": [round(((c1[1] - c0[1]) - (c1[0] - c0[0])) / (t1 - t0_), 2)
                                        for (c0, c1), (t0_, _), (t1, _) in
                                        zip(zip(cpu_marks, cpu_marks[1:]), timeline, timeline[1:])]}


def shutil_rm(p: Path) -> None:
    import shutil

    shutil.rmtree(p, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kafka-seconds", type=float, default=10.0)
    ap.add_argument("--sustained", type=float, default=0.0,
                    help="also the bus for this many seconds against a producer alongside (600: the issue's 10 minutes)")
    ap.add_argument("--rate", type=float, default=5000.0, help="orders/s the producer sends in --sustained")
    ap.add_argument("--only-sustained", action="store_true", help="run only --sustained")
    ap.add_argument("--only-http", action="store_true", help="run only the HTTP part")
    ap.add_argument("--rounds", type=int, default=1,
                    help="with --only-http: run it this many times (with --floor, the do-nothing servers after "
                         "each) and print the medians")
    ap.add_argument("--floor", action="store_true",
                    help="also the single-order load against do-nothing servers: the host's own tail")
    a = ap.parse_args()
    if a.sustained > 0:
        k = bus_sustained(a.package, a.sustained, a.rate)
        print(f"\n| Kafka, sustained (producer process alongside at {k['target_rate']:,.0f} orders/s, lz4) | figure |"
              "\n|---|---:|")
        print(f"| orders produced / decided | {k['produced']:,} / {k['decided']:,} in {k['wall_s']:.0f} s "
              f"(production {k['production_s']:.0f} s, then {k['drain_after_production_s']:.1f} s to drain) |")
        print(f"| **orders/s decided over the production window** (after 10 s) | **{k['orders_per_s_steady']:,.0f}** |")
        print(f"| slowest 10 s | {k['min_10s_rate'] or 0:,.0f} orders/s |")
        print(f"| lost / duplicated / unexpected (audit log vs produced ids) | {k['lost']} / {k['duplicated']} / "
              f"{k['unexpected']} |")
        print("\n" + json.dumps({"kafka_sustained": k}, default=str))
        if a.only_sustained:
            return
    if a.only_http:
        runs = []
        for k in range(a.rounds):
            h = http(a.package, a.seconds)
            if a.floor:
                h["floor"] = floor(a.seconds)
            runs.append(h)
            s, b = h["single"], h["batch100"]
            fl = "".join(f"; do-nothing {kind} p99 {v['single']['p99_ms']:.2f} ms "
                         f"({v['single']['server_cpu_us_per_request']:.0f} µs CPU a request, "
                         f"{v['batch100']['server_cpu_us_per_request']:.0f} µs a batch)"
                         for kind, v in h.get("floor", {}).items())
            print(f"round {k + 1}: single p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms (server's own p99 "
                  f"{s['server_p99_ms']:.2f} ms, {s['sent_late']} sent late, {s['server_cpu_us_per_request']:.0f} µs "
                  f"CPU a request){fl} | batched {b['decisions_per_s']:,.0f} decisions/s "
                  f"({b['server_cpu_busy']:.0%} busy)", flush=True)
        med = {"single_p99_ms": float(np.median([h["single"]["p99_ms"] for h in runs])),
               "single_p50_ms": float(np.median([h["single"]["p50_ms"] for h in runs])),
               "batched_decisions_per_s": float(np.median([h["batch100"]["decisions_per_s"] for h in runs]))}
        for kind in ("raw", "uvicorn") if a.floor else ():
            for key, (load, field) in {"p99_ms": ("single", "p99_ms"),
                                       "cpu_us_per_single": ("single", "server_cpu_us_per_request"),
                                       "cpu_us_per_batch": ("batch100", "server_cpu_us_per_request")}.items():
                med[f"do_nothing_{kind}_{key}"] = float(np.median([h["floor"][kind][load][field] for h in runs]))
        print(json.dumps({"rounds": runs, "medians": med} if a.rounds > 1 else runs[0], default=str, indent=1))
        return
    ip = in_process(a.package, a.seconds)
    print("| in process | decisions/s | p50 | p99 |\n|---|---:|---:|---:|")
    s = ip["single"]
    print(f"| Router.decide, 1 order | {s['decisions_per_s']:,.0f} | {s['p50_us']:.0f} µs | {s['p99_us']:.0f} µs |")
    print(f"| Router.decide, batches of 100 | {ip['batch100']['decisions_per_s']:,.0f} | | |")
    for bsz, v in ip["actor"].items():
        print(f"| ONNX actor alone, batch {bsz} | {v['decisions_per_s']:,.0f} | {v['us_per_call']:.0f} µs/call | |")
    h = http(a.package, a.seconds)
    s = h["single"]
    print(f"\n| HTTP on loopback (1 uvicorn worker on CPU {h['server_cpu']}, the load generator on CPU "
          f"{h['client_cpu']}) | figure |\n|---|---:|")
    print(f"| single-order requests at {s['target_rps']:.0f}/s, open loop (achieved {s['achieved_rps']:.0f}/s; "
          f"{s['sent_late']} sent late) | p50 {s['p50_ms']:.2f} ms, **p99 {s['p99_ms']:.2f} ms**, p99.9 "
          f"{s['p999_ms']:.2f} ms from the scheduled send; the server's own time p50 {s['server_p50_ms']:.3f} ms, "
          f"p99 {s['server_p99_ms']:.3f} ms; its CPU {s['server_cpu_busy']:.0%} busy, "
          f"{s['server_cpu_us_per_request']:.0f} µs a request |")
    print(f"| batches of 100 orders, 2 connections kept busy | **{h['batch100']['decisions_per_s']:,.0f} "
          f"decisions/s** (the server's time p50 {h['batch100']['server_p50_ms']:.1f} ms a request; its CPU "
          f"{h['batch100']['server_cpu_busy']:.0%} busy: {h['batch100']['decisions_per_server_cpu_s']:,.0f} decisions "
          f"per CPU-second) |")
    print(f"| non-200 answers | {s['non_200'] + h['batch100']['non_200']} |")
    k = bus(a.package, a.kafka_seconds)
    print("\n| Kafka (mock cluster) | figure |\n|---|---:|")
    print(f"| orders end to end (consume, decide, produce, audit, commit) | {k['orders_per_s']:,.0f} orders/s over "
          f"{k['orders']:,} orders ({k['wall_s']:.1f} s, the consumer group's join included) |")
    print(f"| the same after the first poll (the join excluded) | {k['orders_per_s_after_join']:,.0f} orders/s |")
    print(f"| orders the mock cluster held when the loop started | {k['held_by_the_cluster']:,} of {k['orders']:,} |")
    print(f"| decisions the topic still held / duplicated there | {k['decisions_on_topic']:,} / "
          f"{k['duplicated_on_topic']} |")
    print(f"| duplicated (audit log) / not yet decided when the loop's time limit ({10 * a.kafka_seconds:g} s) hit | "
          f"{k['duplicated']} / {k['undecided_at_time_limit']} |")
    print("\n" + json.dumps({"in_process": ip, "http": h, "kafka": k}, default=str))


if __name__ == "__main__":
    main()
