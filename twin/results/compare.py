"""Compare the KPIs of several twin runs side by side (table, CSV, bar chart)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from twin.results.kpis import KPIS, paired_ci, scalar_kpis

__all__ = ["NON_KPI_KEYS", "load_kpis", "compare_runs", "format_table", "delta_label", "ci_label", "pairing"]


#: Keys of kpis.json that are metadata or nested structures, not scalar KPIs.
NON_KPI_KEYS: frozenset[str] = frozenset({"scenario", "seed", "seeds", "engine", "replications", "summary", "policy",
                                             "policy_source"})


def load_kpis(run_dir: str | Path) -> dict[str, Any]:
    """Read ``run_dir/kpis.json``.

    Args:
        run_dir: A run's output directory.

    Returns:
        The KPI dict (JSON null stays None).

    Raises:
        FileNotFoundError: If the directory or its kpis.json does not exist.
        ValueError: If kpis.json is not valid JSON or not a JSON object.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory {str(d)!r} does not exist (expected it to hold kpis.json)")
    f = d / "kpis.json"
    if not f.is_file():
        raise FileNotFoundError(f"run directory {str(d)!r} has no kpis.json (looked for {str(f)!r})")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(f)!r} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{str(f)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def _scalar(v: Any) -> float | None:
    """The value as float if it is a numeric scalar (None -> NaN), else None (not a KPI)."""
    if v is None:
        return math.nan
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _kpi_rows(k: Mapping[str, Any]) -> dict[str, float]:
    """Flatten one kpis dict into ``{row name: value}`` (scalars, then per-warehouse ``name[W]``)."""
    rows: dict[str, float] = {}
    for key, v in k.items():
        if key in NON_KPI_KEYS or (key in KPIS and KPIS[key].per_warehouse):
            continue
        x = _scalar(v)
        if x is not None:
            rows[str(key)] = x
    for kpi in KPIS.values():
        per_wh = k.get(kpi.name) if kpi.per_warehouse else None
        if isinstance(per_wh, Mapping):
            for wh, v in per_wh.items():
                x = _scalar(v)
                if x is not None:
                    rows[f"{kpi.name}[{wh}]"] = x
    return rows


def _labels(dirs: Sequence[Path]) -> list[str]:
    """Column labels: each dir's name; repeated names get the parent prepended, then a ``#n`` suffix."""
    names = [p.resolve().name or str(p) for p in dirs]
    counts = {n: names.count(n) for n in names}
    labels = []
    for p, n in zip(dirs, names):
        if counts[n] > 1:
            par = p.resolve().parent.name
            labels.append(f"{par}/{n}" if par else n)
        else:
            labels.append(n)
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        seen[lab] = seen.get(lab, 0) + 1
        out.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    # a later '#n' label could still collide with a genuine name: make it strictly unique
    final: list[str] = []
    for lab in out:
        cand, i = lab, 2
        while cand in final:
            cand, i = f"{lab}#{i}", i + 1
        final.append(cand)
    return final


def delta_label(label: str, first: str) -> str:
    """The name of the difference column of run ``label`` against the first run."""
    return f"Δ {label} vs {first}"


def ci_label(label: str, first: str) -> str:
    """The name of the paired 95% CI half-width column of run ``label`` against the first run."""
    return f"±95% {label} vs {first}"


def _rep_seeds(k: Mapping[str, Any]) -> list[int] | None:
    reps = k.get("replications")
    if not isinstance(reps, list) or not reps:
        return None
    seeds = [r.get("seed") if isinstance(r, Mapping) else None for r in reps]
    return seeds if all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) else None


def pairing(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[bool, str, list[int]]:
    """Whether two runs' replications can be paired by seed (common random numbers: with one seed,
    every policy and what-if sees the same orders and weather), why not, and the seeds in common.

    Paired when both hold replications, on one engine, each seed once, with the same seed set."""
    sa, sb = _rep_seeds(a), _rep_seeds(b)
    if sa is None or sb is None:
        which = "neither run has" if sa is None and sb is None else ("the first run has" if sa is None else "it has")
        return False, f"not paired: {which} no replications (run with --replications N on the same --seed)", []
    if a.get("engine") != b.get("engine"):
        return False, f"not paired: engines differ ({a.get('engine')} vs {b.get('engine')})", []
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb):
        return False, "not paired: a seed repeats within a run", []
    if set(sa) != set(sb):
        common = sorted(set(sa) & set(sb))
        return False, (f"not paired: the seeds differ ({_seed_text(sa)} vs {_seed_text(sb)}; {len(common)} in common)"), []
    return True, f"paired on {len(sa)} common seeds ({_seed_text(sa)})", sorted(sa)


def _seed_text(seeds: Sequence[int]) -> str:
    s = sorted(seeds)
    if len(s) > 1 and s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}..{s[-1]}"
    return ", ".join(map(str, s[:6])) + (", ..." if len(s) > 6 else "")


def _paired_cis(a: Mapping[str, Any], b: Mapping[str, Any], seeds: list[int]) -> dict[str, dict[str, float]]:
    """Per KPI row: :func:`twin.results.kpis.paired_ci` of ``b - a`` over the seeds."""
    ra = {r["seed"]: _kpi_rows(r) for r in a["replications"]}
    rb = {r["seed"]: _kpi_rows(r) for r in b["replications"]}
    out: dict[str, dict[str, float]] = {}
    for key in ra[seeds[0]]:
        x = [rb[s].get(key, math.nan) for s in seeds]
        y = [ra[s].get(key, math.nan) for s in seeds]
        if any(math.isnan(v) for v in x + y):
            continue
        out[key] = paired_ci(x, y)
    return out


