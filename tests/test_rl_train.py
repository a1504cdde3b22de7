"""`twin train` and `twin evaluate` on tiny budgets: they run, write what they promise, and the
evaluation's paired differences are the hand-computed ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from rl.evaluate import paired_ci  # noqa: E402
from twin.cli import main  # noqa: E402

TINY = ["--total-timesteps", "64", "--n-steps", "32", "--batch-size", "32", "--n-epochs", "1",
        "--eval-freq", "32", "--eval-episodes", "1", "--checkpoint-freq", "32", "--scale", "0.1",
        "--horizon-h", "8"]


def test_paired_ci_is_the_hand_computation() -> None:
    # d = a - b = [1, 2, 2, 3]: mean 2, sd sqrt(2/3), t(0.975, 3) = 3.182446305284263
    c = paired_ci([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0])
    half = 3.182446305284263 * math.sqrt(2 / 3) / 2
    assert c["mean"] == pytest.approx(2.0)
    assert c["sd"] == pytest.approx(math.sqrt(2 / 3))
    assert c["half_width"] == pytest.approx(half, rel=1e-12)
    assert (c["low"], c["high"], c["n"]) == (pytest.approx(2 - half), pytest.approx(2 + half), 4)
    assert math.isnan(paired_ci([1.0], [0.0])["half_width"])
    with pytest.raises(ValueError, match="one length"):
        paired_ci([1.0, 2.0], [1.0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    run = tmp_path_factory.mktemp("rl") / "routing"
    assert main(["train", "--env", "twin/Routing-v0", "--seed", "1", "--run-dir", str(run), *TINY]) == 0
    return run


def test_train_writes_model_logs_checkpoints_and_evaluations(trained) -> None:  # noqa: ANN001
    for name in ("model.zip", "best_model.zip", "args.json", "progress.csv", "evaluations.json",
                 "train_summary.json", "monitor/0.monitor.csv"):
        assert (trained / name).is_file(), name
    assert sorted(p.name for p in (trained / "checkpoints").glob("*.zip")) == ["model_32_steps.zip",
                                                                              "model_64_steps.zip"]
    assert list(trained.glob("events.out.tfevents.*"))  # TensorBoard, in the run directory
    args = json.loads((trained / "args.json").read_text())
    assert args["seed"] == 1 and args["env_kwargs"]["horizon_h"] == 8.0
    ev = json.loads((trained / "evaluations.json").read_text())
    assert ev["history"][0]["best_baseline"] == max(ev["baselines"], key=ev["baselines"].get)
    assert [h["timesteps"] for h in ev["history"]] == [32, 64, 64]


def test_train_is_reproducible(trained, tmp_path) -> None:  # noqa: ANN001
    from stable_baselines3 import PPO

    again = tmp_path / "again"
    assert main(["train", "--env", "twin/Routing-v0", "--seed", "1", "--run-dir", str(again), *TINY]) == 0
    p1 = PPO.load(trained / "model.zip").policy.state_dict()
    p2 = PPO.load(again / "model.zip").policy.state_dict()
    for k in p1:
        assert np.array_equal(p1[k].numpy(), p2[k].numpy()), k


def test_maskable_ppo_on_order_routing_with_subprocess_envs(tmp_path) -> None:  # noqa: ANN001
    from rl.train import Args, train

    run = train(Args(env_id="twin/OrderRouting-v0", horizon_h=2.0, total_timesteps=64, n_envs=2, n_steps=32,
                     batch_size=32, n_epochs=1, eval_freq=0, checkpoint_freq=0, run_dir=str(tmp_path / "order"),
                     log_formats=("csv",)))
    assert (run / "model.zip").is_file() and (run / "progress.csv").is_file()
    from rl.baselines import Learned

    assert Learned(run / "model.zip").masked


def test_evaluate_writes_table_json_plot_and_the_hand_computed_differences(trained, tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "eval"
    assert main(["evaluate", str(trained / "model.zip"), "--scenario", "typhoon", "--replications", "3",
                 "--seed", "100000", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cheapest" in printed and "95% CI" in printed
    assert (out / "eval.png").stat().st_size > 1000
    res = json.loads((out / "eval.json").read_text())
    assert res["seeds"] == [100000, 100001, 100002]
    assert res["env_kwargs"]["scenario"] == "typhoon" and res["env_kwargs"]["horizon_h"] == 8.0
    names = set(res["episodes"])
    assert names == {"learned", "nearest_with_stock", "cheapest", "fastest", "greenest", "weighted",
                     "promise_aware"}  # the strongest heuristic is a baseline too
    # common random numbers: every policy ran on the same seeds, so the episodes pair up
    for n in names:
        assert [e["seed"] for e in res["episodes"][n]] == res["seeds"]
    # the paired difference on reward, by hand: mean +- t(0.975, n-1) sd / sqrt(n)
    a = np.array([e["reward"] for e in res["episodes"]["learned"]])
    b = np.array([e["reward"] for e in res["episodes"]["cheapest"]])
    d = a - b
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)  # t(0.975, 2)
    got = res["differences"]["cheapest"]["reward"]
    assert got["mean"] == pytest.approx(d.mean(), rel=1e-12)
    assert got["half_width"] == pytest.approx(half, rel=1e-9)
    # the KPIs are differenced the same way
    late = res["differences"]["fastest"]["late_rate"]
    la = [e["late_rate"] for e in res["episodes"]["learned"]]
    lb = [e["late_rate"] for e in res["episodes"]["fastest"]]
    assert late["mean"] == pytest.approx(np.mean(np.subtract(la, lb)), abs=1e-15)
    # the hindsight bound of each seed's orders, and the gap figures by hand
    bound = np.array(res["bound_per_order"])
    assert len(bound) == 3 and "hindsight bound" in printed and "gap closed" in printed
    for n in names:
        obj = np.array([e["objective_per_order"] for e in res["episodes"][n]])
        assert bound.mean() < obj.mean()  # no policy beats the relaxation on average
        assert res["gap"][n]["gap_to_bound"] == pytest.approx(np.mean((obj - bound) / bound), rel=1e-12)
    cheap = np.mean([e["objective_per_order"] for e in res["episodes"]["cheapest"]])
    pa = np.mean([e["objective_per_order"] for e in res["episodes"]["promise_aware"]])
    assert res["gap"]["promise_aware"]["cheapest_gap_closed"] == pytest.approx((cheap - pa) / (cheap - bound.mean()))
    assert res["gap"]["cheapest"]["cheapest_gap_closed"] == 0.0


def test_evaluate_rejects_a_missing_policy(tmp_path, capsys) -> None:  # noqa: ANN001
    assert main(["evaluate", str(tmp_path / "nope.zip")]) == 2
    assert "no trained policy" in capsys.readouterr().err


ROUTING_ARGS = ("epoch_h, base, temperature, tilt_scale, late_penalty_cny, lost_penalty_cny, co2_price_cny_per_kg, "
                "reward_scale, render_mode")


@pytest.mark.parametrize("args,says", [
    (["--env-arg", "scale"], ("--env-arg 'scale': expected KEY=VALUE (a JSON value), e.g. --env-arg "
                              f"late_penalty_cny=80; allowed keys: {ROUTING_ARGS}")),
    (["--env-arg", "nosuch=1"], ("--env-arg nosuch=1: twin/Routing-v0 (RoutingEnv) takes no argument 'nosuch'; "
                                 f"allowed: {ROUTING_ARGS}")),
    (["--env", "twin/Reallocation-v0", "--env-arg", "epoch_h=2"],
     ("--env-arg epoch_h=2: twin/Reallocation-v0 (ReallocationEnv) takes no argument 'epoch_h'; allowed: interval_h, "
      "lead_time_h, routing, top_skus, transfer_cost_cny_per_unit_km, late_penalty_cny, lost_penalty_cny, "
      "co2_price_cny_per_kg, reward_scale, render_mode")),
    (["--env-arg", "epoch_h=abc"], "--env-arg epoch_h=abc: epoch_h must be float, got str 'abc'"),
    (["--env-arg", "epoch_h=.inf"], "--env-arg epoch_h=.inf: epoch_h must be float (finite), got float inf"),
    (["--env", "twin/Reallocation-v0", "--env-arg", "top_skus=1.5"],
     "--env-arg top_skus=1.5: top_skus must be int, got float 1.5"),
    (["--env-arg", "scale=0.5"], "--env-arg scale=0.5: use --scale for scale"),
    (["--env-arg", "epoch_h=0.7"], ('twin/Routing-v0 with {"scenario": "singles_day", "scale": 0.1, '
                                    '"randomize": false, "epoch_h": 0.7}: epoch_h must be a positive multiple of '
                                    "the scenario's tick_h=1, got 0.7")),
    (["--env", "twin/Routing-v1", "--init-action", "0.5"],
     "init_action has 1 values; the env's action has 18 (shape (18,))"),
    (["--env", "twin/Routing-v1", "--init-action", *["0"] * 17, "1.5"],
     "init_action[17] = 1.5 is outside the action's bounds [-1, 1]"),
    (["--env", "twin/OrderRouting-v0", "--init-action", "0"],
     "init_action is for Box action spaces; this env's actions are Discrete(8)"),
    (["--scale", "inf"], "scale must be a finite number, got inf"),
    (["--scale", "0"], "scale must be a finite number > 0, got 0.0"),
    (["--learning-rate", "nan"], "learning_rate must be a finite number, got nan"),
    (["--env", "twin/OrderRouting-v0", "--engine", "kernel"],
     ('twin/OrderRouting-v0 with {"scenario": "singles_day", "scale": 0.1, "randomize": false, "engine": '
      "\"kernel\"}: engine must be one of simpy for OrderRoutingEnv; got 'kernel'")),
])
def test_train_mistakes_name_the_argument_and_write_nothing(tmp_path, capsys, args, says) -> None:  # noqa: ANN001
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--total-timesteps", "32", *args]) == 2
    assert capsys.readouterr().err == f"twin: error: {says}\n"
    assert not run.exists()  # refused before the run directory is made


@pytest.mark.parametrize("env_id,masked", [("twin/OrderRouting-v1", True), ("twin/Reallocation-v1", False)])
def test_tiny_training_on_the_v1_envs_and_their_baselines(env_id: str, masked: bool, tmp_path) -> None:  # noqa: ANN001
    """The issue-10 envs train (MaskablePPO where the env has masks) and run against their
    baselines in the same env: the learned policy's episode has the baselines' orders (common
    random numbers); promise_aware / rebalance are among the baselines."""
    import gymnasium as gym

    from rl.baselines import Heuristic, Learned, baseline_names, run_episode
    from rl.train import Args, train

    small = {"twin/OrderRouting-v1": {"horizon_h": 1.0}, "twin/Reallocation-v1": {"horizon_h": 18.0}}[env_id]
    run = train(Args(env_id=env_id, **small, total_timesteps=32, n_envs=1, n_steps=16, batch_size=16, n_epochs=1,
                     eval_freq=0, checkpoint_freq=0, run_dir=str(tmp_path / "v1"), log_formats=("csv",)))
    learned = Learned(run / "model.zip")
    assert learned.masked is masked
    env = gym.make(env_id, **small)
    mine = run_episode(env, learned, seed=100000)
    base = {n: run_episode(env, Heuristic(n), seed=100000) for n in baseline_names(env_id)}
    assert ("promise_aware" if masked else "rebalance") in base
    assert {b["orders"] for b in base.values()} == {mine["orders"]} and mine["orders"] > 0


def test_evaluate_a_reallocation_policy_against_rebalance_on_late_lost_and_transfer_cost(tmp_path, capsys) -> None:  # noqa: ANN001
    """`twin evaluate` on a (tiny) Reallocation-v1 policy reports, per episode, the late and lost
    orders and the transfer cost, and their paired differences against `rebalance` and `none`
    (the ones by hand); the totals are the KPIs' (rate x orders) and the transfer cost is the
    rate x unit-km."""
    run = tmp_path / "realloc"
    assert main(["train", "--env", "twin/Reallocation-v1", "--seed", "1", "--run-dir", str(run),
                 "--total-timesteps", "32", "--n-steps", "16", "--batch-size", "16", "--n-epochs", "1",
                 "--eval-freq", "0", "--checkpoint-freq", "16", "--scale", "0.1"]) == 0
    out = tmp_path / "eval"
    assert main(["evaluate", str(run / "model.zip"), "--replications", "2", "--seed", "100000",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "transfer_cny" in printed and "late_orders" in printed and "rebalance" in printed
    res = json.loads((out / "eval.json").read_text())
    assert set(res["episodes"]) == {"learned", "none", "rebalance"}
    for n, eps in res["episodes"].items():
        for e in eps:
            assert e["late_orders"] == pytest.approx(e["late_rate"] * e["orders"], rel=1e-12)
            assert e["lost_orders"] == pytest.approx(e["lost_rate"] * e["orders"], abs=1e-9)
            assert e["transfer_cny"] == pytest.approx(0.0005 * e["transfer_unit_km"], rel=1e-12)
            assert (e["units_moved"] > 0) == (n != "none") and (e["transfer_cny"] > 0) == (n != "none")
    for base in ("none", "rebalance"):
        for m in ("late_orders", "lost_orders", "transfer_cny"):
            d = np.subtract([e[m] for e in res["episodes"]["learned"]], [e[m] for e in res["episodes"][base]])
            got = res["differences"][base][m]
            assert got["mean"] == pytest.approx(d.mean(), rel=1e-12, abs=1e-9)
            assert got["half_width"] == pytest.approx(12.706204736174707 * d.std(ddof=1) / math.sqrt(2),
                                                      rel=1e-9, abs=1e-9)  # t(0.975, 1)


def test_evaluate_a_checkpoint_with_an_env_argument_and_bad_env_arguments(tmp_path, capsys) -> None:  # noqa: ANN001
    """A checkpoint in RUN_DIR/checkpoints/ is evaluated on its run's env (args.json one level
    up); ``--env-arg`` overrides a training argument (the transfer price: every episode's
    transfer cost is the new price x its unit-km); a wrong key or type is named, no traceback."""
    run = tmp_path / "realloc"
    assert main(["train", "--env", "twin/Reallocation-v1", "--seed", "1", "--run-dir", str(run),
                 "--total-timesteps", "16", "--n-steps", "16", "--batch-size", "16", "--n-epochs", "1",
                 "--eval-freq", "0", "--checkpoint-freq", "16", "--scale", "0.1"]) == 0
    ckpt = run / "checkpoints" / "model_16_steps.zip"
    assert ckpt.is_file() and not (ckpt.parent / "args.json").exists()
    out = tmp_path / "eval"
    assert main(["evaluate", str(ckpt), "--replications", "2", "--seed", "100000", "--out", str(out),
                 "--env-arg", "transfer_cost_cny_per_unit_km=0.002"]) == 0
    res = json.loads((out / "eval.json").read_text())
    assert res["env_id"] == "twin/Reallocation-v1" and res["env_kwargs"]["transfer_cost_cny_per_unit_km"] == 0.002
    moved = [e for eps in res["episodes"].values() for e in eps if e["transfer_unit_km"] > 0]
    assert moved and all(e["transfer_cny"] == pytest.approx(0.002 * e["transfer_unit_km"], rel=1e-12) for e in moved)
    capsys.readouterr()
    for extra, msg in ((["--env-arg", "transfer_price=1"], "takes no argument 'transfer_price'"),
                       (["--env-arg", "transfer_cost_cny_per_unit_km=fast"], "transfer_cost_cny_per_unit_km must be"),
                       (["--env-arg", "nokey"], "--env-arg 'nokey': expected KEY=VALUE")):
        assert main(["evaluate", str(ckpt), "-r", "2", "--out", str(tmp_path / "e2")] + extra) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err, err


def test_init_action_warm_starts_the_policy_mean(tmp_path) -> None:  # noqa: ANN001
    """``--init-action``: before any update (learning rate ~0) the deterministic action is the
    given one, up to the action head's small initial weights (gain 0.01), on any observation;
    without it the mean starts at zero. The start is recorded in args.json."""
    from stable_baselines3 import PPO

    init = [0.0] * 8 + [-0.5, 0.25] + [0.9] * 8
    obs = None
    for name, extra in (("warm", ["--init-action", *map(str, init)]), ("cold", [])):
        run = tmp_path / name
        assert main(["train", "--env", "twin/Routing-v1", "--seed", "3", "--run-dir", str(run),
                     "--total-timesteps", "16", "--n-steps", "16", "--batch-size", "16", "--n-epochs", "1",
                     "--learning-rate", "1e-12", "--eval-freq", "0", "--checkpoint-freq", "0", "--scale", "0.1",
                     *extra]) == 0
        model = PPO.load(str(run / "model.zip"), device="cpu")
        if obs is None:
            space = model.observation_space
            obs = np.random.default_rng(0).uniform(space.low, space.high, (20, *space.shape)).astype(np.float32)
        act, _ = model.predict(obs, deterministic=True)
        want = np.array(init if name == "warm" else [0.0] * 18)
        assert np.abs(act - want).max() < 0.1, (name, np.abs(act - want).max())
        assert json.loads((run / "args.json").read_text())["init_action"] == (init if name == "warm" else [])
