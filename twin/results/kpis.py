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
           "paired_ci", "scalar_kpis", "summarize", "Recovery", "RecoveryRow", "recover", "recovery_table",
           "hourly_on_time", "hourly_backlog"]

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
    #: the scenario as declared (its disruptions, weather events and ``recovery`` thresholds);
    #: None: no disruptions, default thresholds
    scenario: Any = None
    #: the risk events the run drew (:class:`twin.scenario.risks.DrawnEvent`)
    risk_events: Sequence[Any] = ()

    @cached_property
    def recovery(self) -> Recovery:
        """Each disruption's recovery (:func:`recovery_table`)."""
        return recovery_table(self)

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
        per_warehouse: the value is a dict, ``{warehouse: value}`` (or keyed by ``keys``).
        compare_plot: drawn in the comparison plot.
        keys: what a dict value is keyed by (``warehouse``, ``disruption``, ``region``).
        better: ``higher`` or ``lower`` when one direction is better (stress tests rank runs by
            it), ``""`` when neither is.
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
    keys: str = "warehouse"
    better: str = ""

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


# --------------------------------------------------------------------------- recovery
def hourly_on_time(t: pd.DataFrame, n_hours: int) -> np.ndarray:
    """Per hour ``h`` of ``[0, n_hours)``: of the orders created in ``[h, h + 1)``, the share
    delivered by their promise (NaN for an hour without orders). ``t``: :func:`order_table`."""
    h = np.floor(t["created_at"].to_numpy(dtype=float)).astype(np.int64)
    keep = (h >= 0) & (h < n_hours)
    n = np.bincount(h[keep], minlength=n_hours)[:n_hours]
    ok = np.bincount(h[keep], weights=t["on_time"].to_numpy(dtype=bool)[keep], minlength=n_hours)[:n_hours]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, ok / np.where(n > 0, n, 1), np.nan)


def hourly_backlog(orders: pd.DataFrame, n_hours: int) -> np.ndarray:
    """Per hour ``h`` of ``[0, n_hours)``: the time-average backlog (shipments routed, not
    shipped) over ``[h, h + 1)``, from the records (:func:`backlog_hours`)."""
    r = orders["routed_at"].to_numpy(dtype=float)
    s = orders["shipped_at"].to_numpy(dtype=float)
    return np.array([backlog_hours(r, s, float(h), float(h + 1)) for h in range(n_hours)])


@dataclass(frozen=True)
class RecoveryRow:
    """One disruption's recovery: ``failed_at_h`` (the start of the first hour its metric was
    past the failure threshold while it lasted; None: it never was), ``recovered_at_h`` (the start
    of the first later hour at the recovery threshold; None: not within the hours measured),
    ``time_to_recover_h``, ``service_loss_h``, and the orders created in its impact window
    ``[start_h, impact_end_h)`` (``end_h``, or the recovery if later) that were late or lost."""

    label: str
    kind: str
    target: str
    start_h: float
    end_h: float
    failed_at_h: float | None
    recovered_at_h: float | None
    time_to_recover_h: float
    service_loss_h: float
    impact_end_h: float
    orders_late: int
    orders_lost: int


@dataclass(frozen=True)
class Recovery:
    """The recovery of every disruption of a run (:func:`recovery_table`) and the run's totals."""

    metric: str
    failure: float
    recovery: float
    hourly: np.ndarray = field(repr=False)  #: the hourly metric the thresholds apply to
    rows: list[RecoveryRow] = field(default_factory=list)
    time_to_recover_h: float = math.nan
    service_loss_h: float = 0.0
    orders_late: int = 0
    orders_lost: int = 0
    service_gap: float = math.nan
    region_drop: dict[str, float] = field(default_factory=dict)


