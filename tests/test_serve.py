"""The routing service over HTTP: a real uvicorn server on loopback (a free port, a thread).

The champion is a learned package (MaskablePPO on twin/OrderRouting-v0 at its initial weights,
exported to ONNX); faults are injected through the service's ``faults`` (what a drill does).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from twin.policies.export import export_heuristic
from twin.serve.app import Service, create_app
from twin.serve.audit import DECISION_TYPE, SHADOW_TYPE, read_events

ROOT = Path(__file__).resolve().parent.parent
W = ["shanghai", "hangzhou", "nanjing", "guangzhou", "wuhan", "chengdu", "langfang", "zhengzhou"]
COLD = {"shanghai", "guangzhou", "chengdu", "langfang"}


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gymnasium as gym
    import torch
    from sb3_contrib import MaskablePPO

    import rl  # noqa: F401
    from rl.export import export_policy

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("run")
    env = gym.make("twin/OrderRouting-v0", scale=0.1, horizon_h=2.0)
    MaskablePPO("MlpPolicy", env, seed=1, device="cpu").save(d / "model.zip")
    (d / "args.json").write_text(json.dumps({"env_id": "twin/OrderRouting-v0",
                                             "env_kwargs": {"scale": 0.1, "horizon_h": 2.0}}))
    return export_policy(str(d / "model.zip"), d / "pkg", name="router", version="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Service behind uvicorn in a thread on a free loopback port."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("the server did not become ready")
        self.client = httpx.Client(base_url=self.url, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.service.close()


def order(i: int = 0, region: str = "Hubei", cold: bool = False, rng: np.random.Generator | None = None,
          **kw: object) -> dict:
    rng = rng or np.random.default_rng(i)
    lines = [{"sku": f"sku-{int(k)}", "qty": int(q), "cold_chain": cold}
             for k, q in zip(rng.integers(0, 50, 2), rng.integers(1, 3, 2))]
    cands = [{"warehouse_id": w, "available": {ln["sku"]: int(rng.integers(0, 4)) for ln in lines},
              "remaining_capacity_orders": int(rng.integers(0, 3)), "open": bool(rng.random() > 0.15),
              "backlog_orders": int(rng.integers(0, 200))} for w in W]
    return {"order_id": f"o-{i}", "destination": {"region": region}, "lines": lines, "service_level": "express",
            "candidates": cands, "created_at": "2026-11-11T09:30:00+08:00", **kw}


def _feasible(o: dict, w: str) -> bool:
    c = next(c for c in o["candidates"] if c["warehouse_id"] == w)
    cold = any(ln["cold_chain"] for ln in o["lines"])
    return (c["open"] and c["remaining_capacity_orders"] > 0 and (not cold or w in COLD)
            and all(c["available"].get(ln["sku"], 0) >= ln["qty"] for ln in o["lines"]))


def _metric(text: str, metric: str, **labels: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


@pytest.fixture
def server(package: Path, tmp_path: Path):  # noqa: ANN201
    with Server(Service(package, audit=tmp_path / "audit.jsonl", warmup=3)) as s:
        yield s


def test_one_order_and_a_batch(server: Server) -> None:
    r = server.client.post("/v1/route", json={"order": order(1)})
    assert r.status_code == 200
    assert r.headers["server-timing"].startswith("route;dur=")
    (d,) = r.json()["decisions"]
    assert d["order_id"] == "o-1" and d["policy"]["name"] == "router" and len(d["policy"]["sha256"]) == 64
    assert [x["rank"] for x in d["rankings"]] == list(range(1, len(d["rankings"]) + 1))
    feas = [x["feasible"] for x in d["rankings"]]
    assert feas == sorted(feas, reverse=True)  # feasible candidates first
    batch = [order(i) for i in range(40)]
    r = server.client.post("/v1/route", json={"orders": batch})
    assert r.status_code == 200
    assert [d["order_id"] for d in r.json()["decisions"]] == [o["order_id"] for o in batch]


def test_route_fast_path_limits_and_delegates(server: Server) -> None:
    """``POST /v1/route`` is answered in front of FastAPI (RouteFastPath): a body over its limit
    is a 413 naming the limit (nothing decided or audited), another method on the path is
    FastAPI's 405, and the schema still documents the route."""
    app = server.server.config.app
    before = server.service.n_decisions
    app.max_body_bytes = 2000
    try:
        r = server.client.post("/v1/route", json={"orders": [order(i) for i in range(10)]})
        assert r.status_code == 413 and r.json()["detail"][0]["msg"] == "the body is over 2000 bytes"
    finally:
        app.max_body_bytes = 64 << 20
    assert server.service.n_decisions == before
    assert server.client.post("/v1/route", json={"order": order(1)}).status_code == 200
    assert server.client.get("/v1/route").status_code == 405
    assert "/v1/route" in server.client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("cold", [False, True])
