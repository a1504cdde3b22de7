"""Static PNG plots of a twin run: KPIs over time, backlog, utilisation, lead time, network map, comparison."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from twin.results.kpis import KPIS  # noqa: E402

__all__ = [
    "DPI",
    "MAIN_COMPARE_KPIS",
    "china_provinces_table",
    "region_table",
    "warehouse_table",
    "per_warehouse_columns",
    "order_lead_times",
    "plot_kpis_over_time",
    "plot_backlog",
    "plot_utilization",
    "plot_lead_time",
    "plot_network_map",
    "plot_compare",
]

DPI = 110

#: KPIs drawn by :func:`plot_compare` (in this order, when present), with their axis unit.
MAIN_COMPARE_KPIS: dict[str, str] = {k.name: k.axis_label for k in KPIS.values() if k.compare_plot}

_PER_WH = re.compile(r"^(?P<kind>[A-Za-z_]+)\[(?P<wh>.+)\]$")
_REGIONS_CSV = Path(__file__).resolve().parent.parent / "scenarios" / "china_regions.csv"


# --------------------------------------------------------------------------- helpers
def china_provinces_table() -> list[tuple[str, float, float, float]]:
    """China's province-level regions as ``(name, lat, lon, population_m)``.

    Uses ``scenarios.china_provinces()`` when it can be imported, else reads
    ``scenarios/china_regions.csv`` next to the ``twin`` package.

    Returns:
        One tuple per region, in the table's order.
    """
    try:
        from scenarios import china_provinces  # type: ignore[import-not-found]

        return [(str(n), float(a), float(o), float(p)) for n, a, o, p in china_provinces()]
    except Exception:  # noqa: BLE001 - fall back to the CSV whatever went wrong
        pass
    with open(_REGIONS_CSV, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["region"], float(r["lat"]), float(r["lon"]), float(r["population_m_2020"])) for r in rows]


def region_table(scenario: Mapping[str, Any] | None) -> pd.DataFrame:
    """The regions of a scenario dict as a table.

    Args:
        scenario: The scenario as loaded from ``scenario.json`` (may be None).

    Returns:
        DataFrame with columns ``name, lat, lon, weight`` (possibly empty). A
        ``{"preset": "china_provinces", "include": ...}`` entry is expanded.
    """
    cols = ["name", "lat", "lon", "weight"]
    regions = (scenario or {}).get("regions")
    rows: list[tuple[str, float, float, float]] = []
    if isinstance(regions, Mapping) and regions.get("preset") == "china_provinces":
        include = regions.get("include")
        rows = [r for r in china_provinces_table() if include is None or r[0] in include]
    elif isinstance(regions, Sequence) and not isinstance(regions, str):
        for r in regions:
            if isinstance(r, Mapping) and "name" in r:
                rows.append(
                    (str(r["name"]), _num(r.get("lat")), _num(r.get("lon")), _num(r.get("weight", 1.0)))
                )
    return pd.DataFrame(rows, columns=cols)


def warehouse_table(scenario: Mapping[str, Any] | None) -> pd.DataFrame:
    """The warehouses of a scenario dict as a table.

    Args:
        scenario: The scenario as loaded from ``scenario.json`` (may be None).

    Returns:
        DataFrame with columns ``name, lat, lon, cold_storage`` (possibly empty).
    """
    rows = []
    for w in (scenario or {}).get("warehouses") or []:
        if isinstance(w, Mapping) and "name" in w:
            rows.append((str(w["name"]), _num(w.get("lat")), _num(w.get("lon")), bool(w.get("cold_storage", False))))
    return pd.DataFrame(rows, columns=["name", "lat", "lon", "cold_storage"])


def per_warehouse_columns(ts: pd.DataFrame, kind: str) -> dict[str, str]:
    """Map warehouse name -> column name for the ``kind[W]`` columns of a timeseries.

    Args:
        ts: The timeseries table.
        kind: ``"backlog"``, ``"utilization"``, ``"servers"`` or ``"stock"``.

    Returns:
        Ordered dict ``{warehouse: column}``.
    """
    out: dict[str, str] = {}
    for c in ts.columns:
        m = _PER_WH.match(str(c))
        if m and m.group("kind") == kind:
            out[m.group("wh")] = str(c)
    return out


def order_lead_times(orders: pd.DataFrame) -> pd.Series:
    """Lead time of each fully delivered order: ``max(delivered_at) - min(created_at)``.

    An order counts only when every one of its shipments has status ``"delivered"``
    and a finite ``delivered_at``.

    Args:
        orders: The shipments table (``orders.parquet``).

    Returns:
        Series of lead times in hours indexed by order_id (empty if none).
    """
    need = {"order_id", "status", "created_at", "delivered_at", "promised_at", "region", "cost", "co2_kg",
            "warehouse"}
    if orders is None or orders.empty or not need <= set(orders.columns):
        return pd.Series(dtype=float, name="lead_time_h")
    from twin.results.kpis import order_table

    t = order_table(orders)
    lead = (t["delivered_at"] - t["created_at"])[t["status"] == "delivered"].astype(float)
    lead.name = "lead_time_h"
    return lead


def _num(v: Any) -> float:
    """A float, or NaN for None / non-numbers."""
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """Tight-layout, save at :data:`DPI` and close a figure."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
    except Exception:  # noqa: BLE001 - layout is cosmetic
        pass
    fig.savefig(p, dpi=DPI)
    plt.close(fig)
    return p


