"""The service's per-order cost by stage, in process: decode (twin.serve.wire), decide
(Router.decide), record (audit line + metrics), encode (the response), on batches of 100 and
on single orders; the minimum over repeats (the shared VM's speed moves medians by 20-30%).

    python benchmarks/serve_stages.py PACKAGE [prof]      # prof: also a cProfile of the batch path
"""
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_speed import order  # noqa: E402

from twin.serve.app import Service, public  # noqa: E402
from twin.serve.wire import decode_request_raw  # noqa: E402

pkg = sys.argv[1]
svc = Service(pkg, audit=tempfile.mkdtemp() + "/a.jsonl", warmup=5)
svc.warm_up()
bodies = [json.dumps({"orders": [order(i * 100 + k) for k in range(100)]}).encode() for i in range(20)]
singles = [json.dumps({"order": order(i)}).encode() for i in range(200)]
def stage(b):
    t0=time.perf_counter(); orders, batch, raws = decode_request_raw(b)
    t1=time.perf_counter(); d = svc.router.decide_raw(orders, batch=batch, raws=raws)
    t2=time.perf_counter(); svc.record(d, t2-t1)
    t3=time.perf_counter(); public(d)
    t4=time.perf_counter()
    return t1-t0, t2-t1, t3-t2, t4-t3
for b in bodies[:3]: stage(b)
res = [stage(bodies[i % 20]) for i in range(200)]
names = ("decode", "decide", "record(audit+metrics)", "encode")
tot = 0
for j, n in enumerate(names):
    m = min(r[j] for r in res) / 100 * 1e6; tot += m
    print(f"batch100 {n}: {m:.1f} us/order")
print(f"batch100 total {tot:.1f} us/order -> {1e6/tot:,.0f}/s")
res = [stage(singles[i % 200]) for i in range(1000)]
tot=0
for j, n in enumerate(names):
    m = min(r[j] for r in res) * 1e6; tot += m
    print(f"single {n}: {m:.1f} us")
print(f"single total {tot:.1f} us")
if len(sys.argv) > 2:
    import cProfile, pstats
    pr = cProfile.Profile(); pr.enable()
    for i in range(100): stage(bodies[i % 20])
    pr.disable(); pstats.Stats(pr).sort_stats("tottime").print_stats(25)
