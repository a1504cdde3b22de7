"""Static PNG plots of a twin run: hourly throughput and on-time rate, backlog, hourly utilisation (every
time plot with the scenario's disruption windows shaded and calendar dates when it has a ``start``), lead
time, the network map on a basemap of China, comparison. Each plot function returns its Figure."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from twin.results.kpis import KPIS  # noqa: E402

__all__ = [
    "DPI",
    "MAIN_COMPARE_KPIS",
    "china_provinces_table",
    "region_table",
    "warehouse_table",
    "per_warehouse_columns",
    "order_lead_times",
    "TimeAxis",
    "Window",
    "china_basemap",
    "disruption_windows",
    "hourly_on_time_rate",
    "scenario_start",
    "shade_windows",
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


def _figure(figsize: tuple[float, float], nrows: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """A :class:`~matplotlib.figure.Figure` of its own (no pyplot state) and its axes, a 2-D
    array when ``squeeze=False``."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, 1, **kw)


def _save(fig: Figure, path: str | Path | None, layout: bool = True) -> Figure:
    """Tight-layout (unless ``layout`` is False) and save a figure at :data:`DPI` when a path is given."""
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if layout:
            try:
                fig.tight_layout()
            except Exception:  # noqa: BLE001 - layout is cosmetic
                pass
        fig.savefig(p, dpi=DPI)
    plt.close(fig)  # a no-op for a Figure that pyplot does not manage
    return fig


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


# --------------------------------------------------------------------------- time axes and windows
def scenario_start(scenario: Mapping[str, Any] | None) -> datetime | None:
    """The scenario's ``start`` (the calendar time of t = 0) as a datetime, or None."""
    v = (scenario or {}).get("start")
    if isinstance(v, datetime):
        return v
    if isinstance(v, str) and v:
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class TimeAxis:
    """Hours from the scenario start on a plot's x axis: calendar dates when ``start`` is known
    (matplotlib date numbers: days), else the hours themselves."""

    start: datetime | None = None

    def x(self, hours: Any) -> Any:
        """Hours from the start as x coordinates."""
        h = np.asarray(hours, dtype=float)
        if self.start is None:
            return h
        return mdates.date2num(self.start) + h / 24.0

    @property
    def label(self) -> str:
        if self.start is None:
            return "time since scenario start (h)"
        return f"date and time (scenario start {self.start:%Y-%m-%d %H:%M})"

    def format(self, ax: plt.Axes) -> None:
        """Dates on ``ax``'s x axis when ``start`` is known."""
        if self.start is not None:
            locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


@dataclass(frozen=True)
class Window:
    """A disruption or scripted weather event of the scenario, ``[start_h, end_h)``."""

    kind: str  #: the disruption's ``type``, or ``weather`` for a scripted weather event
    target: str  #: what it hits: a warehouse, a carrier, regions
    start_h: float
    end_h: float

    @property
    def label(self) -> str:
        return f"{self.kind.replace('_', ' ')}: {self.target}"


_WINDOW_COLORS = {"warehouse_outage": "tab:red", "carrier_capacity_loss": "tab:purple", "agv_breakdown": "tab:brown",
                  "cold_chain_failure": "tab:cyan", "demand_surge": "tab:olive", "weather": "tab:blue"}
#: Windows named by a text label on a plot (all are shaded).
MAX_WINDOW_LABELS = 8


def _names(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, Sequence):
        return ", ".join(str(x) for x in v) if len(v) <= 4 else f"{', '.join(str(x) for x in v[:3])} +{len(v) - 3}"
    return "?"


