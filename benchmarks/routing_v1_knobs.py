"""Routing-v1: how much constant knob settings give over promise_aware (the zero action), paired on
validation seeds 50000+ at full size, on the peak and each disruption (RESULTS.md, run C).

    python benchmarks/routing_v1_knobs.py 3      # seeds per scenario
"""
import itertools
import sys
import gymnasium as gym
import numpy as np

import rl  # noqa: F401 - registers the envs
nseeds = int(sys.argv[1])
envs = {s: gym.make("twin/Routing-v1", scenario=s, scale=1.0).unwrapped
        for s in ("singles_day", "typhoon", "warehouse_outage", "carrier_capacity_loss")}
W, K = 8, 2
def score(env, a):
    tot = []
    for s in range(nseeds):
        env.reset(seed=50000 + s); done = False; r = 0.0
        while not done:
            _, rew, term, trunc, _ = env.step(a); r += rew; done = term or trunc
        tot.append(r)
    return np.array(tot)
base = {s: score(e, np.zeros(2 * W + K, np.float32)) for s, e in envs.items()}
for pr, l0, l1 in itertools.product((0.0, 1.0), (0.0, -0.25, 0.25), (0.0, -0.5, -1.0)):
    if pr == 0 and l0 == 0 and l1 == 0: continue
    a = np.r_[np.zeros(W), [l0, l1], np.full(W, pr)].astype(np.float32)
    out = []
    for s, e in envs.items():
        d = (score(e, a) - base[s]) / abs(base[s].mean())
        out.append(f"{s[:8]} {d.mean()*100:+.2f}±{d.std(ddof=1)/np.sqrt(len(d))*2.5*100:.2f}")
    print(f"prio={pr} late0={l0} late1={l1}: " + "  ".join(out), flush=True)
