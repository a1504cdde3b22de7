"""Historical order logs: what an OMS created and where it routed each line, in a documented
schema the twin can replay (``twin shadow``) and write from a twin run (``twin history``).

A history is one row per order line (Parquet or CSV), or one CloudEvent per order (JSON lines):

=============== ======================================================================
column          meaning
=============== ======================================================================
order_id        the order's id (text; every line of an order repeats it)
created_at      when the order was created (ISO 8601 date-time; a zone is optional, a
                time without one is UTC)
region          the destination region (a region name of the network)
service_level   the service level (a name of the scenario's ``demand.service_levels``)
line            the line's number in the order (0, 1, ...)
sku             the SKU (``sku-<index>`` of the network)
qty             units (an integer >= 1)
cold_chain      the line needs the cold chain (true/false; an order is cold if any is)
warehouse_id    the warehouse the OMS chose for the line when the order was created
                (a warehouse name), or empty: the OMS did not route it then (it was
                backordered or lost)
=============== ======================================================================

The CloudEvents form has ``type`` ``com.fulfillmenttwin.order.created.v1``, ``subject``
``order/<id>``, ``time`` the creation time, and as ``data`` ``{"order_id", "created_at",
"destination": {"region"}, "service_level", "lines": [{"sku", "qty", "cold_chain",
"warehouse_id"}]}`` (the routing service's order, with the OMS's choice per line).

:func:`read_history` validates a file (naming the row or event and the field of any problem);
:func:`arrival_table` turns it into the twin's :class:`twin.sim.engine.ArrivalTable` on a
scenario's clock (hour 0 is ``start``: the scenario's ``start``, else midnight UTC of the first
order's day); :func:`twin_history` writes a history from a run of the twin.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.errors import TwinError
from twin.policies.features import sku_index
from twin.scenario.schema import Scenario
from twin.sim.engine import ArrivalTable
from twin.world.network import Network

__all__ = ["COLUMNS", "FORMATS", "ORDER_TYPE", "History", "HistoryError", "arrival_table", "history_format",
           "read_history", "twin_history", "write_history"]

COLUMNS = ("order_id", "created_at", "region", "service_level", "line", "sku", "qty", "cold_chain", "warehouse_id")
#: File suffix -> format.
FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "cloudevents", ".ndjson": "cloudevents"}
ORDER_TYPE = "com.fulfillmenttwin.order.created.v1"
#: t = 0 of a history written from a scenario without a ``start``.
DEFAULT_START = datetime(2026, 11, 10, tzinfo=UTC)


class HistoryError(TwinError, ValueError):
    """An order history that cannot be read or does not fit the network."""


def history_format(path: str | Path) -> str:
    """The format of a history file from its suffix."""
    suf = Path(path).suffix.lower()
    if suf not in FORMATS:
        raise HistoryError(f"history file {str(path)!r}: the suffix must be one of {', '.join(FORMATS)} "
                           f"(Parquet, CSV, CloudEvents JSON lines); got {suf or 'none'!r}")
    return FORMATS[suf]


# ---------------------------------------------------------------------------------- reading
def _read_events(path: Path) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}: event {n}"
            try:
                ev = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise HistoryError(f"{where}: not JSON ({exc})") from None
            if not isinstance(ev, dict) or ev.get("type") != ORDER_TYPE:
                got = ev.get("type") if isinstance(ev, dict) else type(ev).__name__
                raise HistoryError(f"{where}: type must be {ORDER_TYPE!r}, got {got!r}")
            d = ev.get("data")
            if not isinstance(d, dict):
                raise HistoryError(f"{where}: data must be an object (the order)")
            lines = d.get("lines")
            if not isinstance(lines, list) or not lines:
                raise HistoryError(f"{where}: data.lines must be a non-empty list")
            dest = d.get("destination")
            region = dest.get("region") if isinstance(dest, dict) else None
            for i, ln in enumerate(lines):
                if not isinstance(ln, dict):
                    raise HistoryError(f"{where}: data.lines[{i}] must be an object")
                rows.append({"order_id": d.get("order_id"), "created_at": d.get("created_at", ev.get("time")),
                             "region": region, "service_level": d.get("service_level"), "line": i,
                             "sku": ln.get("sku"), "qty": ln.get("qty"), "cold_chain": ln.get("cold_chain", False),
                             "warehouse_id": ln.get("warehouse_id"), "_where": f"{where} data.lines[{i}]"})
    return pd.DataFrame(rows, columns=[*COLUMNS, "_where"])


def _bools(s: pd.Series, where: pd.Series, field: str) -> np.ndarray:
    if s.dtype == bool:
        return s.to_numpy()
    m = {"true": True, "false": False, "1": True, "0": False, "": False, "nan": False, "none": False}
    out = s.map(lambda v: v if isinstance(v, (bool, np.bool_)) else m.get(str(v).strip().lower()))
    bad = out.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise HistoryError(f"{where.iloc[i]}: {field} must be true or false, got {s.iloc[i]!r}")
    return out.to_numpy(dtype=bool)


@dataclass(frozen=True)
class History:
    """A validated history: one row per line (:data:`COLUMNS`; ``created_at`` as UTC
    timestamps, ``warehouse_id`` None where the OMS did not route the line), sorted by
    creation time (orders in file order on ties), lines in order."""

    lines: pd.DataFrame
    path: str

    @property
    def n_orders(self) -> int:
        return int(self.lines["order_id"].nunique())


def read_history(path: str | Path) -> History:
    """Read and validate a history file (see the module docstring).

    Raises:
        HistoryError: naming the row (or event) and the field that is missing or wrong.
    """
    p = Path(path)
    fmt = history_format(p)
    if not p.is_file():
        raise HistoryError(f"history file {str(p)!r}: no such file")
    if fmt == "cloudevents":
        df = _read_events(p)
    else:
        try:
            df = pd.read_parquet(p) if fmt == "parquet" else pd.read_csv(p, dtype=str, keep_default_na=False)
        except Exception as exc:  # noqa: BLE001 - pyarrow and pandas raise many kinds
            raise HistoryError(f"history file {str(p)!r}: cannot be read as {fmt} ({exc})") from None
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise HistoryError(f"history file {str(p)!r}: missing column(s) {', '.join(missing)}; a history has "
                               f"{', '.join(COLUMNS)}")
        df = df[list(COLUMNS)].copy()
        df["_where"] = [f"{p}: row {i + 1}" for i in range(len(df))]
    if df.empty:
        raise HistoryError(f"history file {str(p)!r}: no orders in it")
    where = df["_where"]
    for col in ("order_id", "region", "service_level", "sku"):
        s = df[col]
        bad = s.isna() | (s.astype(str).str.strip() == "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise HistoryError(f"{where.iloc[i]}: {col} must be a non-empty text, got {s.iloc[i]!r}")
        df[col] = s.astype(str)
    for col, lo in (("qty", 1), ("line", 0)):
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() | (v < lo) | (v != np.floor(v))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise HistoryError(f"{where.iloc[i]}: {col} must be an integer >= {lo}, got {df[col].iloc[i]!r}")
        df[col] = v.astype(np.int64)
    try:
        t = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
    except (ValueError, TypeError):
        t = pd.to_datetime(df["created_at"], utc=True, format="ISO8601", errors="coerce")
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise HistoryError(f"{where.iloc[i]}: created_at must be an ISO 8601 date-time such as "
                           f"2026-11-10T08:30:00Z, got {df['created_at'].iloc[i]!r}")
    df["created_at"] = t
    df["cold_chain"] = _bools(df["cold_chain"], where, "cold_chain")
    wh = df["warehouse_id"]
    df["warehouse_id"] = [None if (v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "")
                          else str(v) for v in wh]
    # every line of an order says the same of the order
    first = df.groupby("order_id", sort=False).transform("first")
    for col in ("created_at", "region", "service_level"):
        bad = (df[col] != first[col]).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise HistoryError(f"{where.iloc[i]}: order {df['order_id'].iloc[i]!r} has {col} {df[col].iloc[i]!s}, "
                               f"its first line {first[col].iloc[i]!s}; every line of an order has the same {col}")
    dup = df.duplicated(["order_id", "line"]).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise HistoryError(f"{where.iloc[i]}: order {df['order_id'].iloc[i]!r} has line {df['line'].iloc[i]} twice")
    df["_pos"] = np.arange(len(df))
    df["_opos"] = df.groupby("order_id", sort=False)["_pos"].transform("min")
    df = df.sort_values(["created_at", "_opos", "line"], kind="stable").reset_index(drop=True)
    return History(df.drop(columns=["_pos", "_opos"]), str(p))


# ---------------------------------------------------------------------------------- the twin's view
def _utc(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def history_start(history: History, scenario: Scenario, start: datetime | None = None) -> pd.Timestamp:
    """Hour 0 of the replay: ``start``, else the scenario's ``start``, else midnight UTC of the
    first order's day."""
    if start is not None:
        return _utc(start)
    if scenario.start is not None:
        return _utc(scenario.start)
    return history.lines["created_at"].iloc[0].normalize()


