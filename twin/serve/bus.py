"""The bus: order-created CloudEvents in from Kafka, routing decisions out (``confluent-kafka``).

Each input message is a CloudEvent in binary mode (``ce_*`` headers) or structured mode whose
data is an :class:`twin.serve.schema.Order`. Each decision goes out as a binary-mode CloudEvent
(type ``com.fulfillmenttwin.routing.decision.v1``, ``subject`` ``order/<id>``, key = the
destination region). Per batch the loop decides, produces and flushes, audits, and only then
commits the input offsets (synchronously); decisions are idempotent by order id: at start the
loop reads the decisions topic to its end and skips any order already decided, so a consumer
that dies between producing and committing (and is restarted) produces no second decision.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from twin.serve.audit import DECISION_TYPE, now_iso
from twin.serve.schema import Order
from twin.serve.router import Decided
from twin.serve.wire import as_order, decode_order

__all__ = ["BusRouter", "decision_messages", "order_event", "decisions_by_order"]


def order_event(order: dict[str, Any], source: str = "/oms") -> tuple[dict[str, bytes], str, bytes]:
    """``(headers, key, value)`` of an order-created CloudEvent in binary mode (for producers
    and tests)."""
    from cloudevents.core.bindings.kafka import to_binary_event
    from cloudevents.core.v1.event import CloudEvent

    ev = CloudEvent({"type": "com.fulfillmenttwin.order.created.v1", "source": source,
                     "subject": f"order/{order['order_id']}", "partitionkey": order["destination"]["region"],
                     "datacontenttype": "application/json"}, data=order)
    m = to_binary_event(ev)
    return m.headers, m.key, m.value


#: the attributes CloudEvents requires, as binary-mode Kafka headers
_BINARY_REQUIRED = ("ce_specversion", "ce_id", "ce_source", "ce_type")


def _structured_order(headers: dict[str, bytes], key: Any, value: bytes) -> Order:
    """The order of a message that is not a binary-mode event (structured mode), by the SDK."""
    from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event

    data = from_kafka_event(KafkaMessage(headers, key, value)).get_data()
    return as_order(json.loads(data) if isinstance(data, (str, bytes)) else data)


def decision_messages(decided: Any, source: str) -> list[tuple[str, bytes, list]]:
    """``(key, value, headers)`` of each decision of a :class:`twin.serve.router.Decided` as a
    binary-mode CloudEvent: the headers the SDK's ``to_binary_event`` writes (``ce_type``,
    ``ce_source``, ``ce_subject``, ``ce_partitionkey``, ``content-type``, ``ce_specversion``,
    ``ce_id``, ``ce_time``; one time per batch), the key the partition key (the destination
    region) and the value the decision's JSON (the HTTP response's object; a test reads them
    back with the SDK)."""
    t = now_iso().encode()
    src, typ, ct, spec = source.encode(), DECISION_TYPE.encode(), b"application/json", b"1.0"
    out = []
    for oid, region, body in zip(decided.order_ids, decided.regions, decided.bodies):
        headers = [("ce_type", typ), ("ce_source", src), ("ce_subject", f"order/{oid}".encode()),
                   ("ce_partitionkey", region.encode()), ("content-type", ct), ("ce_specversion", spec),
                   ("ce_id", str(uuid.uuid4()).encode()), ("ce_time", t)]
        out.append((region, body, headers))
    return out


def _subject_id(headers: list[tuple[str, bytes]] | None) -> str | None:
    for k, v in headers or []:
        if k == "ce_subject":
            s = v.decode()
            return s[len("order/"):] if s.startswith("order/") else s
    return None


def decisions_by_order(brokers: str, topic: str, timeout_s: float = 10.0) -> dict[str, int]:
    """How many decisions the topic holds per order id (read from the beginning to its end)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"twin-scan-{time.monotonic_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics(topic, timeout=timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            return {}
        parts = list(md.topics[topic].partitions)
        ends = {}
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            if hi > lo:
                ends[p] = hi
        counts: dict[str, int] = {}
        if not ends:
            return counts
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends) and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error():
                    continue
                oid = _subject_id(m.headers())
                if oid is not None:
                    counts[oid] = counts.get(oid, 0) + 1
                if m.offset() + 1 >= ends[m.partition()]:
                    done.add(m.partition())
        return counts
    finally:
        c.close()


