"""The kernel engine's own pieces: event calendar, RNG, distributions, storage, routing inside
the kernel, and bad input from Python routing policies."""

from __future__ import annotations

import math

import numpy as np
import pytest

import twin
from ext import _hooks, _kernel
from twin.policies import AllocationShares, NearestWithStock, OrderBatch
from twin.scenario.loader import scale_scenario, validate_scenario
from twin.sim.model import FulfillmentModel
from twin.world.state import State

N = 200_000


# --------------------------------------------------------------------------- event calendar
def test_heap_pops_in_time_order_and_fifo_among_ties() -> None:
    rng = np.random.default_rng(0)
    times = rng.integers(0, 50, 5000).astype(float) / 4  # many ties
    order = _hooks.heap_trace(times)
    expected = sorted(range(len(times)), key=lambda i: (times[i], i))  # stable: FIFO among equal times
    assert order == expected


def test_heap_small_cases() -> None:
    assert _hooks.heap_trace([]) == []
    assert _hooks.heap_trace([3.0, 1.0, 2.0]) == [1, 2, 0]
    assert _hooks.heap_trace([1.0] * 10) == list(range(10))
    assert _hooks.heap_trace([2.0, 1.0, 2.0, 1.0, 0.5]) == [4, 1, 3, 0, 2]


# --------------------------------------------------------------------------- RNG
def _xoshiro_reference(seed: int, n: int) -> list[int]:
    """splitmix64 seeding and xoshiro256** in pure Python (Blackman and Vigna's reference)."""
    mask = (1 << 64) - 1
    x = seed
    s = []
    for _ in range(4):
        x = (x + 0x9E3779B97F4A7C15) & mask
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        s.append(z ^ (z >> 31))

    def rotl(v: int, k: int) -> int:
        return ((v << k) | (v >> (64 - k))) & mask

    out = []
    for _ in range(n):
        out.append((rotl((s[1] * 5) & mask, 7) * 9) & mask)
        t = (s[1] << 17) & mask
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


def test_rng_is_xoshiro256starstar_and_reproducible() -> None:
    for seed in (0, 1, 2**63 + 12345):
        assert _hooks.raw_u64(seed, 50).tolist() == _xoshiro_reference(seed, 50)
    a, b, c = _hooks.raw_u64(7, 1000), _hooks.raw_u64(7, 1000), _hooks.raw_u64(8, 1000)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 1000


def test_uniform_is_on_unit_interval() -> None:
    u = _hooks.sample("uniform", 3, N)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert u.mean() == pytest.approx(0.5, abs=5 * math.sqrt(1 / 12 / N))
    assert u.var() == pytest.approx(1 / 12, rel=0.02)


# --------------------------------------------------------------------------- distributions
def _check_moments(x: np.ndarray, mean: float, var: float, var_rel: float = 0.03) -> None:
    se = math.sqrt(var / len(x))
    assert abs(x.mean() - mean) < 5 * se, (x.mean(), mean, se)
    assert x.var() == pytest.approx(var, rel=var_rel)


@pytest.mark.parametrize("mean", [0.1, 2.5])
def test_exponential_mean_and_variance(mean: float) -> None:
    x = _hooks.sample("exponential", 11, N, mean=mean)
    assert x.min() >= 0
    _check_moments(x, mean, mean**2)


@pytest.mark.parametrize("cv", [0.2, 0.6, 1.0])
def test_lognormal_with_cv_mean_and_variance(cv: float) -> None:
    mean = 3.0
    x = _hooks.sample("lognormal", 12, N, mean=mean, cv=cv)
    assert x.min() > 0
    _check_moments(x, mean, (cv * mean) ** 2, var_rel=0.03 + 0.1 * cv)  # heavier tails: looser variance


def test_deterministic_and_normal() -> None:
    assert np.all(_hooks.sample("deterministic", 1, 100, mean=4.2) == 4.2)
    z = _hooks.sample("normal", 13, N)
    _check_moments(z, 0.0, 1.0)


@pytest.mark.parametrize("lam", [0.5, 3.0, 49.0])
def test_poisson_lines_mean_and_variance(lam: float) -> None:
    x = _hooks.sample("poisson", 14, N, mean=lam)
    assert np.all(x == np.floor(x)) and x.min() >= 0
    _check_moments(x, lam, lam)