def _no_data(ax: plt.Axes, text: str = "no data") -> None:
    """Write a centred 'no data' note on an empty axis."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="0.4")


def _time(ts: pd.DataFrame) -> pd.Series:
    """The time axis of a timeseries (``time_h``, else the row number)."""
    if "time_h" in ts.columns:
        return pd.to_numeric(ts["time_h"], errors="coerce")
    return pd.Series(np.arange(len(ts), dtype=float), index=ts.index)


def _has_data(s: pd.Series) -> bool:
    """True if a series has at least one finite value."""
    v = pd.to_numeric(s, errors="coerce")
    return bool(np.isfinite(v.to_numpy(dtype=float, na_value=np.nan)).any())


def _smooth_window(ts: pd.DataFrame) -> int:
    """A rolling window of ~24 h for long hourly series, else 1 (no smoothing)."""
    t = _time(ts).dropna()
    if len(t) < 72:
        return 1
    step = float(np.nanmedian(np.diff(t.to_numpy(dtype=float)))) if len(t) > 1 else 1.0
    if not math.isfinite(step) or step <= 0:
        return 1
    return max(1, int(round(24.0 / step)))


# --------------------------------------------------------------------------- timeseries plots
def plot_kpis_over_time(ts: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Cumulative orders (created, delivered, lost), orders in flight, and on-time rate over time.

    Args:
        ts: The timeseries table (``timeseries.parquet``).
        path: Output PNG path.
        title: Optional title prefix (e.g. the scenario name).

    Returns:
        The PNG path.
    """
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=[3, 2])
    ts = ts if ts is not None else pd.DataFrame()
    t = _time(ts)
    drawn = False
    styles = {
        "orders_created": ("created (cumulative)", "-", "tab:blue"),
        "orders_delivered": ("delivered (cumulative)", "-", "tab:green"),
        "orders_lost": ("lost (cumulative)", "-", "tab:red"),
        "orders_in_flight": ("in flight (current)", "--", "tab:orange"),
    }
    for col, (label, ls, color) in styles.items():
        if col in ts.columns and _has_data(ts[col]):
            ax1.plot(t, pd.to_numeric(ts[col], errors="coerce"), ls, color=color, label=label)
            drawn = True
    if drawn:
        ax1.legend(loc="upper left")
    else:
        _no_data(ax1)
    ax1.set_ylabel("orders")
    ax1.set_title(f"{title + ': ' if title else ''}orders over time")
    ax1.grid(alpha=0.3)

    if "on_time_rate" in ts.columns and _has_data(ts["on_time_rate"]):
        ax2.plot(t, 100.0 * pd.to_numeric(ts["on_time_rate"], errors="coerce"), color="tab:purple",
                 label="on-time rate (cumulative, delivered orders)")
        ax2.set_ylim(0, 105)
        ax2.legend(loc="lower left")
    else:
        _no_data(ax2, "no deliveries yet")
    ax2.set_ylabel("on-time rate (%)")
    ax2.set_xlabel("time since scenario start (h)")
    ax2.set_title("on-time rate")
    ax2.grid(alpha=0.3)
    return _save(fig, path)


