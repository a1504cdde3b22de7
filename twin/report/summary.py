"""The records of a run boiled down to what the report shows: counts per warehouse, per region
and per warehouse-region lane, and the lead-time histogram.

Everything is computed once, with numpy on the name columns' integer codes (``bincount``,
``histogram``), never by comparing millions of strings: a 10M-shipment run takes about a second.
The per-order figures come from :func:`twin.results.kpis.order_table`, so the report's regional
figures use the KPIs' own definitions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from twin.results.kpis import order_table

__all__ = ["ORDER_COLUMNS", "RecordSummary", "lead_time_bins", "summarize_records"]

#: The columns of ``orders.parquet`` the summary reads (``twin report DIR`` reads only these).
ORDER_COLUMNS = ("order_id", "shipment_id", "region", "warehouse", "status", "created_at", "delivered_at",
                 "promised_at", "cost", "co2_kg")

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


def summarize_records(orders: pd.DataFrame | None, warehouses: Sequence[str] = (),
                      regions: Sequence[str] = ()) -> RecordSummary:
    """The :class:`RecordSummary` of a records table (``orders.parquet``, or a run's
    ``.orders``), its arrays indexed by ``warehouses`` and ``regions`` (then any other names the
    records hold). Missing columns give zeros and NaN where they are needed.

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
    del t, t_codes, st, delivered
    s.lead_n = len(lead)
    if s.lead_n:
        s.lead_counts, s.lead_edges = np.histogram(lead, bins=lead_time_bins(s.lead_n))
        s.lead_mean = float(lead.mean())
        s.lead_p95 = float(np.percentile(lead, 95))
    return s