def disruption_windows(scenario: Mapping[str, Any] | None) -> list[Window]:
    """The scenario's disruptions, then its scripted weather events, as :class:`Window` s."""
    out = []
    for d in (scenario or {}).get("disruptions") or []:
        if not isinstance(d, Mapping) or "start_h" not in d or "end_h" not in d:
            continue
        kind = str(d.get("type", "disruption"))
        if "warehouse" in d:
            target = str(d["warehouse"])
        elif "carrier" in d:
            target = str(d["carrier"])
        else:
            target = "regions " + _names(d.get("regions", "all"))
        if "fraction" in d:
            target += f" -{100 * _num(d['fraction']):.0f}%"
        if "multiplier" in d:
            target += f" x{_num(d['multiplier']):g}"
        out.append(Window(kind, target, _num(d["start_h"]), _num(d["end_h"])))
    weather = (scenario or {}).get("weather") or {}
    for e in (weather.get("events") if isinstance(weather, Mapping) else None) or []:
        if isinstance(e, Mapping) and "start_h" in e and "end_h" in e:
            what = "lanes closed, " if e.get("closes_lanes") else ""
            out.append(Window("weather", f"{e.get('name', '?')} ({what}{_names(e.get('regions', []))})",
                              _num(e["start_h"]), _num(e["end_h"])))
    return out


def shade_windows(ax: plt.Axes, windows: Sequence[Window], axis: TimeAxis, labels: bool = True) -> list[Any]:
    """Shade each window on ``ax`` (an ``axvspan`` whose gid is ``disruption:<label>``), with its
    label in a strip above the axes when ``labels`` (the first :data:`MAX_WINDOW_LABELS`, in two
    rows; the title moves up to make room)."""
    spans = []
    rows = min(2, len(windows)) if labels else 0
    for i, w in enumerate(windows):
        x0, x1 = float(axis.x(w.start_h)), float(axis.x(w.end_h))
        color = _WINDOW_COLORS.get(w.kind, "tab:gray")
        p = ax.axvspan(x0, x1, color=color, alpha=0.13, lw=0, zorder=0)
        p.set_gid(f"disruption:{w.label}")
        spans.append(p)
        if labels and i < MAX_WINDOW_LABELS:
            ax.text(max(x0, ax.get_xlim()[0]), 1.012 + 0.045 * (i % 2), w.label, transform=ax.get_xaxis_transform(),
                    fontsize=7, va="bottom", ha="left", color=color, clip_on=False, zorder=5, gid="window-label")
    if rows:
        ax.set_title(ax.get_title(), pad=6 + 11 * rows)
    return spans


def _time_setup(axes: Sequence[plt.Axes], scenario: Mapping[str, Any] | None) -> TimeAxis:
    """Shade the windows on every axes (labels on the first), dates or hours on the x axes."""
    axis = TimeAxis(scenario_start(scenario))
    windows = disruption_windows(scenario)
    for i, ax in enumerate(axes):
        shade_windows(ax, windows, axis, labels=i == 0)
        axis.format(ax)
    axes[-1].set_xlabel(axis.label)
    return axis


def _steps(ax: plt.Axes, axis: TimeAxis, values: np.ndarray, **kw: Any) -> None:
    """Hourly values drawn as steps over their hours ``[h, h + 1)``."""
    v = np.asarray(values, dtype=float)
    if len(v):
        ax.plot(axis.x(np.arange(len(v) + 1)), np.r_[v, v[-1]], drawstyle="steps-post", **kw)


# --------------------------------------------------------------------------- timeseries plots
def hourly_on_time_rate(summ: Any) -> np.ndarray:
    """Per hour: of the orders delivered in that hour, the share on time (NaN for no deliveries)."""
    d = np.asarray(summ.delivered_h, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, np.asarray(summ.on_time_h, dtype=float) / np.where(d > 0, d, 1.0), np.nan)


