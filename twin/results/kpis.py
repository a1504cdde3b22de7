"""KPIs, all computed from the per-shipment records and the time series, so each can be checked."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from twin.sim.records import is_on_time

__all__ = ["backlog_hours", "KPI", "KPIS", "KPI_DOC", "KpiContext", "compute_kpis", "format_value", "format_ci", "kpi_for", "order_table",
           "paired_ci", "scalar_kpis", "summarize"]

#: Regions with fewer orders are left out of :data:`service_gap`.
MIN_REGION_ORDERS = 30


@dataclass(frozen=True)
class KpiContext:
    """What a KPI is computed from: the per-order table (:func:`order_table`), the records,
    the time series, the warehouses and the horizon."""

    t: pd.DataFrame
    orders: pd.DataFrame
    timeseries: pd.DataFrame
    warehouses: Sequence[str]
    horizon_h: float | None

    @cached_property
    def delivered(self) -> pd.Series:
        return self.t["status"] == "delivered"

    @cached_property
    def lost(self) -> pd.Series:
        return self.t["status"] == "lost"

    @cached_property
    def served(self) -> pd.Series:
        return ~self.lost & (self.t["shipments"] > 0)

    @cached_property
    def lead(self) -> pd.Series:
        # on the column arrays (a boolean selection of a Series would also copy its 10M-row index)
        m = self.delivered.to_numpy()
        return pd.Series(self.t["delivered_at"].to_numpy()[m] - self.t["created_at"].to_numpy()[m], copy=False)

    def served_values(self, col: str) -> pd.Series:
        """Column ``col`` of the order table over the served orders (a Series without the index)."""
        return pd.Series(self.t[col].to_numpy()[self.served.to_numpy()], copy=False)


@dataclass(frozen=True)
class KPI:
    """One KPI: its name in ``kpis.json``, how to show it, and how to compute it from the records.

    Attributes:
        name: the key in ``kpis.json`` (units in the name where they matter).
        label: a short human label (report tables).
        meaning: one sentence on what it measures.
        unit: the unit as shown beside the value (``orders``, ``%``, ``h``, ``CNY``, ...).
        kind: ``count`` (integers), ``rate`` (a share 0..1) or ``number``.
        fmt: a ``str.format`` spec for terminals (``{:.1%}``, ``{:.2f} h``).
        compute: the value from a :class:`KpiContext`; a dict per warehouse if ``per_warehouse``.
        per_warehouse: the value is ``{warehouse: value}``.
        compare_plot: drawn in the comparison plot.
    """

    name: str
    label: str
    meaning: str
    unit: str
    kind: str
    fmt: str
    compute: Callable[[KpiContext], Any] = field(repr=False)
    per_warehouse: bool = False
    compare_plot: bool = True

    @property
    def axis_label(self) -> str:
        """The unit for a plot axis."""
        return "share (0..1)" if self.kind == "rate" else self.unit


def _mean_served(col: str) -> Callable[[KpiContext], float]:
    def f(c: KpiContext) -> float:
        return float(c.served_values(col).mean()) if c.served.any() else math.nan
    return f


def _pick_wait_mean(c: KpiContext) -> float:
    start = c.orders["pick_start"].to_numpy(dtype=float)
    routed = c.orders["routed_at"].to_numpy(dtype=float)
    ok = ~np.isnan(start) & ~np.isnan(routed)
    return float((start[ok] - routed[ok]).mean()) if ok.any() else math.nan


def _service_gap(c: KpiContext) -> float:
    # per region: orders and orders on time, by bincount on the region codes (a group-by's
    # mean of a bool column is the same count / size)
    region = c.t["region"]
    codes = (region.cat.codes.to_numpy() if isinstance(region.dtype, pd.CategoricalDtype)
             else pd.factorize(region, use_na_sentinel=True)[0])
    key = codes.astype(np.int64)
    key += 1  # -1 (no region) -> bin 0, dropped
    size = np.bincount(key)[1:]
    on_time = np.bincount(key, weights=c.t["on_time"].to_numpy(dtype=bool), minlength=len(size) + 1)[1:]
    keep = size >= MIN_REGION_ORDERS
    if not keep.any():
        return math.nan
    mean = on_time[keep] / size[keep]
    return float(mean.max() - mean.min())


def backlog_hours(routed_at: np.ndarray, shipped_at: np.ndarray, t0: float, t1: float) -> float:
    """Shipment-hours of backlog in ``[t0, t1)``: each shipment is in the backlog from its
    routing until it ships (still there at the end if it never shipped)."""
    r = np.asarray(routed_at, dtype=float)
    ok = ~np.isnan(r)
    a = np.maximum(r[ok], t0)
    b = np.minimum(np.where(np.isnan(shipped_at[ok]), t1, shipped_at[ok]), t1)
    return float(np.clip(b - a, 0.0, None).sum())


def _backlog_mean(c: KpiContext) -> float:
    """The backlog's time average over ``[0, horizon_h)`` (the whole run if None), from the records."""
    end = c.horizon_h
    if end is None:
        end = float(c.timeseries["time_h"].iloc[-1]) if len(c.timeseries) else 0.0
    if not end > 0:
        return math.nan
    o = c.orders
    return backlog_hours(o["routed_at"].to_numpy(dtype=float), o["shipped_at"].to_numpy(dtype=float), 0.0, end) / end