def recover(hourly: np.ndarray, start_h: float, end_h: float, failure: float, recovery: float,
            lower_is_worse: bool = True) -> tuple[int | None, int | None, float]:
    """``(failed hour, recovered hour, loss)`` of one disruption ``[start_h, end_h)`` on an hourly
    series: the first hour from ``floor(start_h)`` to before ``ceil(end_h)`` past ``failure``
    (below it when ``lower_is_worse``, above it otherwise), then the first later hour at or past
    ``recovery`` (None: none within the series); the loss sums each hour's shortfall from
    ``recovery`` over the failed hours ``[failed, recovered)`` (hours without a value count 0)."""
    n = len(hourly)
    v = np.asarray(hourly, dtype=float)
    bad = (v < failure) if lower_is_worse else (v > failure)
    good = (v >= recovery) if lower_is_worse else (v <= recovery)
    lo, hi = max(0, math.floor(start_h)), min(n, math.ceil(end_h))
    hits = np.flatnonzero(bad[lo:hi])
    if not len(hits):
        return None, None, 0.0
    failed = lo + int(hits[0])
    ups = np.flatnonzero(good[failed + 1:])
    recovered = failed + 1 + int(ups[0]) if len(ups) else None
    span = v[failed:recovered if recovered is not None else n]
    short = (recovery - span) if lower_is_worse else (span - recovery)
    return failed, recovered, float(np.nansum(np.clip(short, 0.0, None)))