def plot_kpis_over_time(ts: pd.DataFrame, orders: Any = None, path: str | Path | None = None, title: str = "",
                        scenario: Mapping[str, Any] | None = None) -> Figure:
    """Per hour: orders created, shipments shipped and orders delivered; orders in flight; the
    on-time rate of the orders delivered in each hour (not cumulative). Disruption windows shaded.

    Args:
        ts: The timeseries table (``timeseries.parquet``).
        orders: The records, or their :class:`~twin.report.summary.RecordSummary` (the hourly counts).
        path: Output PNG path (None: not saved).
        title: Optional title prefix (e.g. the scenario name).
        scenario: The scenario dict: its windows and ``start`` (calendar dates on the x axis).

    Returns:
        The figure.
    """
    summ = _record_summary(orders, scenario)
    fig, (ax1, ax2, ax3) = _figure((12.5, 9.5), 3, sharex=True, height_ratios=[3, 2, 2.4])
    ts = ts if ts is not None else pd.DataFrame()
    axis = TimeAxis(scenario_start(scenario))
    if summ.n_hours and (summ.created_h.sum() or summ.shipped_h.sum()):
        _steps(ax1, axis, summ.shipped_h, color="tab:orange", lw=0.9, alpha=0.7,
               label="shipments shipped (left on a departure)")
        _steps(ax1, axis, summ.created_h, color="tab:blue", lw=1.6, label="orders created")
        _steps(ax1, axis, summ.delivered_h, color="tab:green", lw=1.6, label="orders delivered (last shipment)")
        _legend_right(ax1)
    else:
        _no_data(ax1)
    ax1.set_ylabel("per hour")
    ax1.set_title(f"{title + ': ' if title else ''}throughput per hour (from the records)")
    ax1.grid(alpha=0.3)

    if "orders_in_flight" in ts.columns and _has_data(ts["orders_in_flight"]):
        ax2.plot(axis.x(_time(ts)), pd.to_numeric(ts["orders_in_flight"], errors="coerce"), color="tab:red",
                 label="orders in flight\n(end of each tick)")
        _legend_right(ax2)
    else:
        _no_data(ax2)
    ax2.set_ylabel("orders")
    ax2.set_title("orders in flight")
    ax2.grid(alpha=0.3)

    rate = hourly_on_time_rate(summ)
    if np.isfinite(rate).any():
        _steps(ax3, axis, 100.0 * rate, color="tab:purple", label="on time, of the orders\ndelivered that hour")
        if "on_time_rate" in ts.columns and _has_data(ts["on_time_rate"]):
            ax3.plot(axis.x(_time(ts)), 100.0 * pd.to_numeric(ts["on_time_rate"], errors="coerce"), "--",
                     color="0.5", lw=1, label="cumulative, for reference")
        ax3.set_ylim(0, 105)
        _legend_right(ax3)
    else:
        _no_data(ax3, "no deliveries yet")
    ax3.set_ylabel("on time (%)")
    ax3.set_title("on-time rate per hour of delivery")
    ax3.grid(alpha=0.3)
    _time_setup([ax1, ax2, ax3], scenario)
    return _save(fig, path)


def _warehouse_panels(ts: pd.DataFrame, path: str | Path | None, scenario: Mapping[str, Any] | None,
                      top: dict[str, tuple[np.ndarray, np.ndarray, str]], top_label: str, top_title: str,
                      bottom: str, bottom_label: str, bottom_title: str, total: Any = None,
                      ylim: tuple[float, float] | None = None, steps: bool = False,
                      hline: float | None = None) -> Figure:
    """One line per warehouse, ``top[w] = (time_h knots, values on [knot_i, knot_i+1), label)``,
    ``total`` the same dashed; below it, when the table has them, the ``bottom`` kind."""
    ts = ts if ts is not None else pd.DataFrame()
    below = per_warehouse_columns(ts, bottom)
    nrows = 2 if below else 1
    fig, axes = _figure((12.5, 3.8 * nrows + 0.8), nrows, sharex=True, squeeze=False)
    axs = [a[0] for a in axes]
    ax = axs[0]
    axis = TimeAxis(scenario_start(scenario))
    drawn = False
    for knots, values, label in [*top.values(), *([total] if total is not None else [])]:
        if np.isfinite(values).any():
            kw = {"color": "k", "ls": "--", "lw": 1.2} if label == "total" else {}
            ax.plot(axis.x(knots), np.r_[values, values[-1]], drawstyle="steps-post", label=label, **kw)
            drawn = True
    if drawn:
        if ylim is not None:
            ax.set_ylim(*ylim)
        if hline is not None:
            ax.axhline(hline, color="tab:red", lw=0.8, ls=":")
        _legend_right(ax)
    else:
        _no_data(ax)
    ax.set_ylabel(top_label)
    ax.set_title(top_title)
    ax.grid(alpha=0.3)
    if below:
        ax_s = axs[1]
        t = axis.x(_time(ts))
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
        _legend_right(ax_s)
        ax_s.grid(alpha=0.3)
    _time_setup(axs, scenario)
    return _save(fig, path)


