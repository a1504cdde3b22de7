"""Rendering only: the HTML report, the comparison files and their plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from twin.report.html import write_report

__all__ = ["write_compare", "write_report"]


def write_compare(df: pd.DataFrame, out: str | Path) -> Path:
    """Write ``compare.csv`` and ``compare.png`` of a :func:`twin.results.compare.compare_runs`
    table into ``out`` (created if needed)."""
    from twin.report.plots import plot_compare

    o = Path(out)
    o.mkdir(parents=True, exist_ok=True)
    df.to_csv(o / "compare.csv", index=True, index_label="kpi", encoding="utf-8")
    plot_compare(df, o / "compare.png", ci95=df.attrs.get("ci95") or None)
    return o
