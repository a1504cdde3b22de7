"""Export a trained per-order policy to a package: ONNX, manifest, model card; no pickle.

``twin export runs/rl/<run>/model.zip --out pkg/`` writes ``policy.onnx`` (the deterministic
masked actor of sb3-contrib's MaskablePPO, batch dimension dynamic; inputs ``obs [N, F]``
float32 and ``mask [N, W]`` bool; outputs ``action [N]`` int64 and ``logits [N, W]``),
``scenario.json`` (the env's network), ``manifest.json`` and ``MODEL_CARD.md``
(:mod:`twin.policies.export`). Heuristic names (``cheapest``, ``promise_aware``...) are
exported as parameters by :func:`twin.policies.export.export_heuristic`.

Only ``twin/OrderRouting-v0`` policies route single orders, which is what the runtime and the
service do; ``twin/Routing-v0`` policies set epoch shares and are refused here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from twin.policies.export import (
    DEFAULT_FALLBACK,
    ORDER_ENV_ID,
    base_manifest,
    order_observation_section,
    scenario_sha256,
    write_package,
)
from twin.policies.features import order_feature_names

__all__ = ["ONNX_IR_VERSION", "ONNX_OPSET", "export_policy", "export_sb3", "onnx_actor_bytes"]

#: onnx 1.23 writes IR v14; onnxruntime 1.31 reads at most IR v13 (1.32: more). IR 10 and opset
#: 20 load in both.
ONNX_IR_VERSION = 10
ONNX_OPSET = 20
#: The logit SB3's MaskableCategorical gives a masked-out action.
MASKED_LOGIT = -1e8


def _model_zip(policy: str | Path) -> Path:
    p = Path(policy)
    if p.is_dir():
        p = p / "model.zip"
    if not p.is_file():
        raise ValueError(f"no trained policy at {str(policy)!r}: give a model zip written by `twin train`, its run "
                         "directory, or a heuristic's name")
    return p


def onnx_actor_bytes(sb3_policy: Any, n_features: int, n_actions: int) -> bytes:
    """The deterministic masked actor of a MaskablePPO policy as ONNX bytes (IR
    :data:`ONNX_IR_VERSION`): ``softmax(where(mask, logits, -1e8))`` and its first argmax, as
    ``MaskableCategorical.mode()`` computes it."""
    import onnx
    import torch

    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)

    class Actor(torch.nn.Module):
        def __init__(self, p: Any) -> None:
            super().__init__()
            self.p = p

        def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = self.p.extract_features(obs, self.p.pi_features_extractor)
            logits = self.p.action_net(self.p.mlp_extractor.forward_actor(f))
            masked = torch.where(mask, logits, torch.full_like(logits, MASKED_LOGIT))
            return torch.argmax(torch.softmax(masked, dim=-1), dim=-1), masked

    actor = Actor(sb3_policy).eval()
    example = (torch.zeros(2, n_features), torch.ones(2, n_actions, dtype=torch.bool))
    batch = torch.export.Dim("batch")
    import contextlib
    import os
    import warnings

    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notes, not about this graph
        prog = torch.onnx.export(actor, example, dynamo=True, external_data=False, opset_version=ONNX_OPSET,
                                 input_names=["obs", "mask"], output_names=["action", "logits"],
                                 dynamic_shapes={"obs": {0: batch}, "mask": {0: batch}}, verbose=False)
    proto = prog.model_proto
    proto.ir_version = min(proto.ir_version, ONNX_IR_VERSION)
    proto.producer_name = "fulfillment-twin rl.export"
    onnx.checker.check_model(proto)
    buf = io.BytesIO()
    onnx.save(proto, buf)
    return buf.getvalue()


def export_sb3(model_zip: str | Path, out: str | Path, name: str | None = None, version: str | None = None,
               fallback: str = DEFAULT_FALLBACK, fallback_params: Mapping[str, Any] | None = None,
               check_observations: int = 2000, force: bool = False) -> Path:
    """Package a MaskablePPO policy trained on ``twin/OrderRouting-v0`` (see the module docstring).

    The export checks itself: ``check_observations`` observations drawn from the observation
    space with random masks are decided by SB3 and by onnxruntime, and any disagreement is an
    error (the count goes into the manifest's ``export_check``).
    """
    from sb3_contrib import MaskablePPO

    from rl.evaluate import load_run_args
    from rl.train import make_env
    from twin.policies.runtime import OnnxActor

    zp = _model_zip(model_zip)
    run_args = load_run_args(zp)
    env_id = run_args.get("env_id", ORDER_ENV_ID)
    if env_id != ORDER_ENV_ID:
        raise ValueError(f"{zp}: trained on {env_id}; only {ORDER_ENV_ID} policies decide per order, which is "
                         "what the runtime and the service do (twin/Routing-v0 sets epoch shares)")
    kwargs = dict(run_args.get("env_kwargs", {}))
    kwargs.pop("randomize", None)
    env = make_env(env_id, **kwargs).unwrapped
    net, sc = env.net, env.scenario
    names = order_feature_names(net.warehouses, net.regions)
    if list(env.feature_names) != names:
        raise ValueError(f"{env_id}'s features are not twin.policies.features': the env and the runtime disagree")
    model = MaskablePPO.load(zp, device="cpu")
    F, W = int(env.observation_space.shape[0]), int(env.action_space.n)
    if model.observation_space.shape != (F,) or int(model.action_space.n) != W:
        raise ValueError(f"{zp}: its spaces ({model.observation_space.shape}, {model.action_space}) are not the env's "
                         f"(({F},), Discrete({W})) with {json.dumps(kwargs, default=str)}")
    data = onnx_actor_bytes(model.policy, F, W)

    # self-check against SB3 on random observations and masks
    tmp = Path(out).with_name(Path(out).name + ".check.onnx")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(data)
    try:
        rng = np.random.default_rng(0)
        obs, masks = random_observations(rng, env.observation_space, W, check_observations)
        ref = model.predict(obs, deterministic=True, action_masks=masks)[0]
        got = OnnxActor(tmp)(obs, masks)
    finally:
        tmp.unlink(missing_ok=True)
    agree = int((np.asarray(ref) == got).sum())
    if agree != len(obs):
        raise ValueError(f"export check: onnxruntime and SB3 disagree on {len(obs) - agree} of {len(obs)} "
                         "observations; the ONNX graph is not the trained actor")
    summary_f = zp.parent / "train_summary.json"
    summary = json.loads(summary_f.read_text()) if summary_f.is_file() else {}
    seed, n_envs = int(run_args.get("seed", 0)), int(run_args.get("n_envs", 1))
    m = base_manifest(name or f"order-router-{zp.parent.name}", version or "1", "onnx", sc, fallback,
                      fallback_params, base=getattr(env, "base", "cheapest"))
    m["env"] = {"id": env_id, "version": int(env_id.rsplit("-v", 1)[1]), "kwargs": kwargs}
    m["observation"] = order_observation_section(sc, list(net.warehouses), list(net.regions), env.horizon_h)
    m["onnx"] = {"file": "policy.onnx", "ir_version": ONNX_IR_VERSION, "opset": ONNX_OPSET,
                 "inputs": {"obs": ["N", F, "float32"], "mask": ["N", W, "bool"]},
                 "outputs": {"action": ["N", "int64"], "logits": ["N", W, "float32"]},
                 "masked_logit": MASKED_LOGIT}
    m["training"] = {
        "algorithm": type(model).__name__, "model_zip_sha256": _sha(zp), "scenario": sc.name,
        "scenario_sha256": [scenario_sha256(sc)], "seeds": list(range(seed, seed + n_envs)),
        "eval_seeds": [int(run_args.get("eval_seed", 50_000)) + i for i in range(int(run_args.get("eval_episodes", 0)))],
        "timesteps": summary.get("timesteps", int(model.num_timesteps)), "config": run_args or None,
    }
    m["export_check"] = {"observations": len(obs), "identical_decisions": agree}
    return write_package(out, m, {"policy.onnx": data, "scenario.json": sc.model_dump_json(indent=1).encode()},
                         force=force)


def random_observations(rng: np.random.Generator, space: Any, n_actions: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` observations uniform in ``space`` with random masks (each with at least one action
    allowed), the observation's ``mask`` features set to them (the layout of
    :mod:`twin.policies.features`: they start after ``6 + R`` entries)."""
    F = space.shape[0]
    obs = rng.uniform(space.low, space.high, (n, F)).astype(np.float32)
    masks = rng.random((n, n_actions)) < 0.6
    masks[np.arange(n), rng.integers(0, n_actions, n)] = True
    start = F - 6 * n_actions  # 6 + R + W: the mask group is the first of the 7 per-warehouse groups
    obs[:, start - n_actions:start] = masks
    return obs, masks


def _sha(p: Path) -> str:
    from twin.policies.export import sha256_file

    return sha256_file(p)


def export_policy(policy: str, out: str | Path, scenario: str | None = None, name: str | None = None,
                  version: str | None = None, fallback: str = DEFAULT_FALLBACK,
                  params: Mapping[str, Any] | None = None, force: bool = False) -> Path:
    """``twin export``: a heuristic's name (``params``: its parameters, ``scenario``: the
    network) or a model zip / run directory of `twin train`."""
    from twin.policies.export import export_heuristic
    from twin.policies.heuristics import ROUTING_POLICIES

    if policy in ROUTING_POLICIES:
        return export_heuristic(policy, out, scenario or "singles_day", params, version or "1", fallback, force)
    if params:
        raise ValueError("--param sets a heuristic's parameters; a learned policy's are its weights")
    if scenario is not None:
        raise ValueError("--scenario is for heuristics; a learned policy routes on the network it was trained on")
    return export_sb3(policy, out, name, version, fallback, force=force)
