"""What the twin's Gymnasium environments share: episode scenarios with domain randomisation,
the reward ledger, and the normalised network features of the observations.

Imports numpy, gymnasium and the twin only (never torch or stable-baselines3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.scenario.loader import annotate_description, load_scenario, scale_scenario, validate_scenario
from twin.scenario.schema import Scenario
from twin.world.costs import ObjectiveWeights, objective_cny
from twin.world.network import Network

__all__ = ["RewardWeights", "Randomization", "Ledger", "base_scenario", "episode_scenario", "default_engine", "env_class",
           "network_features", "network_feature_names", "mean_rate_per_h", "RANDOMIZE_KEYS"]


def env_class(env_id: str) -> type:
    """The class of a registered twin env (its capabilities are class attributes:
    ``supports_masks``, ``engines``, ``heuristics``), without making an instance."""
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    import rl

    if env_id not in rl.ENV_IDS:
        raise ValueError(f"env id must be one of {', '.join(rl.ENV_IDS)}; got {env_id!r}")
    return load_env_creator(gymnasium.spec(env_id).entry_point)


def default_engine() -> str:
    """``"kernel"`` when the Cython kernel is built and registered, else ``"simpy"``."""
    from twin.sim.model import ENGINES

    return "kernel" if "kernel" in ENGINES else "simpy"


@dataclass(frozen=True)
class RewardWeights(ObjectiveWeights):
    """The objective, in CNY: cost + late_penalty x late orders + lost_penalty x lost orders +
    co2_price x CO2 (+ transfer cost in Reallocation-v0): the prices and the formula are
    :class:`twin.world.costs.ObjectiveWeights` and :func:`~twin.world.costs.objective_cny`. The
    reward of a step is ``-scale x`` that amount per expected order of a step, so a step's
    reward is O(1)."""

    scale: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"reward_scale must be finite and > 0, got {self.scale!r}")


# --------------------------------------------------------------------------- scenarios
#: Domain randomisation ranges (low, high), drawn uniformly per episode when ``randomize`` is on.
#: ``demand_scale`` multiplies the order rate; ``weather_severity`` multiplies the probability of
#: moving into a bad-weather state (transit multiplier > 1); ``outage_prob`` is the chance of one
#: warehouse outage, of a uniformly drawn warehouse, starting uniformly in the first 3/4 of the
#: horizon and lasting ``outage_hours``.
RANDOMIZE_KEYS = ("demand_scale", "weather_severity", "outage_prob", "outage_hours")


@dataclass(frozen=True)
class Randomization:
    demand_scale: tuple[float, float] = (0.8, 1.2)
    weather_severity: tuple[float, float] = (0.5, 2.0)
    outage_prob: float = 0.3
    outage_hours: tuple[float, float] = (4.0, 16.0)

    @classmethod
    def parse(cls, randomize: bool | Mapping[str, Any] | None) -> Randomization | None:
        """None for ``False``/``None``, the defaults for ``True``, or the defaults updated by a dict."""
        if randomize is None or randomize is False:
            return None
        if randomize is True:
            return cls()
        if not isinstance(randomize, Mapping):
            raise TypeError(f"randomize must be a bool or a dict with keys {RANDOMIZE_KEYS}, got {randomize!r}")
        bad = set(randomize) - set(RANDOMIZE_KEYS)
        if bad:
            raise ValueError(f"randomize: unknown keys {sorted(bad)}; allowed: {', '.join(RANDOMIZE_KEYS)}")
        vals = {k: (tuple(float(x) for x in v) if isinstance(v, (list, tuple)) else float(v))
                for k, v in randomize.items()}
        return cls(**vals)

    def draw(self, rng: np.random.Generator, warehouses: list[str], horizon_h: float) -> dict[str, Any]:
        """One episode's draw: ``demand_scale``, ``weather_severity`` and ``outage``
        (``(warehouse, start_h, end_h)`` or None)."""
        out: dict[str, Any] = {
            "demand_scale": float(rng.uniform(*self.demand_scale)),
            "weather_severity": float(rng.uniform(*self.weather_severity)),
            "outage": None,
        }
        if rng.random() < self.outage_prob:
            w = warehouses[int(rng.integers(len(warehouses)))]
            start = float(rng.uniform(0.0, 0.75 * horizon_h))
            out["outage"] = (w, start, start + float(rng.uniform(*self.outage_hours)))
        return out


def base_scenario(scenario: str | Scenario, scale: float, horizon_h: float | None) -> Scenario:
    """The env's scenario: a built-in name, a YAML path or a Scenario, scaled by ``scale``
    (demand and every capacity; see :func:`twin.scenario.loader.scale_scenario`), the horizon optionally
    shortened."""
    if not _positive_number(scale):
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    if horizon_h is not None and not _positive_number(horizon_h):
        raise ValueError(f"horizon_h must be a finite number > 0 (hours) or None, got {horizon_h!r}")
    sc = load_scenario(scenario) if not isinstance(scenario, Scenario) else scenario
    if scale != 1.0:
        sc = scale_scenario(sc, float(scale))
    if horizon_h is not None and float(horizon_h) != sc.horizon_h:
        sc = sc.model_copy(update={"horizon_h": float(horizon_h), "description": annotate_description(
            sc.description, f"horizon {float(horizon_h):g} h")})
    return sc


def _positive_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def episode_scenario(sc: Scenario, demand_scale: float = 1.0, weather_severity: float = 1.0,
                     outage: tuple[str, float, float] | None = None, **policy: Any) -> Scenario:
    """``sc`` with one episode's randomisation applied (and ``policy`` fields replaced, e.g.
    ``reallocation={...}``)."""
    if demand_scale == 1.0 and weather_severity == 1.0 and outage is None and not policy:
        return sc
    if not demand_scale > 0:
        raise ValueError(f"demand_scale must be > 0, got {demand_scale!r}")
    if not weather_severity >= 0:
        raise ValueError(f"weather_severity must be >= 0, got {weather_severity!r}")
    doc = sc.model_dump(mode="json")
    doc["demand"]["base_rate_per_h"] *= demand_scale
    if weather_severity != 1.0:
        w = doc["weather"]
        bad = np.array([s["transit_multiplier"] > 1.0 for s in w["states"]])
        rows = []
        for i, row in enumerate(w["transition"]):
            p = np.array(row, dtype=float)
            into_bad = bad.copy()
            into_bad[i] = False
            p[into_bad] *= weather_severity
            if p[into_bad].sum() > 1.0:
                p[into_bad] /= p[into_bad].sum()
            rest = ~into_bad
            # the other moves keep their proportions and take what is left
            rest_mass = p[rest].sum()
            p[rest] = p[rest] / rest_mass * (1.0 - p[into_bad].sum()) if rest_mass > 0 else 0.0
            rows.append(p.tolist())
        w["transition"] = rows
    if outage is not None:
        name, start, end = outage
        doc["disruptions"] = list(doc["disruptions"]) + [
            {"type": "warehouse_outage", "warehouse": name, "start_h": float(start), "end_h": float(end)}]
    for k, v in policy.items():
        doc["policy"][k] = {**doc["policy"][k], **v}
    return validate_scenario(doc, sc.name)


def mean_rate_per_h(sc: Scenario) -> float:
    """The mean network order rate over the horizon (profile and diurnal cycle, before weather):
    :func:`twin.world.demand.mean_rate_per_h`."""
    from twin.world.demand import mean_rate_per_h as mean_rate

    return mean_rate(sc)


# --------------------------------------------------------------------------- reward ledger
class Ledger:
    """Reads what happened in the model since the last call: orders created, shipments routed
    (their cost and CO2), deliveries late or on time, orders lost.

    Cost and CO2 are charged when a shipment is routed; a late order when it is delivered after
    its promise; a lost order when it is lost; at the end (``final``) every order still not
    delivered counts as late. Summed over an episode this is the episode's whole objective.
    """

    KEYS = ("orders", "shipments", "cost_cny", "co2_kg", "delivered", "on_time", "late", "lost")

    def __init__(self, model: Any) -> None:
        self.m = model
        self._c = (0, 0, 0, 0, 0, 0.0, 0.0)  # the engine's Counters at the last call
        self.total = dict.fromkeys(self.KEYS, 0.0)

    def take(self, final: bool = False) -> dict[str, float]:
        # the engines keep running totals (twin.sim.records.Counters): a step reads no records
        c = self.m.engine.counters
        created, delivered, on_time, lost = c.created, c.delivered, c.on_time, c.lost
        p = self._c
        self._c = (created, delivered, on_time, lost, c.shipments, c.cost, c.co2_kg)
        d_deliv, d_on = delivered - p[1], on_time - p[2]
        out = {
            "orders": float(created - p[0]),
            "shipments": float(c.shipments - p[4]),
            "cost_cny": c.cost - p[5],
            "co2_kg": c.co2_kg - p[6],
            "delivered": float(d_deliv),
            "on_time": float(d_on),
            "late": float(d_deliv - d_on + (c.in_flight if final else 0)),
            "lost": float(lost - p[3]),
        }
        for k, v in out.items():
            self.total[k] += v
        return out

    def episode_kpis(self, w: RewardWeights) -> dict[str, float]:
        """The episode's totals as KPIs (per created order where it says so)."""
        t = self.total
        n = max(t["orders"], 1.0)
        return {
            "orders": t["orders"],
            "on_time_rate": t["on_time"] / n,
            "late_rate": t["late"] / n,
            "lost_rate": t["lost"] / n,
            "cost_per_order": t["cost_cny"] / n,
            "co2_per_order_kg": t["co2_kg"] / n,
            "objective_per_order": objective(t, w) / n,
        }


