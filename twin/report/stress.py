"""Plots of a stress test (:mod:`twin.studies.stress`): hourly service quantiles over the runs,
KPI distributions, and the exposure chart of time to recover against time to survive. Each
function draws from data it is given and returns its Figure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from twin.report.plots import DPI, TimeAxis, disruption_windows, scenario_start, shade_windows
from twin.results.kpis import KPIS
from twin.scenario.risks import realised_doc

__all__ = ["plot_exposure", "plot_hourly_quantiles", "plot_kpi_distributions"]


def _figure(figsize: tuple[float, float], nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """A Figure of its own (no pyplot state) and its axes."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kw)


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    return fig


def plot_hourly_quantiles(hourly: np.ndarray, calm: np.ndarray | None, scenario: Mapping[str, Any],
                          worst_events: Sequence[Mapping[str, Any]], recovery: Mapping[str, Any],
                          path: str | Path | None = None, title: str = "", worst_seed: int | None = None,
                          worst: np.ndarray | None = None) -> Figure:
    """The hourly service (``recovery['metric']``) over the runs: the 5-95% and 25-75% bands and
    the median per hour, the calm runs' median, the worst run with its drawn events shaded, and
    the failure and recovery thresholds."""
    fig, ax = _figure((12.5, 5.0))
    h = np.asarray(hourly, dtype=float)
    axis = TimeAxis(scenario_start(scenario))
    on_time = recovery.get("metric") == "on_time_rate"
    scale = 100.0 if on_time else 1.0
    if h.size:
        x = axis.x(np.arange(h.shape[1]) + 0.5)
        with np.errstate(all="ignore"):
            q = np.nanpercentile(h, [5, 25, 50, 75, 95], axis=0) * scale
        ax.fill_between(x, q[0], q[4], color="tab:blue", alpha=0.15, lw=0, label="5-95% of runs")
        ax.fill_between(x, q[1], q[3], color="tab:blue", alpha=0.3, lw=0, label="25-75% of runs")
        ax.plot(x, q[2], color="tab:blue", lw=1.6, label="median run")
        if calm is not None and np.asarray(calm).size:
            with np.errstate(all="ignore"):
                ax.plot(x, np.nanmedian(np.asarray(calm, dtype=float), axis=0) * scale, "--", color="0.3", lw=1,
                        label="median, no risk events (same seeds)")
        if worst is not None:
            ax.plot(x, np.asarray(worst, dtype=float) * scale, color="tab:red", lw=1,
                    label=f"worst run (seed {worst_seed}); its events shaded")
        for name, color in (("failure", "tab:red"), ("recovery", "tab:green")):
            ax.axhline(float(recovery[name]) * scale, color=color, ls=":", lw=1, label=f"{name} threshold")
    ax.set_title(f"{title + ': ' if title else ''}hourly service over the runs")
    shade_windows(ax, disruption_windows(realised_doc({"disruptions": [], "weather": {"events": []}},
                                                      worst_events)), axis)
    axis.format(ax)
    ax.set_xlabel(axis.label)
    ax.set_ylabel("on time, orders created that hour (%)" if on_time else "backlog, shipments (hourly mean)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_kpi_distributions(table: pd.DataFrame, names: Sequence[str], kpis: pd.DataFrame,
                           path: str | Path | None = None, title: str = "") -> Figure:
    """A histogram per KPI over the runs (``table``: one row per run), its mean and, when
    known, the calm runs' mean."""
    n = max(1, len(names))
    cols = 3
    rows = math.ceil(n / cols)
    fig, axes = _figure((12.5, 3.2 * rows), rows, ncols=cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_visible(False)
            continue
        k = names[i]
        x = pd.to_numeric(table[k], errors="coerce").to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        if len(x):
            ax.hist(x, bins=min(30, max(5, len(x) // 4)), color="tab:blue", alpha=0.7)
            ax.axvline(float(x.mean()), color="tab:blue", lw=1.5, label="mean")
        calm = kpis.loc[k, "calm_mean"] if k in kpis.index and "calm_mean" in kpis.columns else math.nan
        if np.isfinite(calm):
            ax.axvline(float(calm), color="0.3", ls="--", lw=1, label="no risk events")
        kpi = KPIS.get(k)
        ax.set_title(kpi.label if kpi else k, fontsize=9)
        ax.set_xlabel(kpi.axis_label if kpi else "", fontsize=8)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(f"{title + ': ' if title else ''}KPIs over the runs", fontsize=11)
    return _save(fig, path)


def plot_exposure(exposure: pd.DataFrame, path: str | Path | None = None, title: str = "") -> Figure:
    """Per node: time to survive (bar, 95% CI) and time to recover (dot, 95% CI); exposed nodes
    (TTS < TTR) in red."""
    df = exposure.reset_index(drop=True)
    fig, ax = _figure((10.5, max(3.0, 0.38 * len(df) + 1.5)))
    y = np.arange(len(df))[::-1]
    colors = ["tab:red" if e else "tab:blue" for e in df["exposed"]]
    ax.barh(y, df["tts_h"].fillna(0.0), xerr=df["tts_ci95"].fillna(0.0), color=colors, alpha=0.55,
            label="time to survive (twin)", error_kw={"lw": 0.8, "ecolor": "0.45"})
    has = df["ttr_n"] > 0
    ax.errorbar(df.loc[has, "ttr_h"], y[has.to_numpy()], xerr=df.loc[has, "ttr_ci95"].fillna(0.0), fmt="o",
                color="black", ms=4, lw=0.8, label="time to recover (risk events)")
    ax.set_yticks(y, [f"{k} {n}" for k, n in zip(df["kind"], df["node"], strict=True)], fontsize=8)
    cap = exposure.attrs.get("max_h")
    if cap:
        ax.axvline(float(cap), color="0.5", ls=":", lw=1, label="longest loss tried")
    ax.set_xlabel("hours (95% CIs)")
    ax.set_title(f"{title + ': ' if title else ''}exposure: nodes whose TTS < TTR in red")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)