def _warehouse_panels(ts: pd.DataFrame, path: str | Path, top: str, top_label: str, top_title: str, bottom: str,
                      bottom_label: str, bottom_title: str, loc: str, series: Any = None, total: str | None = None,
                      ylim: tuple[float, float] | None = None, steps: bool = False) -> Path:
    """One line per warehouse of the ``top`` time-series kind (through ``series`` if given, with
    the ``total`` column dashed), and below it, when the table has them, the ``bottom`` kind."""
    ts = ts if ts is not None else pd.DataFrame()
    below = per_warehouse_columns(ts, bottom)
    nrows = 2 if below else 1
    fig, axes = plt.subplots(nrows, 1, figsize=(10, 3.8 * nrows + 0.5), sharex=True, squeeze=False)
    ax = axes[0][0]
    t = _time(ts)
    drawn = False
    for wh, col in per_warehouse_columns(ts, top).items():
        if _has_data(ts[col]):
            y = pd.to_numeric(ts[col], errors="coerce")
            ax.plot(t, series(y) if series is not None else y, label=wh)
            drawn = True
    if total is not None and total in ts.columns and _has_data(ts[total]):
        ax.plot(t, pd.to_numeric(ts[total], errors="coerce"), "k--", lw=1.2, label="total")
        drawn = True
    if drawn:
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.legend(loc=loc, fontsize="small", ncol=2)
    else:
        _no_data(ax)
    ax.set_ylabel(top_label)
    ax.set_title(top_title)
    ax.grid(alpha=0.3)
    if below:
        ax_s = axes[1][0]
        for wh, col in below.items():
            y = pd.to_numeric(ts[col], errors="coerce")
            if steps:
                ax_s.step(t, y, where="post", label=wh)
            else:
                ax_s.plot(t, y, label=wh)
        if steps:
            ax_s.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_s.set_ylabel(bottom_label)
        ax_s.set_title(bottom_title)
        ax_s.legend(loc=loc, fontsize="small", ncol=2)
        ax_s.grid(alpha=0.3)
    axes[-1][0].set_xlabel("time since scenario start (h)")
    return _save(fig, path)


