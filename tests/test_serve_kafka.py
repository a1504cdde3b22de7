"""The bus on librdkafka's built-in mock cluster (no broker process): order-created CloudEvents in,
decisions out, exactly one decision per order across a consumer that dies before committing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from twin.policies.export import export_heuristic
from twin.serve.app import Service
from twin.serve.audit import DECISION_TYPE, read_events
from twin.serve.bus import BusRouter, decisions_by_order, order_event

W = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]
REGIONS = ["Beijing", "Hubei", "Guangdong", "Zhejiang", "Sichuan"]


@pytest.fixture(scope="module")
def cluster():  # noqa: ANN201
    """A one-broker mock cluster, alive while its producer is."""
    p = Producer({"test.mock.num.brokers": 1})
    brokers = ",".join(f"{b.host}:{b.port}" for b in p.list_topics(timeout=10).brokers.values())
    yield p, brokers
    p.flush(5)


def _order(i: int) -> dict:
    sku = f"sku-{i % 40}"
    return {"order_id": f"k-{i}", "destination": {"region": REGIONS[i % len(REGIONS)]},
            "lines": [{"sku": sku, "qty": 1 + i % 2}], "service_level": "standard" if i % 3 else "express",
            "candidates": [{"warehouse_id": w, "available": {sku: (i + j) % 4}, "remaining_capacity_orders": 50}
                           for j, w in enumerate(W)]}


def test_exactly_one_decision_per_order_across_a_consumer_restart(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    producer, brokers = cluster
    topic_in, topic_out = "orders.created.t1", "routing.decisions.t1"
    n = 600
    for i in range(n):
        headers, key, value = order_event(_order(i))
        producer.produce(topic_in, key=key, value=value, headers=headers)
    producer.produce(topic_in, key=b"x", value=b"not an order")  # committed past, no decision
    producer.flush(10)
    pkg = export_heuristic("promise_aware", tmp_path / "pkg")
    audit = tmp_path / "audit.jsonl"

    svc = Service(pkg, audit=audit, warmup=1)
    bus = BusRouter(svc, brokers, topic_in, topic_out, group_id="g1", batch=100)
    deadline = time.monotonic() + 180  # generous: a loaded shared machine; the loops end when done
    while bus.processed < 250 and time.monotonic() < deadline:
        bus.step(0.5)
    before = bus.processed
    polled = 0
    while polled == 0 and time.monotonic() < deadline:  # dies after producing and auditing, before committing
        polled = bus.step(0.5, crash_before_commit=True)
    assert polled > 0 and bus.processed > before
    crashed = set(bus.last_decided)
    assert len(crashed) == bus.processed - before
    rejected_before = bus.rejected  # the bad message may sit in a partition the first consumer finished
    bus.close()
    svc.close()

    svc2 = Service(pkg, audit=audit, warmup=1)  # the restart: same group, same audit log
    bus2 = BusRouter(svc2, brokers, topic_in, topic_out, group_id="g1", batch=100)
    assert crashed <= bus2.decided.keys()  # read back from the decisions topic
    while len(bus2.decided) < n and time.monotonic() < deadline:
        bus2.step(0.5)
    for _ in range(3):
        bus2.step(0.3)
    assert bus2.skipped > 0  # the uncommitted batch came again and was not decided twice
    # the bad message is refused, by one consumer or (in the uncommitted batch) by both; never decided
    assert rejected_before + bus2.rejected >= 1
    bus2.close()
    svc2.close()

    counts = decisions_by_order(brokers, topic_out)
    assert len(counts) == n and set(counts.values()) == {1}
    assert set(counts) == {f"k-{i}" for i in range(n)}
    audited = [e for e in read_events(audit) if e["type"] == DECISION_TYPE]
    assert len(audited) == n == len({e["data"]["order_id"] for e in audited})


def test_decisions_are_binary_cloudevents_keyed_by_region(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    producer, brokers = cluster
    topic_in, topic_out = "orders.created.t2", "routing.decisions.t2"
    for i in range(20):
        headers, key, value = order_event(_order(i))
        producer.produce(topic_in, key=key, value=value, headers=headers)
    producer.flush(10)
    svc = Service(export_heuristic("cheapest", tmp_path / "pkg"), audit=tmp_path / "a.jsonl", warmup=1)
    bus = BusRouter(svc, brokers, topic_in, topic_out, group_id="g2", batch=50)
    deadline = time.monotonic() + 30
    while bus.processed < 20 and time.monotonic() < deadline:
        bus.step(0.5)
    bus.close()
    svc.close()
    c = Consumer({"bootstrap.servers": brokers, "group.id": "reader2", "auto.offset.reset": "earliest"})
    c.subscribe([topic_out])
    got = []
    while len(got) < 20 and time.monotonic() < deadline + 20:
        got += [m for m in c.consume(50, 0.5) if not m.error()]
    c.close()
    assert len(got) == 20
    for m in got:
        h = dict(m.headers())
        body = json.loads(m.value())
        i = int(body["order_id"].split("-")[1])
        assert h["ce_type"] == DECISION_TYPE.encode() and h["ce_subject"] == f"order/k-{i}".encode()
        assert m.key() == REGIONS[i % len(REGIONS)].encode()
        assert body["policy"]["name"] == "cheapest" and body["fallback"] is False


def test_the_loop_waits_for_a_topic_that_does_not_exist_yet(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    """Polls before the first order is produced return only errors (unknown topic): nothing to
    commit then, and the loop goes on (it raised 'No offset stored' before)."""
    producer, brokers = cluster
    topic_in, topic_out = "orders.created.t3", "routing.decisions.t3"
    svc = Service(export_heuristic("cheapest", tmp_path / "pkg"), audit=tmp_path / "audit.jsonl", warmup=1)
    bus = BusRouter(svc, brokers, topic_in, topic_out, group_id="g3", batch=50)
    for _ in range(3):
        bus.step(0.3)
    assert bus.processed == 0
    for i in range(20):
        headers, key, value = order_event(_order(1000 + i))
        producer.produce(topic_in, key=key, value=value, headers=headers)
    producer.flush(10)
    deadline = time.monotonic() + 120
    while bus.processed < 20 and time.monotonic() < deadline:
        bus.step(0.5)
    bus.close()
    svc.close()
    assert bus.processed == 20
    decided = [e["data"]["order_id"] for e in read_events(tmp_path / "audit.jsonl") if e["type"] == DECISION_TYPE]
    assert sorted(decided) == sorted(f"k-{1000 + i}" for i in range(20))


def test_the_decided_ids_are_not_walked_by_the_garbage_collector(cluster, tmp_path: Path) -> None:  # noqa: ANN001
    """Millions of decided ids must not slow every full collection: the store is a dict of
    atomic keys, which CPython's collector does not track (a set is tracked and walked)."""
    import gc

    _, brokers = cluster
    svc = Service(export_heuristic("cheapest", tmp_path / "pkg"), audit=tmp_path / "audit.jsonl", warmup=1)
    bus = BusRouter(svc, brokers, "orders.created.t4", "routing.decisions.t4", group_id="g4")
    bus.decided.update(dict.fromkeys(f"x-{i}" for i in range(1000)))
    gc.collect()
    assert "x-5" in bus.decided and not gc.is_tracked(bus.decided)
    bus.close()
    svc.close()