@dataclass(frozen=True)
class Replayable:
    """A history on the twin's clock: the table the engine plays, and per order (in the
    table's order) its id and the warehouse the OMS chose for each line (``logged``, aligned
    with ``arrivals.sku``; -1: not routed at creation)."""

    arrivals: ArrivalTable
    order_ids: list[str]
    logged: np.ndarray
    start: pd.Timestamp


def arrival_table(history: History, net: Network, start: datetime | None = None) -> Replayable:
    """The history as the twin's :class:`ArrivalTable` on ``net`` (names resolved, lines of one
    SKU merged: the twin keeps one line per SKU; they must then have one warehouse).

    Raises:
        HistoryError: a name the network does not have (naming the row and what is allowed), an
            order before ``start`` or after the scenario's horizon.
    """
    sc = net.scenario
    df = history.lines
    where = df["_where"]
    t0 = history_start(history, sc, start)
    hours = ((df["created_at"] - t0) / pd.Timedelta(hours=1)).to_numpy(dtype=float)
    if hours.min() < 0:
        i = int(np.argmin(hours))
        raise HistoryError(f"{where.iloc[i]}: created_at {df['created_at'].iloc[i]} is before the replay's start "
                           f"{t0} (hour 0); give an earlier start")
    if hours.max() >= sc.horizon_h:
        i = int(np.argmax(hours))
        raise HistoryError(f"{where.iloc[i]}: created_at {df['created_at'].iloc[i]} is {hours[i]:g} h after the start "
                           f"{t0}, not before the scenario's horizon_h {sc.horizon_h:g}; lengthen the horizon")

    def codes(col: str, names: list[str], what: str) -> np.ndarray:
        idx = {n: i for i, n in enumerate(names)}
        out = df[col].map(idx)
        if out.isna().any():
            i = int(np.flatnonzero(out.isna().to_numpy())[0])
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise HistoryError(f"{where.iloc[i]}: {col} {df[col].iloc[i]!r} is not {what} of the scenario "
                               f"{sc.name!r}; allowed: {shown}")
        return out.to_numpy(dtype=np.int64)

    region = codes("region", list(net.regions), "a region")
    level = codes("service_level", list(sc.demand.service_levels), "a service level")
    sku = np.array([-1 if (k := sku_index(s, net.n_skus)) is None else k for s in df["sku"]], dtype=np.int64)
    if (sku < 0).any():
        i = int(np.flatnonzero(sku < 0)[0])
        raise HistoryError(f"{where.iloc[i]}: sku {df['sku'].iloc[i]!r} is not one of the network's "
                           f"(sku-0 .. sku-{net.n_skus - 1})")
    wh_names = {w: i for i, w in enumerate(net.warehouses)}
    wh = np.array([-1 if w is None else wh_names.get(w, -2) for w in df["warehouse_id"]], dtype=np.int64)
    if (wh == -2).any():
        i = int(np.flatnonzero(wh == -2)[0])
        raise HistoryError(f"{where.iloc[i]}: warehouse_id {df['warehouse_id'].iloc[i]!r} is not a warehouse of "
                           f"the network; allowed: {', '.join(net.warehouses)}, or empty (not routed)")
    oid = df["order_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, oid[1:] != oid[:-1]])
    qty, cold_line = df["qty"].to_numpy(dtype=np.int64), df["cold_chain"].to_numpy(dtype=bool)
    out_sku: list[int] = []
    out_qty: list[int] = []
    out_wh: list[int] = []
    line_start = [0]
    ends = np.r_[starts[1:], len(df)]
    for a, b in zip(starts.tolist(), ends.tolist()):
        merged: dict[int, list[int]] = {}
        for j in range(a, b):
            k = int(sku[j])
            if k in merged:
                if merged[k][1] != wh[j]:
                    raise HistoryError(f"{where.iloc[j]}: order {oid[j]!r} has SKU {df['sku'].iloc[j]!r} on two lines "
                                       "routed to different warehouses; the twin keeps one line per SKU")
                merged[k][0] += int(qty[j])
            else:
                merged[k] = [int(qty[j]), int(wh[j])]
        for k, (q, w) in merged.items():
            out_sku.append(k)
            out_qty.append(q)
            out_wh.append(w)
        line_start.append(len(out_sku))
    cold = np.logical_or.reduceat(cold_line, starts)
    arr = ArrivalTable(created_h=hours[starts], region=region[starts], cold=cold, service_level=level[starts],
                       line_start=np.asarray(line_start, dtype=np.int64), sku=np.asarray(out_sku, dtype=np.int64),
                       qty=np.asarray(out_qty, dtype=np.int64))
    return Replayable(arr, [str(o) for o in oid[starts]], np.asarray(out_wh, dtype=np.int64), t0)


# ---------------------------------------------------------------------------------- writing
def write_history(lines: pd.DataFrame, path: str | Path) -> Path:
    """Write a history (:data:`COLUMNS`, ``created_at`` as timestamps) in the format of the
    file's suffix."""
    p = Path(path)
    fmt = history_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    df = lines[list(COLUMNS)]
    iso = df["created_at"].map(lambda t: t.isoformat().replace("+00:00", "Z"))
    if fmt == "parquet":
        df.to_parquet(p, index=False)
    elif fmt == "csv":
        df.assign(created_at=iso, cold_chain=df["cold_chain"].map({True: "true", False: "false"}),
                  warehouse_id=df["warehouse_id"].fillna("")).to_csv(p, index=False)
    else:
        with open(p, "w", encoding="utf-8") as f:
            oid = df["order_id"].to_numpy()
            starts = np.flatnonzero(np.r_[True, oid[1:] != oid[:-1]])
            ends = np.r_[starts[1:], len(df)]
            recs = df.to_dict("records")
            isos = iso.tolist()
            for a, b in zip(starts.tolist(), ends.tolist()):
                r = recs[a]
                data = {"order_id": r["order_id"], "created_at": isos[a], "destination": {"region": r["region"]},
                        "service_level": r["service_level"],
                        "lines": [{"sku": recs[j]["sku"], "qty": int(recs[j]["qty"]),
                                   "cold_chain": bool(recs[j]["cold_chain"]), "warehouse_id": recs[j]["warehouse_id"]}
                                  for j in range(a, b)]}
                ev = {"specversion": "1.0", "type": ORDER_TYPE, "source": "/twin/history", "id": f"order-{r['order_id']}",
                      "subject": f"order/{r['order_id']}", "time": isos[a], "partitionkey": r["region"],
                      "datacontenttype": "application/json", "data": data}
                f.write(json.dumps(ev, separators=(",", ":")) + "\n")
    return p


def twin_history(scenario: Scenario, seed: int, start: datetime | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A history from a run of the twin (the ``simpy`` engine, the scenario's routing policy):
    every order with its lines, and per line the warehouse the policy chose when the order was
    created (None: it could not route it then, and the order was backordered or lost).

    Returns:
        ``(lines, info)``: the history's rows (:data:`COLUMNS`) and what made them (scenario,
        seed, start, orders, the run's records for checks).
    """
    from twin.sim.model import FulfillmentModel
    from twin.sim.records import orders_frame

    m = FulfillmentModel(scenario, seed=seed, engine="simpy", timeseries=False)
    net = m.net
    t0 = _utc(start or scenario.start or DEFAULT_START)
    levels = list(scenario.demand.service_levels)
    rows: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    eng = m.engine
    while (d := m.next_decision()) is not None:
        m.state.clock[0] = m.env.now
        wh = m.routing.route_one(d.region, d.cold, list(d.sku), list(d.qty), m.state, service=d.service_level)
        n = len(d.sku)
        created = float(d.created_at)
        oid = f"o{d.order_id}"
        rows["order_id"] += [oid] * n
        rows["created_at"] += [created] * n
        rows["region"] += [net.regions[d.region]] * n
        rows["service_level"] += [levels[d.service_level]] * n
        rows["line"] += list(range(n))
        rows["sku"] += [f"sku-{k}" for k in d.sku]
        rows["qty"] += [int(q) for q in d.qty]
        rows["cold_chain"] += [bool(d.cold)] * n
        rows["warehouse_id"] += [None] * n if wh is None else [net.warehouses[int(w)] for w in wh]
        eng.decide(None if wh is None else [int(w) for w in wh])
    m.run()
    records = orders_frame(eng.finish(m.end_time), net, m.end_time)
    df = pd.DataFrame(rows)
    df["created_at"] = t0 + pd.to_timedelta(df["created_at"].to_numpy(dtype=float), unit="h")  # ns resolution
    info = {"scenario": scenario.name, "seed": int(seed), "start": t0.isoformat(), "orders": int(m.engine.counters.created),
            "records": records}
    return df, info