def objective(part: Mapping[str, float], w: RewardWeights, transfer_cny: float = 0.0) -> float:
    """The objective of a ledger part, CNY (lower is better): :func:`twin.world.costs.objective_cny`
    plus the transfer cost."""
    return objective_cny(part["cost_cny"], part["late"], part["lost"], part["co2_kg"], w) + transfer_cny


# --------------------------------------------------------------------------- observations
def hot_skus(net: Network, n: int = 10) -> np.ndarray:
    """``[W, n]`` per warehouse the ``n`` most popular SKUs it carries (initial stock > 0), most
    popular first; a site carrying fewer repeats its last (one carrying none: SKU 0)."""
    carried = net.initial_stock > 0
    rows = []
    for w in range(net.n_warehouses):
        h = np.flatnonzero(carried[w])[np.argsort(-net.sku_p[carried[w]], kind="stable")][:n]
        h = h if len(h) else np.zeros(1, dtype=np.int64)
        rows.append(np.pad(h, (0, n - len(h)), mode="edge"))
    return np.array(rows, dtype=np.int64)


def network_feature_names(warehouses: list[str], regions: list[str]) -> list[str]:
    """The names of :func:`network_features`, in order."""
    names = ["time_of_day_sin", "time_of_day_cos", "horizon_progress", "demand_forecast_next", "demand_forecast_6h"]
    for f in ("open", "cold_ok", "pick_capacity", "backlog_hours", "inventory_cover"):
        names += [f"{f}[{w}]" for w in warehouses]
    for f in ("transit_delay", "lanes_open", "demand_mult"):
        names += [f"{f}[{r}]" for r in regions]
    return names


