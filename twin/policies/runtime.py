"""Loading a policy package (:mod:`twin.policies.export`) and routing with it, without torch.

:func:`load_package` verifies the package first: the manifest's own sha256, then the sha256 of
every file it lists; a changed byte, a missing file or a file the manifest does not list is
refused with :class:`PackageError` naming the file. A learned package runs its ``policy.onnx``
with onnxruntime (one intra-op thread by default) on observations from
:func:`twin.policies.features.order_features`, the code the training env calls.

:func:`routing_policy` turns a package into a :class:`~twin.policies.base.RoutingPolicy` for the
twin (``twin run --policy DIR``, ``twin gate``): a heuristic package builds its heuristic; a
learned one is a :class:`PackagedPolicy`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twin.errors import TwinError
from twin.policies.base import OrderBatch, RoutingPolicy
from twin.policies.export import FORMAT, FORMAT_VERSION, manifest_digest, sha256_file
from twin.policies.features import OrderLanes, order_features, order_mask
from twin.policies.heuristics import ROUTING_POLICIES
from twin.scenario.schema import Scenario
from twin.world.network import Network
from twin.world.state import State

__all__ = [
    "REQUIRED_FILES",
    "OnnxActor",
    "Package",
    "PackageError",
    "PackagedPolicy",
    "heuristic_policy",
    "load_package",
    "routing_policy",
    "verify_package",
]

#: The files each kind of package must hold (besides ``manifest.json``).
REQUIRED_FILES = {"onnx": ("policy.onnx", "scenario.json", "MODEL_CARD.md"),
                  "heuristic": ("scenario.json", "MODEL_CARD.md")}


class PackageError(TwinError, ValueError):
    """A policy package is missing, malformed or changed after export."""


def verify_package(path: str | Path) -> dict[str, Any]:
    """The manifest of the package at ``path``, after checking every checksum.

    Raises:
        PackageError: naming the file that is missing, unlisted or changed, or the field of the
            manifest that is wrong.
    """
    d = Path(path)
    if not d.is_dir():
        raise PackageError(f"policy package {str(d)!r}: not a directory (write one with `twin export`)")
    mf = d / "manifest.json"
    if not mf.is_file():
        raise PackageError(f"policy package {str(d)!r}: no manifest.json in it (write one with `twin export`)")
    try:
        m = json.loads(mf.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{mf}: not valid JSON ({exc}); the manifest was changed after export") from None
    if not isinstance(m, dict):
        raise PackageError(f"{mf}: must be a JSON object, got {type(m).__name__}")
    if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
        raise PackageError(f"{mf}: format must be {FORMAT!r} version {FORMAT_VERSION}, got "
                           f"{m.get('format')!r} version {m.get('format_version')!r}")
    want = m.get("manifest_sha256")
    got = manifest_digest(m)
    if want != got:
        raise PackageError(f"{mf}: sha256 of its content is {got}, the manifest says {want}: manifest.json was "
                           "changed after export; re-export the package (or re-run `twin gate`)")
    files = m.get("files")
    if not isinstance(files, dict):
        raise PackageError(f"{mf}: files must be an object of file name -> sha256")
    kind = m.get("kind")
    if kind not in REQUIRED_FILES:
        raise PackageError(f"{mf}: kind must be one of {', '.join(REQUIRED_FILES)}; got {kind!r}")
    for name in REQUIRED_FILES[kind]:
        if name not in files:
            raise PackageError(f"{mf}: a {kind} package must list {name} in files")
    for name, digest in files.items():
        f = d / name
        if Path(name).name != name or not f.is_file():
            raise PackageError(f"{f}: listed in the manifest but missing from the package")
        actual = sha256_file(f)
        if actual != digest:
            raise PackageError(f"{f}: sha256 {actual} differs from the manifest's {digest}: {name} was changed "
                               "after export; re-export the package")
    for f in sorted(d.iterdir()):
        if f.name != "manifest.json" and f.name not in files:
            raise PackageError(f"{f}: not listed in the manifest; a package holds only the files its manifest "
                               "lists (remove it, or re-export)")
    return m


@dataclass(frozen=True, eq=False)
class Package:
    """A verified package: its directory, manifest and scenario."""

    path: Path
    manifest: dict[str, Any]
    scenario: Scenario

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def sha256(self) -> str:
        """The manifest's sha256: it covers every file's, so it names the package's content."""
        return str(self.manifest["manifest_sha256"])

    @property
    def base(self) -> str:
        return str(self.manifest["network"].get("base", "cheapest"))

    def check_network(self, net: Network) -> None:
        """Refuse a network other than the package's (warehouses and regions, in order)."""
        n = self.manifest["network"]
        for key, have in (("warehouses", list(net.warehouses)), ("regions", list(net.regions))):
            if list(n[key]) != have:
                raise PackageError(f"policy package {self.name!r} routes on {n['scenario']!r} with {key} "
                                   f"{n[key]}; this network has {have}")