def compare_runs(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Side-by-side KPIs of several runs, with differences against the first.

    Rows are the scalar KPIs (contract order first, then any extra numeric keys)
    followed by one ``utilization[W]`` row per warehouse. Columns are one per run
    (labelled by the directory name, made unique) then, for every run after the
    first, ``Δ <label> vs <first label>`` = run - first. Missing values are NaN.
    ``df.attrs`` holds ``runs`` (labels), ``dirs``, ``meta`` ({label: {scenario,
    seed, engine, replications}}), ``ci95`` ({label: {kpi: half-width}}, from
    "summary" when the run has replications) and ``paired`` ({label: {paired, note,
    seeds, ci: {kpi: paired_ci}}} for every run after the first). When a run's replications
    are on the first run's seeds (:func:`pairing`), a ``±95% <label> vs <first>`` column
    follows its difference: the half-width of the paired 95% CI of the per-seed differences
    (:func:`twin.results.kpis.paired_ci`); the difference column is then their mean.

    Args:
        dirs: At least two run directories, each with a kpis.json.
            :func:`twin.report.write_compare` writes the table and its plot.

    Returns:
        The comparison table (index name ``kpi``).

    Raises:
        ValueError: If fewer than two dirs are given, or a kpis.json is invalid.
        FileNotFoundError: If a dir or its kpis.json is missing.
    """
    if isinstance(dirs, (str, Path)):
        dirs = [dirs]
    paths = [Path(d) for d in dirs]
    if len(paths) < 2:
        raise ValueError(f"compare_runs needs at least two run directories, got {len(paths)}")
    kpis = [load_kpis(p) for p in paths]
    labels = _labels(paths)

    per_run = [_kpi_rows(k) for k in kpis]
    order: list[str] = [k.name for k in scalar_kpis() if any(k.name in r for r in per_run)]
    extra: list[str] = []
    util: list[str] = []
    for r in per_run:
        for key in r:
            if key in order or key in extra or key in util:
                continue
            (util if "[" in key else extra).append(key)
    index = order + extra + util

    data = {lab: [r.get(key, math.nan) for key in index] for lab, r in zip(labels, per_run)}
    df = pd.DataFrame(data, index=pd.Index(index, name="kpi"), dtype=float)
    first = labels[0]
    paired: dict[str, dict[str, Any]] = {}
    for lab, k in zip(labels[1:], kpis[1:]):
        df[delta_label(lab, first)] = df[lab] - df[first]
        ok, note, seeds = pairing(kpis[0], k)
        cis = _paired_cis(kpis[0], k, seeds) if ok else {}
        paired[lab] = {"paired": ok, "note": note, "seeds": seeds, "ci": cis}
        if ok:
            df[delta_label(lab, first)] = [cis[key]["mean"] if key in cis else df.at[key, lab] - df.at[key, first]
                                           for key in df.index]
            df[ci_label(lab, first)] = [cis[key]["half_width"] if key in cis else math.nan for key in df.index]

    meta = {}
    ci95: dict[str, dict[str, float]] = {}
    for lab, k in zip(labels, kpis):
        reps = k.get("replications")
        meta[lab] = {
            "scenario": k.get("scenario"),
            "seed": k.get("seed"),
            "engine": k.get("engine"),
            "replications": len(reps) if isinstance(reps, list) else None,
        }
        summ = k.get("summary")
        if isinstance(summ, Mapping):
            ci95[lab] = {
                str(n): _scalar(s.get("ci95"))  # JSON null (NaN: one replication, or no value) stays NaN
                for n, s in summ.items()
                if isinstance(s, Mapping) and _scalar(s.get("ci95")) is not None
            }
    df.attrs["runs"] = list(labels)
    df.attrs["dirs"] = [str(p) for p in paths]
    df.attrs["meta"] = meta
    df.attrs["ci95"] = ci95
    df.attrs["paired"] = paired

    return df


def _fmt(v: Any, signed: bool = False) -> str:
    """A number with sensible precision: integers without decimals, small values with more."""
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(x):
        return "n/a"
    sign = "+" if signed else ""
    if math.isinf(x):
        return f"{x:{sign}}"
    if x == 0:
        return "0"
    a = abs(x)
    if (x.is_integer() and a < 1e15) or a >= 1e6:
        return f"{x:{sign},.0f}"
    if a >= 100:
        return f"{x:{sign},.1f}"
    if a >= 1:
        return f"{x:{sign}.2f}"
    if a >= 1e-3:
        return f"{x:{sign}.4f}"
    return f"{x:{sign}.3g}"


def format_table(df: pd.DataFrame) -> str:
    """Render a comparison table as fixed-width plain text for a terminal.

    The first column is the index (KPI names, left-aligned); values are
    right-aligned, NaN shows as ``n/a`` and ``Δ`` columns carry an explicit sign.

    Args:
        df: A table such as the one :func:`compare_runs` returns.

    Returns:
        The text, lines joined by ``\\n`` (no trailing newline).
    """
    head = [str(df.index.name or "kpi")] + [str(c) for c in df.columns]
    rows: list[list[str]] = []
    for key, r in df.iterrows():
        cells = [str(key)]
        for c in df.columns:
            cells.append(_fmt(r[c], signed=str(c).startswith("Δ ")) if not str(c).startswith("±")
                         else ("" if math.isnan(r[c]) else "±" + _fmt(r[c])))
        rows.append(cells)
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) if rows else len(head[i]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    out = [line(head), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)
