"""Writing a policy package: a directory an OMS-facing service can load without pickle.

A package holds ``manifest.json`` (what the policy is, what it reads and decides, where it
came from, the sha256 of every other file and of the manifest itself), ``scenario.json`` (the
network it routes on, as the twin's validated scenario), ``MODEL_CARD.md`` and, for a learned
policy, ``policy.onnx`` (written by :mod:`rl.export`); after ``twin gate``, ``gate.json``.
Heuristic policies (``cheapest``, ``promise_aware``, ...) are packaged as their parameters.

:mod:`twin.policies.runtime` reads packages back and refuses any changed byte.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twin.policies.features import feature_schema, order_bounds
from twin.policies.heuristics import ROUTING_POLICIES
from twin.scenario.loader import load_scenario
from twin.scenario.schema import Scenario

__all__ = [
    "DEFAULT_FALLBACK",
    "FORMAT",
    "FORMAT_VERSION",
    "export_heuristic",
    "git_commit",
    "heuristic_params",
    "library_versions",
    "manifest_digest",
    "model_card",
    "rewrite_manifest",
    "scenario_sha256",
    "sha256_file",
    "write_package",
]

FORMAT = "fulfillment-twin-policy"
FORMAT_VERSION = 1
#: The heuristic a package falls back to unless told otherwise: the strongest (see DESIGN.md).
DEFAULT_FALLBACK = "promise_aware"
#: What the twin's per-order env id is; its observation is :mod:`twin.policies.features`.
ORDER_ENV_ID = "twin/OrderRouting-v0"

FEASIBILITY = ("hard, outside the policy: a warehouse is allowed only if it is open, has remaining capacity "
               "(remaining_capacity_orders > 0 in a request), has a lane of the base heuristic's carrier to the "
               "destination region, has working cold storage for an order with a cold-chain line, and holds the "
               "units of every line; the policy's choice is taken among the allowed warehouses only (masked "
               "argmax); an order no single warehouse can serve is split by the base heuristic's order "
               "(most lines covered first), or refused when no allowed set covers it")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """The sha256 of a manifest's canonical JSON without its ``manifest_sha256`` field."""
    return hashlib.sha256(_canonical({k: v for k, v in manifest.items() if k != "manifest_sha256"})).hexdigest()


def scenario_sha256(sc: Scenario) -> str:
    """The sha256 of a scenario's canonical JSON (what the twin validated, after overrides)."""
    return hashlib.sha256(_canonical(json.loads(sc.model_dump_json()))).hexdigest()


def git_commit() -> str | None:
    """The project's commit (with ``+dirty`` when the work tree has changes), or None."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=False)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions(names: tuple[str, ...] = ("numpy", "pydantic", "onnx", "onnxruntime", "torch",
                                                "stable-baselines3", "sb3-contrib", "gymnasium")) -> dict[str, str]:
    """The installed versions of ``names`` (those not installed are left out), and Python's."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    try:
        out["fulfillment-twin"] = version("fulfillment-twin")
    except PackageNotFoundError:
        pass
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            continue
    return out