def network_bounds(W: int, R: int) -> tuple[np.ndarray, np.ndarray]:
    n = 5 + 5 * W + 3 * R
    low = np.zeros(n, dtype=np.float32)
    high = np.ones(n, dtype=np.float32)
    low[:2] = -1.0
    return low, high


def network_features(model: Any, epoch_h: float, rate_ref: float) -> np.ndarray:
    """The state of the network, each feature in [0, 1] (time of day in [-1, 1]).

    - ``time_of_day_sin/cos``: the hour of day on the unit circle.
    - ``horizon_progress``: time / horizon, clipped to 1.
    - ``demand_forecast_next``, ``demand_forecast_6h``: the network order rate the demand profile
      gives for the middle of the next epoch and 6 h ahead (times the weather and surge demand
      multipliers now), over ``rate_ref`` (the horizon's mean rate), divided by 4, clipped.
    - per warehouse ``open``, ``cold_ok`` (0/1); ``pick_capacity``: pick servers up now over the
      fleet size; ``backlog_hours``: shipments waiting to ship over the pick rate of the servers
      up (shipments/h), divided by 24 h, clipped; ``inventory_cover``: units on hand over initial
      units, popularity-weighted over the SKUs it carries, divided by 2, clipped.
    - per region ``transit_delay``: (weather transit multiplier - 1) / 3, clipped;
      ``lanes_open`` (0/1); ``demand_mult``: weather x surge demand multiplier / 3, clipped.
    """
    c = _constants(model)
    st = model.state
    t = float(model.env.now)
    W, R = c["W"], c["R"]
    x = c["buf"]  # every entry is written below
    day = 2 * math.pi * (t % 24.0) / 24.0
    rd = st.region_demand_mult * st.surge_mult
    dmult = float(c["region_weight"] @ rd) / rate_ref / 4.0
    x[0] = math.sin(day)
    x[1] = math.cos(day)
    x[2] = t / c["horizon_h"]
    x[3] = model.demand.total_rate(t + epoch_h / 2) * dmult
    x[4] = model.demand.total_rate(t + 6.0) * dmult
    o = 5
    x[o:o + W] = st.wh_open
    x[o + W:o + 2 * W] = st.cold_ok
    servers = st.pick_servers
    np.multiply(servers, c["inv_agvs"], out=x[o + 2 * W:o + 3 * W])
    # backlog in hours of pick capacity / 24 h (clipped to 1; 1 when nothing can pick a waiting
    # backlog: backlog / tiny, 0 when there is none)
    rate24 = servers * st.wh_open * c["shipments_per_server_24h"]
    np.divide(st.backlog, np.maximum(rate24, 1e-12, out=rate24), out=x[o + 3 * W:o + 4 * W])
    np.einsum("ws,ws->w", st.inventory, c["sku_w"], out=x[o + 4 * W:o + 5 * W])
    x[o + 4 * W:o + 5 * W] *= c["inv_init_w_2"]
    o += 5 * W
    np.subtract(st.region_transit_mult, 1.0, out=x[o:o + R])
    x[o:o + R] /= 3.0
    x[o + R:o + 2 * R] = st.region_open
    np.divide(rd, 3.0, out=x[o + 2 * R:o + 3 * R])
    np.clip(x, c["low"], c["high"], out=x)
    return x.astype(np.float32)


