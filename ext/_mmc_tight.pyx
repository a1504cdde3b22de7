# cython: language_level=3
"""A tight typed-Cython M/M/c queue: the speed yardstick for the kernel engine.

Poisson arrivals, ``servers`` FIFO servers, exponential service at rate 1 per server. The same
event calendar and RNG as the kernel (``ext/_core.pxd``), and nothing else: no records, no
routing, no stations, no Python per customer.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport malloc, free
from libc.math cimport INFINITY

from ext._core cimport Rng, Heap, Ev, rng_seed, rng_exponential, heap_push, heap_pop

import time

__all__ = ["run_mmc"]


def run_mmc(long n_customers, int servers=8, double utilization=0.85, uint64_t seed=0) -> dict:
    """Simulate ``n_customers`` through an M/M/c queue and time it.

    Returns:
        ``{"customers", "wall_s", "per_s", "mean_wait"}`` as ``benchmarks/mmc_simpy.py``'s
        ``run_plain_mmc`` (the wait in mean service times).
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be >= 1, got {n_customers}")
    if servers < 1:
        raise ValueError(f"servers must be >= 1, got {servers}")
    if not 0 < utilization < 1:
        raise ValueError(f"utilization must be in (0, 1), got {utilization}")
    cdef Rng rng
    cdef Heap heap
    cdef double lam = utilization * servers
    cdef double now = 0.0, next_arr, wait_sum = 0.0, th
    cdef long arrived = 0, busy = 0
    cdef Py_ssize_t qcap = 1024, qhead = 0, qn = 0, i
    cdef double* queue = <double*>malloc(qcap * sizeof(double))
    cdef double* nq
    cdef Ev e
    if queue == NULL:
        raise MemoryError()
    heap.a = NULL
    heap.n = heap.cap = 0
    heap.seq = 0
    rng_seed(&rng, seed)
    t0 = time.perf_counter()
    try:
        next_arr = rng_exponential(&rng) / lam
        while True:
            th = heap.a[0].t if heap.n > 0 else INFINITY
            if next_arr <= th:
                if next_arr == INFINITY:
                    break
                now = next_arr
                arrived += 1
                next_arr = now + rng_exponential(&rng) / lam if arrived < n_customers else INFINITY
                if busy < servers:
                    busy += 1
                    heap_push(&heap, now + rng_exponential(&rng), 0)
                else:
                    if qn == qcap:
                        nq = <double*>malloc(2 * qcap * sizeof(double))
                        if nq == NULL:
                            raise MemoryError()
                        for i in range(qn):
                            nq[i] = queue[(qhead + i) % qcap]
                        free(queue)
                        queue = nq
                        qhead = 0
                        qcap *= 2
                    queue[(qhead + qn) % qcap] = now
                    qn += 1
            else:
                e = heap_pop(&heap)
                now = e.t
                if qn > 0:
                    wait_sum += now - queue[qhead]
                    qhead = (qhead + 1) % qcap
                    qn -= 1
                    heap_push(&heap, now + rng_exponential(&rng), 0)
                else:
                    busy -= 1
    finally:
        free(queue)
        free(heap.a)
    wall = time.perf_counter() - t0
    return {"customers": n_customers, "wall_s": wall, "per_s": n_customers / wall if wall > 0 else float("inf"),
            "mean_wait": wait_sum / n_customers}