def _utilization(c: KpiContext) -> dict[str, float]:
    """Busy pick durations from the records over the server-hours of the time series, over
    ``[0, horizon_h]`` (the whole run if None)."""
    ts, orders, warehouses = c.timeseries, c.orders, list(c.warehouses)
    util: dict[str, float] = {}
    if not len(ts):
        return util
    at = ts["time_h"].searchsorted(c.horizon_h - 1e-9) if c.horizon_h is not None else len(ts) - 1
    row = ts.iloc[min(at, len(ts) - 1)]
    end = float(row["time_h"])
    ps = orders["pick_start"].to_numpy(dtype=float)
    pe = orders["pick_end"].to_numpy(dtype=float)
    # column arrays only, one float and one int buffer: each picked row's busy time until `end`,
    # 0 for the others (adding 0.0 leaves each warehouse's sum, taken in row order, as it was)
    dur = np.where(np.isnan(pe), end, pe)
    np.minimum(dur, end, out=dur)
    dur -= ps
    wh = _warehouse_codes(orders["warehouse"], warehouses)
    dur[~((ps < end) & (wh >= 0))] = 0.0
    wh += 1  # no warehouse -> bin 0, dropped
    busy_by = np.bincount(wh, weights=dur, minlength=len(warehouses) + 1)[1:]
    del dur, wh
    for i, w in enumerate(warehouses):
        cap = float(row[f"server_hours[{w}]"])
        util[w] = float(busy_by[i] / cap) if cap > 0 else math.nan
    return util