def _legend_right(ax: plt.Axes) -> None:
    """The legend outside the axes, on the right (one line per warehouse fits there)."""
    n = len(ax.get_legend_handles_labels()[1])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="x-small" if n > 12 else "small",
              ncol=1 if n <= 18 else 2, borderaxespad=0)


def _tick_series(ts: pd.DataFrame, col: str) -> tuple[np.ndarray, np.ndarray]:
    """A per-tick column as (knots ``[0, t_1, ..., t_n]``, values over each tick)."""
    t = _time(ts).to_numpy(dtype=float)
    return np.r_[0.0, t], pd.to_numeric(ts[col], errors="coerce").to_numpy(dtype=float)


def plot_backlog(ts: pd.DataFrame, path: str | Path | None = None, title: str = "",
                 scenario: Mapping[str, Any] | None = None) -> Figure:
    """Backlog (shipments routed but not shipped) per warehouse, each tick's time average (exact,
    from the engines' integrals; the records agree), and stock on hand when known; disruption
    windows shaded, dates on the x axis when the scenario has a ``start``.

    Returns:
        The figure (saved to ``path`` if given).
    """
    ts = ts if ts is not None else pd.DataFrame()
    top = {w: (*_tick_series(ts, c), w) for w, c in per_warehouse_columns(ts, "backlog").items()}
    total = (*_tick_series(ts, "backlog"), "total") if "backlog" in ts.columns else None
    return _warehouse_panels(ts, path, scenario, top, "backlog (shipments, mean over each tick)",
                             f"{title + ': ' if title else ''}warehouse backlog (routed, not yet shipped)",
                             "stock", "stock on hand (units)", "stock on hand", total=total)


def plot_utilization(ts: pd.DataFrame, path: str | Path | None = None, title: str = "",
                     scenario: Mapping[str, Any] | None = None, mean: Mapping[str, float] | None = None) -> Figure:
    """Pick utilisation per warehouse over each hour (busy over available pick-server hours), each
    warehouse's peak hour beside its mean in the legend, the :data:`~twin.report.summary.PICK_BOUND`
    line, and pick servers available when known; disruption windows shaded.

    Args:
        ts: The timeseries table.
        path: Output PNG path (None: not saved).
        title: Optional title prefix.
        scenario: The scenario dict (windows, ``start``).
        mean: Each warehouse's mean utilisation to show (the KPI); else the mean of its hours.

    Returns:
        The figure.
    """
    from twin.report.summary import PICK_BOUND, hourly_utilization

    ts = ts if ts is not None else pd.DataFrame()
    util = hourly_utilization(ts)
    top = {}
    for w in util.columns:
        u = util[w].to_numpy(dtype=float)
        m = _num((mean or {}).get(w))
        m = m if math.isfinite(m) else (float(np.nanmean(u)) if np.isfinite(u).any() else math.nan)
        peak = float(np.nanmax(u)) if np.isfinite(u).any() else math.nan
        top[w] = (np.arange(len(u) + 1, dtype=float), 100.0 * u, f"{w} (mean {100 * m:.0f}%, peak hour {100 * peak:.0f}%)")
    return _warehouse_panels(ts, path, scenario, top, "utilisation over the hour (%)",
                             f"{title + ': ' if title else ''}pick utilisation per hour "
                             f"(dotted: {100 * PICK_BOUND:.0f}%, capacity binds)", "servers",
                             "pick servers available", "pick servers (AGVs) available",
                             ylim=(0, 105), steps=True, hline=100 * PICK_BOUND)


# --------------------------------------------------------------------------- orders plots
def _record_summary(orders: Any, scenario: Mapping[str, Any] | None = None) -> Any:
    """``orders`` (a records table or None) as a :class:`twin.report.summary.RecordSummary`."""
    from twin.report.summary import RecordSummary, summarize_records

    if isinstance(orders, RecordSummary):
        return orders
    return summarize_records(orders, warehouse_table(scenario)["name"], region_table(scenario)["name"],
                             scenario=scenario)