def test_never_an_infeasible_warehouse(server: Server, cold: bool) -> None:
    """The feasibility layer: never a closed, full or out-of-stock site, nor a non-cold one
    for a cold line; an order nobody can ship whole is split or unfillable."""
    rng = np.random.default_rng(7 + cold)
    batch = [order(i, region=["Hubei", "Beijing", "Guangdong", "Sichuan"][i % 4], cold=cold, rng=rng)
             for i in range(300)]
    ds = server.client.post("/v1/route", json={"orders": batch}).json()["decisions"]
    whole = 0
    for o, d in zip(batch, ds):
        if d["warehouse_id"] is not None:
            whole += 1
            assert _feasible(o, d["warehouse_id"]), (o, d)
            assert d["reason"] == "policy" and not d["fallback"]
        elif d["reason"] == "split":
            for a in d["assignments"]:
                c = next(c for c in o["candidates"] if c["warehouse_id"] == a["warehouse_id"])
                assert c["open"] and c["remaining_capacity_orders"] > 0
                assert c["available"][a["sku"]] >= a["qty"] and (not cold or a["warehouse_id"] in COLD)
        else:
            assert d["reason"] == "unfillable" and d["assignments"] == []
            assert not any(_feasible(o, w) for w in W)
    assert whole > 30


@pytest.mark.parametrize(("body", "field"), [
    ({"order": {**order(), "destination": {"region": "Atlantis"}}}, ["body", "order", "destination", "region"]),
    ({"order": {**order(), "service_level": "overnight"}}, ["body", "order", "service_level"]),
    ({"order": {**order(), "lines": []}}, ["body", "order", "lines"]),
    ({"order": {**order(), "lines": [{"sku": "sku-1", "qty": 0}]}}, ["body", "order", "lines", 0, "qty"]),
    ({"order": {**order(), "candidates": [{"warehouse_id": "paris", "remaining_capacity_orders": 1}]}},
     ["body", "order", "candidates", 0, "warehouse_id"]),
    ({"order": {**order(), "candidates": [{"warehouse_id": "wuhan"}]}},
     ["body", "order", "candidates", 0, "remaining_capacity_orders"]),
    ({"order": {**order(), "strategy": "cheapest"}}, ["body", "order", "strategy"]),
    ({"orders": [order(0), {**order(1), "destination": {"region": "Atlantis"}}]},
     ["body", "orders", 1, "destination", "region"]),
    ({"order": {**order(), "colour": "red"}}, ["body", "order", "colour"]),
])
def test_bad_input_is_422_naming_the_field(server: Server, body: dict, field: list) -> None:
    r = server.client.post("/v1/route", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["loc"] for e in r.json()["detail"]], r.json()