def _warehouse_codes(col: pd.Series, warehouses: list[str]) -> np.ndarray:
    """Index of each row's warehouse in ``warehouses`` (-1: none), on categorical codes when possible."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        if cats == warehouses[: len(cats)]:
            return col.cat.codes.to_numpy().astype(np.int64)
        lut = np.array([warehouses.index(x) if x in warehouses else -1 for x in cats] + [-1], dtype=np.int64)
        return lut[col.cat.codes.to_numpy()]
    return pd.Categorical(col, categories=warehouses).codes.astype(np.int64)


#: The KPI registry: every KPI once, in display order. Everything that lists, computes,
#: formats or plots KPIs (the CLI summary, compare, the report, the plots) reads it.
KPIS: dict[str, KPI] = {k.name: k for k in (
    KPI("orders_created", "Orders created", "orders that arrived during the horizon", "orders", "count",
        "{:,.0f}", lambda c: int(len(c.t)), compare_plot=False),
    KPI("orders_delivered", "Orders delivered", "orders whose every shipment was delivered by the end of the run",
        "orders", "count", "{:,.0f}", lambda c: int(c.delivered.sum()), compare_plot=False),
    KPI("orders_in_flight", "Orders in flight",
        "orders still moving (queued, picking, waiting for a carrier, in transit, backordered) at the end",
        "orders", "count", "{:,.0f}", lambda c: int((c.t["status"] == "in_flight").sum()), compare_plot=False),
    KPI("orders_lost", "Orders lost",
        "orders that could not be served (no open warehouse with the stock, or a backorder that timed out)",
        "orders", "count", "{:,.0f}", lambda c: int(c.lost.sum())),
    KPI("on_time_rate", "On-time rate", "share of created orders delivered by their promised time", "%", "rate",
        "{:.1%}", lambda c: float(c.t["on_time"].mean()) if len(c.t) else math.nan),
    KPI("lead_time_mean_h", "Lead time, mean",
        "mean hours from order to delivery of its last shipment, over delivered orders", "h", "number", "{:.2f} h",
        lambda c: float(c.lead.mean()) if len(c.lead) else math.nan),
    KPI("lead_time_p95_h", "Lead time, p95", "95th percentile of that lead time, hours", "h", "number", "{:.2f} h",
        lambda c: float(np.percentile(c.lead, 95)) if len(c.lead) else math.nan),
    KPI("pick_wait_mean_h", "Pick wait, mean",
        "mean hours a shipment waited in its warehouse's pick queue (routing to pick start), over shipments "
        "whose picking started (an M/M/c queue's Wq)", "h", "number", "{:.3f} h", _pick_wait_mean),
    KPI("cost_per_order", "Cost per order", "carrier, reefer and handling cost per served order, CNY", "CNY",
        "number", "{:.2f} CNY", _mean_served("cost")),
    KPI("co2_per_order_kg", "CO2 per order", "transport CO2 per served order, kg", "kg", "number", "{:.3f} kg",
        _mean_served("co2_kg")),
    KPI("split_rate", "Split rate", "share of served orders shipped from more than one warehouse", "%", "rate",
        "{:.1%}", lambda c: float((c.served_values("shipments") > 1).mean()) if c.served.any() else math.nan),
    KPI("backlog_mean", "Mean backlog",
        "time-average number of shipments routed but not yet shipped, while orders arrive (from the records)",
        "shipments", "number", "{:,.1f}", _backlog_mean),
    KPI("backlog_max", "Peak backlog",
        "largest number of shipments routed but not yet shipped at any moment of the run (exact, kept by the "
        "engine at every change and checked against the records)", "shipments", "count", "{:,.0f}",
        lambda c: int(c.timeseries["backlog_peak"].iloc[-1]) if len(c.timeseries) else 0),
    KPI("cold_chain_violations", "Cold-chain violations",
        "cold-chain shipments held at a warehouse while its cold storage had failed", "shipments", "count",
        "{:,.0f}", lambda c: int(c.orders["cold_violation"].sum())),
    KPI("service_gap", "Service gap",
        f"best minus worst regional on-time rate (regions with at least {MIN_REGION_ORDERS} orders)", "pp", "rate",
        "{:.1%}", _service_gap),
    KPI("utilization", "Utilisation",
        "per warehouse: busy pick-server hours over available pick-server hours, while orders arrive", "%", "rate",
        "{:.1%}", _utilization, per_warehouse=True, compare_plot=False),
)}

#: Each KPI and what it means (read from :data:`KPIS`).
KPI_DOC: dict[str, str] = {k.name: k.meaning for k in KPIS.values()}


def scalar_kpis() -> list[KPI]:
    """The KPIs with one value per run, in display order."""
    return [k for k in KPIS.values() if not k.per_warehouse]


def kpi_for(key: str) -> KPI | None:
    """The registry entry of ``key``; ``utilization[shanghai]`` gives ``utilization``."""
    return KPIS.get(key.split("[", 1)[0])


def format_value(kpi: KPI, v: float | None) -> str:
    """``v`` in the KPI's terminal format; None or NaN is ``n/a``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return kpi.fmt.format(v)


def format_ci(kpi: KPI, ci: float) -> str:
    """A 95% CI half-width in the KPI's own unit (rates in percentage points)."""
    if kpi.kind == "rate":
        return f"{ci * 100:.1f} pp"
    if kpi.kind == "count":
        return f"{ci:,.1f}"
    return kpi.fmt.format(ci)