def heuristic_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The constructor parameters of the heuristic ``name`` with their defaults, updated by
    ``params`` (an unknown name or parameter is a ValueError naming what is allowed)."""
    if name not in ROUTING_POLICIES:
        raise ValueError(f"heuristic must be one of {', '.join(ROUTING_POLICIES)}; got {name!r}")
    sig = inspect.signature(ROUTING_POLICIES[name].__init__)
    allowed = {n: p.default for n, p in sig.parameters.items() if n != "self" and p.default is not p.empty}
    params = dict(params or {})
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise ValueError(f"heuristic {name!r} takes no parameter {', '.join(bad)}; allowed: {', '.join(allowed)}")
    out = {**allowed, **params}
    ROUTING_POLICIES[name](**out)  # its own checks of the values
    return out


def network_section(sc: Scenario, base: str = "cheapest") -> dict[str, Any]:
    """The manifest's ``network``: the scenario's name, sha256, warehouses, regions, carriers,
    service levels, and the base heuristic whose lanes and carriers the observation reads."""
    from twin.world.network import build_network

    net = build_network(sc)
    return {
        "scenario": sc.name,
        "scenario_sha256": scenario_sha256(sc),
        "warehouses": list(net.warehouses),
        "regions": list(net.regions),
        "carriers": list(net.carriers),
        "service_levels": {k: {"promise_h": v.promise_h} for k, v in sc.demand.service_levels.items()},
        "base": base,
    }


def model_card(m: Mapping[str, Any]) -> str:
    """``MODEL_CARD.md`` of a manifest: what the policy is for, its inputs and decision, its
    origin, its gate, its fallback and its limits."""
    kind = m["kind"]
    net = m["network"]
    lines = [f"# Model card: {m['name']} {m['version']}", "",
             f"- Kind: {'learned (ONNX, deterministic masked actor)' if kind == 'onnx' else 'heuristic'}"
             + (f" `{m['heuristic']['name']}`" if kind == "heuristic" else ""),
             f"- Package format: {m['format']} v{m['format_version']}, created {m['created_utc']}",
             f"- Network: scenario `{net['scenario']}` (sha256 {net['scenario_sha256'][:12]}...), "
             f"{len(net['warehouses'])} warehouses, {len(net['carriers'])} carriers",
             f"- Project commit: {m.get('git_commit') or 'unknown'}", "",
             "## Intended use", "",
             "Order routing for the network above: per order, the warehouse that ships it whole (split by the base "
             "heuristic when no single warehouse can), through `twin run --policy`, `twin gate` or `twin serve`. "
             "Not for other networks: the observation is defined by this network's warehouses, regions and lanes.",
             "", "## Decision", "", m["action"]["meaning"], "", "Feasibility: " + m["action"]["feasibility"], ""]
    if kind == "onnx":
        obs = m["observation"]
        lines += ["## Inputs", "",
                  f"{obs['size']} float32 features ({', '.join(sorted({f['group'] for f in obs['features']}))}), "
                  "normalised as `manifest.json` lists (raw / divisor, clipped to [low, high]); the same code "
                  "computes them in the env and on live input (`twin.policies.features`).", "",
                  "## Training", "", f"- Env: `{m['env']['id']}`",
                  f"- Scenario sha256: {', '.join(s[:12] + '...' for s in m['training'].get('scenario_sha256', []))}",
                  f"- Seeds: {m['training'].get('seeds')}", f"- Timesteps: {m['training'].get('timesteps')}", ""]
    else:
        lines += ["## Parameters", "", "```json", json.dumps(m["heuristic"]["params"], indent=2), "```", ""]
    g = m.get("gate")
    lines += ["## Gate", ""]
    if not g:
        lines += ["Not gated yet: run `twin gate DIR` before serving it as champion.", ""]
    else:
        lines += [f"Verdict: **{'PASS' if g['passed'] else 'FAIL'}** against `{g['baseline']}` on "
                  f"{', '.join(g['scenarios'])} ({g['n_seeds']} held-out seeds each, common random numbers); "
                  "per-KPI paired 95% CIs in `gate.json`.", ""]
    fb = m["fallback"]
    lines += ["## Fallback", "", f"`{fb['name']}` with {json.dumps(fb['params'])}: on a model error, a timeout, "
              "input outside the training ranges or an outside dependency failing (the service says "
              "`fallback: true` and why).", "",
              "## Limits", "",
              "- Live input has no simulated clock: the time features read the order's hour of day; "
              "`horizon_progress` reads hours since local midnight over the training horizon.",
              "- Backlog and AGVs up come from the request when it sends them, else an idle site is assumed.", ""]
    return "\n".join(lines)


def write_package(out: str | Path, manifest: dict[str, Any], files: Mapping[str, bytes],
                  force: bool = False) -> Path:
    """Write a package: ``files`` (name -> bytes, e.g. ``policy.onnx``, ``scenario.json``), then
    ``MODEL_CARD.md`` from the manifest, then ``manifest.json`` with the sha256 of every file
    and of itself. Refuses a non-empty directory that is not a package unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r}: a file of that name exists; give a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file() and not force:
        raise ValueError(f"--out {str(out)!r}: the directory is not empty and holds no package; "
                         "choose another or add --force")
    out.mkdir(parents=True, exist_ok=True)
    for old in (out / "manifest.json", out / "gate.json", out / "policy.onnx"):
        old.unlink(missing_ok=True)  # a package of another policy leaves nothing behind
    for name, data in files.items():
        (out / name).write_bytes(data)
    manifest = dict(manifest)
    (out / "MODEL_CARD.md").write_text(model_card(manifest), encoding="utf-8")
    return rewrite_manifest(out, manifest)


def rewrite_manifest(out: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` in ``out`` with ``files`` (sha256 of every other file there) and
    ``manifest_sha256``; returns the directory."""
    out = Path(out)
    manifest = dict(manifest)
    manifest["files"] = {p.name: sha256_file(p) for p in sorted(out.iterdir())
                         if p.is_file() and p.name != "manifest.json"}
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def base_manifest(name: str, version: str, kind: str, sc: Scenario, fallback: str = DEFAULT_FALLBACK,
                  fallback_params: Mapping[str, Any] | None = None, base: str = "cheapest") -> dict[str, Any]:
    """The fields every package has (the caller adds ``heuristic`` or ``env``/``observation``/
    ``training``)."""
    W = len(sc.warehouses)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "name": name, "version": version, "kind": kind,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "network": network_section(sc, base),
        "action": {
            "type": "discrete", "n": W,
            "meaning": ("the index, in `network.warehouses` order, of the warehouse that ships the whole order; "
                        "its carrier is the base heuristic's on that lane (by service level where the scenario "
                        "sets carriers per level)"),
            "feasibility": FEASIBILITY,
        },
        "fallback": {"name": fallback, "params": heuristic_params(fallback, fallback_params)},
        "libraries": library_versions(),
        "git_commit": git_commit(),
        "gate": None,
    }


def export_heuristic(name: str, out: str | Path, scenario: str | Scenario = "singles_day",
                     params: Mapping[str, Any] | None = None, version: str = "1",
                     fallback: str = DEFAULT_FALLBACK, force: bool = False) -> Path:
    """Package the heuristic ``name`` with its parameters (no ONNX), for ``scenario``'s network."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    p = heuristic_params(name, params)
    m = base_manifest(name, version, "heuristic", sc, fallback)
    m["heuristic"] = {"name": name, "params": p}
    m["observation"] = None
    m["training"] = {"scenario_sha256": [scenario_sha256(sc)], "seeds": None, "config": None}
    return write_package(out, m, {"scenario.json": sc.model_dump_json(indent=1).encode()}, force=force)


def order_observation_section(sc: Scenario, warehouses: list[str], regions: list[str],
                              horizon_h: float) -> dict[str, Any]:
    """The manifest's ``observation`` for a per-order policy."""
    low, _ = order_bounds(len(warehouses), len(regions))
    return {"size": int(len(low)), "dtype": "float32", "horizon_h": float(horizon_h),
            "features": feature_schema(warehouses, regions), "definition": "twin.policies.features.order_features"}
