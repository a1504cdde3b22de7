"""The service's in-process cost per request, this checkout against an older one, side by side.

    git worktree add /tmp/oldtree REV && cp ext/*.so /tmp/oldtree/ext/   # the older code, built
    python benchmarks/serve_ab.py PACKAGE /tmp/oldtree [--rounds 2]

Each round runs the old and the new code in a fresh subprocess each (``PYTHONPATH`` for the old,
started from ``/tmp`` so that the checkout is not first on the path), alternating, and times
decode + decide + audit + counters + encode: 300 batches of 100 orders and 3,000 single
orders. Prints min and median per order and the ratios old / new of the medians over rounds.
The older code is read with ``decode_request``/``decide`` (dicts) where it has no
``decode_request_raw``/``decide_raw``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MEASURE = r'''
import json, sys, tempfile, time
import numpy as np
sys.path.insert(0, BENCH)
from serve_speed import order
from twin.serve.app import Service, public
from twin.serve import wire
old = not hasattr(wire, "decode_request_raw")
svc = Service(PKG, audit=tempfile.mkdtemp() + "/a.jsonl", warmup=5); svc.warm_up()
bodies = [json.dumps({"orders": [order(i * 100 + k) for k in range(100)]}).encode() for i in range(20)]
singles = [json.dumps({"order": order(i)}).encode() for i in range(200)]
def one(b):
    t0 = time.perf_counter()
    if old:
        o, bt = wire.decode_request(b); d = svc.router.decide(o, batch=bt)
    else:
        o, bt, r = wire.decode_request_raw(b); d = svc.router.decide_raw(o, batch=bt, raws=r)
    svc.record(d, 0.001); public(d)
    return time.perf_counter() - t0
for b in bodies[:5]: one(b)
tb = np.array([one(bodies[i % 20]) for i in range(300)]) / 100 * 1e6
ts = np.array([one(singles[i % 200]) for i in range(3000)]) * 1e6
print(json.dumps({"batch_min": tb.min(), "batch_p50": float(np.median(tb)), "single_min": ts.min(),
                  "single_p50": float(np.median(ts)), "single_p99": float(np.percentile(ts, 99))}))
'''


def run(pkg: str, tree: str | None) -> dict:
    bench = str(Path(__file__).resolve().parent)
    code = f"BENCH, PKG = {bench!r}, {pkg!r}\n" + MEASURE
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if tree:
        env["PYTHONPATH"] = tree
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/tmp", capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package")
    ap.add_argument("old_tree", help="a checkout of the older code with its ext/*.so built")
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    pkg = str(Path(a.package).resolve())
    res: dict[str, list[dict]] = {"old": [], "new": []}
    for _ in range(a.rounds):
        res["new"].append(run(pkg, None))
        res["old"].append(run(pkg, a.old_tree))
    print("| per order | old | new | old / new (medians) |\n|---|---:|---:|---:|")
    for key, what in (("batch_p50", "batches of 100, median"), ("batch_min", "batches of 100, min"),
                      ("single_p50", "one order a request, median"), ("single_p99", "one order a request, p99")):
        o, n = [r[key] for r in res["old"]], [r[key] for r in res["new"]]
        ratio = sorted(o)[len(o) // 2] / sorted(n)[len(n) // 2]
        print(f"| {what} | {min(o):.0f}-{max(o):.0f} µs | {min(n):.0f}-{max(n):.0f} µs | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