def test_malformed_bodies_are_422(server: Server) -> None:
    r = server.client.post("/v1/route", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = server.client.post("/v1/route", json={"order": order(), "orders": [order()]})
    assert r.status_code == 422 and "exactly one of order" in r.text
    assert server.client.post("/v1/route", json=[1, 2]).status_code == 422


def test_fallback_matrix_and_the_breaker(server: Server) -> None:
    """Model error, timeout, input outside the training ranges, an outside dependency down:
    each answers 200 with the fallback heuristic and the reason; the breaker opens after 5
    model failures and closes after a successful trial."""
    svc, c = server.service, server.client

    def one(i: int, **kw: object) -> dict:
        o = order(i, **kw)
        for cand in o["candidates"]:  # every candidate can ship it whole: the model is always asked
            cand.update(open=True, remaining_capacity_orders=5, available={ln["sku"]: 9 for ln in o["lines"]})
        r = c.post("/v1/route", json={"order": o})
        assert r.status_code == 200
        return r.json()["decisions"][0]

    ok = one(1)
    assert not ok["fallback"]
    svc.faults.dependency_down = True
    d = one(2)
    assert d["fallback"] and d["fallback_reason"] == "dependency_down" and d["reason"] in ("fallback", "split",
                                                                                          "unfillable")
    svc.faults.dependency_down = False
    d = one(3, lines=[{"sku": "GIFT-CARD", "qty": 1}])
    assert d["fallback"] and d["fallback_reason"] == "outside_range"
    d = one(4, destination={"region": "Hubei", "transit_multiplier": 9.0})
    assert d["fallback"] and d["fallback_reason"] == "outside_range"
    svc.faults.model_delay_s = 0.08  # over the 50 ms budget
    d = one(5)
    assert d["fallback"] and d["fallback_reason"] == "timeout"
    svc.faults.model_delay_s = 0.0
    svc.router.breaker.record(True)
    svc.faults.model_error = True
    reasons = [one(10 + i)["fallback_reason"] for i in range(8)]
    assert reasons == ["model_error"] * 5 + ["breaker_open"] * 3
    svc.faults.model_error = False
    assert one(30)["fallback_reason"] == "breaker_open"  # still open
    time.sleep(svc.router.breaker.reset_s + 0.05)
    assert not one(31)["fallback"]  # the trial succeeds: closed
    assert svc.router.breaker.state == "closed"
    text = c.get("/metrics").text
    assert _metric(text, "twin_fallback_total", reason="model_error") == 5
    assert _metric(text, "twin_fallback_total", reason="timeout") == 1
    assert _metric(text, "twin_fallback_total", reason="outside_range") == 2


def test_shadow_mode_leaves_the_champion_byte_identical(package: Path, tmp_path: Path) -> None:
    challenger = export_heuristic("cheapest", tmp_path / "cheapest")
    batch = [order(i) for i in range(30)]
    bodies = {}
    for name, shadow in (("plain", None), ("shadow", challenger)):
        with Server(Service(package, audit=tmp_path / f"{name}.jsonl", shadow=shadow, warmup=2)) as s:
            bodies[name] = [s.client.post("/v1/route", json={"order": o}).content for o in batch]
            bodies[name].append(s.client.post("/v1/route", json={"orders": batch}).content)
            time.sleep(0.3)
            text = s.client.get("/metrics").text
        events = read_events(tmp_path / f"{name}.jsonl")
        assert sum(e["type"] == DECISION_TYPE for e in events) == 60
        if shadow is not None:
            shadows = [e for e in events if e["type"] == SHADOW_TYPE]
            assert len(shadows) == 60 and {e["data"]["policy"]["name"] for e in shadows} == {"cheapest"}
            assert _metric(text, "twin_shadow_decisions_total") == 60
            assert _metric(text, "twin_policy_info", role="shadow", name="cheapest") == 1
    assert bodies["plain"] == bodies["shadow"]


def test_audit_equals_the_counter_after_faults_and_a_restart(package: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    counted = 0
    for run in range(2):
        with Server(Service(package, audit=audit, warmup=2)) as s:
            for i in range(25):
                s.service.faults.model_error = i % 4 == 0
                s.service.faults.dependency_down = i % 7 == 3
                n = 1 + i % 3
                body = {"order": order(100 * run + i)} if n == 1 else {"orders": [order(100 * run + i + 10_000 * k)
                                                                                   for k in range(n)]}
                assert s.client.post("/v1/route", json=body).status_code == 200
            assert s.client.post("/v1/route", json={"order": {}}).status_code == 422  # not a decision
            text = s.client.get("/metrics").text
            counted += _metric(text, "twin_route_decisions_total")
            assert _metric(text, "twin_fallback_total") > 0
    events = read_events(audit)
    decisions = [e for e in events if e["type"] == DECISION_TYPE]
    assert len(decisions) == counted == 2 * sum(1 + i % 3 for i in range(25))
    e = decisions[0]
    assert e["specversion"] == "1.0" and e["subject"] == f"order/{e['data']['order_id']}"
    assert e["partitionkey"] == "Hubei" and len(e["data"]["request_digest"]) == 64
    assert {"scores", "choice", "reason", "policy", "latency_s", "fallback_reason"} <= set(e["data"])
    assert any(x["data"]["fallback"] for x in decisions)


def test_health_and_metrics_names(server: Server) -> None:
    c = server.client
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}
    assert c.get("/v2/models/router/ready").status_code == 200
    assert c.get("/v2/models/other/ready").status_code == 404
    c.post("/v1/route", json={"order": order(1, strategy="cost")})
    text = c.get("/metrics").text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"twin_route_decisions", "twin_route_latency_seconds", "twin_fallback", "twin_policy_info"} <= names
    assert not [n for n in names if n.endswith(("_ms", "_us", "_milliseconds", "_microseconds"))]
    assert _metric(text, "twin_route_decisions_total", strategy="cost", outcome="strategy") + _metric(
        text, "twin_route_decisions_total", strategy="cost", outcome="split") + _metric(
        text, "twin_route_decisions_total", strategy="cost", outcome="unfillable") == 1
    assert _metric(text, "twin_route_latency_seconds_count") >= 1