def load_package(path: str | Path) -> Package:
    """Verify (:func:`verify_package`) and read a package."""
    from twin.scenario.loader import validate_scenario

    m = verify_package(path)
    d = Path(path)
    from twin.policies.export import scenario_sha256

    sc = validate_scenario(json.loads((d / "scenario.json").read_text(encoding="utf-8")), str(d / "scenario.json"))
    want = m.get("network", {}).get("scenario_sha256")
    if scenario_sha256(sc) != want:
        raise PackageError(f"{d / 'scenario.json'}: the scenario's sha256 {scenario_sha256(sc)} is not the manifest's "
                           f"network.scenario_sha256 {want}")
    return Package(d, m, sc)


class OnnxActor:
    """The package's ``policy.onnx`` in onnxruntime: ``obs [N, F] float32``, ``mask [N, W]
    bool`` -> ``action [N] int64`` (the masked argmax) and ``logits [N, W]`` (masked: -1e8 where
    not allowed)."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise PackageError(f"{path}: onnxruntime cannot load it ({exc})") from None
        ins = {i.name: i for i in self.session.get_inputs()}
        if set(ins) != {"obs", "mask"}:
            raise PackageError(f"{path}: inputs must be obs and mask, got {', '.join(ins)}")
        self.n_features = int(ins["obs"].shape[1])
        self.n_actions = int(ins["mask"].shape[1])
        self._one = self._bind_one()
        self._one_lock = threading.Lock()

    def _bind_one(self) -> tuple[Any, ...] | None:
        """Buffers for one observation bound to the session once (``io_binding``): a call on one
        order skips building and checking the feeds and fetches (about half of its cost on one
        order; the same kernels, the same numbers: a test). None if the graph's outputs are not
        ``action [N]`` and ``logits [N, W]``."""
        outs = {o.name: o for o in self.session.get_outputs()}
        if set(outs) != {"action", "logits"}:
            return None
        obs = np.zeros((1, self.n_features), dtype=np.float32)
        mask = np.zeros((1, self.n_actions), dtype=bool)
        action = np.zeros((1,), dtype=np.int64)
        logits = np.zeros((1, self.n_actions), dtype=np.float32)
        io = self.session.io_binding()
        io.bind_cpu_input("obs", obs)
        io.bind_cpu_input("mask", mask)
        io.bind_output("action", "cpu", 0, np.int64, action.shape, action.ctypes.data)
        io.bind_output("logits", "cpu", 0, np.float32, logits.shape, logits.ctypes.data)
        F, W = self.n_features, self.n_actions
        return io, obs, mask, action, logits, ((1, F), (F,)), ((1, W), (W,))

    def run(self, obs: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(action [N], logits [N, W])`` of ``obs`` (``[N, F]`` or ``[F]``) under ``mask``."""
        one = self._one
        if (one is not None and getattr(obs, "shape", None) in one[5] and getattr(mask, "shape", None) in one[6]
                and self._one_lock.acquire(blocking=False)):
            try:  # one observation, in the bound buffers (another thread using them: the general call)
                io, o, m, action, logits = one[:5]
                o[...] = obs
                m[...] = mask
                self.session.run_with_iobinding(io)
                return action.copy(), logits.copy()
            finally:
                self._one_lock.release()
        obs = np.ascontiguousarray(obs, dtype=np.float32).reshape(-1, self.n_features)
        mask = np.ascontiguousarray(mask, dtype=bool).reshape(-1, self.n_actions)
        action, logits = self.session.run(None, {"obs": obs, "mask": mask})
        return action, logits

    def __call__(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.run(obs, mask)[0]


def heuristic_policy(name: str, params: dict[str, Any]) -> RoutingPolicy:
    """An unbound heuristic from a package's ``heuristic`` or ``fallback`` section."""
    if name not in ROUTING_POLICIES:
        raise PackageError(f"heuristic must be one of {', '.join(ROUTING_POLICIES)}; got {name!r}")
    try:
        return ROUTING_POLICIES[name](**params)
    except TypeError as exc:
        raise PackageError(f"heuristic {name!r}: parameters {params}: {exc}") from None


class PackagedPolicy(RoutingPolicy):
    """A learned package routing in the twin: per order, the warehouse its ONNX actor picks among
    those that may take the whole order (:func:`twin.policies.features.order_mask`), on the base
    heuristic's carrier; an order no single warehouse can serve is split as the base heuristic
    splits it, as in ``twin/OrderRouting-v0``.

    Batches (the kernel's ``batch`` plan) do not carry the orders' service levels: their promise
    feature is the scenario's share-weighted mean promise (the reference engine calls
    :meth:`route_one` with the order's own).
    """

    def __init__(self, package: Package, actor: OnnxActor | None = None, allow_split: bool = True) -> None:
        super().__init__(allow_split)
        if package.kind != "onnx":
            raise PackageError(f"policy package {package.name!r} is a {package.kind} package; use routing_policy()")
        self.package = package
        self.name = package.name
        self.actor = actor or OnnxActor(package.path / "policy.onnx")
        obs = package.manifest["observation"]
        self.horizon_h = float(obs["horizon_h"])
        if self.actor.n_features != int(obs["size"]):
            raise PackageError(f"{package.path / 'policy.onnx'}: takes {self.actor.n_features} features, the "
                               f"manifest says {obs['size']}")

    def lane_criterion(self, net: Network) -> np.ndarray:
        return ROUTING_POLICIES[self.package.base]().lane_criterion(net)

    def bind(self, net: Network, rng: np.random.Generator | None = None) -> RoutingPolicy:
        self.package.check_network(net)
        super().bind(net, rng)
        self.lanes = OrderLanes.from_network(net, self.package.base)
        levels = net.scenario.demand.service_levels.values()
        self.promise_h = [s.promise_h for s in levels]
        self.mean_promise_h = float(sum(s.share * s.promise_h for s in levels) / sum(s.share for s in levels))
        return self

    def observe(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State, promise_h: float,
                inventory: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(observation, mask)`` of one order now (``inventory``: a private copy of the
        State's, for batches where earlier orders reserve first)."""
        inv = state.inventory if inventory is None else inventory
        stock = inv[:, sku]
        mask = order_mask(self.lanes, region, cold, state.wh_open, state.cold_ok, stock, np.asarray(qty))
        init = np.maximum(self.lanes.initial_stock[:, sku], 1).astype(float)
        cover = (stock / init).min(axis=1)
        obs = order_features(self.lanes, float(state.clock[0]), self.horizon_h, region, cold, float(sum(qty)),
                             promise_h, mask, state.backlog, state.pick_servers, state.wh_open,
                             float(state.region_transit_mult[region]), cover)
        return obs, mask

    def route_one(self, region: int, cold: bool, sku: list[int], qty: list[int], state: State,
                  service: int = 0) -> list[int] | None:
        obs, mask = self.observe(region, cold, sku, qty, state, self.promise_h[service])
        if not mask.any():
            return super().route_one(region, cold, sku, qty, state, service)  # the base heuristic splits
        return [int(self.actor(obs, mask)[0])] * len(sku)

    def route(self, batch: OrderBatch, state: State) -> np.ndarray:
        """Every order of the batch in one onnxruntime call; an order whose choice an earlier
        order of the batch took the stock of is asked again on its own."""
        from twin.policies.base import assign_order

        n = len(batch)
        out = np.full(len(batch.sku), -1, dtype=np.int64)
        if n == 0:
            return out
        inv = state.inventory.copy()
        F, W = self.actor.n_features, self.net.n_warehouses
        obs, masks = np.zeros((n, F), dtype=np.float32), np.zeros((n, W), dtype=bool)
        for i in range(n):
            a, b = batch.line_start[i], batch.line_start[i + 1]
            if a < b:
                obs[i], masks[i] = self.observe(int(batch.region[i]), bool(batch.cold[i]), batch.sku[a:b].tolist(),
                                                batch.qty[a:b].tolist(), state, self.mean_promise_h, inv)
        actions = self.actor(obs, masks)
        usable = state.wh_open & state.cold_ok
        for i in range(n):
            a, b = batch.line_start[i], batch.line_start[i + 1]
            if a == b:
                continue
            sku, qty = batch.sku[a:b], batch.qty[a:b]
            r, cold = int(batch.region[i]), bool(batch.cold[i])
            w = int(actions[i]) if masks[i].any() else -1
            if w >= 0 and not (inv[w, sku] >= qty).all():  # an earlier order of the batch took it
                o, m = self.observe(r, cold, sku.tolist(), qty.tolist(), state, self.mean_promise_h, inv)
                w = int(self.actor(o, m)[0]) if m.any() else -1
            if w >= 0:
                out[a:b] = w
            else:
                ws = assign_order(self.static_score[int(cold), r], usable if cold else state.wh_open, inv[:, sku],
                                  qty, self.allow_split)
                if ws is None:
                    continue
                out[a:b] = ws
            np.subtract.at(inv, (out[a:b], sku), qty)
        return out


def routing_policy(path: str | Path | Package, actor_threads: int = 1) -> RoutingPolicy:
    """The routing policy of a package (unbound): its heuristic, or a :class:`PackagedPolicy`."""
    pkg = path if isinstance(path, Package) else load_package(path)
    if pkg.kind == "heuristic":
        h = pkg.manifest["heuristic"]
        return heuristic_policy(h["name"], h["params"])
    return PackagedPolicy(pkg, OnnxActor(pkg.path / "policy.onnx", actor_threads))
