"""``decision_events`` (a batch's lines spliced around the audit data the router wrote in C)
writes the events ``decision_event`` writes of each decision's dict (equal as JSON, ids aside),
and the SDK reads its lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cloudevents.core.formats.json import JSONFormat

from twin.policies.export import export_heuristic
from twin.serve.audit import SHADOW_TYPE, decision_event, decision_events
from twin.serve.router import Router
from twin.serve.schema import Order

W = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]


def _order(i: int, oid: str) -> dict:
    return {"order_id": oid, "destination": {"region": ["Beijing", "Hubei", "Guangdong"][i % 3]},
            "lines": [{"sku": "sku-3", "qty": 1}, {"sku": f"sku-{i}", "qty": 2}], "service_level": "standard",
            "candidates": [{"warehouse_id": w, "available": {"sku-3": (i + j) % 3, f"sku-{i}": j % 4},
                            "remaining_capacity_orders": 5} for j, w in enumerate(W)]}


def test_batch_lines_equal_one_by_one(tmp_path: Path) -> None:
    r = Router(export_heuristic("promise_aware", tmp_path / "pkg"))
    ids = ["a-1", 'quote"d', "uni\u00e9\u4e2d", "brace}, {x", "tab\tnl\\n"] + [f"o-{i}" for i in range(15)]
    orders = [_order(i, oid) for i, oid in enumerate(ids)]
    for c in orders[-1]["candidates"]:
        c["available"] = {}  # unfillable: no choice, no assignments
    decided = r.decide_raw([Order.model_validate(o) for o in orders], batch=True)
    decisions = decided.decisions()
    assert {d["reason"] for d in decisions} >= {"heuristic", "unfillable"}
    assert any(d["assignments"] for d in decisions) and not decisions[-1]["assignments"]
    for shadow in (False, True):
        got = decision_events(decided, 0.00125, "/twin/serve/t", shadow)
        t = json.loads(got[0])["time"]
        want = [decision_event(d, 0.00125, "/twin/serve/t", shadow, t) for d in decisions]

        def norm(b: bytes) -> dict:  # the id's random suffix
            return json.loads(re.sub(rb'-([sd])-[0-9a-f]{8}"', rb'-\1-R"', b))

        assert [norm(g) for g in got] == [norm(w) for w in want]
        assert len({json.loads(g)["id"] for g in got}) == len(got)
        for line, d in zip(got, decisions):
            ev = JSONFormat().read(None, line)
            assert ev.get_subject() == f"order/{d['order_id']}" and ev.get_data()["order_id"] == d["order_id"]
            assert (ev.get_type() == SHADOW_TYPE) == shadow and ev.get_data()["latency_s"] == 0.00125
    assert decision_events(r.decide_raw([]), 0.1, "/x") == []


def test_writes_during_fsyncs_are_all_kept_whole_and_close_syncs_the_rest(tmp_path: Path) -> None:
    """Writers in four threads while the fsync thread syncs every 0.5 ms (the fsync runs
    outside the write lock): every line is in the file once and whole after ``close``, and a
    second ``close`` is harmless."""
    import threading

    from twin.serve.audit import AuditLog, read_events

    log = AuditLog(tmp_path / "audit.jsonl", fsync_interval_s=0.0005)

    def writer(t: int) -> None:
        for i in range(1500):
            log.write([json.dumps({"t": t, "i": i, "pad": "x" * (i % 97)}).encode()])

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for _ in range(50):
        log.sync()  # and syncs from here too, racing the thread's
    for th in threads:
        th.join()
    log.close()
    log.close()
    events = read_events(tmp_path / "audit.jsonl")
    assert len((tmp_path / "audit.jsonl").read_bytes().splitlines()) == 6000
    assert sorted((e["t"], e["i"]) for e in events) == [(t, i) for t in range(4) for i in range(1500)]
