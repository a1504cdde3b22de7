"""The main job, timed: ``twin run SCENARIO --out DIR`` against ``twin.simulate(SCENARIO)`` alone.

Each repeat runs, one after the other, two fresh processes under ``/usr/bin/time -v`` (its wall
clock and "Maximum resident set size"):

- ``simulate``: ``python -c "import twin; twin.simulate(SCENARIO)"`` — the simulation with its
  records and KPIs, nothing written;
- ``twin run``: ``twin run SCENARIO --out DIR`` — the same run, then ``kpis.json``,
  ``orders.parquet``, ``timeseries.parquet``, ``scenario.json``, the plots and ``report.html``
  (progress bars on, to a file).

It prints each repeat, then the medians, the ratio of the median wall times and the median of
the per-repeat ratios (the two runs of one repeat share the machine's load), and a Markdown
table for BENCHMARKS.md. Goal: the whole job within 1.5x of ``simulate`` alone, peak RSS under
2.5 GB.

    python benchmarks/main_job.py                       # national_peak, 3 repeats (~3 minutes)
    python benchmarks/main_job.py --repeats 1 --scenario singles_day
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIME = "/usr/bin/time"


def _elapsed(text: str) -> float:
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if not m:
        raise RuntimeError(f"no wall clock in /usr/bin/time output:\n{text}")
    parts = [float(p) for p in m.group(1).split(":")]
    secs = 0.0
    for p in parts:
        secs = secs * 60 + p
    return secs


def _max_rss_mb(text: str) -> float:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not m:
        raise RuntimeError(f"no maximum RSS in /usr/bin/time output:\n{text}")
    return int(m.group(1)) / 1024


def _cpu_s(text: str) -> float:
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    return float(user.group(1)) + float(system.group(1)) if user and system else math.nan


def timed(cmd: list[str], log: Path) -> tuple[float, float, float]:
    """Run ``cmd`` under ``/usr/bin/time -v``: (wall s, peak RSS MB, CPU s: user + system, all
    threads). Its output goes to ``log``."""
    tf = log.with_suffix(".time")
    with open(log, "w") as out:
        rc = subprocess.call([TIME, "-v", "-o", str(tf), *cmd], stdout=out, stderr=subprocess.STDOUT)
    text = tf.read_text()
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {rc}; see {log}")
    return _elapsed(text), _max_rss_mb(text), _cpu_s(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="national_peak")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--keep", default=None, help="keep the run directories and logs here (default: a temp dir)")
    a = p.parse_args(argv)
    if not os.path.exists(TIME):
        print(f"{TIME} is needed (GNU time: apt-get install time)", file=sys.stderr)
        return 2
    twin_cmd = shutil.which("twin", path=os.path.dirname(sys.executable)) or shutil.which("twin")
    if twin_cmd is None:
        print("the `twin` command is not on PATH (pip install -e .)", file=sys.stderr)
        return 2
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="main_job-"))
    work.mkdir(parents=True, exist_ok=True)
    sim_cmd = [sys.executable, "-c", f"import twin; twin.simulate({a.scenario!r})"]
    print(f"# {a.scenario}, {a.repeats} repeat(s); load average {os.getloadavg()[0]:.2f}; logs in {work}", flush=True)
    rows = []
    t_start = time.time()
    for i in range(a.repeats):
        sim = timed(sim_cmd, work / f"simulate-{i}.log")
        out = work / f"run-{i}"
        shutil.rmtree(out, ignore_errors=True)
        job = timed([twin_cmd, "run", a.scenario, "--out", str(out)], work / f"run-{i}.log")
        rows.append((sim, job))
        print(f"repeat {i + 1}: simulate {sim[0]:.1f} s ({sim[2]:.1f} s CPU), {sim[1]:,.0f} MB; twin run {job[0]:.1f} s"
              f" ({job[2]:.1f} s CPU), {job[1]:,.0f} MB; ratio {job[0] / sim[0]:.2f}"
              f"  (load {os.getloadavg()[0]:.2f})", flush=True)
        if not a.keep:
            shutil.rmtree(out, ignore_errors=True)
    med = statistics.median
    sim_t, sim_m = med(r[0][0] for r in rows), med(r[0][1] for r in rows)
    job_t, job_m = med(r[1][0] for r in rows), med(r[1][1] for r in rows)
    pair = med(r[1][0] / r[0][0] for r in rows)
    sim_c, job_c = med(r[0][2] for r in rows), med(r[1][2] for r in rows)
    print(f"\nmedians over {len(rows)}: simulate {sim_t:.1f} s, {sim_m:,.0f} MB peak; twin run {job_t:.1f} s,"
          f" {job_m:,.0f} MB peak")
    print(f"ratio of medians {job_t / sim_t:.2f}; median of per-repeat ratios {pair:.2f}"
          f" (goal <= 1.5); peak RSS goal < 2,560 MB: {'met' if max(r[1][1] for r in rows) < 2560 else 'MISSED'}")
    print(f"CPU (user + system, median): simulate {sim_c:.1f} s, twin run {job_c:.1f} s, ratio {job_c / sim_c:.2f}"
          " (what the ratio tends to when no core is free)")
    print(f"({time.time() - t_start:.0f} s in all; load average now {os.getloadavg()[0]:.2f})\n")
    print("| command | wall s (median) | CPU s (median) | peak RSS MB (median) |")
    print("|---|---:|---:|---:|")
    print(f"| `twin.simulate({a.scenario!r})` alone | {sim_t:.1f} | {sim_c:.1f} | {sim_m:,.0f} |")
    print(f"| `twin run {a.scenario} --out DIR` | {job_t:.1f} | {job_c:.1f} | {job_m:,.0f} |")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
