"""The bus's own CloudEvent encoding and decoding (written without the SDK for speed) read the
same as the SDK's: decisions decode with the SDK to the same attributes and bytes; binary orders
are validated straight from the value, structured ones and binary ones missing a required attribute go through the SDK (as before),
and what is no order or no CloudEvent is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event, to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from confluent_kafka import Producer

from twin.policies.export import export_heuristic
from twin.serve.app import Service
from twin.serve.audit import DECISION_TYPE
from twin.serve.bus import BusRouter, decision_messages, order_event
from twin.serve.router import Router
from twin.serve.schema import Order

W = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]


def _order(i: int) -> dict:
    return {"order_id": f"c-{i}", "destination": {"region": ["Beijing", "Hubei"][i % 2]},
            "lines": [{"sku": "sku-3", "qty": 1}, {"sku": "sku-9", "qty": 2}], "service_level": "standard",
            "candidates": [{"warehouse_id": w, "available": {"sku-3": j % 3, "sku-9": 2}, "remaining_capacity_orders": 5}
                           for j, w in enumerate(W)]}


def test_decisions_read_back_with_the_sdk(tmp_path: Path) -> None:
    r = Router(export_heuristic("promise_aware", tmp_path / "pkg"))
    decided = r.decide_raw([Order.model_validate(_order(i)) for i in range(6)], batch=True)
    decisions = decided.decisions()
    msgs = decision_messages(decided, "/twin/serve/x")
    assert len(msgs) == 6
    ids = set()
    for d, (key, value, headers) in zip(decisions, msgs):
        ev = from_kafka_event(KafkaMessage(dict(headers), key, value))
        body = {k: v for k, v in d.items() if k != "_audit"}
        assert ev.get_type() == DECISION_TYPE and ev.get_source() == "/twin/serve/x"
        assert ev.get_subject() == f"order/{d['order_id']}" and ev.get_extension("partitionkey") == key
        assert key == d["_audit"]["region"] and ev.get_datacontenttype() == "application/json"
        assert ev.get_data() == body
        sdk = to_binary_event(CloudEvent({"type": DECISION_TYPE, "source": "/twin/serve/x",
                                          "subject": f"order/{d['order_id']}", "partitionkey": key,
                                          "datacontenttype": "application/json"}, data=body))
        # the same JSON as the SDK writes (compact here, by msgspec)
        assert json.loads(value) == json.loads(sdk.value) and sorted(dict(headers)) == sorted(sdk.headers)
        ids.add(ev.get_id())
    assert len(ids) == 6  # a fresh id per event


def test_binary_structured_and_incomplete_orders(tmp_path: Path) -> None:
    p = Producer({"test.mock.num.brokers": 1})
    brokers = ",".join(f"{b.host}:{b.port}" for b in p.list_topics(timeout=10).brokers.values())
    topic = "orders.codec"
    h, k, v = order_event(_order(0))
    p.produce(topic, key=k, value=v, headers=h)  # binary: decided
    ev = CloudEvent({"type": "com.fulfillmenttwin.order.created.v1", "source": "/oms", "subject": "order/c-1",
                     "datacontenttype": "application/json"}, data=_order(1))
    s = to_structured_event(ev)
    p.produce(topic, key=s.key, value=s.value, headers=s.headers)  # structured: decided (by the SDK)
    h2, k2, v2 = order_event(_order(2))
    # no ce_id: not the fast path; the SDK decides it (it gives such an event an id), as before
    p.produce(topic, key=k2, value=v2, headers={n: x for n, x in h2.items() if n != "ce_id"})
    p.produce(topic, key=k2, value=v2)  # no headers: not a CloudEvent in either mode, refused
    bad = dict(h)
    p.produce(topic, key=k, value=json.dumps({**_order(3), "lines": []}).encode(), headers=bad)  # invalid order
    p.flush(10)
    svc = Service(export_heuristic("cheapest", tmp_path / "pkg"), audit=tmp_path / "a.jsonl", warmup=1)
    bus = BusRouter(svc, brokers, topic, "decisions.codec", group_id="codec", batch=10)
    decided: list[str] = []
    deadline = time.monotonic() + 60
    while bus.processed + bus.rejected < 5 and time.monotonic() < deadline:
        bus.step(0.5)
        decided += bus.last_decided
    bus.close()
    svc.close()
    assert sorted(decided) == ["c-0", "c-1", "c-2"] and bus.rejected == 2
