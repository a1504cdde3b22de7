"""Self-contained HTML report of one twin run directory: a verdict first (the worst warehouses and
regions, the binding constraint and when it bound), KPI tables, and PNG plots."""

from __future__ import annotations

import html
import json
import math
import sys
from datetime import datetime, timedelta
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from twin.report import plots
from twin.report.summary import (
    LINEHAUL_BOUND,
    ORDER_COLUMNS,
    PICK_BOUND,
    STOCK_BOUND,
    RecordSummary,
    Verdict,
    hourly_utilization,
    summarize_records,
    verdict,
)
from twin.results.compare import NON_KPI_KEYS, load_kpis
from twin.results.kpis import KPIS, MIN_REGION_ORDERS
from twin.scenario.risks import realised_doc

__all__ = [
    "KPI_INFO",
    "PLOT_FILES",
    "load_run",
    "records_scope",
    "verdict_html",
    "warehouse_summary",
    "region_summary",
    "write_report",
]


#: The contract's KPIs, in display order: the registry :data:`twin.results.kpis.KPIS`.
KPI_INFO = KPIS

#: PNG files written beside report.html, in page order: (file name, caption).
PLOT_FILES: tuple[tuple[str, str], ...] = (
    ("kpis_over_time.png", "Throughput per hour (orders created, shipments shipped, orders delivered), orders in "
                           "flight, and the on-time rate of the orders delivered in each hour; disruption windows "
                           "shaded"),
    ("backlog.png", "Backlog per warehouse (each tick's time average) and stock on hand; disruption windows shaded"),
    ("utilization.png", "Pick utilisation per warehouse over each hour, each warehouse's peak hour beside its mean; "
                        "pick servers available; disruption windows shaded"),
    ("lead_time.png", "Lead-time distribution of delivered orders"),
    ("network_map.png", "Network map on a basemap of China (Natural Earth 1:110m national outline and coastline, "
                        "public domain, shipped with the package; no province boundaries): warehouses sized by "
                        "shipments, regions by orders, lanes by shipments"),
)

