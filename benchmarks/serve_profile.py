"""Where the routing service's CPU goes under load: py-spy on the server while the benchmark's
load generator drives it.

``python benchmarks/serve_profile.py PACKAGE [--load single|batch] [--seconds 10]``

The service runs as in ``serve_speed.py`` (a subprocess pinned to the last CPU, the load
generator and py-spy on the first): single orders at 1,000/s over 8 connections, or 100-order
batches with 2 connections kept busy. py-spy samples the server at 250 Hz (idle samples left
out) and the script prints the frames with the largest self and inclusive shares. Native code
shows as the Python line that calls it (uvloop's loop as ``Runner.run``). Needs ``py-spy``
(``pip install py-spy``; not a project dependency). Run it from outside the checkout (e.g.
``/tmp``), as ``serve_speed.py``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _loadgen import open_loop, request_bytes  # noqa: E402
from serve_speed import _cpus, _free_port, _singles, order  # noqa: E402


def shares(raw: Path) -> tuple[int, collections.Counter, collections.Counter]:
    """``(samples, self, inclusive)`` sample counts by frame of a py-spy ``raw`` file."""
    own, incl, total = collections.Counter(), collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        total += int(n)
        own[frames[-1]] += int(n)
        for f in set(frames):
            incl[f] += int(n)
    return total, own, incl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package")
    ap.add_argument("--load", choices=["single", "batch"], default="batch")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    spy_exe = shutil.which("py-spy")
    if spy_exe is None:
        sys.exit("serve_profile: py-spy is not installed (pip install py-spy)")
    server_cpu, client_cpu = _cpus()
    port = _free_port()
    work = Path(tempfile.mkdtemp())
    code = (f"import os; os.sched_setaffinity(0, {{{server_cpu}}}); from twin.serve.app import serve; "
            f"serve({a.package!r}, port={port}, audit={str(work / 'audit.jsonl')!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.sched_setaffinity(0, {client_cpu})
    try:
        import socket

        for _ in range(600):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sk:
                    sk.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                    if b" 200 " in sk.recv(4096):
                        break
            except OSError:
                pass
            time.sleep(0.1)
        if a.load == "batch":
            reqs = [request_bytes("/v1/route", json.dumps({"orders": [order(i * 100 + k) for k in range(100)]})
                                  .encode()) for i in range(20)]
            n, rate, conns = int(a.seconds * 600), 100_000.0, 2
        else:
            reqs, rate, conns = _singles(), 1000.0, 8
            n = int(a.seconds * rate)
        open_loop("127.0.0.1", port, reqs, 100, 100.0, connections=conns)  # warm
        raw = work / "profile.txt"
        spy = subprocess.Popen(["taskset", "-c", str(client_cpu), spy_exe, "record", "-p", str(proc.pid),
                                "-d", str(int(a.seconds)), "-r", "250", "-f", "raw", "-o", str(raw), "--nonblocking"])
        time.sleep(0.5)
        r = open_loop("127.0.0.1", port, reqs, n, rate, connections=conns)
        spy.wait()
    finally:
        proc.terminate()
        proc.wait(10)
    per_s = len(r.latencies_s) / r.wall_s * (100 if a.load == "batch" else 1)
    total, own, incl = shares(raw)
    print(f"{a.load}: {per_s:,.0f} {'decisions' if a.load == 'batch' else 'requests'}/s under py-spy; "
          f"{total} busy samples of {int(a.seconds * 250)} possible")
    for title, c in (("self", own), ("inclusive", incl)):
        print(f"\n| {title} | frame |\n|---:|---|")
        for f, k in c.most_common(a.top):
            print(f"| {k / total:.1%} | `{f[:140]}` |")


if __name__ == "__main__":
    main()
