"""The kernel of two checkouts head to head on the M/M/8 run of ``engine_speed.py`` (1M orders,
build + run + records, best of 3 per process), interleaved pairs: is a change slower, or is the
machine busier? Each checkout needs its extensions built in place
(``python setup.py build_ext --inplace``).

    python benchmarks/kernel_ab.py OLD_CHECKOUT NEW_CHECKOUT [--pairs 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile

_RUN = """
import sys, time
sys.path.insert(0, sys.argv[1])
import twin
from twin.sim.model import FulfillmentModel
lam = 0.85 * 8 * 100.0; horizon = 1_000_000 / lam
sc = twin.load_scenario("erlang_c", {"horizon_h": horizon, "drain_h": 10, "tick_h": horizon + 10,
    "demand.base_rate_per_h": lam, "warehouses.shanghai.pick.lines_per_agv_h": 100.0})
ts = []
for s in range(3):
    t = time.perf_counter()
    m = FulfillmentModel(sc, seed=s, engine="kernel")
    m.run(); m.engine.finish(m.end_time)
    ts.append(time.perf_counter() - t)
print(min(ts))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--pairs", type=int, default=9)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # run from elsewhere: neither checkout's cwd wins
        def once(path: str) -> float:
            out = subprocess.run([sys.executable, "-c", _RUN, path], capture_output=True, text=True, cwd=tmp,
                                 check=True)
            return float(out.stdout.split()[-1])

        ratios = []
        for i in range(a.pairs):
            order = (("old", a.old), ("new", a.new)) if i % 2 == 0 else (("new", a.new), ("old", a.old))
            t = {tag: once(path) for tag, path in order}
            ratios.append(t["new"] / t["old"])
            print(f"pair {i}: old {t['old']:.4f} s, new {t['new']:.4f} s, new/old {ratios[-1]:.3f}", flush=True)
    print(f"median new/old {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