def test_categorical_zipf_sampling_matches_its_law() -> None:
    from scipy import stats

    k = np.arange(1, 201, dtype=float)
    p = k ** -1.0
    p /= p.sum()
    idx = _hooks.sample("categorical", 15, N, p=p)
    counts = np.bincount(idx, minlength=len(p))
    assert counts.sum() == N
    chi2 = stats.chisquare(counts, N * p)
    assert chi2.pvalue > 1e-4
    prob, alias = _kernel.build_alias(p)  # alias tables: each column's mass adds back to p
    mass = prob / len(p)
    np.add.at(mass, alias, (1 - prob) / len(p))
    np.testing.assert_allclose(mass, p, rtol=1e-9, atol=1e-15)


def test_sample_rejects_unknown_distribution() -> None:
    with pytest.raises(ValueError, match="dist must be one of"):
        _hooks.sample("gamma", 0, 10)


# --------------------------------------------------------------------------- the engine
def _small(name: str = "baseline", factor: float = 0.05, **overrides) -> twin.Scenario:  # noqa: ANN003
    return scale_scenario(twin.load_scenario(name, overrides or None), factor)


def test_kernel_is_the_default_engine() -> None:
    assert twin.simulate(_small(factor=0.01, horizon_h=4, drain_h=2), seed=0).engine == "kernel"
    assert FulfillmentModel(_small(factor=0.01)).engine.name == "kernel"


def test_record_storage_is_at_most_200_bytes_per_shipment() -> None:
    m = FulfillmentModel(_small("singles_day", 0.1), seed=0, engine="kernel")
    m.run()
    nbytes, shipments, orders = m.engine.k.storage_bytes()
    assert shipments >= orders > 10_000
    assert nbytes / shipments <= 200


def test_kernel_writes_the_state_in_place() -> None:
    m = FulfillmentModel(_small(), seed=0, engine="kernel")
    inv, backlog = m.state.inventory, m.state.backlog
    before = inv.sum()
    for _ in range(6):
        m.step()
    assert m.state.inventory is inv and m.state.backlog is backlog
    assert inv.sum() < before  # stock reserved by the kernel, in the State's own array
    assert backlog.sum() > 0


def test_state_arrays_of_the_wrong_dtype_are_refused() -> None:
    sc = _small()
    m = FulfillmentModel(sc, seed=0, engine="simpy")
    m.state.backlog = m.state.backlog.astype(np.int32)
    from twin.sim.engine import make_engine

    with pytest.raises(TypeError, match="State.backlog must be .*int64"):
        make_engine("kernel", m.host())


def test_allocation_shares_route_inside_the_kernel() -> None:
    sc = _small(factor=0.05, horizon_h=12, drain_h=12)
    m0 = FulfillmentModel(sc, seed=0, engine="kernel")
    W, R = m0.net.n_warehouses, m0.net.n_regions
    shares = np.zeros((R, W))
    shares[:, 3] = 1.0  # everything to warehouse 3 while it can serve it
    pol = AllocationShares(shares)
    r = twin.simulate(sc, seed=0, engine="kernel", routing=pol)
    o = r.orders[r.orders["warehouse"].notna()]
    share3 = (o["warehouse"] == m0.net.warehouses[3]).mean()
    assert share3 > 0.9
    assert r.kpis["orders_created"] == r.kpis["orders_delivered"] + r.kpis["orders_in_flight"] + r.kpis["orders_lost"]


@pytest.mark.parametrize("name", ["fastest", "weighted", "cheapest", "greenest"])
def test_score_policies_run_inside_the_kernel(name: str) -> None:
    sc = twin.load_scenario(_small(factor=0.03, horizon_h=12, drain_h=24), {"policy.routing.name": name})
    a = twin.simulate(sc, seed=1, engine="kernel")
    b = twin.simulate(sc, seed=1, engine="kernel")
    assert a.kpis == b.kpis
    assert a.kpis["orders_delivered"] > 0.3 * a.kpis["orders_created"]