_NA = "n/a"

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.meta { color: #555; } .desc { white-space: pre-line; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f4f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafbfc; } code { font-size: 0.9em; color: #555; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.4em 0.8em; }
.verdict { background: #eef4fb; border-left: 4px solid #2f6db5; padding: 0.5em 1em; }
.verdict ul { margin: 0.3em 0; } .rules { color: #555; font-size: 0.85em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""


# --------------------------------------------------------------------------- loading
def _read_json(path: Path) -> Any:
    """Read a JSON file (NaN/null tolerated)."""
    return json.loads(path.read_text(encoding="utf-8"))


def load_run(run_dir: str | Path, orders_columns: Sequence[str] | None = None) -> dict[str, Any]:
    """Read a run directory's files.

    Args:
        run_dir: The run's output directory.
        orders_columns: Read only these columns of ``orders.parquet`` (those it has); None: all.

    Returns:
        ``{"kpis": dict, "scenario": dict, "orders": DataFrame, "timeseries": DataFrame,
        "notes": [str]}``; a missing or unreadable optional file becomes an empty
        value and a note.

    Raises:
        FileNotFoundError: If run_dir or its kpis.json does not exist.
        ValueError: If kpis.json is not a valid JSON object.
    """

    d = Path(run_dir)
    kpis = load_kpis(d)
    notes: list[str] = []
    scenario: dict[str, Any] = {}
    f = d / "scenario.json"
    if f.is_file():
        try:
            s = _read_json(f)
            scenario = s if isinstance(s, dict) else {}
        except (OSError, ValueError) as e:
            notes.append(f"scenario.json could not be read: {e}")
    else:
        notes.append("scenario.json not found: scenario details and the map are missing.")
    frames: dict[str, pd.DataFrame] = {}
    for key, name in (("orders", "orders.parquet"), ("timeseries", "timeseries.parquet")):
        p = d / name
        frames[key] = pd.DataFrame()
        if not p.is_file():
            notes.append(f"{name} not found.")
            continue
        try:
            if key == "orders":  # 10M rows: pyarrow's table handed to pandas column by column (no 2-D copy)
                import pyarrow.parquet as pq

                columns = None
                if orders_columns is not None:
                    have = set(pq.read_schema(p).names)
                    columns = [c for c in orders_columns if c in have]
                frames[key] = pq.read_table(p, columns=columns).to_pandas(split_blocks=True, self_destruct=True)
            else:
                frames[key] = pd.read_parquet(p)
        except Exception as e:  # noqa: BLE001 - report what went wrong instead of failing
            notes.append(f"{name} could not be read: {type(e).__name__}: {e}")
    return {"kpis": kpis, "scenario": scenario, "orders": frames["orders"], "timeseries": frames["timeseries"],
            "notes": notes}


# --------------------------------------------------------------------------- tables
def _col(df: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column, or all-NaN when absent."""
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").astype(float)
    return pd.Series(np.nan, index=df.index, dtype=float)


def _summary(orders: pd.DataFrame | RecordSummary | None, warehouses: Sequence[str] = (),
             regions: Sequence[str] = ()) -> RecordSummary:
    """``orders`` as a :class:`RecordSummary` (built with these names first if it is a table)."""
    if isinstance(orders, RecordSummary):
        return orders
    return summarize_records(orders, warehouses, regions)


def _time_mean(ts: pd.DataFrame, values: pd.Series) -> float:
    """The time average of per-row values over their rows' intervals (each row ends at its
    ``time_h``, the first starts at 0): the run's mean of a per-tick average."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    if not len(v) or np.isnan(v).all():
        return math.nan
    if "time_h" not in ts.columns:
        return float(np.nanmean(v))
    t = pd.to_numeric(ts["time_h"], errors="coerce").to_numpy(dtype=float)
    dt = np.diff(np.r_[0.0, t])
    ok = ~np.isnan(v) & (dt > 0)
    return float((v[ok] * dt[ok]).sum() / dt[ok].sum()) if ok.any() else float(np.nanmean(v))


def warehouse_summary(
    orders: pd.DataFrame | RecordSummary, ts: pd.DataFrame, kpis: Mapping[str, Any],
    scenario: Mapping[str, Any] | None
) -> pd.DataFrame:
    """Per-warehouse figures.

    Args:
        orders: The shipments table, or its :class:`~twin.report.summary.RecordSummary`.
        ts: The timeseries table.
        kpis: The kpis dict (its ``utilization`` mapping is preferred).
        scenario: The scenario dict (for the warehouse list and cold storage).

    Returns:
        DataFrame indexed by warehouse with columns ``cold_storage`` (bool or None),
        ``utilization`` (0..1), ``utilization_peak`` (the highest utilisation over one hour of the
        run, :func:`~twin.report.summary.hourly_utilization`), ``hours_at_bound`` (hours at
        :data:`~twin.report.summary.PICK_BOUND` or more), ``shipments``, ``delivered``,
        ``on_time_rate`` (0..1 of its delivered shipments), ``backlog_mean``, ``backlog_max``
        (NaN where unknown).
    """
    wt = plots.warehouse_table(scenario)
    names: list[str] = list(wt["name"])
    util_k = kpis.get("utilization") if isinstance(kpis.get("utilization"), Mapping) else {}
    bl_cols = plots.per_warehouse_columns(ts, "backlog")
    ut_cols = plots.per_warehouse_columns(ts, "utilization")
    for extra in [*util_k.keys(), *bl_cols.keys(), *ut_cols.keys()]:
        if str(extra) not in names:
            names.append(str(extra))
    summ = _summary(orders, names, plots.region_table(scenario)["name"])
    names += [w for w in summ.warehouses if w not in names]  # others the records name
    at = summ.warehouse_index()
    cold = dict(zip(wt["name"], wt["cold_storage"]))
    hourly = hourly_utilization(ts)
    rows = []
    for w in names:
        u = util_k.get(w)
        util = float(u) if isinstance(u, (int, float)) and not isinstance(u, bool) else math.nan
        if math.isnan(util) and w in ut_cols:
            util = float(_col(ts, ut_cols[w]).mean())
        i = at.get(w)
        shipments = int(summ.wh_shipments[i]) if i is not None else 0
        delivered = int(summ.wh_delivered[i]) if i is not None else 0
        on_time = int(summ.wh_on_time[i]) if i is not None else 0
        bl = _col(ts, bl_cols[w]) if w in bl_cols else pd.Series(dtype=float)
        peak = _col(ts, f"backlog_peak[{w}]") if f"backlog_peak[{w}]" in ts.columns else bl
        hu = hourly[w] if w in hourly.columns else pd.Series(dtype=float)
        rows.append({
            "warehouse": w,
            "cold_storage": cold.get(w),
            "utilization": util,
            "utilization_peak": float(hu.max()) if hu.notna().any() else math.nan,
            "hours_at_bound": int((hu >= PICK_BOUND).sum()) if hu.notna().any() else 0,
            "shipments": shipments,
            "delivered": delivered,
            "on_time_rate": on_time / delivered if delivered else math.nan,
            "backlog_mean": _time_mean(ts, bl),
            "backlog_max": float(peak.max()) if peak.notna().any() else math.nan,
        })
    cols = ["cold_storage", "utilization", "utilization_peak", "hours_at_bound", "shipments", "delivered",
            "on_time_rate", "backlog_mean", "backlog_max"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="warehouse"))
    return pd.DataFrame(rows).set_index("warehouse")[cols]


def region_summary(orders: pd.DataFrame | RecordSummary, scenario: Mapping[str, Any] | None) -> pd.DataFrame:
    """Per-region figures (regions of the scenario first, then any others seen in orders).

    Args:
        orders: The shipments table, or its :class:`~twin.report.summary.RecordSummary`.
        scenario: The scenario dict.

    Returns:
        DataFrame indexed by region with columns ``orders``, ``delivered``,
        ``on_time_rate`` (0..1 of its orders delivered by their promise), ``lost`` (orders with a lost
        shipment) and ``lead_time_mean_h``.
    """
    names = list(plots.region_table(scenario)["name"])
    summ = _summary(orders, plots.warehouse_table(scenario)["name"], names)
    names += [r for r in summ.regions if r not in names]
    at = summ.region_index()
    rows = []
    for r in names:
        i = at.get(r)
        n, dl = (int(summ.rg_orders[i]), int(summ.rg_delivered[i])) if i is not None else (0, 0)
        rows.append({
            "region": r,
            "orders": n,
            "delivered": dl,
            "on_time_rate": int(summ.rg_on_time[i]) / n if n else math.nan,
            "lost": int(summ.rg_lost[i]) if i is not None else 0,
            "lead_time_mean_h": float(summ.rg_lead_sum[i]) / dl if dl else math.nan,
        })
    cols = ["orders", "delivered", "on_time_rate", "lost", "lead_time_mean_h"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="region"))
    return pd.DataFrame(rows).set_index("region")[cols]


def records_scope(kpis: Mapping[str, Any]) -> str | None:
    """For a replicated run, which replication the records (tables and plots) are from:
    ``"replication 1 of N, seed S"``; None for a single run."""
    reps = kpis.get("replications")
    if not isinstance(reps, list) or not reps:
        return None
    seeds = kpis.get("seeds")
    seed = reps[0].get("seed") if isinstance(reps[0], Mapping) else None
    if seed is None and isinstance(seeds, list) and seeds:
        seed = seeds[0]
    return f"replication 1 of {len(reps)}" + (f", seed {seed}" if seed is not None else "")


# --------------------------------------------------------------------------- formatting
def _isnum(v: Any) -> bool:
    """True for a finite int/float (not bool)."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any, kind: str = "number", digits: int = 2) -> str:
    """Format a value for the page: rates as percent, counts as integers, NaN/None as n/a."""
    if v is None or (isinstance(v, (float, np.floating)) and not math.isfinite(float(v))):
        return _NA
    if not _isnum(v):
        return html.escape(str(v))
    x = float(v)
    if kind == "rate":
        return f"{100.0 * x:.1f}"
    if kind == "count":
        return f"{x:,.0f}" if x.is_integer() else f"{x:,.1f}"
    if 0 < abs(x) < 0.1:
        return f"{x:.3g}"
    return f"{x:,.{digits}f}"


def _e(s: Any) -> str:
    """html.escape of str(s)."""
    return html.escape(str(s), quote=True)


def _table(head: list[str], rows: list[list[str]], num_cols: set[int]) -> str:
    """An HTML table; cells are inserted as given (already escaped); columns in num_cols right-aligned."""
    out = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        cells = [f'<td class="num">{c}</td>' if i in num_cols else f"<td>{c}</td>" for i, c in enumerate(r)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _kpi_section(kpis: Mapping[str, Any]) -> str:
    """The KPI table (mean ± ci95 when the run has replications)."""
    summary = kpis.get("summary") if isinstance(kpis.get("summary"), Mapping) else None
    reps = kpis.get("replications")
    n_reps = len(reps) if isinstance(reps, list) else None
    rows: list[list[str]] = []

    def value_cell(key: str, v: Any, kind: str) -> str:
        s = _fmt(v, kind)
        if summary is not None:
            ent = summary.get(key)
            if isinstance(ent, Mapping):
                mean = ent.get("mean", v)
                ci = ent.get("ci95")
                s = _fmt(mean, kind)
                if _isnum(ci) and s != _NA:
                    ci_kind, ci_digits = {"rate": ("rate", 2), "count": ("number", 1)}.get(kind, ("number", 2))
                    s += f" ± {_fmt(ci, ci_kind, ci_digits)}"
        return s

    shown = set()
    for key, info in KPI_INFO.items():
        shown.add(key)
        if info.per_warehouse:
            util = kpis.get(key)
            if isinstance(util, Mapping) and util:
                parts = [f"{_e(w)}: {value_cell(f'{key}[{w}]', u, info.kind)}" for w, u in util.items()]
                val = "<br>".join(parts)
            else:
                val = _NA
        else:
            val = value_cell(key, kpis.get(key), info.kind)
        rows.append([f"{_e(info.label)}<br><code>{_e(key)}</code>", val, _e(info.unit),
                     _e(info.meaning[:1].upper() + info.meaning[1:] + ".")])

    for key, v in kpis.items():  # numeric extras the engine added
        if key in shown or key in NON_KPI_KEYS or not (_isnum(v) or v is None):
            continue
        rows.append([f"<code>{_e(key)}</code>", value_cell(key, v, "number"), "", "Additional engine KPI."])
    head = ["KPI", "Value" if summary is None else "Mean ± 95% CI", "Unit", "Meaning"]
    if summary is not None:
        n = f"{n_reps} replications" if n_reps is not None else "replications"
        intro = (f"<p>Values are means over {_e(n)}; ± is the half-width of the 95% confidence interval. "
                 f"Rates are in percent (the service gap in percentage points).</p>")
    else:
        intro = "<p>Rates are in percent (the service gap in percentage points).</p>"
    return intro + _table(head, rows, num_cols={1})


def _warehouse_section(wh: pd.DataFrame) -> str:
    """The per-warehouse HTML table."""
    if wh.empty:
        return f"<p>{_NA}: no warehouses known.</p>"
    rows = []
    for w, r in wh.iterrows():
        cold = _NA if r["cold_storage"] is None or (isinstance(r["cold_storage"], float)
                                                     and math.isnan(r["cold_storage"])) else (
            "yes" if bool(r["cold_storage"]) else "no")
        rows.append([_e(w), cold, _fmt(r["utilization"], "rate"), _fmt(r["utilization_peak"], "rate"),
                     _fmt(r["hours_at_bound"], "count"), _fmt(r["shipments"], "count"),
                     _fmt(r["delivered"], "count"), _fmt(r["on_time_rate"], "rate"),
                     _fmt(r["backlog_mean"], "number", 1), _fmt(r["backlog_max"], "count")])
    head = ["Warehouse", "Cold storage", "Utilisation, mean (%)", "Utilisation, peak hour (%)",
            f"Hours at &ge; {100 * PICK_BOUND:.0f}%", "Shipments", "Delivered shipments",
            "On-time (% of delivered shipments)", "Mean backlog (shipments, time average)",
            "Peak backlog (shipments)"]
    return _table(head, rows, num_cols=set(range(2, len(head))))


def _region_section(rg: pd.DataFrame) -> str:
    """The per-region HTML table."""
    if rg.empty:
        return f"<p>{_NA}: no regions known.</p>"
    rows = [[_e(r), _fmt(x["orders"], "count"), _fmt(x["delivered"], "count"), _fmt(x["on_time_rate"], "rate"),
             _fmt(x["lost"], "count"), _fmt(x["lead_time_mean_h"], "number", 1)] for r, x in rg.iterrows()]
    head = ["Region", "Orders", "Delivered orders", "On-time (% of orders)", "Lost orders", "Mean lead time (h)"]
    return _table(head, rows, num_cols=set(range(1, len(head))))


# --------------------------------------------------------------------------- verdict
def _when(h0: int, h1: int, start: datetime | None) -> str:
    """Hours ``[h0, h1)`` as text: dates when the scenario has a start."""
    if start is None:
        return f"h {h0}\u2013{h1}"
    a, b = start + timedelta(hours=h0), start + timedelta(hours=h1)
    return f"{a:%d %b %H:%M}\u2013{b:%H:%M}" if a.date() == b.date() or b == datetime.combine(
        a.date() + timedelta(days=1), datetime.min.time()) else f"{a:%d %b %H:%M}\u2013{b:%d %b %H:%M}"


def _spans(hours: Sequence[int], start: datetime | None, most: int = 4) -> str:
    spans = Verdict.spans(hours)
    text = ", ".join(_when(a, b, start) for a, b in spans[:most])
    return text + (f" and {len(spans) - most} more spells" if len(spans) > most else "")


def verdict_html(v: Verdict, start: datetime | None = None) -> str:
    """The verdict as an HTML block (hours as dates when ``start`` is given)."""
    items = []
    if v.binding == "none":
        items.append("<li><b>Binding constraint: none.</b> No warehouse's pick utilisation reached "
                     f"{100 * PICK_BOUND:.0f}% in any hour, no hour had {100 * LINEHAUL_BOUND:.0f}% of its parcels "
                     f"miss a departure, and no hour had {100 * STOCK_BOUND:.0f}% of its orders short of stock.</li>")
    else:
        hours = v.bound_hours[v.binding]
        where = ""
        if v.binding == "pick capacity":
            at = sorted(((w, len(h)) for w, h in v.pick_hours.items() if h), key=lambda x: -x[1])
            where = " (" + ", ".join(f"{_e(w)} {n} h" for w, n in at) + ")"
        others = [f"{k} in {len(h)} h" for k, h in v.bound_hours.items() if k != v.binding and h]
        items.append(f'<li><b class="binding">Binding constraint: {_e(v.binding)}</b>, in {len(hours)} hours'
                     f"{where}: {_e(_spans(hours, start))}."
                     + (f" Also bound: {_e('; '.join(others))}." if others else "") + "</li>")
    if v.worst_warehouses:
        parts = [f"<b>{_e(w['warehouse'])}</b> ({_fmt(w['backlog_hours'], 'count')} shipment-hours of backlog; "
                 f"peak hour {_fmt(w['utilization_peak'], 'rate')}% utilised, {w['hours_at_bound']} h at "
                 f"&ge; {100 * PICK_BOUND:.0f}%)" for w in v.worst_warehouses]
        items.append('<li class="worst-warehouses">Worst warehouses, by backlog: ' + "; ".join(parts) + ".</li>")
    else:
        items.append('<li class="worst-warehouses">Worst warehouses: none had a backlog.</li>')
    if v.worst_regions:
        parts = [f"<b>{_e(r['region'])}</b> {_fmt(r['on_time_rate'], 'rate')}% on time of "
                 f"{_fmt(r['orders'], 'count')} orders" for r in v.worst_regions]
        items.append('<li class="worst-regions">Worst regions, by on-time rate: ' + "; ".join(parts) + ".</li>")
    rules = (f"Rules: pick capacity binds in an hour when a warehouse's pick utilisation over that hour is at least "
             f"{100 * PICK_BOUND:.0f}%; linehaul capacity when at least {100 * LINEHAUL_BOUND:.0f}% of the parcels "
             "picked in it waited longer than their carrier's departure interval plus the pack time (a full "
             f"departure or a closed lane); stock when at least {100 * STOCK_BOUND:.0f}% of the orders created in it "
             "were lost or backordered. The binding constraint bound in the most hours. Warehouses are ranked by "
             "their backlog's time integral, regions by on-time rate (regions with at least "
             f"{MIN_REGION_ORDERS} orders when any has).")
    return ('<div class="verdict" id="verdict"><h2>Verdict</h2><ul>' + "".join(items) + "</ul>"
            f'<p class="rules">{_e(rules)}</p></div>')


# --------------------------------------------------------------------------- main entry
def _bar(enabled: bool, total: int) -> Any:
    """A tqdm bar on stderr for the report's steps (gone when closed), or None."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="report", unit="step", leave=False, file=sys.stderr)


def _from_result(d: Path, result: Any) -> dict[str, Any]:
    """What :func:`load_run` gives, from a run in memory: the small files (``kpis.json``,
    ``scenario.json``) from ``d`` when :meth:`save` wrote them there, else from ``result``;
    the records and time series of ``result`` (its first replication if it is replicated)."""
    first = result.results[0] if hasattr(result, "results") else result
    if (d / "kpis.json").is_file():
        kpis = load_kpis(d)
    else:
        from twin.results.runs import jsonable

        kpis = json.loads(json.dumps(jsonable(result.kpis)))
    f = d / "scenario.json"
    scenario = _read_json(f) if f.is_file() else json.loads(first.scenario.model_dump_json())
    return {"kpis": kpis, "scenario": scenario if isinstance(scenario, dict) else {}, "orders": first.orders,
            "timeseries": first.timeseries, "notes": []}


def write_report(run_dir: str | Path, result: Any = None, progress: bool = False) -> Path:
    """Write the PNG plots and ``report.html`` into a run directory.

    Files written in ``run_dir``: ``kpis_over_time.png``, ``backlog.png``,
    ``utilization.png``, ``lead_time.png``, ``network_map.png`` and ``report.html``
    (self-contained: inline CSS, images by relative file name).

    Every table and plot is drawn from a :class:`~twin.report.summary.RecordSummary` of the
    records (counts per warehouse and region, a lead-time histogram) and from the time series;
    with replications they are those of the first replication, and the page says so.

    Args:
        run_dir: A run's output directory (kpis.json required; scenario.json,
            orders.parquet, timeseries.parquet optional; missing data shows as n/a).
        result: The :class:`~twin.results.runs.SimulationResult` or
            :class:`~twin.results.runs.ReplicationResult` that was saved into ``run_dir``:
            its records and time series are used from memory instead of being read back
            (``twin run`` does this), and if its ``save(..., wait=False)`` is still writing
            ``orders.parquet`` this waits for it before returning (and raises its error).
            None: everything is read from the files.
        progress: A progress bar on stderr while the report is made.

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: If run_dir or its kpis.json does not exist (and no result is given).
        ValueError: If kpis.json is not a valid JSON object.
    """
    d = Path(run_dir)
    bar = _bar(progress, 3 + len(PLOT_FILES))
    try:
        return _write_report(d, result, bar)
    finally:
        if bar is not None:
            bar.close()
        wait = getattr(result, "wait_saved", None)
        if wait is not None:  # result.save(..., wait=False) may still be writing orders.parquet
            wait()


def _write_report(d: Path, result: Any, bar: Any) -> Path:
    def step() -> None:
        if bar is not None:
            bar.update(1)

    run = _from_result(d, result) if result is not None else load_run(d, orders_columns=ORDER_COLUMNS)
    kpis: dict[str, Any] = run["kpis"]
    scenario: dict[str, Any] = run["scenario"]
    ts: pd.DataFrame = run["timeseries"]
    notes: list[str] = list(run["notes"])
    scope = records_scope(kpis)
    # the records' tables and plots: of the replication whose records these are
    rec_kpis: Mapping[str, Any] = kpis
    if scope is not None and isinstance(kpis["replications"][0], Mapping):
        rec_kpis = kpis["replications"][0]
    # the risk events these records' run drew are its disruptions too: shaded like scripted ones
    scenario = realised_doc(scenario, rec_kpis.get("risk_events"))

    # the records, once, as counts: the tables and plots below never touch the 10M rows again
    names = list(plots.warehouse_table(scenario)["name"])
    util = rec_kpis.get("utilization")
    for w in [*(util.keys() if isinstance(util, Mapping) else []), *plots.per_warehouse_columns(ts, "backlog"),
              *plots.per_warehouse_columns(ts, "utilization")]:
        if str(w) not in names:
            names.append(str(w))
    summ = summarize_records(run["orders"], names, plots.region_table(scenario)["name"], scenario=scenario)
    del run
    step()

    name = str(scenario.get("name") or kpis.get("scenario") or d.name)
    description = str(scenario.get("description") or "")

    mean_util = util if isinstance(util, Mapping) else None
    makers = {
        "kpis_over_time.png": lambda p: plots.plot_kpis_over_time(ts, summ, p, title=name, scenario=scenario),
        "backlog.png": lambda p: plots.plot_backlog(ts, p, title=name, scenario=scenario),
        "utilization.png": lambda p: plots.plot_utilization(ts, p, title=name, scenario=scenario, mean=mean_util),
        "lead_time.png": lambda p: plots.plot_lead_time(summ, p, title=name),
        "network_map.png": lambda p: plots.plot_network_map(scenario, summ, p, title=name),
    }
    figures = []
    for fname, caption in PLOT_FILES:
        try:
            makers[fname](d / fname)
            figures.append(f'<figure><img src="{_e(fname)}" alt="{_e(caption)}">'
                           f"<figcaption>{_e(caption)}</figcaption></figure>")
        except Exception as e:  # noqa: BLE001 - one failed plot must not lose the whole report
            notes.append(f"plot {fname} failed: {type(e).__name__}: {e}")
        step()

    meta = []
    for label, key in (("Seed", "seed"), ("Engine", "engine")):
        if kpis.get(key) is not None:
            meta.append(f"{label}: <b>{_e(kpis[key])}</b>")
    # the policy that routed: a trained model or package (twin run --policy), else the scenario's
    routing_cfg = (scenario.get("policy") or {}).get("routing") or {}
    policy = kpis.get("policy") or routing_cfg.get("name")
    if policy:
        meta.append(f"Routing policy: <b>{_e(policy)}</b>")
    seeds = kpis.get("seeds")
    if isinstance(seeds, list) and seeds and kpis.get("seed") is None:
        meta.insert(0, f"Seeds: <b>{_e(', '.join(str(x) for x in seeds))}</b>")
    start = plots.scenario_start(scenario)
    if start is not None:
        meta.append(f"Start: <b>{start:%Y-%m-%d %H:%M}</b>")
    if _isnum(scenario.get("horizon_h")):
        meta.append(f"Horizon: <b>{_fmt(scenario['horizon_h'], 'number', 0)} h</b>")
    reps = kpis.get("replications")
    if isinstance(reps, list):
        meta.append(f"Replications: <b>{len(reps)}</b>")
    meta.append(f"Shipments recorded: <b>{summ.shipments_recorded:,}</b>"
                + (f" ({_e(scope)})" if scope is not None else ""))

    tag = f" ({_e(scope)})" if scope is not None else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Fulfillment Twin report: {_e(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Fulfillment Twin report: {_e(name)}</h1>",
        f'<p class="meta">{" · ".join(meta)}</p>',
        f'<p class="desc">{_e(description)}</p>' if description else "",
        verdict_html(verdict(summ, ts), start) if summ.shipments_recorded or len(ts) else "",
    ]
    if scope is not None:
        parts.append(f'<p class="note scope"><b>Tables and plots: {_e(scope)}.</b> KPI table: mean ± 95% CI '
                     f"over {len(reps)} replications. The per-warehouse and per-region tables and every plot "
                     "are drawn from that one replication's records and time series (the files in this "
                     "directory), not averaged over the replications.</p>")
    if notes:
        parts.append('<div class="note"><b>Notes</b><ul>' + "".join(f"<li>{_e(n)}</li>" for n in notes)
                     + "</ul></div>")
    wh_table = _warehouse_section(warehouse_summary(summ, ts, rec_kpis, scenario))
    rg_table = _region_section(region_summary(summ, scenario))
    step()
    parts += [
        "<h2>Key performance indicators" + (f" (mean ± 95% CI over {len(reps)} replications)" if scope else "")
        + "</h2>",
        _kpi_section(kpis),
        f"<h2>Warehouses{tag}</h2>",
        wh_table,
        f"<h2>Regions{tag}</h2>",
        rg_table,
        f"<h2>Plots{tag}</h2>",
        *figures,
        "</body></html>",
    ]
    out = d / "report.html"
    out.write_text("\n".join(p for p in parts if p) + "\n", encoding="utf-8")
    step()
    return out
