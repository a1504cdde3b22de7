"""KPIs, all computed from the per-shipment records and the time series, so each can be checked."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["KPI_DOC", "compute_kpis", "order_table", "summarize"]

#: Each KPI and what it means (units in the name or the text).
KPI_DOC: dict[str, str] = {
    "orders_created": "orders that arrived during the horizon",
    "orders_delivered": "orders whose every shipment was delivered by the end of the run",
    "orders_in_flight": "orders still moving (queued, picking, waiting for a carrier, in transit, backordered) at the end",
    "orders_lost": "orders that could not be served (no open warehouse with the stock, or a backorder that timed out)",
    "on_time_rate": "share of created orders delivered by their promised time",
    "lead_time_mean_h": "mean hours from order to delivery of its last shipment, over delivered orders",
    "lead_time_p95_h": "95th percentile of that lead time, hours",
    "cost_per_order": "carrier, reefer and handling cost per served order, CNY",
    "co2_per_order_kg": "transport CO2 per served order, kg",
    "split_rate": "share of served orders shipped from more than one warehouse",
    "backlog_max": "largest number of shipments routed but not yet shipped, over the run (hourly samples)",
    "cold_chain_violations": "cold-chain shipments held at a warehouse while its cold storage had failed",
    "service_gap": "best minus worst regional on-time rate (regions with at least 30 orders)",
    "utilization": "per warehouse: busy pick-server hours over available pick-server hours, while orders arrive",
}

_MIN_REGION_ORDERS = 30


def _codes(col: pd.Series, value: str) -> np.ndarray:
    """Boolean array: ``col == value``, on a categorical's codes when it is one (fast, no strings)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        if value not in cats:
            return np.zeros(len(col), dtype=bool)
        return col.cat.codes.to_numpy() == cats.get_loc(value)
    return col.astype(str).to_numpy() == value