# --------------------------------------------------------------------------- Python policies, in batches
class Fixed(NearestWithStock):
    """A Python policy (a subclass, so the kernel calls it in batches) that sends every line
    to warehouse ``w`` when it can serve the order, else the nearest with stock."""

    name = "fixed"

    def __init__(self, w: int) -> None:
        super().__init__()
        self.w = w
        self.calls = 0
        self.lines = 0

    def route(self, batch: OrderBatch, state: State) -> np.ndarray:
        self.calls += 1
        self.lines += len(batch.sku)
        out = super().route(batch, state)
        for i in range(len(batch)):
            a, b = batch.line_start[i], batch.line_start[i + 1]
            c = bool(batch.cold[i])
            if (state.wh_open[self.w] and (not c or state.cold_ok[self.w])
                    and np.isfinite(self.static_score[int(c), batch.region[i], self.w])
                    and (state.inventory[self.w, batch.sku[a:b]] >= batch.qty[a:b]).all()):
                out[a:b] = self.w
        return out


def test_python_policy_routes_in_batches_and_every_line_lands_where_it_said() -> None:
    sc = _small(factor=0.05, horizon_h=6, drain_h=12)
    pol = Fixed(2)
    r = twin.simulate(sc, seed=3, engine="kernel", routing=pol)
    o = r.orders
    assert 0 < pol.calls <= 6 / 0.25 + 1  # one call per routing interval with orders
    assert pol.lines >= r.kpis["orders_created"]
    shipped = o[o["warehouse"].notna()]
    assert (shipped["warehouse"] == r.orders["warehouse"].cat.categories[2]).mean() > 0.9
    # batch routing waits for the end of the interval, never longer
    assert ((shipped["routed_at"] - shipped["created_at"]) <= 0.25 + 1e-9).all()
    assert ((shipped["routed_at"] / 0.25) % 1 < 1e-6).all()
    k = r.kpis
    assert k["orders_created"] == k["orders_delivered"] + k["orders_in_flight"] + k["orders_lost"]


class Always(NearestWithStock):
    name = "always"

    def __init__(self, w: int) -> None:
        super().__init__()
        self.w = w

    def route(self, batch: OrderBatch, state: State) -> np.ndarray:
        return np.full(len(batch.sku), self.w)


def test_policy_naming_an_unknown_warehouse_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"routing policy 'always' \(Always\).*warehouse 99: not a warehouse "
                                         r"index; allowed: 0\.\.7"):
        twin.simulate(_small(factor=0.02, horizon_h=2, drain_h=1), seed=0, engine="kernel", routing=Always(99))


def test_policy_naming_a_closed_warehouse_gets_a_clear_error() -> None:
    doc = _small("warehouse_outage", 0.02, horizon_h=3, drain_h=1).model_dump(mode="json")
    doc["disruptions"][0]["start_h"] = 1.0  # the outage starts after an hour of orders
    doc["demand"]["cold_chain_share"] = 0.0  # (ambient orders only: the site has no cold storage)
    sc = twin.scenario.loader.validate_scenario(doc)
    (d,) = sc.disruptions
    w = [x.name for x in sc.warehouses].index(d.warehouse)
    with pytest.raises(ValueError, match=rf"routing policy 'always' \(Always\).*warehouse {w} \({d.warehouse}\), "
                                         r"which is closed at t = .*allowed: the open warehouses"):
        twin.simulate(sc, seed=0, engine="kernel", routing=Always(w))


class Bad(NearestWithStock):
    name = "bad"

    def __init__(self, answer) -> None:  # noqa: ANN001
        super().__init__()
        self.answer = answer

    def route(self, batch: OrderBatch, state: State) -> np.ndarray:
        return self.answer(batch)


@pytest.mark.parametrize("answer, message", [
    (lambda b: np.zeros(len(b.sku) + 1, dtype=int), r"one warehouse index per order line, shape"),
    (lambda b: np.zeros(len(b.sku)), r"integer warehouse indices; got dtype float64"),
    (lambda b: np.full(len(b.sku), -5), r"warehouse -5: not a warehouse index"),
])
def test_malformed_policy_answers_get_clear_errors(answer, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=r"routing policy 'bad' \(Bad\).*" + message):
        twin.simulate(_small(factor=0.02, horizon_h=2, drain_h=1), seed=0, engine="kernel", routing=Bad(answer))


def test_policy_answering_minus_one_loses_the_orders() -> None:
    r = twin.simulate(_small(factor=0.02, horizon_h=2, drain_h=1), seed=0, engine="kernel",
                      routing=Bad(lambda b: np.full(len(b.sku), -1)))
    assert r.kpis["orders_lost"] == r.kpis["orders_created"] > 0


