"""Policy packages: export (ONNX and heuristics), the torch-free runtime, checksums, the gate.

The learned package is a MaskablePPO policy on ``twin/OrderRouting-v0`` (at its initial weights:
parity is about the graph, not the training); scenarios are scaled down.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rl  # noqa: F401
from twin.cli import main
from twin.policies.export import export_heuristic, manifest_digest
from twin.policies.features import order_feature_names
from twin.policies.runtime import OnnxActor, PackageError, PackagedPolicy, load_package, routing_policy
from twin.results.gate import gate_package
from twin.results.runs import simulate
from twin.scenario.loader import load_scenario, scale_scenario

ROOT = Path(__file__).resolve().parent.parent
ENV_KW = {"scale": 0.1, "horizon_h": 2.0}


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A MaskablePPO zip with its args.json (as `twin train` writes them) and its package."""
    import torch
    from sb3_contrib import MaskablePPO

    from rl.export import export_policy

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("run")
    env = gym.make("twin/OrderRouting-v0", **ENV_KW)
    model = MaskablePPO("MlpPolicy", env, seed=0, device="cpu", policy_kwargs={"net_arch": [64, 64]})
    model.save(d / "model.zip")
    (d / "args.json").write_text(json.dumps({"env_id": "twin/OrderRouting-v0", "seed": 7, "n_envs": 2,
                                             "env_kwargs": {"scenario": "singles_day", **ENV_KW}}))
    pkg = export_policy(str(d / "model.zip"), d / "pkg", name="router", version="3")
    return {"model": model, "env": env, "pkg": pkg, "dir": d}


def test_export_writes_a_manifest_with_every_checksum(learned: dict) -> None:
    pkg = learned["pkg"]
    names = sorted(p.name for p in pkg.iterdir())
    assert names == ["MODEL_CARD.md", "manifest.json", "policy.onnx", "scenario.json"]
    m = json.loads((pkg / "manifest.json").read_text())
    import hashlib

    for name in ("MODEL_CARD.md", "policy.onnx", "scenario.json"):
        assert m["files"][name] == hashlib.sha256((pkg / name).read_bytes()).hexdigest()
    assert m["manifest_sha256"] == manifest_digest(m)
    env = learned["env"].unwrapped
    assert [f["name"] for f in m["observation"]["features"]] == order_feature_names(env.net.warehouses,
                                                                                     env.net.regions)
    assert m["observation"]["size"] == env.observation_space.shape[0] == 6 + 31 + 7 * 8
    assert [f["divisor"] for f in m["observation"]["features"] if f["group"] == "distance"] == [4000.0] * 8
    assert m["env"] == {"id": "twin/OrderRouting-v0", "version": 0, "kwargs": {"scenario": "singles_day", **ENV_KW}}
    assert m["training"]["seeds"] == [7, 8]
    assert m["fallback"]["name"] == "promise_aware"
    assert m["export_check"] == {"observations": 2000, "identical_decisions": 2000}
    assert m["onnx"]["ir_version"] == 10 and m["name"] == "router" and m["version"] == "3"
    assert m["gate"] is None
    assert "Not gated yet" in (pkg / "MODEL_CARD.md").read_text()


def test_runtime_decides_as_sb3_on_10000_observations(learned: dict) -> None:
    """Identical decisions: observations uniform in the space with random masks, and the
    observations of a real episode with its masks."""
    from rl.export import random_observations

    model, env = learned["model"], learned["env"]
    actor = OnnxActor(learned["pkg"] / "policy.onnx")
    obs, masks = random_observations(np.random.default_rng(42), env.observation_space, env.action_space.n, 10_000)
    ref = model.predict(obs, deterministic=True, action_masks=masks)[0]
    got = actor(obs, masks)
    assert got.dtype == np.int64 and got.shape == (10_000,)
    assert (got == ref).all()
    assert masks[np.arange(10_000), got].all()  # never a masked-out warehouse
    # a real episode
    o, _ = env.reset(seed=5)
    real, real_masks = [], []
    for _ in range(300):
        m = env.unwrapped.action_masks()
        real.append(o)
        real_masks.append(m)
        o, _, done, _, _ = env.step(int(actor(o, m)[0]))
        if done:
            break
    real, real_masks = np.array(real), np.array(real_masks)
    assert (actor(real, real_masks) == model.predict(real, deterministic=True, action_masks=real_masks)[0]).all()


