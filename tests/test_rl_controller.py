"""A trained Routing-v1 policy routes an ordinary run (``twin run --policy RUN_DIR``): exactly the
env's episode on the env's scenario and seed, with the policy named in kpis.json and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

import gymnasium as gym  # noqa: E402

import rl  # noqa: E402, F401
import twin  # noqa: E402
from rl.controller import LearnedController  # noqa: E402
from twin.cli import main  # noqa: E402

TINY = ["--total-timesteps", "64", "--n-steps", "32", "--batch-size", "32", "--n-epochs", "1",
        "--eval-freq", "0", "--checkpoint-freq", "0", "--scale", "0.05", "--horizon-h", "10",
        "--log-std-init", "0.5"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    run = tmp_path_factory.mktemp("rl") / "v1"
    assert main(["train", "--env", "twin/Routing-v1", "--seed", "3", "--run-dir", str(run), *TINY]) == 0
    return run


def test_the_controller_runs_the_env_episode_exactly(trained) -> None:  # noqa: ANN001
    ctl = LearnedController(trained)
    env = gym.make("twin/Routing-v1", scale=0.05, horizon_h=10.0).unwrapped
    obs, info = env.reset(seed=11)
    done, actions = False, []
    while not done:
        a, _ = ctl.model.predict(obs, deterministic=True)
        actions.append(a)
        obs, _, done, _, step = env.step(a)
    assert np.ptp(np.array(actions), axis=0).max() > 0  # the policy does act (not a constant)
    ep = env.model.engine.finish(env.model.end_time)
    res = twin.simulate(env.episode_scenario, seed=info["seed"], routing=ctl.routing, before_tick=ctl.before_tick)
    o = res.orders
    assert len(o) == len(ep["order_id"])
    for col in ("created_at", "routed_at", "pick_start", "shipped_at", "cost", "co2_kg"):
        np.testing.assert_array_equal(o[col].to_numpy(), ep[col], err_msg=col)
    np.testing.assert_array_equal(o["warehouse"].cat.codes.to_numpy() if hasattr(o["warehouse"], "cat")
                                  else o["warehouse"].to_numpy(), ep["warehouse"])
    assert res.kpis["orders_created"] == step["episode_kpis"]["orders"]


def test_twin_run_with_a_trained_policy_names_it_and_guards_the_output(trained, tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "run"
    common = ["run", "singles_day", "--scale", "0.05", "--set", "horizon_h=10", "-q", "--out", str(out)]
    assert main([*common, "--policy", str(trained)]) == 0
    k = json.loads((out / "kpis.json").read_text())
    assert k["policy"].startswith("learned twin/Routing-v1") and k["policy_source"] == str(trained.resolve())
    assert "Routing policy: <b>learned twin/Routing-v1" in (out / "report.html").read_text()
    capsys.readouterr()
    # the same directory without the policy is another run: refused, one line, no traceback
    assert main(common) == 2
    err = capsys.readouterr().err
    assert "holds a different run (--policy " in err and "Traceback" not in err
    # a model of an env whose policy cannot route a run says which can
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.zip").write_bytes(b"PK")
    (bad / "args.json").write_text(json.dumps({"env_id": "twin/Reallocation-v0"}))
    assert main(["run", "singles_day", "--scale", "0.05", "-q", "--out", str(tmp_path / "r2"), "--policy",
                 str(bad)]) == 2
    assert ("a model of 'twin/Reallocation-v0' cannot route a run; the envs whose models can are twin/Routing-v1, "
            "and twin/OrderRouting-v0 through `twin export` (its actions are not routing decisions)"
            in capsys.readouterr().err)
    for env_id, how in (("twin/OrderRouting-v0", "(`twin export` it and pass the package directory)"),
                        ("twin/OrderRouting-v1", "run only in its env so far: `twin evaluate` it")):
        (bad / "args.json").write_text(json.dumps({"env_id": env_id}))
        assert main(["run", "singles_day", "--scale", "0.05", "-q", "--out", str(tmp_path / "r2"), "--policy",
                     str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"a model of {env_id!r} cannot route a run" in err and how in err and "Traceback" not in err