def _codes(col: pd.Series, value: str) -> np.ndarray:
    """Boolean array: ``col == value``, on a categorical's codes when it is one (fast, no strings)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        if value not in cats:
            return np.zeros(len(col), dtype=bool)
        return col.cat.codes.to_numpy() == cats.get_loc(value)
    return (col == value).to_numpy(dtype=bool, na_value=False)


def order_table(orders: pd.DataFrame) -> pd.DataFrame:
    """One row per order (indexed by ``order_id``): region, status (delivered / lost /
    in_flight), created, promised and delivered times, cost, CO2, shipments, on_time.

    Works on sorted arrays (``orders.parquet`` is sorted by order, then shipment), without a
    pandas group-by: a 10M-order table takes about a second and little memory. When every order
    has one row (no splits, the common case) the per-order columns are the records' own arrays
    (views, no copies), and the table's columns are not consolidated into one block (no copy).
    """
    oid = orders["order_id"].to_numpy()
    n_rows = len(oid)
    if n_rows > 1 and not (oid[1:] >= oid[:-1]).all():
        orders = orders.sort_values(["order_id", "shipment_id"], kind="stable")
        oid = orders["order_id"].to_numpy()
    single = n_rows < 2 or bool((oid[1:] != oid[:-1]).all())  # one row per order: no reduction needed
    starts = None if single else np.flatnonzero(np.r_[True, oid[1:] != oid[:-1]])

    def per_order(ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        return values if single else ufunc.reduceat(values, starts)

    def first(values: np.ndarray) -> np.ndarray:
        return values if single else values[starts]

    delivered_row = _codes(orders["status"], "delivered")
    lost_row = _codes(orders["status"], "lost")
    if single:
        rows = np.ones(n_rows, dtype=np.int32)
        n_delivered = delivered_row.astype(np.int32)
        lost = lost_row
        delivered = delivered_row & ~lost_row
    else:
        rows = np.diff(np.r_[starts, n_rows]).astype(np.int32)
        n_delivered = per_order(np.add, delivered_row.astype(np.int32))
        lost = per_order(np.logical_or, lost_row)
        delivered = (n_delivered == rows) & ~lost
    del delivered_row, lost_row
    shipments = per_order(np.add, orders["warehouse"].notna().to_numpy().astype(np.int32))
    delivered_at = np.where(delivered, per_order(np.fmax, orders["delivered_at"].to_numpy(dtype=float)), np.nan)
    region = orders["region"]
    if single:
        region_col = region.array
    elif isinstance(region.dtype, pd.CategoricalDtype):
        region_col = pd.Categorical.from_codes(region.cat.codes.to_numpy()[starts], dtype=region.dtype)
    else:
        region_col = region.to_numpy()[starts]
    promised_at = first(orders["promised_at"].to_numpy(dtype=float))
    status_codes = np.full(len(delivered), 2, dtype=np.int8)
    status_codes[delivered] = 0
    status_codes[lost] = 1
    status = pd.Categorical.from_codes(status_codes, categories=["delivered", "lost", "in_flight"])
    return pd.DataFrame({
        "region": region_col,
        "created_at": first(orders["created_at"].to_numpy(dtype=float)),
        "promised_at": promised_at,
        "delivered_at": delivered_at,
        "n_delivered": n_delivered.astype(np.int32, copy=False),
        "lost": lost,
        "shipments": shipments.astype(np.int32, copy=False),
        "rows": rows,
        "cost": per_order(np.add, orders["cost"].to_numpy(dtype=float)),
        "co2_kg": per_order(np.add, orders["co2_kg"].to_numpy(dtype=float)),
        "status": status,
        "on_time": delivered & is_on_time(delivered_at, promised_at),
    }, index=pd.Index(first(oid), name="order_id", copy=False), copy=False)


def compute_kpis(orders: pd.DataFrame, timeseries: pd.DataFrame, warehouses: Sequence[str],
                 horizon_h: float | None = None, progress: Callable[[str], Any] | None = None) -> dict:
    """The KPIs of one run, every entry of :data:`KPIS`. Utilisation covers ``[0, horizon_h]``
    (the whole run if None), the time orders arrive. ``progress(name)`` is called after the
    order table and after each KPI (``len(KPIS) + 1`` calls)."""
    ctx = KpiContext(order_table(orders), orders, timeseries, warehouses, horizon_h)
    if progress is not None:
        progress("order_table")
    out = {}
    for k in KPIS.values():
        out[k.name] = k.compute(ctx)
        if progress is not None:
            progress(k.name)
    return out


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def paired_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """The mean of the paired differences ``a[i] - b[i]`` and its Student-t confidence interval:
    ``mean ± t_{(1+confidence)/2, n-1} * sd / sqrt(n)`` with ``sd`` the sample standard deviation
    (``ddof=1``). NaN half-width for fewer than two pairs."""
    from scipy.stats import t as student_t

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired samples must be 1-d and of one length, got {x.shape} and {y.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    d = x - y
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    half = float(student_t.ppf((1 + confidence) / 2, n - 1) * sd / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": mean, "half_width": half, "low": mean - half, "high": mean + half, "sd": sd, "n": n}


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