def test_not_ready_before_warm_up(package: Path, tmp_path: Path) -> None:
    svc = Service(package, audit=tmp_path / "a.jsonl")
    try:
        assert not svc.ready
        svc.warm_up()
        assert svc.ready
    finally:
        svc.close()


def test_strategies_rank_by_their_estimate(server: Server) -> None:
    o = order(3)
    for c in o["candidates"]:
        c.update(open=True, remaining_capacity_orders=5, available={ln["sku"]: 9 for ln in o["lines"]})
    for strategy, key in (("cost", "est_cost_cny"), ("speed", "est_delivery_h"), ("carbon", "est_co2_kg")):
        d = server.client.post("/v1/route", json={"order": {**o, "strategy": strategy}}).json()["decisions"][0]
        vals = [r[key] for r in d["rankings"] if r["feasible"]]
        assert vals == sorted(vals) and d["warehouse_id"] == d["rankings"][0]["warehouse_id"]
        assert d["reason"] == "strategy"


def test_schemathesis_finds_no_server_error(server: Server, tmp_path: Path) -> None:
    """Generated requests against the OpenAPI schema: no 5xx and no response outside the schema.
    (Run in a temporary directory: schemathesis keeps a cache in its working directory.)"""
    out = subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json",
                          "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "40",
                          "--seed", "1"], capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout.split("Test cases:")[-1].split("\n")[1]