def test_the_runtime_observes_as_the_env(learned: dict) -> None:
    """PackagedPolicy computes, from the twin's State, the observation the env gave the agent."""
    env = gym.make("twin/OrderRouting-v0", **ENV_KW).unwrapped
    pol = PackagedPolicy(load_package(learned["pkg"])).bind(env.net)
    promise = {s.promise_h for s in env.scenario.demand.service_levels.values()}
    obs, _ = env.reset(seed=11, options={"outage": ("langfang", 0.2, 1.5)})
    checked = 0
    for _ in range(200):
        d = env.model.engine.pending_decision
        env.model.state.clock[0] = env.model.env.now
        assert d.promised_at - d.created_at in promise
        mine, mask = pol.observe(d.region, bool(d.cold), list(d.sku), list(d.qty), env.model.state,
                                 d.promised_at - d.created_at)
        assert (mine == obs).all()
        assert (mask == env.action_masks()).all()
        checked += 1
        obs, _, done, _, _ = env.step(int(np.flatnonzero(mask)[-1]) if mask.any() else 0)
        if done:
            break
    assert checked > 50


@pytest.mark.parametrize("name", ["manifest.json", "policy.onnx", "scenario.json", "MODEL_CARD.md"])
def test_a_changed_byte_in_any_file_is_refused(learned: dict, tmp_path: Path, name: str) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(learned["pkg"], pkg)
    load_package(pkg)  # the copy loads
    f = pkg / name
    data = bytearray(f.read_bytes())
    i = len(data) // 2
    data[i] = (data[i] + 1) % 256 if name != "manifest.json" else data[i]
    if name == "manifest.json":  # a byte of a value that stays valid JSON: a digit of the version
        text = f.read_text()
        data = bytearray(text.replace('"version": "3"', '"version": "4"').encode())
    f.write_bytes(bytes(data))
    with pytest.raises(PackageError, match=name.replace(".", r"\.")) as err:
        load_package(pkg)
    assert "changed after export" in str(err.value)