def _constants(model: Any) -> dict[str, Any]:
    """What the features need that does not change during a run, computed once per model."""
    c = getattr(model, "_rl_constants", None)
    if c is None:
        net, sc = model.net, model.scenario
        lines = sc.demand.lines_per_order
        init = net.initial_stock.astype(float)
        sku_w = np.where(init > 0, net.sku_p[None, :], 0.0)
        agvs = np.array([w.pick.agvs for w in sc.warehouses], dtype=float)
        W, R = net.n_warehouses, net.n_regions
        low, high = network_bounds(W, R)
        c = {
            "W": W, "R": R, "n": len(low), "horizon_h": float(sc.horizon_h),
            "low": low.astype(float), "high": high.astype(float),
            "region_weight": np.asarray(net.region_weight, dtype=float),
            "agvs": agvs,
            "inv_agvs": np.where(agvs > 0, 1.0 / np.maximum(agvs, 1.0), 0.0),
            "shipments_per_server_24h": np.array([24.0 * w.pick.lines_per_agv_h / lines for w in sc.warehouses]),
            "buf": np.empty(len(low)),
            "sku_w": sku_w,
            "init_w": np.maximum((init * sku_w).sum(axis=1), 1e-9),
        }
        c["inv_init_w_2"] = 0.5 / c["init_w"]
        model._rl_constants = c
    return c
