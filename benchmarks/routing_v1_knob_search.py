"""Routing-v1: a random search of constant knob settings against the zero action (promise_aware),
paired on validation seeds 50000+ (RESULTS.md, run C).

    python benchmarks/routing_v1_knob_search.py SCALE SEEDS RANDOM_SETTINGS [SCENARIO]   # e.g. 0.1 8 40
"""
import sys
import gymnasium as gym
import numpy as np

import rl  # noqa: F401 - registers the envs
scale = float(sys.argv[1]); nseeds = int(sys.argv[2]); ncand = int(sys.argv[3])
env = gym.make("twin/Routing-v1", scenario=sys.argv[4] if len(sys.argv) > 4 else "singles_day", scale=scale).unwrapped
W, K = env.knobs.W, env.K
n = env.action_space.shape[0]
def score(a):
    tot = []
    for s in range(nseeds):
        env.reset(seed=50000 + s); done = False; r = 0.0
        while not done:
            _, rew, term, trunc, _ = env.step(a); r += rew; done = term or trunc
        tot.append(r)
    return np.array(tot)
base = score(np.zeros(n, np.float32))
rng = np.random.default_rng(0)
cands = {"express_first": np.r_[np.zeros(W + K), np.ones(W)], "fifo": np.r_[np.zeros(W + K), -np.ones(W)]}
for k in range(K):
    for v in (-1, -0.5, 0.5, 1):
        a = np.zeros(n); a[W + k] = v; cands[f"late[{k}]={v}"] = a
for i in range(ncand):
    a = rng.uniform(-1, 1, n) * rng.choice([0.2, 0.5, 1.0]); cands[f"rand{i}"] = a
res = []
for name, a in cands.items():
    d = score(a.astype(np.float32)) - base
    res.append((d.mean() / abs(base.mean()), d.std(ddof=1) / np.sqrt(len(d)) * 2.1 / abs(base.mean()), name, a))
res.sort(key=lambda x: -x[0])
print("W", W, "K", K, "base reward", base.mean())
for m, h, name, a in res[:12]:
    print(f"{name:20s} {m*100:+.2f}% ± {h*100:.2f}%  {np.round(a,2).tolist() if name.startswith('rand') else ''}")