def plot_lead_time(orders: Any, path: str | Path | None = None, title: str = "") -> Figure:
    """Histogram of order lead time (fully delivered orders) with the mean and p95 marked.

    Args:
        orders: The shipments table (``orders.parquet``) or its
            :class:`~twin.report.summary.RecordSummary` (the histogram is its counts).
        path: Output PNG path (None: not saved).
        title: Optional title prefix.

    Returns:
        The figure.
    """
    summ = _record_summary(orders)
    fig, ax = _figure((9, 5))
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


# --------------------------------------------------------------------------- network map
_BASEMAP = Path(__file__).resolve().parent / "data" / "china_basemap.json"
#: Regions labelled on the map: the largest by orders (and any with lost orders).
MAP_REGION_LABELS = 12


@lru_cache(maxsize=1)
def china_basemap() -> dict[str, Any]:
    """The map's land: ``{"china": [ring], "land": [{"name", "rings"}], "extent", "source", "licence"}``,
    rings of (lon, lat); Natural Earth 1:110m countries (public domain), shipped in
    ``twin/report/data/china_basemap.json`` (nothing is downloaded)."""
    return json.loads(_BASEMAP.read_text(encoding="utf-8"))


def _draw_basemap(ax: plt.Axes) -> None:
    from matplotlib.collections import PolyCollection

    bm = china_basemap()
    ax.set_facecolor("#e3edf5")  # sea
    land = [r for c in bm["land"] for r in c["rings"]]
    ax.add_collection(PolyCollection(land, facecolors="#eeeeea", edgecolors="#b8b8b0", linewidths=0.5, zorder=0,
                                     gid="basemap:land"), autolim=False)
    ax.add_collection(PolyCollection(bm["china"], facecolors="#fbf6e6", edgecolors="#6f604c", linewidths=1.0,
                                     zorder=0.5, gid="basemap:china"), autolim=False)