def _region_codes(t: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    region = t["region"]
    if isinstance(region.dtype, pd.CategoricalDtype):
        return region.cat.codes.to_numpy().astype(np.int64), [str(x) for x in region.cat.categories]
    codes, cats = pd.factorize(region, use_na_sentinel=True)
    return codes.astype(np.int64), [str(x) for x in cats]


def recovery_table(c: KpiContext) -> Recovery:
    """Each disruption's recovery on the run's hourly service, by the scenario's ``recovery``
    thresholds (:class:`twin.scenario.schema.Recovery`; defaults without a scenario).

    The hourly service is the on-time rate of the orders created in each hour of the horizon
    (:func:`hourly_on_time`), or the hourly backlog (:func:`hourly_backlog`). Hours are whole
    hours from t = 0; a disruption fails the service when its metric is past the failure
    threshold in an hour from the one it starts in to the one it ends in (:func:`recover`); its
    time to recover runs from the start of that hour to the start of the first later hour at the
    recovery threshold (the end of the horizon if there is none), and its impact window from its
    start to its end or that recovery, whichever is later. The run's ``time_to_recover_h`` is the
    longest (NaN without disruptions), its ``service_loss_h`` sums the shortfall over the hours
    failed by any disruption (each hour once), and its orders count each order created in any
    impact window once; per region, on time inside the impact windows against outside them.
    """
    from twin.scenario.risks import disruption_windows
    from twin.scenario.schema import Recovery as Thresholds

    sc = c.scenario
    th = sc.recovery if sc is not None else Thresholds()
    windows = disruption_windows(sc, c.risk_events) if sc is not None else []
    if not windows:
        return Recovery(th.metric, th.failure, th.recovery, np.zeros(0))
    horizon = c.horizon_h if c.horizon_h is not None else (
        float(np.nanmax(c.t["created_at"].to_numpy(dtype=float))) + 1.0 if len(c.t) else 0.0)
    n_hours = max(0, math.ceil(horizon - 1e-9))
    lower_is_worse = th.metric == "on_time_rate"
    hourly = hourly_on_time(c.t, n_hours) if lower_is_worse else hourly_backlog(c.orders, n_hours)
    created = c.t["created_at"].to_numpy(dtype=float)
    on_time = c.t["on_time"].to_numpy(dtype=bool)
    lost = c.lost.to_numpy(dtype=bool)
    impacted = np.zeros(len(created), dtype=bool)
    failed_hours = np.zeros(n_hours, dtype=bool)
    rows = []
    for w in windows:
        failed, recovered, loss = recover(hourly, w.start_h, w.end_h, th.failure, th.recovery, lower_is_worse)
        if failed is None:
            ttr, impact_end = 0.0, w.end_h
        else:
            back = recovered if recovered is not None else n_hours
            ttr = float(back - failed)
            failed_hours[failed:back] = True
            impact_end = max(w.end_h, float(back))
        inside = (created >= w.start_h) & (created < impact_end)
        impacted |= inside
        rows.append(RecoveryRow(w.label, w.kind, w.target, w.start_h, w.end_h,
                                None if failed is None else float(failed),
                                None if recovered is None else float(recovered), ttr, loss, impact_end,
                                int((inside & ~on_time & ~lost).sum()), int((inside & lost).sum())))
    short = (th.recovery - hourly) if lower_is_worse else (hourly - th.recovery)
    total_loss = float(np.nansum(np.clip(short[failed_hours], 0.0, None)))
    codes, names = _region_codes(c.t)
    ok = codes >= 0
    k = len(names)
    inn, out = ok & impacted, ok & ~impacted
    n_in, n_out = np.bincount(codes[inn], minlength=k), np.bincount(codes[out], minlength=k)
    on_in = np.bincount(codes[inn], weights=on_time[inn], minlength=k)
    on_out = np.bincount(codes[out], weights=on_time[out], minlength=k)
    enough = n_in >= MIN_REGION_ORDERS
    gap = math.nan
    if enough.any():
        rate_in = on_in[enough] / n_in[enough]
        gap = float(rate_in.max() - rate_in.min())
    both = enough & (n_out >= MIN_REGION_ORDERS)
    drop = {names[i]: float(on_out[i] / n_out[i] - on_in[i] / n_in[i]) for i in np.flatnonzero(both)}
    return Recovery(th.metric, th.failure, th.recovery, hourly, rows,
                    max(r.time_to_recover_h for r in rows), total_loss,
                    int((impacted & ~on_time & ~lost).sum()), int((impacted & lost).sum()), gap, drop)


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
        "orders", "count", "{:,.0f}", lambda c: int(c.lost.sum()), better="lower"),
    KPI("on_time_rate", "On-time rate", "share of created orders delivered by their promised time", "%", "rate",
        "{:.1%}", lambda c: float(c.t["on_time"].mean()) if len(c.t) else math.nan, better="higher"),
    KPI("lead_time_mean_h", "Lead time, mean",
        "mean hours from order to delivery of its last shipment, over delivered orders", "h", "number", "{:.2f} h",
        lambda c: float(c.lead.mean()) if len(c.lead) else math.nan, better="lower"),
    KPI("lead_time_p95_h", "Lead time, p95", "95th percentile of that lead time, hours", "h", "number", "{:.2f} h",
        lambda c: float(np.percentile(c.lead, 95)) if len(c.lead) else math.nan, better="lower"),
    KPI("pick_wait_mean_h", "Pick wait, mean",
        "mean hours a shipment waited in its warehouse's pick queue (routing to pick start), over shipments "
        "whose picking started (an M/M/c queue's Wq)", "h", "number", "{:.3f} h", _pick_wait_mean),
    KPI("cost_per_order", "Cost per order", "carrier, reefer and handling cost per served order, CNY", "CNY",
        "number", "{:.2f} CNY", _mean_served("cost"), better="lower"),
    KPI("co2_per_order_kg", "CO2 per order", "transport CO2 per served order, kg", "kg", "number", "{:.3f} kg",
        _mean_served("co2_kg"), better="lower"),
    KPI("split_rate", "Split rate", "share of served orders shipped from more than one warehouse", "%", "rate",
        "{:.1%}", lambda c: float((c.served_values("shipments") > 1).mean()) if c.served.any() else math.nan),
    KPI("backlog_mean", "Mean backlog",
        "time-average number of shipments routed but not yet shipped, while orders arrive (from the records)",
        "shipments", "number", "{:,.1f}", _backlog_mean, better="lower"),
    KPI("backlog_max", "Peak backlog",
        "largest number of shipments routed but not yet shipped at any moment of the run (exact, kept by the "
        "engine at every change and checked against the records)", "shipments", "count", "{:,.0f}",
        lambda c: int(c.timeseries["backlog_peak"].iloc[-1]) if len(c.timeseries) else 0),
    KPI("cold_chain_violations", "Cold-chain violations",
        "cold-chain shipments held at a warehouse while its cold storage had failed", "shipments", "count",
        "{:,.0f}", lambda c: int(c.orders["cold_violation"].sum())),
    KPI("service_gap", "Service gap",
        f"best minus worst regional on-time rate (regions with at least {MIN_REGION_ORDERS} orders)", "pp", "rate",
        "{:.1%}", _service_gap, better="lower"),
    KPI("utilization", "Utilisation",
        "per warehouse: busy pick-server hours over available pick-server hours, while orders arrive", "%", "rate",
        "{:.1%}", _utilization, per_warehouse=True, compare_plot=False),
    # recovery (:func:`recovery_table`): thresholds from the scenario's ``recovery`` section
    KPI("time_to_recover_h", "Time to recover",
        "the longest over the run's disruptions: hours from the hourly service (by default the on-time rate of the "
        "orders created each hour) crossing the failure threshold while the disruption lasts until it regains the "
        "recovery threshold (0: it never failed; to the end of the horizon if it never recovered)", "h", "number",
        "{:.1f} h", lambda c: c.recovery.time_to_recover_h, better="lower"),
    KPI("service_loss_h", "Service-level loss",
        "the area between the recovery threshold and the hourly service while failed, over the run's disruptions "
        "(hours of full service lost, in the metric's unit x h; each hour counted once)", "x h", "number",
        "{:.2f}", lambda c: c.recovery.service_loss_h, better="lower"),
    KPI("orders_late_in_disruption", "Late in disruptions",
        "orders created while a disruption lasted or the service had not recovered from it, not delivered by their "
        "promise (late or still in flight), and not lost", "orders", "count", "{:,.0f}",
        lambda c: c.recovery.orders_late, compare_plot=False, better="lower"),
    KPI("orders_lost_in_disruption", "Lost in disruptions",
        "orders created while a disruption lasted or the service had not recovered from it, and lost", "orders",
        "count", "{:,.0f}", lambda c: c.recovery.orders_lost, compare_plot=False, better="lower"),
    KPI("service_gap_disrupted", "Service gap in disruptions",
        f"best minus worst regional on-time rate of the orders created while a disruption lasted or the service "
        f"had not recovered (regions with at least {MIN_REGION_ORDERS} such orders): fairness under disruption",
        "pp", "rate", "{:.1%}", lambda c: c.recovery.service_gap, compare_plot=False, better="lower"),
    KPI("time_to_recover_h_by_disruption", "Time to recover, per disruption",
        "per disruption: its time to recover, hours (as time_to_recover_h)", "h", "number", "{:.1f} h",
        lambda c: {r.label: r.time_to_recover_h for r in c.recovery.rows}, per_warehouse=True, compare_plot=False,
        keys="disruption", better="lower"),
    KPI("service_loss_h_by_disruption", "Service-level loss, per disruption",
        "per disruption: its service-level loss (as service_loss_h)", "x h", "number", "{:.2f}",
        lambda c: {r.label: r.service_loss_h for r in c.recovery.rows}, per_warehouse=True, compare_plot=False,
        keys="disruption", better="lower"),
    KPI("orders_hit_by_disruption", "Orders late or lost, per disruption",
        "per disruption: orders created while it lasted or the service had not recovered from it that were late, "
        "in flight past their promise, or lost", "orders", "count", "{:,.0f}",
        lambda c: {r.label: r.orders_late + r.orders_lost for r in c.recovery.rows}, per_warehouse=True,
        compare_plot=False, keys="disruption", better="lower"),
    KPI("region_on_time_drop", "On-time drop in disruptions, per region",
        f"per region: its on-time rate of the orders created outside every disruption's impact minus that of the "
        f"orders created inside (regions with at least {MIN_REGION_ORDERS} orders in each)", "pp", "rate", "{:.1%}",
        lambda c: c.recovery.region_drop, per_warehouse=True, compare_plot=False, keys="region", better="lower"),
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
                 horizon_h: float | None = None, progress: Callable[[str], Any] | None = None,
                 scenario: Any = None, risk_events: Sequence[Any] = ()) -> dict:
    """The KPIs of one run, every entry of :data:`KPIS`. Utilisation covers ``[0, horizon_h]``
    (the whole run if None), the time orders arrive. ``progress(name)`` is called after the
    order table and after each KPI (``len(KPIS) + 1`` calls). ``scenario`` (as declared) and
    the ``risk_events`` the run drew give the disruptions and thresholds of the recovery KPIs."""
    ctx = KpiContext(order_table(orders), orders, timeseries, warehouses, horizon_h, scenario, tuple(risk_events))
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
