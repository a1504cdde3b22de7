"""The records of a run boiled down to what the report shows: counts per warehouse, per region
and per warehouse-region lane, the lead-time histogram, counts per hour (orders created,
shipped, delivered and delivered on time; parcels that missed a departure; orders short of
stock), hourly pick utilisation from the time series, and the verdict built from them.

Everything is computed once, with numpy on the name columns' integer codes (``bincount``,
``histogram``), never by comparing millions of strings: a 10M-shipment run takes about a second.
The per-order figures come from :func:`twin.results.kpis.order_table`, so the report's regional
figures use the KPIs' own definitions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from twin.results.kpis import MIN_REGION_ORDERS, order_table

__all__ = ["ORDER_COLUMNS", "PICK_BOUND", "LINEHAUL_BOUND", "STOCK_BOUND", "RecordSummary", "Verdict",
           "hour_bins", "hourly_counts", "hourly_utilization", "lead_time_bins", "summarize_records", "verdict"]

#: The columns of ``orders.parquet`` the summary reads (``twin report DIR`` reads only these).
ORDER_COLUMNS = ("order_id", "shipment_id", "region", "warehouse", "carrier", "status", "created_at", "routed_at",
                 "pick_end", "shipped_at", "delivered_at", "promised_at", "cost", "co2_kg")

#: The verdict's rules. Pick capacity binds in an hour when a warehouse's pick utilisation over
#: that hour (busy over available pick-server hours) is at least PICK_BOUND.
PICK_BOUND = 0.95
#: Linehaul capacity binds in an hour when at least this share of the parcels ready to ship in
#: it (picked then) missed their carrier's next departure: they waited longer than the carrier's
#: departure interval plus the warehouse's pack time (a full departure, or a lane closed).
LINEHAUL_BOUND = 0.05
#: Stock binds in an hour when at least this share of the orders created in it were lost or
#: waited for stock (routed later than created: backordered).
STOCK_BOUND = 0.01

_ORDER_TABLE_NEEDS = {"order_id", "region", "warehouse", "status", "created_at", "delivered_at", "promised_at",
                      "cost", "co2_kg"}


def lead_time_bins(n: int) -> int:
    """Histogram bins for ``n`` lead times: about sqrt(n), between 10 and 60."""
    return int(min(60, max(10, round(math.sqrt(n)))))


@dataclass
class RecordSummary:
    """What the report's tables and order plots need from the records, as small arrays.

    Warehouse arrays are indexed like ``warehouses`` and region arrays like ``regions``: the
    names asked for, then any others the records name, in order of first appearance.

    Attributes:
        shipments_recorded: rows of the records (shipments, and orders without one).
        wh_shipments: rows shipped from each warehouse.
        wh_delivered: of those, delivered with a delivery and a promised time.
        wh_on_time: of those, delivered by the promised time.
        flows: ``[warehouse, region]`` shipment counts.
        rg_orders, rg_delivered, rg_on_time, rg_lost: orders per region: all, delivered (every
            shipment), delivered on time, lost (as :func:`~twin.results.kpis.order_table`).
        rg_lead_sum: sum of the delivered orders' lead times per region, hours.
        lead_counts, lead_edges: histogram of the delivered orders' lead times
            (:func:`lead_time_bins` bins over their range).
        lead_n, lead_mean, lead_p95: their number, mean and 95th percentile (NaN if none).
        n_hours: the hours ``[h, h + 1)``, h = 0 .. n_hours - 1, that the hourly arrays cover
            (through the hour of the latest time in the records).
        created_h, delivered_h, on_time_h: orders created in each hour; orders delivered in it
            (their last shipment's delivery), and of those the ones on time
            (:func:`~twin.results.kpis.order_table`'s ``on_time``).
        shipped_h: shipments that left on a linehaul departure in each hour.
        ready_h, rolled_h: shipments picked in each hour, and of those the ones that missed their
            carrier's next departure (see :data:`LINEHAUL_BOUND`; still waiting at the end counts).
        short_h: orders created in each hour that were lost or waited for stock.
    """

    warehouses: list[str]
    regions: list[str]
    shipments_recorded: int = 0
    wh_shipments: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    wh_delivered: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    wh_on_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    flows: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    rg_orders: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rg_delivered: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rg_on_time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rg_lost: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rg_lead_sum: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lead_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    lead_edges: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lead_n: int = 0
    lead_mean: float = math.nan
    lead_p95: float = math.nan
    has_orders: bool = False
    n_hours: int = 0
    created_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    delivered_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    on_time_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    shipped_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ready_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rolled_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    short_h: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        W, R = len(self.warehouses), len(self.regions)
        for name, shape in (("wh_shipments", W), ("wh_delivered", W), ("wh_on_time", W), ("rg_orders", R),
                            ("rg_delivered", R), ("rg_on_time", R), ("rg_lost", R)):
            if len(getattr(self, name)) != shape:
                setattr(self, name, np.zeros(shape, np.int64))
        if len(self.rg_lead_sum) != R:
            self.rg_lead_sum = np.zeros(R)
        if self.flows.shape != (W, R):
            self.flows = np.zeros((W, R), np.int64)
        for name in ("created_h", "delivered_h", "on_time_h", "shipped_h", "ready_h", "rolled_h", "short_h"):
            if len(getattr(self, name)) != self.n_hours:
                setattr(self, name, np.zeros(self.n_hours, np.int64))

    def warehouse_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.warehouses)}

    def region_index(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.regions)}


def _lookup(col: pd.Series, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, lut)``: the column as small integer codes (a categorical's own, or factorised
    once) and a table from code to 1 + the name's index in ``names`` (0: missing; code -1 reads
    the table's last entry, 0). Names not in ``names`` are appended, in order of first
    appearance (for a categorical, only the categories in use)."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        cats = [str(c) for c in col.cat.categories]
    else:
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        cats = [str(c) for c in uniques]
    pos = {n: i for i, n in enumerate(names)}
    lut = np.array([pos.get(c, -1) + 1 for c in cats] + [0], dtype=np.int64)
    extra = [i for i, c in enumerate(cats) if c not in pos]
    if extra:
        if isinstance(col.dtype, pd.CategoricalDtype):  # only the categories in use, by first row
            first = {}
            for i in extra:
                hit = np.flatnonzero(codes == i)
                if len(hit):
                    first[i] = int(hit[0])
            extra = sorted(first, key=first.get)
        for i in extra:  # factorize's uniques are already in order of appearance
            names.append(cats[i])
            lut[i] = len(names)
    return codes, lut


def _float(df: pd.DataFrame, name: str) -> np.ndarray:
    """A float column as an array: a view when it is float64 already (no 80 MB copy)."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    col = df[name]
    if col.dtype == np.float64:
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _is(col: pd.Series, value: str) -> np.ndarray:
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        return col.cat.codes.to_numpy() == cats.index(value) if value in cats else np.zeros(len(col), bool)
    return (col == value).to_numpy(dtype=bool, na_value=False, copy=True)  # writable


def hour_bins(times: np.ndarray, n_hours: int) -> np.ndarray:
    """The hour ``h`` with ``h <= time < h + 1`` of each time (hours from the start); -1 for NaN
    and for times outside ``[0, n_hours)``."""
    t = np.asarray(times, dtype=float)
    h = np.full(len(t), -1, np.int64)
    ok = (t >= 0) & (t < n_hours)  # False for NaN
    h[ok] = np.floor(t[ok]).astype(np.int64)
    return h


def hourly_counts(times: np.ndarray, n_hours: int, mask: np.ndarray | None = None) -> np.ndarray:
    """How many of ``times`` (those where ``mask`` is true, if given) fall in each hour
    ``[h, h + 1)``, h = 0 .. n_hours - 1. NaN and times outside are not counted."""
    h = hour_bins(times, n_hours)
    if mask is not None:
        h[~np.asarray(mask, dtype=bool)] = -1
    return np.bincount(h + 1, minlength=n_hours + 1)[1 : n_hours + 1]


def _latest(df: pd.DataFrame, names: Sequence[str]) -> float:
    """The latest finite time in these columns (0 if none)."""
    out = 0.0
    for name in names:
        if name in df.columns:
            v = _float(df, name)
            if len(v) and not np.isnan(v).all():
                out = max(out, float(np.nanmax(v)))
    return out


def _table_lut(col: pd.Series, values: Mapping[str, float], default: float) -> np.ndarray:
    """Each row's value of its name in ``values`` (``default`` for others and missing names)."""
    codes, lut = _lookup(col, names := list(values))
    table = np.r_[default, [float(values[n]) if n in values else default for n in names]]
    return table[lut[codes]]


def summarize_records(orders: pd.DataFrame | None, warehouses: Sequence[str] = (),
                      regions: Sequence[str] = (), scenario: Mapping[str, Any] | None = None) -> RecordSummary:
    """The :class:`RecordSummary` of a records table (``orders.parquet``, or a run's
    ``.orders``), its arrays indexed by ``warehouses`` and ``regions`` (then any other names the
    records hold). Missing columns give zeros and NaN where they are needed. ``scenario`` (the
    scenario as a dict, ``scenario.json``) gives the carriers' departure intervals and the
    warehouses' pack times for :attr:`RecordSummary.rolled_h` (without it: 2 h and 0 h).

    Each group of counts is one ``bincount`` over a combined integer key (for instance
    ``(warehouse + 1) * 3 + state`` with state 0 not delivered, 1 delivered late, 2 on time):
    one pass over the rows, no masks copied per name."""
    wh_names, rg_names = [str(w) for w in warehouses], [str(r) for r in regions]
    if orders is None or not len(orders):
        return RecordSummary(wh_names, rg_names, shipments_recorded=0 if orders is None else len(orders))
    n = len(orders)
    cols = set(orders.columns)
    none = (np.full(n, -1, np.int8), np.zeros(1, np.int64))
    w_codes, w_lut = _lookup(orders["warehouse"], wh_names) if "warehouse" in cols else none
    r_codes, r_lut = _lookup(orders["region"], rg_names) if "region" in cols else none
    W, R = len(wh_names), len(rg_names)
    # per shipment, one pass: ((1 + warehouse) * (R + 1) + 1 + region) * 3 + state, with state 0 not
    # delivered, 1 delivered late, 2 on time (of delivered shipments with both times); 0: missing
    key = w_lut[w_codes]  # int64, what bincount reads (no conversion copy)
    key *= R + 1
    key += r_lut.astype(np.int32)[r_codes]
    key *= 3
    if "status" in cols:
        dl, pr = _float(orders, "delivered_at"), _float(orders, "promised_at")
        state = _is(orders["status"], "delivered")
        state &= ~np.isnan(dl)
        state &= ~np.isnan(pr)
        state = state.view(np.int8)
        state += state.view(bool) & (dl <= pr)
        del dl, pr
        key += state
        del state
    c = np.bincount(key, minlength=(W + 1) * (R + 1) * 3).reshape(W + 1, R + 1, 3)
    del key, w_codes, r_codes
    by_wh = c[1:].sum(axis=1)  # every row with a warehouse, whatever its region
    flows = c[1:, 1:].sum(axis=2)
    s = RecordSummary(wh_names, rg_names, shipments_recorded=n, wh_shipments=by_wh.sum(axis=1),
                      wh_delivered=by_wh[:, 1] + by_wh[:, 2], wh_on_time=by_wh[:, 2].copy(), flows=flows.copy())
    _hourly_shipments(s, orders, scenario)
    if not _ORDER_TABLE_NEEDS <= cols:
        return s

    # per order, by the KPIs' definitions
    t = order_table(orders)
    t_codes, t_lut = _lookup(t["region"], rg_names)  # the rows' regions: no new names
    st = t["status"].cat.codes.to_numpy()  # delivered 0, lost 1, in_flight 2
    kind = st + (st > 0)  # 0 delivered, 2 lost, 3 in flight
    kind += t["on_time"].to_numpy(dtype=bool)  # on time only if delivered: 1
    k = t_lut[t_codes]
    k *= 4
    k += kind
    by_rg = np.bincount(k, minlength=(R + 1) * 4).reshape(R + 1, 4)[1:]
    del kind, k
    s.rg_orders = by_rg.sum(axis=1)
    s.rg_delivered = by_rg[:, 0] + by_rg[:, 1]
    s.rg_on_time = by_rg[:, 1].copy()
    s.rg_lost = by_rg[:, 2].copy()
    s.has_orders = bool(s.rg_orders.sum() > 0)
    delivered = st == 0
    lead = t["delivered_at"].to_numpy(dtype=float)[delivered]
    lead -= t["created_at"].to_numpy(dtype=float)[delivered]
    s.rg_lead_sum = np.bincount(t_lut[t_codes[delivered]], weights=lead, minlength=R + 1)[1:]
    _hourly_orders(s, orders, t)
    del t, t_codes, st, delivered
    s.lead_n = len(lead)
    if s.lead_n:
        s.lead_counts, s.lead_edges = np.histogram(lead, bins=lead_time_bins(s.lead_n))
        s.lead_mean = float(lead.mean())
        s.lead_p95 = float(np.percentile(lead, 95))
    return s


def _hourly_shipments(s: RecordSummary, orders: pd.DataFrame, scenario: Mapping[str, Any] | None) -> None:
    """The per-hour shipment counts of ``s``: shipped, ready (picked) and rolled over."""
    end = _latest(orders, ("created_at", "routed_at", "pick_end", "shipped_at", "delivered_at"))
    s.n_hours = int(math.floor(end)) + 1  # the hour of the latest time too
    zeros = np.zeros(s.n_hours, np.int64)
    s.created_h, s.delivered_h, s.on_time_h, s.short_h = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    s.shipped_h = hourly_counts(_float(orders, "shipped_at"), s.n_hours) if "shipped_at" in orders.columns else zeros
    s.ready_h, s.rolled_h = zeros.copy(), zeros.copy()
    if not {"pick_end", "shipped_at", "carrier", "warehouse"} <= set(orders.columns):
        return
    sc = scenario or {}
    interval = {str(c["name"]): float(c.get("departure_interval_h", 2.0)) for c in sc.get("carriers") or []
                if isinstance(c, Mapping) and "name" in c}
    pack = {str(w["name"]): float((w.get("pack") or {}).get("time_h", 0.0)) for w in sc.get("warehouses") or []
            if isinstance(w, Mapping) and "name" in w}
    ready = _float(orders, "pick_end")
    wait = np.where(np.isnan(_float(orders, "shipped_at")), end, _float(orders, "shipped_at"))
    wait -= ready  # NaN where never picked
    allowed = _table_lut(orders["carrier"], interval, 2.0)
    allowed += _table_lut(orders["warehouse"], pack, 0.0)
    allowed += 1e-9
    s.ready_h = hourly_counts(ready, s.n_hours)
    s.rolled_h = hourly_counts(ready, s.n_hours, mask=wait > allowed)


def _hourly_orders(s: RecordSummary, orders: pd.DataFrame, t: pd.DataFrame) -> None:
    """The per-hour order counts of ``s`` from the order table ``t`` (:func:`order_table`)."""
    created = t["created_at"].to_numpy(dtype=float)
    s.created_h = hourly_counts(created, s.n_hours)
    delivered_at = t["delivered_at"].to_numpy(dtype=float)  # NaN unless every shipment was delivered
    s.delivered_h = hourly_counts(delivered_at, s.n_hours)
    s.on_time_h = hourly_counts(delivered_at, s.n_hours, mask=t["on_time"].to_numpy(dtype=bool))
    short = t["lost"].to_numpy(dtype=bool).copy()
    if "routed_at" in orders.columns:
        waited = _float(orders, "routed_at") > _float(orders, "created_at") + 1e-9  # backordered first
        if waited.any():
            ids = np.unique(orders["order_id"].to_numpy()[waited])
            short[np.searchsorted(t.index.to_numpy(), ids)] = True  # the order table is sorted by order id
    s.short_h = hourly_counts(created, s.n_hours, mask=short)


def hourly_utilization(ts: pd.DataFrame | None) -> pd.DataFrame:
    """Pick utilisation per warehouse over each whole hour ``[h, h + 1)`` of the time series:
    busy over available pick-server hours in that hour (from the cumulative ``busy_hours[W]`` and
    ``server_hours[W]``, spread evenly over each tick), else the time average of the per-tick
    ``utilization[W]``. Index: the hour ``h``; columns: the warehouses; NaN where no server was up."""
    from twin.report.plots import per_warehouse_columns

    if ts is None or not len(ts) or "time_h" not in ts.columns:
        return pd.DataFrame()
    t_end = pd.to_numeric(ts["time_h"], errors="coerce").to_numpy(dtype=float)
    knots = np.r_[0.0, t_end]
    n_h = max(1, math.ceil(t_end[-1] - 1e-9))
    edges = np.minimum(np.arange(n_h + 1, dtype=float), t_end[-1])
    busy, servers = per_warehouse_columns(ts, "busy_hours"), per_warehouse_columns(ts, "server_hours")
    out = {}
    dt = np.diff(knots)
    for w, col in per_warehouse_columns(ts, "utilization").items():
        if w in busy and w in servers:
            num = np.r_[0.0, pd.to_numeric(ts[busy[w]], errors="coerce").to_numpy(dtype=float)]
            den = np.r_[0.0, pd.to_numeric(ts[servers[w]], errors="coerce").to_numpy(dtype=float)]
        else:
            u = np.nan_to_num(pd.to_numeric(ts[col], errors="coerce").to_numpy(dtype=float))
            num, den = np.r_[0.0, np.cumsum(u * dt)], knots.copy()
        a, b = np.diff(np.interp(edges, knots, num)), np.diff(np.interp(edges, knots, den))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[w] = np.where(b > 1e-12, a / np.where(b > 1e-12, b, 1.0), np.nan)
    return pd.DataFrame(out, index=pd.RangeIndex(n_h, name="hour"))


def _backlog_hours(ts: pd.DataFrame | None) -> dict[str, float]:
    """Each warehouse's backlog integral over the run, shipment-hours (the backlog columns are
    each tick's time average, so the sum of average times tick length is exact)."""
    from twin.report.plots import per_warehouse_columns

    if ts is None or not len(ts) or "time_h" not in ts.columns:
        return {}
    dt = np.diff(np.r_[0.0, pd.to_numeric(ts["time_h"], errors="coerce").to_numpy(dtype=float)])
    return {w: float(np.nansum(pd.to_numeric(ts[c], errors="coerce").to_numpy(dtype=float) * dt))
            for w, c in per_warehouse_columns(ts, "backlog").items()}


@dataclass
class Verdict:
    """The page's first lines: where the run hurt and what bound it, by the stated rules.

    Attributes:
        worst_warehouses: up to three warehouses with the most backlog-hours (> 0), worst first:
            ``{"warehouse", "backlog_hours", "utilization_peak", "hours_at_bound"}``.
        worst_regions: up to three regions with the lowest on-time rate (of those with at least
            :data:`~twin.results.kpis.MIN_REGION_ORDERS` orders, else of all with orders):
            ``{"region", "on_time_rate", "orders"}``.
        bound_hours: per constraint (``pick capacity``, ``linehaul capacity``, ``stock``), the
            hours in which it bound (:data:`PICK_BOUND`, :data:`LINEHAUL_BOUND`,
            :data:`STOCK_BOUND`).
        pick_hours: per warehouse, the hours its pick utilisation was at least :data:`PICK_BOUND`.
        binding: the constraint that bound in the most hours (ties: in that order), or ``none``.
    """

    worst_warehouses: list[dict[str, Any]]
    worst_regions: list[dict[str, Any]]
    bound_hours: dict[str, list[int]]
    pick_hours: dict[str, list[int]]
    binding: str

    @staticmethod
    def spans(hours: Sequence[int]) -> list[tuple[int, int]]:
        """Consecutive hours merged: ``[3, 4, 5, 9]`` gives ``[(3, 6), (9, 10)]`` (``[start, end)``)."""
        out: list[tuple[int, int]] = []
        for h in sorted(hours):
            if out and h == out[-1][1]:
                out[-1] = (out[-1][0], h + 1)
            else:
                out.append((h, h + 1))
        return out


def verdict(summ: RecordSummary, ts: pd.DataFrame | None) -> Verdict:
    """The :class:`Verdict` of a run from its :class:`RecordSummary` and its time series."""
    util = hourly_utilization(ts)
    pick_hours = {str(w): [int(h) for h in util.index[(util[w] >= PICK_BOUND).to_numpy()]] for w in util.columns}
    backlog = _backlog_hours(ts)
    worst_wh = []
    for w, bh in sorted(backlog.items(), key=lambda kv: -kv[1])[:3]:
        if bh > 0:
            u = util[w] if w in util.columns else pd.Series(dtype=float)
            worst_wh.append({"warehouse": w, "backlog_hours": bh,
                             "utilization_peak": float(u.max()) if u.notna().any() else math.nan,
                             "hours_at_bound": len(pick_hours.get(w, []))})
    n = summ.rg_orders
    keep = n >= MIN_REGION_ORDERS
    if not keep.any():
        keep = n > 0
    idx = np.flatnonzero(keep)
    rate = summ.rg_on_time[idx] / np.maximum(n[idx], 1)
    worst_rg = [{"region": summ.regions[i], "on_time_rate": float(r), "orders": int(n[i])}
                for i, r in sorted(zip(idx, rate), key=lambda ir: (ir[1], -n[ir[0]]))[:3]]
    with np.errstate(invalid="ignore", divide="ignore"):
        rolled = np.flatnonzero((summ.rolled_h > 0) & (summ.rolled_h >= LINEHAUL_BOUND * summ.ready_h))
        short = np.flatnonzero((summ.short_h > 0) & (summ.short_h >= STOCK_BOUND * summ.created_h))
    bound = {
        "pick capacity": sorted({h for hs in pick_hours.values() for h in hs}),
        "linehaul capacity": [int(h) for h in rolled],
        "stock": [int(h) for h in short],
    }
    best = max(bound, key=lambda k: len(bound[k]))  # the first of equals: the order above
    return Verdict(worst_wh, worst_rg, bound, pick_hours, best if bound[best] else "none")