def _place_labels(ax: plt.Axes, items: Sequence[dict[str, Any]], obstacles: list[Any]) -> list[Any]:
    """Place each label near its point where it overlaps no label, marker or legend placed before
    (``obstacles``, display-space bounding boxes): a few offsets at growing distances, with a
    leader line beyond the first ring. A label that fits nowhere is dropped unless ``required``
    (then it takes its last candidate). Returns the texts placed."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []
    dirs = [(1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1.3), (0, -1.3), (1.3, 0), (-1.3, 0)]
    for it in items:
        best = None
        for ring, r in enumerate((5.0, 11.0, 19.0, 30.0)):
            for dx, dy in dirs:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                arrow = {"arrowstyle": "-", "color": "0.2", "lw": 0.8, "shrinkA": 1, "shrinkB": 1} if ring else None
                t = ax.annotate(it["text"], it["xy"], xytext=(dx * r + it.get("pad", 0) * np.sign(dx),
                                                               dy * r + it.get("pad", 0) * np.sign(dy)),
                                textcoords="offset points", ha=ha, va=va, arrowprops=arrow, zorder=6,
                                annotation_clip=False, **it.get("style", {}))
                bb = t.get_window_extent(renderer).expanded(1.06, 1.12)
                inside = frame.x0 <= bb.x0 and bb.x1 <= frame.x1 and frame.y0 <= bb.y0 and bb.y1 <= frame.y1
                if inside and not any(bb.overlaps(o) for o in obstacles):
                    best = (t, bb)
                    break
                if best is None and it.get("required") and ring == 3 and (dx, dy) == dirs[-1]:
                    best = (t, bb)  # nowhere free: the last try stays
                    break
                t.remove()
            if best is not None:
                break
        if best is not None:
            t, bb = best
            t.set_gid("label:" + it["kind"])
            obstacles.append(bb)
            placed.append(t)
    return placed


def plot_network_map(
    scenario: Mapping[str, Any] | None,
    orders: Any,
    path: str | Path | None = None,
    annotate_lost: bool = True,
    title: str = "",
) -> Figure:
    """The network on a basemap of China (:func:`china_basemap`, shipped with the package).

    Warehouses are squares sized by their shipments (cold-storage ones blue), regions circles
    sized by their order count (by their demand weight if there are no orders), and each
    warehouse -> region lane a line whose width is its shipment count. Every warehouse is labelled,
    and the :data:`MAP_REGION_LABELS` largest regions (and those with lost orders) where a label
    fits without overlapping another label, a marker or the legend.

    Args:
        scenario: The scenario dict (``scenario.json``).
        orders: The shipments table, its :class:`~twin.report.summary.RecordSummary`, or None.
        path: Output PNG path (None: not saved).
        annotate_lost: Add the count of lost orders to the labels of regions that have any.
        title: Optional title prefix.

    Returns:
        The figure.
    """
    whs = warehouse_table(scenario).dropna(subset=["lat", "lon"])
    regs = region_table(scenario).dropna(subset=["lat", "lon"])
    fig, ax = _figure((11, 8.4))
    if whs.empty and regs.empty:
        _no_data(ax, "no coordinates in scenario")
        return _save(fig, path)

    summ = _record_summary(orders, scenario)
    w_at, r_at = summ.warehouse_index(), summ.region_index()
    flows = pd.Series({(w, r): int(summ.flows[i, j]) for w, i in w_at.items() for r, j in r_at.items()
                       if summ.flows[i, j] > 0}, dtype=float)
    order_count = (pd.Series({r: int(summ.rg_orders[j]) for r, j in r_at.items()}, dtype=float)
                   if summ.has_orders else pd.Series(dtype=float))
    lost = pd.Series({r: int(summ.rg_lost[j]) for r, j in r_at.items() if summ.rg_lost[j] > 0}, dtype=float)
    shipments = pd.Series({w: int(summ.wh_shipments[i]) for w, i in w_at.items()}, dtype=float)

    # the frame: China, widened to any point outside it; lon scaled by cos(lat) (equirectangular)
    x0, x1, y0, y1 = 73.0, 135.5, 17.5, 54.0
    lon = pd.concat([whs["lon"], regs["lon"]]).astype(float)
    lat = pd.concat([whs["lat"], regs["lat"]]).astype(float)
    x0, x1 = min(x0, float(lon.min()) - 2), max(x1, float(lon.max()) + 2)
    y0, y1 = min(y0, float(lat.min()) - 2), max(y1, float(lat.max()) + 2)
    _draw_basemap(ax)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1.0 / max(0.05, math.cos(math.radians((y0 + y1) / 2))), adjustable="box")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.06, top=0.94)

    wpos = {r.name: (r.lon, r.lat) for r in whs.itertuples()}
    rpos = {r.name: (r.lon, r.lat) for r in regs.itertuples()}
    if len(flows):
        fmax = float(flows.max())
        segments, widths = [], []
        for (wh, rg), n in flows.items():
            if wh in wpos and rg in rpos:
                segments.append([wpos[wh], rpos[rg]])
                widths.append(0.3 + 6.0 * float(n) / fmax)
        if segments:  # one artist for every lane (a national network has hundreds)
            from matplotlib.collections import LineCollection

            ax.add_collection(LineCollection(segments, linewidths=widths, colors="#5a6b7b", alpha=0.45, zorder=1,
                                             capstyle="round", gid="lanes"), autolim=False)

    markers: list[tuple[float, float, float]] = []  # lon, lat, marker size (points^2)
    r_sizes = pd.Series(dtype=float)
    if not regs.empty:
        if len(order_count):
            size_val = regs["name"].map(order_count).fillna(0.0).astype(float)
            size_label = "orders"
        else:
            size_val = regs["weight"].fillna(1.0).astype(float)
            size_label = "demand weight"
        smax = float(size_val.max()) if len(size_val) and size_val.max() > 0 else 1.0
        r_sizes = pd.Series((15.0 + 420.0 * size_val / smax).to_numpy(), index=regs["name"].to_numpy())
        ax.scatter(regs["lon"], regs["lat"], s=r_sizes.to_numpy(), c="tab:orange", alpha=0.65, edgecolors="k",
                   linewidths=0.5, zorder=2, label=f"region (area ~ {size_label})")
        markers += [(r.lon, r.lat, float(r_sizes[r.name])) for r in regs.itertuples()]
    w_sizes = pd.Series(dtype=float)
    if not whs.empty:
        sh = whs["name"].map(shipments).fillna(0.0).astype(float)
        smax = float(sh.max()) if sh.max() > 0 else 1.0
        w_sizes = pd.Series((50.0 + 330.0 * sh / smax).to_numpy(), index=whs["name"].to_numpy())
        colors = ["tab:blue" if c else "tab:green" for c in whs["cold_storage"]]
        ax.scatter(whs["lon"], whs["lat"], marker="s", s=w_sizes.to_numpy(), c=colors, edgecolors="k", zorder=3)
        markers += [(r.lon, r.lat, float(w_sizes[r.name])) for r in whs.itertuples()]
        if not whs["cold_storage"].all():
            ax.scatter([], [], marker="s", s=80, c="tab:green", edgecolors="k", label="warehouse (area ~ shipments)")
        if whs["cold_storage"].any():
            ax.scatter([], [], marker="s", s=80, c="tab:blue", edgecolors="k", label="warehouse, cold storage")
    if len(flows):
        ax.plot([], [], color="#5a6b7b", lw=4, alpha=0.45, label="lane (width ~ shipments)")
    n_ship = int(flows.sum()) if len(flows) else 0
    ax.set_title(f"{title + ': ' if title else ''}network map ({n_ship:,} shipments)")
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.grid(alpha=0.25, lw=0.5)
    leg = ax.legend(loc="lower right", fontsize="small", markerscale=0.6, framealpha=0.9)
    ax.text(0.005, 0.005, "basemap: Natural Earth 1:110m (public domain)", transform=ax.transAxes, fontsize=6,
            color="0.45", ha="left", va="bottom")

    # labels: warehouses first (all of them), then the largest regions, none overlapping
    renderer = fig.canvas.get_renderer()
    ax.apply_aspect()
    px = fig.dpi / 72.0
    obstacles = [leg.get_window_extent(renderer)]
    for mx, my, s in markers:
        cx, cy = ax.transData.transform((mx, my))
        half = 0.5 * math.sqrt(s) * px
        obstacles.append(Bbox.from_extents(cx - half, cy - half, cx + half, cy + half))
    items = [{"text": r.name, "xy": (r.lon, r.lat), "kind": "warehouse", "required": True,
              "pad": 0.5 * math.sqrt(float(w_sizes.get(r.name, 50.0))),
              "style": {"fontsize": 9, "fontweight": "bold", "color": "#123"}} for r in whs.itertuples()]
    ranked = sorted(regs.itertuples(), key=lambda r: -float(r_sizes.get(r.name, 0.0)))
    for k, r in enumerate(ranked):
        n_lost = int(lost.get(r.name, 0)) if len(lost) else 0
        if k >= MAP_REGION_LABELS and not (annotate_lost and n_lost):
            continue
        lost_txt = f" ({n_lost:,} lost)" if annotate_lost and n_lost else ""
        items.append({"text": r.name + lost_txt, "xy": (r.lon, r.lat), "kind": "region",
                      "pad": 0.5 * math.sqrt(float(r_sizes.get(r.name, 15.0))),
                      "style": {"fontsize": 7.5, "color": "tab:red" if lost_txt else "#333"}})
    _place_labels(ax, items, obstacles)
    return _save(fig, path, layout=False)


# --------------------------------------------------------------------------- comparison
def plot_compare(
    df: pd.DataFrame,
    path: str | Path,
    kpis: Sequence[str] | None = None,
    ci95: Mapping[str, Mapping[str, float]] | None = None,
) -> Figure:
    """Small multiples: one panel per main KPI, one bar per run (first run's bar hatched as baseline).

    Args:
        df: The table from :func:`twin.results.compare.compare_runs` (rows = KPIs, run columns
            plus ``Δ ...`` columns, which are ignored here).
        path: Output PNG path.
        kpis: KPIs to draw (default :data:`MAIN_COMPARE_KPIS` present in ``df``).
        ci95: Optional ``{run label: {kpi: half-width}}`` drawn as error bars.

    Returns:
        The figure (saved to ``path``).
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