def test_bad_agv_schedules_are_refused() -> None:
    m = FulfillmentModel(scale_scenario(twin.load_scenario("baseline"), 0.05), seed=0, engine="kernel")
    k = m.engine.k
    with pytest.raises(ValueError, match="ascending"):
        k.set_agv_schedule([2.0, 1.0], [0, 0], [-1, 1])
    with pytest.raises(ValueError, match=r"warehouse outside 0\.\.\d+"):
        k.set_agv_schedule([1.0], [99], [-1])
    with pytest.raises(ValueError, match="one length"):
        k.set_agv_schedule([1.0, 2.0], [0], [-1, 1])


def test_adopted_record_columns_equal_the_copied_ones() -> None:
    """When every order has one shipment the kernel hands its record arrays over without a
    copy; the columns are exactly those the general (copying) path builds for the same run,
    including NaN delivery times for parcels still in transit at the end."""
    sc = scale_scenario(twin.load_scenario("singles_day", {"drain_h": 2}), 0.05)

    def run(adopt: bool) -> dict:
        m = FulfillmentModel(sc, seed=3, engine="kernel")
        m.run()
        return m.engine.k.columns(adopt=adopt)

    adopted, copied = run(True), run(False)
    assert list(adopted) == list(copied)
    assert not adopted["delivered_at"].flags.owndata and copied["delivered_at"].flags.owndata
    in_transit = copied["status"] == 4
    assert in_transit.sum() > 0 and np.isnan(copied["delivered_at"][in_transit]).all()
    for k in copied:
        assert adopted[k].dtype == copied[k].dtype, k
        np.testing.assert_array_equal(adopted[k], copied[k], err_msg=k)


def test_allocation_shares_are_normalised_and_checked() -> None:
    net = FulfillmentModel(_small(factor=0.05, horizon_h=4, drain_h=4), seed=0, engine="kernel").net
    W, R = net.n_warehouses, net.n_regions
    pol = AllocationShares().bind(net, None)
    a = np.zeros((R, W))
    a[0, :2] = [1.0, 3.0]  # region 0: 1/4, 3/4; every other region all zeros: uniform
    pol.set_shares(a)
    assert pol.shares[0, :3].tolist() == [0.25, 0.75, 0.0]
    np.testing.assert_array_equal(pol.shares[1:], np.full((R - 1, W), 1.0 / W))
    for bad in (np.nan, np.inf, -0.5):
        b = np.ones((R, W))
        b[2, 1] = bad
        with pytest.raises(ValueError, match="shares must be finite and >= 0"):
            pol.set_shares(b)
    with pytest.raises(ValueError, match=rf"shape \(regions, warehouses\) = \({R}, {W}\), got \(2, 2\)"):
        pol.set_shares(np.ones((2, 2)))


def test_allocation_shares_draw_among_the_feasible_warehouses_in_proportion() -> None:
    """Shares 0.5 / 0.3 / 0.2 over shanghai (closed all run) / nanjing / wuhan: every order goes
    to nanjing with probability 0.3 / 0.5 = 0.6 and to wuhan with 0.4 (a binomial 4-sigma band)."""
    doc = _small(factor=0.1, horizon_h=48, drain_h=24).model_dump(mode="json")
    doc["demand"]["cold_chain_share"] = 0.0
    doc["disruptions"] = [{"type": "warehouse_outage", "warehouse": "shanghai", "start_h": 0, "end_h": 72}]
    for w in doc["warehouses"]:
        w["stock"]["units_per_sku"] = 10**6  # stock never decides
        w["stock"]["sku_fraction"] = 1.0
    sc = validate_scenario(doc, "three shares")
    m0 = FulfillmentModel(sc, seed=0, engine="kernel")
    names = m0.net.warehouses
    shares = np.zeros((m0.net.n_regions, m0.net.n_warehouses))
    for name, s in (("shanghai", 0.5), ("nanjing", 0.3), ("wuhan", 0.2)):
        shares[:, names.index(name)] = s
    r = twin.simulate(sc, seed=1, engine="kernel", routing=AllocationShares(shares))
    wh = r.orders["warehouse"].dropna()
    n = len(wh)
    assert n > 6000 and set(wh.unique()) == {"nanjing", "wuhan"}
    p = (wh == "nanjing").mean()
    assert abs(p - 0.6) < 4 * math.sqrt(0.24 / n)