def order_table(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per order (indexed by ``order_id``): region, status (delivered / lost /
    in_flight), created, promised and delivered times, cost, CO2, shipments, on_time.

    Works on sorted arrays (``orders.parquet`` is sorted by order, then shipment), without a
    pandas group-by: a 10M-order table takes seconds and little memory.
    """
    oid = orders["order_id"].to_numpy()
    if len(oid) > 1 and (np.diff(oid) < 0).any():
        orders = orders.sort_values(["order_id", "shipment_id"], kind="stable")
        oid = orders["order_id"].to_numpy()
    n_rows = len(oid)
    starts = np.flatnonzero(np.r_[True, oid[1:] != oid[:-1]]) if n_rows else np.zeros(0, dtype=np.int64)

    def per_order(ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        return ufunc.reduceat(values, starts) if n_rows else values[:0]

    delivered_row = _codes(orders["status"], "delivered")
    lost_row = _codes(orders["status"], "lost")
    rows = np.diff(np.r_[starts, n_rows])
    n_delivered = per_order(np.add, delivered_row.astype(np.int64))
    lost = per_order(np.logical_or, lost_row)
    shipments = per_order(np.add, orders["warehouse"].notna().to_numpy().astype(np.int64))
    delivered = (n_delivered == rows) & ~lost
    delivered_at = np.where(delivered, per_order(np.fmax, orders["delivered_at"].to_numpy(dtype=float)), np.nan)
    region = orders["region"]
    t = pd.DataFrame({
        "region": (pd.Categorical.from_codes(region.cat.codes.to_numpy()[starts], dtype=region.dtype)
                   if isinstance(region.dtype, pd.CategoricalDtype) else region.to_numpy()[starts]),
        "created_at": orders["created_at"].to_numpy(dtype=float)[starts],
        "promised_at": orders["promised_at"].to_numpy(dtype=float)[starts],
        "delivered_at": delivered_at,
        "n_delivered": n_delivered.astype(np.int32),
        "lost": lost,
        "shipments": shipments.astype(np.int32),
        "rows": rows.astype(np.int32),
        "cost": per_order(np.add, orders["cost"].to_numpy(dtype=float)),
        "co2_kg": per_order(np.add, orders["co2_kg"].to_numpy(dtype=float)),
    }, index=pd.Index(oid[starts], name="order_id"))
    t["status"] = pd.Categorical.from_codes(np.where(lost, 1, np.where(delivered, 0, 2)).astype(np.int8),
                                            categories=["delivered", "lost", "in_flight"])
    t["on_time"] = delivered & (delivered_at <= t["promised_at"].to_numpy())
    return t


def compute_kpis(orders: pd.DataFrame, timeseries: pd.DataFrame, warehouses: Sequence[str],
                 horizon_h: float | None = None) -> dict:
    """The KPIs of one run (see :data:`KPI_DOC`). Utilisation covers ``[0, horizon_h]`` (the
    whole run if None), the time orders arrive."""
    t = order_table(orders)
    n = len(t)
    delivered = t["status"] == "delivered"
    lost = t["status"] == "lost"
    served = ~lost & (t["shipments"] > 0)
    lead = (t["delivered_at"] - t["created_at"])[delivered]
    k: dict = {
        "orders_created": int(n),
        "orders_delivered": int(delivered.sum()),
        "orders_in_flight": int((t["status"] == "in_flight").sum()),
        "orders_lost": int(lost.sum()),
        "on_time_rate": float(t["on_time"].mean()) if n else math.nan,
        "lead_time_mean_h": float(lead.mean()) if len(lead) else math.nan,
        "lead_time_p95_h": float(np.percentile(lead, 95)) if len(lead) else math.nan,
        "cost_per_order": float(t["cost"][served].mean()) if served.any() else math.nan,
        "co2_per_order_kg": float(t["co2_kg"][served].mean()) if served.any() else math.nan,
        "split_rate": float((t["shipments"][served] > 1).mean()) if served.any() else math.nan,
        "backlog_max": int(timeseries["backlog"].max()) if len(timeseries) else 0,
        "cold_chain_violations": int(orders["cold_violation"].sum()),
    }
    by_region = t.groupby("region", observed=True)["on_time"].agg(["mean", "size"])
    by_region = by_region[by_region["size"] >= _MIN_REGION_ORDERS]
    k["service_gap"] = float(by_region["mean"].max() - by_region["mean"].min()) if len(by_region) else math.nan
    # utilisation over the horizon (while orders arrive): pick durations from the records over
    # the server-hours of the time series
    util = {}
    if len(timeseries):
        at = timeseries["time_h"].searchsorted(horizon_h - 1e-9) if horizon_h is not None else len(timeseries) - 1
        row = timeseries.iloc[min(at, len(timeseries) - 1)]
        end = float(row["time_h"])
        ps = orders["pick_start"].to_numpy(dtype=float)
        pe = orders["pick_end"].to_numpy(dtype=float)
        picked = ps < end  # column arrays only: no copy of the whole table
        dur = np.minimum(np.where(np.isnan(pe[picked]), end, pe[picked]), end) - ps[picked]
        wh = pd.Categorical(orders["warehouse"], categories=list(warehouses)).codes[picked]
        ok = wh >= 0
        busy_by = np.bincount(wh[ok], weights=dur[ok], minlength=len(warehouses))
        for i, w in enumerate(warehouses):
            cap = float(row[f"server_hours[{w}]"])
            util[w] = float(busy_by[i] / cap) if cap > 0 else math.nan
    k["utilization"] = util
    return k


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def summarize(kpis: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean and 95% confidence half-width (Student t) of each numeric KPI over replications.

    Per-warehouse utilisation appears as ``utilization[<warehouse>]``.
    """
    flat: dict[str, list[float]] = {}
    for k in kpis:
        for name, v in k.items():
            if isinstance(v, dict):
                for sub, x in v.items():
                    flat.setdefault(f"{name}[{sub}]", []).append(float(x))
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and name != "seed":
                flat.setdefault(name, []).append(float(v))
    out = {}
    for name, vals in flat.items():
        a = np.array(vals, dtype=float)
        a = a[~np.isnan(a)]
        mean = float(a.mean()) if len(a) else math.nan
        ci = float(_t975(len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan
        out[name] = {"mean": mean, "ci95": ci, "n": int(len(a))}
    return out