class BusRouter:
    """The consume -> decide -> produce -> audit -> commit loop for a :class:`~twin.serve.app.Service`.

    Args:
        service: decides, audits and counts (as for HTTP requests).
        brokers: ``bootstrap.servers``.
        orders_topic, decisions_topic: in and out.
        group_id: the consumer group (a restarted loop with the same id resumes at the
            committed offsets).
        batch: messages per poll.
    """

    def __init__(self, service: Any, brokers: str, orders_topic: str = "orders.created",
                 decisions_topic: str = "routing.decisions", group_id: str = "twin-router", batch: int = 500) -> None:
        from confluent_kafka import Consumer, Producer

        self.service, self.brokers = service, brokers
        self.orders_topic, self.decisions_topic = orders_topic, decisions_topic
        self.batch = int(batch)
        self.consumer = Consumer({"bootstrap.servers": brokers, "group.id": group_id, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        self.producer = Producer({"bootstrap.servers": brokers, "linger.ms": 2, "acks": "all", "compression.type": "lz4"})
        # the order ids decided: a dict of str -> None, not a set, because the collector skips a
        # dict of atomic keys and values but walks a set on every full collection (with millions
        # of ids a poll's CPU per order grew ~60% over 6 minutes)
        self.decided: dict[str, None] = dict.fromkeys(decisions_by_order(brokers, decisions_topic))
        self.consumer.subscribe([orders_topic])
        self.processed = 0
        #: the order ids the last step decided
        self.last_decided: list[str] = []
        self.skipped = 0
        self.rejected = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _orders(self, msgs: list[Any]) -> tuple[list[Order], list[bytes | None]]:
        """The new orders of a poll, and each one's JSON as received (binary mode; None:
        structured). A binary-mode event (the ``ce_`` attributes CloudEvents
        requires are headers) is validated straight from its value with
        :func:`twin.serve.wire.decode_order` (the SDK's decoder parsed every event's time with dateutil
        and its data twice: two thirds of the loop's time); anything else goes through the SDK
        (structured mode), which refuses what is not a CloudEvent."""
        out, raws = [], []
        for m in msgs:
            if m.error():
                continue
            try:
                h = dict(m.headers() or [])
                raw = None
                if all(k in h for k in _BINARY_REQUIRED):
                    raw = m.value()
                    o = decode_order(raw)
                else:
                    o = _structured_order(h, m.key(), m.value())
            except Exception:  # a message that is not an order: counted, committed past
                self.rejected += 1
                continue
            if o.order_id in self.decided:
                self.skipped += 1
                continue
            out.append(o)
            raws.append(raw)
        return out, raws

    def step(self, timeout_s: float = 0.5, crash_before_commit: bool = False) -> int:
        """One poll: decide its new orders, produce, flush, audit, commit; returns the messages
        polled. ``crash_before_commit`` stops after the audit without committing (a drill of a
        consumer dying there)."""
        msgs = self.consumer.consume(num_messages=self.batch, timeout=timeout_s)
        if not msgs:
            return 0
        orders, raws = self._orders(msgs)
        self.last_decided = []
        if orders:
            t0 = time.perf_counter()
            router = self.service.router  # one router for the whole poll (a swap takes the next)
            try:
                decided = router.decide_raw(orders, batch=True, raws=raws)  # the poll as one batch
            except ValueError:  # a bad reference (unknown region): one by one, so it rejects its own order only
                parts = []
                for o, raw in zip(orders, raws):
                    try:
                        parts.append(router.decide_raw([o], raws=[raw]))
                    except ValueError:
                        self.rejected += 1
                decided = Decided.concat(parts, router.net.warehouses)
            took = time.perf_counter() - t0
            produce, topic = self.producer.produce, self.decisions_topic
            for key, value, headers in decision_messages(decided, self.service.source):
                produce(topic, key=key, value=value, headers=headers)
            self.producer.flush(30)
            self.service.record(decided, took)
            self.last_decided = list(decided.order_ids)
            self.decided.update(dict.fromkeys(self.last_decided))
            self.processed += len(decided)
        if crash_before_commit:
            return len(msgs)
        if any(m.error() is None for m in msgs):  # a poll of errors only (a topic not created yet) has no offset
            self.consumer.commit(asynchronous=False)
        return len(msgs)

    def run(self) -> None:
        while not self._stop.is_set():
            self.step(0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="kafka-router", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.close()

    def close(self) -> None:
        """Leave the group and close (uncommitted offsets are left uncommitted)."""
        try:
            self.consumer.close()
        finally:
            self.producer.flush(10)
