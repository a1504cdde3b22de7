"""The run's random streams (common random numbers) and buffered draws from them.

One seed per run; every source of randomness draws from its own stream spawned from it with
``numpy.random.SeedSequence.spawn`` (:class:`RunStreams`, the sources in :data:`STREAMS`). The
demand stream gives the order arrivals and their contents and nothing else, the weather stream
the weather, and so on: with one seed, two routing policies or two AGV counts see the same
orders and the same weather, so their differences are paired. The kernel seeds its own
generators (xoshiro256**) from the same spawned seeds (:meth:`RunStreams.kernel_seeds`).

Drawing numpy scalars one at a time costs about a microsecond each; the reference engine
draws in blocks instead (:class:`Stream`, :class:`Draws`). A sequence depends only on its
stream's seed and the order of use, so runs stay reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from twin.scenario.distributions import DISTRIBUTIONS, dist_spec

__all__ = ["STREAMS", "KERNEL_STREAMS", "RunStreams", "Stream", "Draws"]

#: The run's sources of randomness, each with its own stream, spawned from the seed in this order
#: (appending a source keeps every existing stream; reordering changes them all).
STREAMS: tuple[str, ...] = ("demand", "pick", "pack", "transit", "routing", "weather", "agv", "reallocation", "risk")
#: The streams the kernel draws from itself, in the order of ``ext._kernel.Kernel``'s ``seeds``.
KERNEL_STREAMS: tuple[str, ...] = ("demand", "pick", "pack", "transit", "routing")


class RunStreams:
    """One ``numpy.random.Generator`` per source of randomness, spawned from the run's seed.

    ``streams.demand``, ``streams.weather`` ...: the generator of that source (created on first
    use). :meth:`sub` gives independent per-item streams of a source (one per AGV fleet);
    :meth:`kernel_seeds` the kernel's seeds.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        children = np.random.SeedSequence(self.seed).spawn(len(STREAMS))
        self._seq = dict(zip(STREAMS, children, strict=True))
        self._gen: dict[str, np.random.Generator] = {}

    def seq(self, source: str) -> np.random.SeedSequence:
        """The ``SeedSequence`` of ``source``."""
        try:
            return self._seq[source]
        except KeyError:
            raise ValueError(f"unknown random source {source!r}; the sources are {', '.join(STREAMS)}") from None

    def __getattr__(self, source: str) -> np.random.Generator:
        if source.startswith("_"):
            raise AttributeError(source)
        gen = self._gen.get(source)
        if gen is None:
            gen = self._gen[source] = np.random.default_rng(self.seq(source))
        return gen

    def sub(self, source: str, i: int) -> np.random.Generator:
        """Item ``i``'s own stream of ``source`` (the same for the same seed, whatever else the
        run holds: fleet 3's breakdowns do not move when fleet 2 gets more AGVs)."""
        s = self.seq(source)
        return np.random.default_rng(np.random.SeedSequence(s.entropy, spawn_key=(*s.spawn_key, int(i))))

    def kernel_seeds(self) -> tuple[int, ...]:
        """One 64-bit seed per :data:`KERNEL_STREAMS` source, from its ``SeedSequence``."""
        return tuple(int(self.seq(name).generate_state(1, np.uint64)[0]) for name in KERNEL_STREAMS)


class Stream:
    """An endless stream of values drawn ``block`` at a time by ``draw(n)``."""

    __slots__ = ("_draw", "_block", "_buf", "_i")

    def __init__(self, draw: Callable[[int], np.ndarray], block: int = 4096) -> None:
        self._draw = draw
        self._block = block
        self._buf: list = []
        self._i = 0

    def __call__(self):  # noqa: ANN204 - returns a Python scalar
        if self._i >= len(self._buf):
            self._buf = self._draw(self._block).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v


class Draws:
    """Buffered standard draws (uniform, exponential, normal) from one generator, and samplers
    of the scenario's distributions on them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.uniform = Stream(rng.random)
        self.exponential = Stream(rng.standard_exponential)
        self.normal = Stream(rng.standard_normal)

    def sampler(self, dist: str, mean: float, cv: float) -> Callable[[float], float]:
        """A function ``f(scale)`` drawing from ``dist`` with mean ``mean*scale`` and the given cv
        (:func:`twin.scenario.distributions.dist_spec` says what they mean)."""
        spec = dist_spec(dist, cv)
        if spec.code == DISTRIBUTIONS["deterministic"]:
            return lambda scale=1.0: mean * scale
        if spec.code == DISTRIBUTIONS["exponential"]:
            e = self.exponential
            return lambda scale=1.0: mean * scale * e()
        sigma, mu_shift, n = spec.sigma, spec.mu, self.normal
        return lambda scale=1.0: mean * scale * math.exp(mu_shift + sigma * n())
