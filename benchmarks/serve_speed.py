"""How fast the routing service decides: in process, over HTTP on loopback, and on the bus.

``python benchmarks/serve_speed.py PACKAGE [--seconds 10] [--kafka-seconds 20]``

1. In process: ``Router.decide`` on one order at a time (decisions/s, p50/p99 per decision) and
   on batches of 100 (decisions/s); the ONNX actor alone on batches of 1 and 100.
2. HTTP on loopback: the service under uvicorn (one worker, a subprocess) and an httpx client
   sending single-order requests at 1,000 requests/s (open loop: a request is sent on its
   schedule; latency from its scheduled time), p50/p99; then batches of 100 orders back to back
   (decisions/s).
3. The bus on librdkafka's mock cluster: orders produced ahead (unkeyed: the mock keeps about
   5 MB a partition), the loop consuming, deciding, producing, auditing and committing (orders/s
   end to end, and after the consumer group's join), with the duplicate/lost check on the audit
   log (the decisions topic may have dropped its oldest decisions: how many it held is shown).

Prints Markdown. Figures depend on the machine's load (two shared cores here).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
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
    from twin.serve.schema import Order

    r = Router(pkg)
    orders = [Order.model_validate(order(i)) for i in range(2000)]
    for o in orders[:50]:
        r.decide([o])
    lat, n, t_end = [], 0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        o = orders[n % len(orders)]
        t0 = time.perf_counter()
        r.decide([o])
        lat.append(time.perf_counter() - t0)
        n += 1
    single = {"decisions_per_s": n / sum(lat), "p50_us": pct(lat, 50) * 1e6, "p99_us": pct(lat, 99) * 1e6}
    batches = [orders[i:i + 100] for i in range(0, len(orders), 100)]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        r.decide(batches[n % len(batches)], batch=True)
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


def http(pkg: str, seconds: float, rate: float = 1000.0) -> dict:
    import httpx

    port = _free_port()
    audit = Path(tempfile.mkdtemp()) / "audit.jsonl"
    code = (f"from twin.serve.app import serve; serve({pkg!r}, port={port}, audit={str(audit)!r})")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        c = httpx.Client(base_url=url, timeout=10)
        for _ in range(300):
            try:
                if c.get("/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        bodies = [json.dumps({"order": order(i)}).encode() for i in range(2000)]
        hdr = {"content-type": "application/json"}
        for b in bodies[:200]:
            c.post("/v1/route", content=b, headers=hdr)
        lat, late_sends, bad = [], 0, 0
        n = int(seconds * rate)
        start = time.perf_counter()
        for i in range(n):
            due = start + i / rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            else:
                late_sends += 1
            r = c.post("/v1/route", content=bodies[i % len(bodies)], headers=hdr)
            lat.append(time.perf_counter() - due)
            bad += r.status_code != 200
        achieved = n / (time.perf_counter() - start)
        single = {"requests": n, "target_rps": rate, "achieved_rps": achieved, "p50_ms": pct(lat, 50) * 1e3,
                  "p99_ms": pct(lat, 99) * 1e3, "non_200": bad, "sent_late": late_sends}
        batch_bodies = [json.dumps({"orders": [order(i * 100 + k) for k in range(100)]}).encode() for i in range(20)]
        k, t0, blat = 0, time.perf_counter(), []
        while time.perf_counter() - t0 < seconds:
            t1 = time.perf_counter()
            r = c.post("/v1/route", content=batch_bodies[k % len(batch_bodies)], headers=hdr)
            blat.append(time.perf_counter() - t1)
            bad += r.status_code != 200
            k += 1
        batch = {"decisions_per_s": 100 * k / (time.perf_counter() - t0), "p50_ms": pct(blat, 50) * 1e3,
                 "non_200": bad}
        c.close()
        return {"single": single, "batch100": batch}
    finally:
        proc.terminate()
        proc.wait(10)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kafka-seconds", type=float, default=10.0)
    a = ap.parse_args()
    ip = in_process(a.package, a.seconds)
    print("| in process | decisions/s | p50 | p99 |\n|---|---:|---:|---:|")
    s = ip["single"]
    print(f"| Router.decide, 1 order | {s['decisions_per_s']:,.0f} | {s['p50_us']:.0f} µs | {s['p99_us']:.0f} µs |")
    print(f"| Router.decide, batches of 100 | {ip['batch100']['decisions_per_s']:,.0f} | | |")
    for bsz, v in ip["actor"].items():
        print(f"| ONNX actor alone, batch {bsz} | {v['decisions_per_s']:,.0f} | {v['us_per_call']:.0f} µs/call | |")
    h = http(a.package, a.seconds)
    s = h["single"]
    print("\n| HTTP on loopback (1 uvicorn worker) | figure |\n|---|---:|")
    print(f"| single-order requests at {s['target_rps']:.0f}/s (achieved {s['achieved_rps']:.0f}/s) | p50 "
          f"{s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms |")
    print(f"| batches of 100 orders, back to back | {h['batch100']['decisions_per_s']:,.0f} decisions/s "
          f"(p50 {h['batch100']['p50_ms']:.1f} ms a request) |")
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