def plot_backlog(ts: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Backlog (shipments routed but not shipped) per warehouse, each tick's time average (exact,
    from the engines' integrals; the records agree), and stock on hand when known.

    Args:
        ts: The timeseries table.
        path: Output PNG path.
        title: Optional title prefix.

    Returns:
        The PNG path.
    """
    return _warehouse_panels(ts, path, "backlog", "backlog (shipments, mean over each tick)",
                             f"{title + ': ' if title else ''}warehouse backlog (routed, not yet shipped)",
                             "stock", "stock on hand (units)", "stock on hand", "upper left", total="backlog")


def plot_utilization(ts: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Pick-server utilisation per warehouse over time, and pick servers available when known.

    Long hourly series are smoothed with a ~24 h rolling mean (said in the title).

    Args:
        ts: The timeseries table.
        path: Output PNG path.
        title: Optional title prefix.

    Returns:
        The PNG path.
    """
    win = _smooth_window(ts if ts is not None else pd.DataFrame())
    smooth = f" ({win}-tick rolling mean)" if win > 1 else ""

    def pct(u: pd.Series) -> pd.Series:
        u = 100.0 * u
        return u.rolling(win, min_periods=1).mean() if win > 1 else u

    return _warehouse_panels(ts, path, "utilization", "utilisation (%)",
                             f"{title + ': ' if title else ''}pick-server utilisation{smooth}", "servers",
                             "pick servers available", "pick servers (AGVs) available", "lower left", series=pct,
                             ylim=(0, 105), steps=True)


# --------------------------------------------------------------------------- orders plots
def _record_summary(orders: Any, scenario: Mapping[str, Any] | None = None) -> Any:
    """``orders`` (a records table or None) as a :class:`twin.report.summary.RecordSummary`."""
    from twin.report.summary import RecordSummary, summarize_records

    if isinstance(orders, RecordSummary):
        return orders
    return summarize_records(orders, warehouse_table(scenario)["name"], region_table(scenario)["name"])


def plot_lead_time(orders: Any, path: str | Path, title: str = "") -> Path:
    """Histogram of order lead time (fully delivered orders) with the mean and p95 marked.

    Args:
        orders: The shipments table (``orders.parquet``) or its
            :class:`~twin.report.summary.RecordSummary` (the histogram is its counts).
        path: Output PNG path.
        title: Optional title prefix.

    Returns:
        The PNG path.
    """
    summ = _record_summary(orders)
    fig, ax = plt.subplots(figsize=(9, 5))
    if summ.lead_n:
        n, edges = summ.lead_n, summ.lead_edges
        # the histogram's counts drawn as one weighted value per bin: the same bars as ax.hist of the data
        ax.hist(edges[:-1], bins=edges, weights=summ.lead_counts, color="tab:blue", alpha=0.75, edgecolor="white",
                label=f"{n} orders")
        mean, p95 = summ.lead_mean, summ.lead_p95
        ax.axvline(mean, color="tab:green", lw=2, label=f"mean {mean:.1f} h")
        ax.axvline(p95, color="tab:red", lw=2, ls="--", label=f"p95 {p95:.1f} h")
        ax.legend(loc="upper right")
    else:
        _no_data(ax, "no fully delivered orders")
    ax.set_xlabel("order lead time: last delivery - order creation (h)")
    ax.set_ylabel("orders")
    ax.set_title(f"{title + ': ' if title else ''}lead-time distribution")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_network_map(
    scenario: Mapping[str, Any] | None,
    orders: Any,
    path: str | Path,
    annotate_lost: bool = True,
    title: str = "",
) -> Path:
    """Map of the network on plain lon/lat axes.

    Warehouses are squares (cold-storage ones blue), regions circles sized by their
    order count (by their demand weight if there are no orders), and each
    warehouse -> region line has a width proportional to its shipment count.

    Args:
        scenario: The scenario dict (``scenario.json``).
        orders: The shipments table, its :class:`~twin.report.summary.RecordSummary`, or None.
        path: Output PNG path.
        annotate_lost: Write the count of lost orders next to regions that have any.
        title: Optional title prefix.

    Returns:
        The PNG path.
    """
    whs = warehouse_table(scenario).dropna(subset=["lat", "lon"])
    regs = region_table(scenario).dropna(subset=["lat", "lon"])
    fig, ax = plt.subplots(figsize=(10, 8))
    if whs.empty and regs.empty:
        _no_data(ax, "no coordinates in scenario")
        return _save(fig, path)

    summ = _record_summary(orders, scenario)
    w_at, r_at = summ.warehouse_index(), summ.region_index()
    # shipments per lane (observed lanes only), orders and lost orders per region: from the counts
    flows = pd.Series({(w, r): int(summ.flows[i, j]) for w, i in w_at.items() for r, j in r_at.items()
                       if summ.flows[i, j] > 0}, dtype=float)
    order_count = (pd.Series({r: int(summ.rg_orders[j]) for r, j in r_at.items()}, dtype=float)
                   if summ.has_orders else pd.Series(dtype=float))
    lost = pd.Series({r: int(summ.rg_lost[j]) for r, j in r_at.items() if summ.rg_lost[j] > 0}, dtype=float)

    wpos = {r.name: (r.lon, r.lat) for r in whs.itertuples()}
    rpos = {r.name: (r.lon, r.lat) for r in regs.itertuples()}
    if len(flows):
        fmax = float(flows.max())
        segments, widths = [], []
        for (wh, rg), n in flows.items():
            if wh in wpos and rg in rpos:
                segments.append([wpos[wh], rpos[rg]])
                widths.append(0.4 + 7.0 * float(n) / fmax)
        if segments:  # one artist for every lane (a national network has hundreds)
            from matplotlib.collections import LineCollection

            ax.add_collection(LineCollection(segments, linewidths=widths, colors="tab:gray", alpha=0.55, zorder=1,
                                             capstyle="round"), autolim=True)

    if not regs.empty:
        if len(order_count):
            size_val = regs["name"].map(order_count).fillna(0.0).astype(float)
            size_label = "orders"
        else:
            size_val = regs["weight"].fillna(1.0).astype(float)
            size_label = "demand weight"
        smax = float(size_val.max()) if len(size_val) and size_val.max() > 0 else 1.0
        sizes = 20.0 + 600.0 * size_val / smax
        ax.scatter(regs["lon"], regs["lat"], s=sizes, c="tab:orange", alpha=0.6, edgecolors="k",
                   linewidths=0.5, zorder=2, label=f"region (area ~ {size_label})")
        small = len(regs) > 12
        for r in regs.itertuples():
            ax.annotate(r.name, (r.lon, r.lat), xytext=(4, 4), textcoords="offset points",
                        fontsize=7 if small else 9, zorder=4)
            n_lost = int(lost.get(r.name, 0)) if len(lost) else 0
            if annotate_lost and n_lost > 0:
                ax.annotate(f"lost {n_lost}", (r.lon, r.lat), xytext=(4, -10), textcoords="offset points",
                            fontsize=7 if small else 8, color="tab:red", zorder=4)

    if not whs.empty:
        colors = ["tab:blue" if c else "tab:green" for c in whs["cold_storage"]]
        ax.scatter(whs["lon"], whs["lat"], marker="s", s=140, c=colors, edgecolors="k", zorder=3)
        for r in whs.itertuples():
            ax.annotate(r.name, (r.lon, r.lat), xytext=(6, -12), textcoords="offset points", fontsize=9,
                        fontweight="bold", zorder=4)
        # legend proxies
        if not whs["cold_storage"].all():
            ax.scatter([], [], marker="s", s=80, c="tab:green", edgecolors="k", label="warehouse")
        if whs["cold_storage"].any():
            ax.scatter([], [], marker="s", s=80, c="tab:blue", edgecolors="k", label="warehouse (cold storage)")
    if len(flows):
        ax.plot([], [], color="tab:gray", lw=4, alpha=0.55, label="shipment flow (width ~ shipments)")

    lat_all = pd.concat([whs["lat"], regs["lat"]]).astype(float)
    mid_lat = float(lat_all.mean()) if len(lat_all) else 0.0
    cos = math.cos(math.radians(mid_lat))
    if cos > 0.05:
        ax.set_aspect(1.0 / cos, adjustable="datalim")
    ax.margins(0.08)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    n_ship = int(flows.sum()) if len(flows) else 0
    ax.set_title(f"{title + ': ' if title else ''}network map ({n_ship} shipments)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small", markerscale=0.6)
    return _save(fig, path)


# --------------------------------------------------------------------------- comparison
def plot_compare(
    df: pd.DataFrame,
    path: str | Path,
    kpis: Sequence[str] | None = None,
    ci95: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Small multiples: one panel per main KPI, one bar per run (first run's bar hatched as baseline).

    Args:
        df: The table from :func:`twin.results.compare.compare_runs` (rows = KPIs, run columns
            plus ``Δ ...`` columns, which are ignored here).
        path: Output PNG path.
        kpis: KPIs to draw (default :data:`MAIN_COMPARE_KPIS` present in ``df``).
        ci95: Optional ``{run label: {kpi: half-width}}`` drawn as error bars.

    Returns:
        The PNG path.
    """
    runs = [c for c in df.columns if not str(c).startswith(("Δ ", "±"))]
    if kpis is None:
        kpis = [k for k in MAIN_COMPARE_KPIS if k in df.index]
        if not kpis:
            kpis = [k for k in df.index if not str(k).startswith("utilization[")][:10]
    kpis = [k for k in kpis if k in df.index]
    if not kpis or not runs:
        fig, ax = plt.subplots(figsize=(6, 3))
        _no_data(ax, "no KPIs to compare")
        ax.set_axis_off()
        return _save(fig, path)
    ncols = min(5, len(kpis))
    nrows = math.ceil(len(kpis) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols + 0.6, 3.0 * nrows + 0.9), squeeze=False)
    cmap = plt.get_cmap("tab10")
    x = np.arange(len(runs))
    for i, k in enumerate(kpis):
        ax = axes[i // ncols][i % ncols]
        vals = pd.to_numeric(df.loc[k, runs], errors="coerce").to_numpy(dtype=float)
        err = None
        if ci95:
            e = [_num((ci95.get(str(r)) or {}).get(k)) for r in runs]
            if any(math.isfinite(v) for v in e):
                err = np.nan_to_num(np.asarray(e, dtype=float), nan=0.0)
        bars = ax.bar(x, np.nan_to_num(vals, nan=0.0), color=[cmap(j % 10) for j in range(len(runs))],
                      yerr=err, capsize=3, edgecolor="k", linewidth=0.5)
        bars[0].set_hatch("//")
        for j, v in enumerate(vals):
            top = (v + (err[j] if err is not None else 0.0)) if math.isfinite(v) else 0.0
            ax.annotate("n/a" if not math.isfinite(v) else f"{v:.3g}", (x[j], top),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
        ax.set_title(k, fontsize=9)
        ax.set_ylabel(MAIN_COMPARE_KPIS.get(k, ""), fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels([str(r) for r in runs], rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="y")
        ax.margins(y=0.15)
    for j in range(len(kpis), nrows * ncols):
        axes[j // ncols][j % ncols].set_axis_off()
    fig.suptitle(f"KPI comparison (baseline hatched: {runs[0]})", fontsize=11)
    return _save(fig, path)
