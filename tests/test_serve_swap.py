"""Hot swap of the champion on a real server on loopback: requests sent all through the swap
are answered (none dropped, none failed), the policy sha256 in the responses changes at the
swap and back, the swaps are audited, and a bad package is refused with 422."""

from __future__ import annotations

import json

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.test_serve import Server, order
from twin.policies.export import export_heuristic
from twin.policies.runtime import load_package
from twin.serve.app import Service
from twin.serve.audit import DECISION_TYPE, SWAP_TYPE, read_events


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("swap")
    return {"a": export_heuristic("promise_aware", d / "a"), "b": export_heuristic("cheapest", d / "b"),
            "other": export_heuristic("cheapest", d / "other", "national_peak"), "dir": d}


def test_swap_under_load_drops_nothing_and_changes_the_sha(packages: dict, tmp_path: Path) -> None:
    sha_a, sha_b = load_package(packages["a"]).sha256, load_package(packages["b"]).sha256
    assert sha_a != sha_b
    audit = tmp_path / "audit.jsonl"
    with Server(Service(packages["a"], audit, admin=True)) as srv:
        stop = threading.Event()
        seen: list[list[tuple[float, float, int, str | None]]] = [[] for _ in range(3)]

        def client(k: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=10) as c:
                i = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        r = c.post("/v1/route", json={"order": order(1000 * k + i)})
                        sha = r.json()["decisions"][0]["policy"]["sha256"] if r.status_code == 200 else None
                        seen[k].append((t0, time.monotonic(), r.status_code, sha))
                    except httpx.HTTPError as exc:  # a dropped connection would land here
                        seen[k].append((t0, time.monotonic(), -1, repr(exc)))
                    i += 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        s0 = time.monotonic()
        r1 = srv.client.post("/v1/admin/swap", json={"package": str(packages["b"]), "reason": "canary of cheapest"})
        s1 = time.monotonic()
        after_b = srv.client.post("/v1/route", json={"order": order(1)}).json()["decisions"][0]["policy"]["sha256"]
        time.sleep(0.3)
        r2 = srv.client.post("/v1/admin/swap", json={"package": str(packages["a"]), "reason": "roll back"})
        after_a = srv.client.post("/v1/route", json={"order": order(2)}).json()["decisions"][0]["policy"]["sha256"]
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(10)
        metrics = srv.client.get("/metrics").text
        counted = srv.service.n_decisions
    assert r1.status_code == 200 and r2.status_code == 200
    assert r1.json()["previous"]["sha256"] == sha_a and r1.json()["current"]["sha256"] == sha_b
    assert r2.json()["previous"]["sha256"] == sha_b and r2.json()["current"]["sha256"] == sha_a
    assert after_b == sha_b and after_a == sha_a
    rows = [x for s in seen for x in s]
    assert len(rows) > 30
    assert all(code == 200 for _, _, code, _ in rows), [r for r in rows if r[2] != 200][:3]
    # requests were in flight while the new package loaded and warmed up, and were answered
    assert any(s0 < t0 and t1 < s1 for t0, t1, _, _ in rows)
    # per client, the sha runs a, then b, then a (a request never sees an older champion again)
    for s in seen:
        shas = [sha for *_, sha in s]
        runs = [x for i, x in enumerate(shas) if i == 0 or shas[i - 1] != x]
        assert runs == [sha_a, sha_b, sha_a], runs
    events = read_events(audit)
    swaps = [e for e in events if e["type"] == SWAP_TYPE]
    assert [(e["data"]["previous"]["sha256"], e["data"]["current"]["sha256"], e["data"]["reason"]) for e in swaps] == [
        (sha_a, sha_b, "canary of cheapest"), (sha_b, sha_a, "roll back")]
    decisions = [e for e in events if e["type"] == DECISION_TYPE]
    assert len(decisions) == counted == len(rows) + 2
    assert 'twin_policy_swaps_total 2.0' in metrics
    assert f'sha256="{sha_a}"' in metrics and 'role="champion"' in metrics and f'sha256="{sha_b}"' not in metrics


def test_a_bad_package_is_refused_and_the_champion_stays(packages: dict, tmp_path: Path) -> None:
    sha_a = load_package(packages["a"]).sha256
    tampered = tmp_path / "tampered"
    shutil.copytree(packages["b"], tampered)
    with open(tampered / "MODEL_CARD.md", "a") as f:
        f.write(" ")
    with Server(Service(packages["a"], tmp_path / "audit.jsonl", admin=True)) as srv:
        for pkg, msg in ((tmp_path / "nowhere", "not a directory"), (tampered, "MODEL_CARD.md was changed"),
                         (packages["other"], "not on the champion's network")):
            r = srv.client.post("/v1/admin/swap", json={"package": str(pkg)})
            assert r.status_code == 422, r.text
            d = r.json()["detail"][0]
            assert d["loc"] == ["body", "package"] and msg in d["msg"], d
        assert srv.client.post("/v1/admin/swap", json={}).status_code == 422
        r = srv.client.post("/v1/route", json={"order": order(3)})
        assert r.json()["decisions"][0]["policy"]["sha256"] == sha_a
    assert not [e for e in read_events(tmp_path / "audit.jsonl") if e["type"] == SWAP_TYPE]


def test_no_admin_endpoint_unless_asked(packages: dict, tmp_path: Path) -> None:
    with Server(Service(packages["a"], tmp_path / "audit.jsonl")) as srv:
        assert srv.client.post("/v1/admin/swap", json={"package": str(packages["b"])}).status_code == 404
        assert "/v1/admin/swap" not in srv.client.get("/openapi.json").json()["paths"]


def test_audit_lines_are_cloudevents_the_sdk_reads(packages: dict, tmp_path: Path) -> None:
    """The audit's events are written without the SDK's encoder: the SDK reads them back."""
    from cloudevents.core.formats.json import JSONFormat
    from cloudevents.core.v1.event import CloudEvent

    svc = Service(packages["a"], tmp_path / "audit.jsonl", warmup=1)
    from twin.serve.wire import decode_request

    decided, _ = svc.route(*decode_request(json.dumps({"orders": [order(i) for i in range(5)]})))
    decisions = decided.decisions()
    svc.close()
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines()
    assert len(lines) == 5
    for line, d in zip(lines, decisions):
        ev = JSONFormat().read(CloudEvent, line)
        assert ev.get_type() == DECISION_TYPE and ev.get_subject() == f"order/{d['order_id']}"
        assert ev.get_extension("partitionkey") == d["_audit"]["region"]
        assert ev.get_data()["choice"] == d["warehouse_id"] and ev.get_data()["policy"] == d["policy"]