def test_missing_and_unlisted_files_are_refused(learned: dict, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    shutil.copytree(learned["pkg"], pkg)
    (pkg / "model.pkl").write_bytes(b"\x80\x04\x95")
    with pytest.raises(PackageError, match=r"model\.pkl: not listed in the manifest"):
        load_package(pkg)
    (pkg / "model.pkl").unlink()
    (pkg / "policy.onnx").unlink()
    with pytest.raises(PackageError, match=r"policy\.onnx: listed in the manifest but missing"):
        load_package(pkg)
    with pytest.raises(PackageError, match="no manifest.json"):
        load_package(tmp_path)


def test_no_pickle_in_a_package(learned: dict, tmp_path: Path) -> None:
    """Every file is JSON, Markdown or an ONNX protobuf; none holds a pickle stream or a zip."""
    import onnx

    heur = export_heuristic("promise_aware", tmp_path / "h")
    for pkg in (learned["pkg"], heur):
        for f in pkg.iterdir():
            data = f.read_bytes()
            assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data and b"PK\x03\x04" not in data, f
            if f.suffix == ".json":
                json.loads(data)
            elif f.suffix == ".md":
                data.decode("utf-8")
            elif f.suffix == ".onnx":
                model = onnx.load_from_string(data)
                assert [i.name for i in model.graph.input] == ["obs", "mask"]
            else:
                pytest.fail(f"unexpected file {f.name}")


def test_runtime_loads_without_torch(learned: dict) -> None:
    """Load a learned package and route an order in a process that never imports torch & co."""
    code = ("import sys, numpy as np\n"
            "from twin.policies.runtime import load_package, OnnxActor\n"
            f"p = load_package({str(learned['pkg'])!r})\n"
            "a = OnnxActor(p.path / 'policy.onnx')\n"
            "x = np.zeros((3, p.manifest['observation']['size']), np.float32)\n"
            "m = np.zeros((3, 8), bool); m[:, 4] = True\n"
            "print(a(x, m).tolist())\n"
            "print(','.join(k for k in ('torch', 'gymnasium', 'stable_baselines3', 'sb3_contrib', 'simpy', 'mesa',"
            " 'pandas', 'matplotlib') if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[4, 4, 4]"
    assert len(lines) == 1, f"loaded {lines[1]}"


def _small(name: str = "singles_day"):  # noqa: ANN202
    sc = scale_scenario(load_scenario(name), 0.02)
    return sc.model_copy(update={"horizon_h": 24.0})


def test_a_heuristic_package_routes_as_the_heuristic(tmp_path: Path) -> None:
    """promise_aware from its package gives the very run of promise_aware (same seed)."""
    pkg = export_heuristic("promise_aware", tmp_path / "pa")
    sc = _small()
    a = simulate(sc, seed=3, routing=routing_policy(pkg))
    b = simulate(sc, seed=3, routing=routing_policy(export_heuristic("promise_aware", tmp_path / "pb")))
    from twin.policies.promise import PromiseAware

    c = simulate(sc, seed=3, routing=PromiseAware())
    assert a.kpis == b.kpis
    assert a.orders.equals(c.orders)
    m = json.loads((pkg / "manifest.json").read_text())
    assert m["kind"] == "heuristic" and m["heuristic"] == {
        "name": "promise_aware", "params": {"late_penalty_cny": 50.0, "co2_price_cny_per_kg": 1.0, "allow_split": True}}


@pytest.mark.parametrize("engine", ["kernel", "simpy"])
def test_a_learned_package_routes_in_the_twin(learned: dict, engine: str) -> None:
    """Each order the policy routed whole went to one warehouse; two runs on one seed agree."""
    sc = _small()
    a = simulate(sc, seed=1, engine=engine, routing=routing_policy(learned["pkg"]))
    b = simulate(sc, seed=1, engine=engine, routing=routing_policy(learned["pkg"]))
    assert a.orders.equals(b.orders)
    assert a.kpis["orders_created"] > 100
    assert a.kpis["orders_lost"] == 0


def test_twin_run_with_a_package_and_a_tampered_one(learned: dict, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    args = ["run", "singles_day", "--scale", "0.02", "--set", "horizon_h=6", "--no-report", "-q"]
    assert main([*args, "--policy", str(learned["pkg"]), "--out", str(tmp_path / "r")]) == 0
    assert "routing with package router 3" in capsys.readouterr().err
    bad = tmp_path / "bad"
    shutil.copytree(learned["pkg"], bad)
    with open(bad / "policy.onnx", "ab") as f:
        f.write(b"\0")
    assert main([*args, "--policy", str(bad), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "policy.onnx" in err and "changed after export" in err and "Traceback" not in err


def test_gate_passes_and_fails_on_constructed_cases(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """promise_aware against itself: every difference is 0 on common random numbers (pass, exit
    0); fastest costs far more than promise_aware (fail, exit 1, cost named)."""
    small = ["--seeds", "3", "--scale", "0.02", "--horizon-h", "24", "--scenario", "singles_day",
             "--scenario", "warehouse_outage"]
    same = export_heuristic("promise_aware", tmp_path / "same")
    assert main(["gate", str(same), *small]) == 0
    doc = json.loads((same / "gate.json").read_text())
    assert doc["passed"] and doc["failed"] == [] and doc["seeds"] == [200000, 200001, 200002]
    for s in doc["scenarios"].values():
        for r in s["kpis"].values():
            assert r["difference"]["mean"] == 0.0 and r["difference"]["half_width"] == 0.0 and r["passed"]
    pkg = load_package(same)  # the checksums were rewritten with the verdict
    assert pkg.manifest["gate"]["passed"] is True
    assert pkg.manifest["files"]["gate.json"] == pkg.manifest["gate"]["gate_json_sha256"]
    assert "Verdict: **PASS**" in (same / "MODEL_CARD.md").read_text()

    worse = export_heuristic("fastest", tmp_path / "worse")
    assert main(["gate", str(worse), *small]) == 1
    doc = json.loads((worse / "gate.json").read_text())
    assert not doc["passed"]
    row = doc["scenarios"]["singles_day"]["kpis"]["cost_per_order"]
    assert row["difference"]["low"] > row["margin"] and not row["passed"]
    assert "singles_day.cost_per_order" in doc["failed"]
    assert load_package(worse).manifest["gate"]["passed"] is False
    assert "verdict: FAIL" in capsys.readouterr().out


def test_gate_margin_decides(tmp_path: Path) -> None:
    """The same paired differences pass under a margin wider than their interval's worse end
    and fail under a narrower one."""
    pkg = export_heuristic("cheapest", tmp_path / "c")
    kw = {"scenarios": ["singles_day"], "seeds": range(200000, 200003), "scale": 0.02, "horizon_h": 24.0}
    doc = gate_package(pkg, **kw)
    high = doc["scenarios"]["singles_day"]["kpis"]["objective_per_order"]["difference"]["high"]
    assert high > 0
    wide = {k: 1e6 for k in ("objective_per_order", "cost_per_order", "on_time_rate", "co2_per_order_kg",
                             "lost_rate")}
    assert gate_package(pkg, margins=wide, **kw)["passed"]
    narrow = gate_package(pkg, margins={**wide, "objective_per_order": high * 0.99}, **kw)
    assert narrow["failed"] == ["singles_day.objective_per_order"]


def test_export_bad_input_names_what_is_allowed(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["export", "cheapest", "--out", str(tmp_path / "a"), "--param", "late_penalty_cny=1"]) == 2
    assert "takes no parameter late_penalty_cny; allowed: allow_split" in capsys.readouterr().err
    assert main(["export", "no_such", "--out", str(tmp_path / "b")]) == 2
    assert "no trained policy at 'no_such'" in capsys.readouterr().err
    assert main(["export", "cheapest", "--out", str(tmp_path / "c"), "--fallback", "x"]) == 2
    assert "--fallback must be one of" in capsys.readouterr().err
    assert main(["gate", str(tmp_path / "nothing")]) == 2
    assert "not a directory" in capsys.readouterr().err
