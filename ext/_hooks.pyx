# cython: language_level=3
"""Test hooks of the kernel's compiled pieces (ext/_core.pxd): the event heap, the RNG and
its distributions, callable from Python so the tests can check them against references.
The kernel itself (ext/_kernel.pyx) does not import this module."""

from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free

from ext._core cimport (Heap, Rng, alias_draw, heap_pop, heap_push, rng_next, rng_normal, rng_poisson, rng_scaled,
                        rng_seed, rng_uniform)

import numpy as np

from ext._kernel import build_alias

__all__ = ["heap_trace", "raw_u64", "sample"]


def heap_trace(times) -> list:
    """Push events at ``times`` (data = their index), pop them all: the indices in pop order."""
    cdef Heap h
    cdef Py_ssize_t i
    h.a = NULL
    h.n = h.cap = 0
    h.seq = 0
    out = []
    try:
        for i, t in enumerate(times):
            heap_push(&h, float(t), i)
        while h.n > 0:
            out.append(heap_pop(&h).data)
    finally:
        free(h.a)
    return out


def raw_u64(uint64_t seed, Py_ssize_t n):
    """The first ``n`` 64-bit outputs of the kernel's RNG seeded with ``seed``."""
    cdef Rng r
    rng_seed(&r, seed)
    out = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = rng_next(&r)
    return out


def sample(str dist, uint64_t seed, Py_ssize_t n, double mean=1.0, double cv=1.0, p=None):
    """``n`` draws of the kernel's distributions, for tests: ``uniform``, ``exponential``,
    ``normal``, ``lognormal`` / ``deterministic`` (mean, cv), ``poisson`` (mean), ``categorical``
    (``p``, by the alias method; returns indices)."""
    cdef Rng r
    cdef Py_ssize_t i
    cdef double sigma, mu, enl
    cdef int kind
    rng_seed(&r, seed)
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    cdef double[::1] prob
    cdef int32_t[::1] alias
    if dist == "categorical":
        pa, aa = build_alias(np.asarray(p, dtype=np.float64))
        prob, alias = pa, aa
        idx = np.empty(n, dtype=np.int64)
        for i in range(n):
            idx[i] = alias_draw(&r, &prob[0], &alias[0], prob.shape[0])
        return idx
    if dist == "poisson":
        enl = np.exp(-mean)
        for i in range(n):
            o[i] = rng_poisson(&r, mean, enl)
        return out
    if dist == "uniform":
        for i in range(n):
            o[i] = rng_uniform(&r)
        return out
    if dist == "normal":
        for i in range(n):
            o[i] = rng_normal(&r)
        return out
    from twin.scenario.distributions import DISTRIBUTIONS, dist_spec

    if dist not in DISTRIBUTIONS:
        raise ValueError(f"dist must be one of uniform, normal, poisson, categorical, {', '.join(DISTRIBUTIONS)}; "
                         f"got {dist!r}")
    spec = dist_spec(dist, cv)
    kind, sigma, mu = spec.code, spec.sigma, spec.mu
    for i in range(n):
        o[i] = rng_scaled(&r, kind, mean, sigma, mu)
    return out