def test_serve_imports_nothing_heavy() -> None:
    code = ("import sys, twin.serve.app, twin.serve.router, twin.serve.bus, twin.serve.audit\n"
            "print(','.join(m for m in ('torch', 'gymnasium', 'stable_baselines3', 'simpy', 'mesa', 'pandas',"
            " 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"loaded {out.stdout.strip()}"


def test_concurrent_requests_are_coalesced_and_answered_as_alone(server: Server) -> None:
    """Requests that arrive while a batch is decided are decided together as the next batch
    (the model made slow here, so that they pile up): each answer is byte-identical to the same
    request sent alone, a bad request among them fails alone, and the audit log agrees with the
    decisions counter."""
    from concurrent.futures import ThreadPoolExecutor

    bodies = [{"order": order(i, region=("Atlantis" if i == 7 else ["Hubei", "Beijing", "Zhejiang"][i % 3]))}
              for i in range(48)]
    server.service.faults.model_delay_s = 0.01  # under the 50 ms budget: still the policy's decisions

    def send(chunk: list[dict]) -> list[tuple[int, bytes]]:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            return [(r.status_code, r.content) for r in (c.post("/v1/route", json=b) for b in chunk)]

    with ThreadPoolExecutor(8) as pool:
        together = [x for part in pool.map(send, [bodies[k::8] for k in range(8)]) for x in part]
    order_back = [b for k in range(8) for b in bodies[k::8]]
    server.service.faults.model_delay_s = 0.0
    text = server.client.get("/metrics").text
    assert _metric(text, "twin_route_coalesced_requests_count") > 0  # some were decided together
    for body, (status, content) in zip(order_back, together):
        alone = server.client.post("/v1/route", json=body)
        assert status == alone.status_code
        assert content == alone.content  # byte for byte, policy decisions (no fallback) included
        if status == 200:
            assert json.loads(content)["decisions"][0]["reason"] != "fallback"
    assert sum(s == 422 for s, _ in together) == 1 and b"destination" in dict((s, c) for s, c in together)[422]
    text = server.client.get("/metrics").text
    audited = sum(e["type"] == DECISION_TYPE for e in read_events(server.service.audit.path))
    assert audited == _metric(text, "twin_route_decisions_total") == 2 * 47


def test_a_learned_routers_observation_is_the_envs(package: Path) -> None:
    """On a learned package (a 2 h training horizon: ``horizon_progress`` clips), the kernel's
    observation is ``order_features``, to the byte, for a batch and for one order."""
    from tests.test_serve_kernel import assert_observation_is_the_envs, random_orders
    from twin.serve.router import Router
    from twin.serve.wire import as_order

    r = Router(package)
    orders = [as_order(o) for o in random_orders(list(r.net.regions), W, 500, 21)]
    assert_observation_is_the_envs(r, orders)
    for k in range(5):
        assert_observation_is_the_envs(r, orders[k:k + 1], varied=False)


def test_the_actor_on_one_observation_is_the_sessions(package: Path) -> None:
    """The actor's one-order path (buffers bound once) answers what ``session.run`` answers, to
    the byte, for ``[F]`` and ``[1, F]`` inputs, and from threads at once (one of them on the
    general call)."""
    from concurrent.futures import ThreadPoolExecutor

    from twin.policies.runtime import OnnxActor

    a = OnnxActor(package / "policy.onnx")
    g = np.random.default_rng(4)
    F, A = a.n_features, a.n_actions
    xs = [g.random(F).astype(np.float32) * 2 - 0.5 for _ in range(300)]
    ms = [g.random(A) < 0.6 for _ in range(300)]
    for x, m in zip(xs, ms):
        m[int(g.integers(0, A))] = True
    want = [a.session.run(None, {"obs": x[None], "mask": m[None]}) for x, m in zip(xs, ms)]
    for k, (x, m) in enumerate(zip(xs, ms)):
        got = a.run(x[None] if k % 2 else x, m[None] if k % 3 else m)
        assert got[0].tobytes() == want[k][0].tobytes() and got[1].tobytes() == want[k][1].tobytes()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: a.run(xs[k], ms[k]), range(300)))
    assert all(g_[0].tobytes() == w[0].tobytes() and g_[1].tobytes() == w[1].tobytes() for g_, w in zip(got, want))
    both = a.run(np.stack(xs[:2]), np.stack(ms[:2]))  # a batch: the general call
    assert both[1].tobytes() == np.concatenate([want[0][1], want[1][1]]).tobytes()


def test_one_order_alone_is_decided_as_in_a_batch(package: Path, tmp_path: Path) -> None:
    """A decision depends on its order and the policy only: one order decided alone (the
    service's usual request) is byte-identical to it decided in a batch, on the learned package
    and a heuristic one, with the policy, fallbacks (outside the ranges, a model error, a
    dependency down), splits and strategies among them."""
    from tests.test_serve_kernel import random_orders
    from twin.serve.router import Breaker, Router
    from twin.serve.wire import as_order

    raw = [o for o in random_orders(["Hubei", "Beijing", "Zhejiang", "Guangdong", "Sichuan"], W, 300, 8)
           if "created_at" in o]  # "now" moves between the two
    orders = [as_order(o) for o in raw]
    seen = set()
    for pkg in (package, export_heuristic("promise_aware", tmp_path / "h")):
        for fault in ("none", "model_error", "dependency_down"):
            r = Router(pkg, breaker=Breaker(threshold=10_000))
            r.faults.model_error, r.faults.dependency_down = fault == "model_error", fault == "dependency_down"
            batch = r.decide_raw(orders, batch=True)
            alone = [r.decide_raw([o]) for o in orders]
            assert [a.bodies[0] for a in alone] == batch.bodies
            assert [a.data[0] for a in alone] == batch.data
            seen |= {(x, f) for x, f in zip(batch.reasons, batch.fallback_reasons)}
    assert {("policy", None), ("heuristic", None), ("strategy", None), ("split", None), ("unfillable", None),
            ("fallback", "outside_range"), ("fallback", "model_error"), ("fallback", "dependency_down")} <= seen
