# cython: language_level=3
"""Declarations the Cython kernels share: a seeded xoshiro256** RNG with the distributions the
scenarios use, and an event calendar (a binary heap keyed by ``(time, seq)``, FIFO on ties).

Everything here is ``inline`` C: a kernel that ``cimport``s it pays no call into Python.
"""

from libc.math cimport log, sqrt, exp
from libc.stdint cimport uint64_t, int64_t, int32_t
from libc.stdlib cimport realloc


# ------------------------------------------------------------------------------ RNG
cdef struct Rng:
    uint64_t s[4]
    double spare  # the second normal of a polar pair
    int has_spare


cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _splitmix64(uint64_t* x) noexcept nogil:
    x[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline void rng_seed(Rng* r, uint64_t seed) noexcept nogil:
    """Seed the four words from ``seed`` with splitmix64 (never all zero)."""
    cdef uint64_t x = seed
    cdef int i
    for i in range(4):
        r.s[i] = _splitmix64(&x)
    r.has_spare = 0
    r.spare = 0.0


cdef inline uint64_t rng_next(Rng* r) noexcept nogil:
    """xoshiro256** (Blackman and Vigna): the next 64 random bits."""
    cdef uint64_t result = _rotl(r.s[1] * 5, 7) * 9
    cdef uint64_t t = r.s[1] << 17
    r.s[2] ^= r.s[0]
    r.s[3] ^= r.s[1]
    r.s[1] ^= r.s[2]
    r.s[0] ^= r.s[3]
    r.s[2] ^= t
    r.s[3] = _rotl(r.s[3], 45)
    return result


cdef inline double rng_uniform(Rng* r) noexcept nogil:
    """Uniform on [0, 1), 53 random bits."""
    return <double>(rng_next(r) >> 11) * (1.0 / 9007199254740992.0)


cdef inline double rng_exponential(Rng* r) noexcept nogil:
    """Standard exponential (mean 1), by inversion."""
    return -log(1.0 - rng_uniform(r))


cdef inline double rng_normal(Rng* r) noexcept nogil:
    """Standard normal, Marsaglia's polar method (keeps the pair's second value)."""
    cdef double u, v, s, f
    if r.has_spare:
        r.has_spare = 0
        return r.spare
    while True:
        u = 2.0 * rng_uniform(r) - 1.0
        v = 2.0 * rng_uniform(r) - 1.0
        s = u * u + v * v
        if 0.0 < s < 1.0:
            break
    f = sqrt(-2.0 * log(s) / s)
    r.spare = v * f
    r.has_spare = 1
    return u * f


cdef inline long rng_poisson(Rng* r, double lam, double exp_neg_lam) noexcept nogil:
    """Poisson(``lam``) by inversion (``exp_neg_lam`` = exp(-lam)); for the small means of
    lines per order (at most 49)."""
    cdef double u = rng_uniform(r)
    cdef double p = exp_neg_lam
    cdef double cum = p
    cdef long k = 0
    while u >= cum:
        k += 1
        p *= lam / k
        cum += p
        if p <= 0.0 and cum <= u:  # round-off at the far tail
            break
    return k


# distribution kinds, as in the scenario schema
cdef enum:
    DIST_DETERMINISTIC = 0
    DIST_EXPONENTIAL = 1
    DIST_LOGNORMAL = 2


cdef inline double rng_scaled(Rng* r, int kind, double mean, double sigma, double mu_shift) noexcept nogil:
    """A draw with mean ``mean``: deterministic, exponential, or lognormal with log-sd ``sigma``
    and log-mean shift ``mu_shift = -sigma^2 / 2`` (so the mean is kept)."""
    if kind == DIST_EXPONENTIAL:
        return mean * rng_exponential(r)
    if kind == DIST_LOGNORMAL:
        return mean * exp(mu_shift + sigma * rng_normal(r))
    return mean


cdef inline long alias_draw(Rng* r, const double* prob, const int32_t* alias, long n) noexcept nogil:
    """A draw from a categorical law of ``n`` outcomes by Walker's alias method (one uniform)."""
    cdef double u = rng_uniform(r) * n
    cdef long i = <long>u
    if i >= n:
        i = n - 1
    if u - i < prob[i]:
        return i
    return alias[i]


# ------------------------------------------------------------------------------ event calendar
cdef struct Ev:
    double t
    int64_t seq
    int64_t data


cdef struct Heap:
    Ev* a
    Py_ssize_t n
    Py_ssize_t cap
    int64_t seq


cdef inline bint ev_before(const Ev* x, const Ev* y) noexcept nogil:
    return x.t < y.t or (x.t == y.t and x.seq < y.seq)


cdef inline int heap_push(Heap* h, double t, int64_t data) except -1 nogil:
    """Add an event; among equal times, events leave in the order they were pushed."""
    cdef Py_ssize_t i, p, newcap
    cdef Ev* a
    cdef Ev e
    if h.n == h.cap:
        newcap = 64 if h.cap < 64 else h.cap * 2
        a = <Ev*>realloc(h.a, newcap * sizeof(Ev))
        if a == NULL:
            with gil:
                raise MemoryError("event calendar: out of memory")
        h.a = a
        h.cap = newcap
    e.t = t
    e.seq = h.seq
    e.data = data
    h.seq += 1
    i = h.n
    h.n += 1
    a = h.a
    while i > 0:
        p = (i - 1) >> 1
        if ev_before(&e, &a[p]):
            a[i] = a[p]
            i = p
        else:
            break
    a[i] = e
    return 0


cdef inline Ev heap_pop(Heap* h) noexcept nogil:
    """Remove and return the earliest event (the caller checks ``h.n > 0``)."""
    cdef Ev* a = h.a
    cdef Ev top = a[0]
    cdef Ev last
    cdef Py_ssize_t i = 0, c, n
    h.n -= 1
    n = h.n
    if n > 0:
        last = a[n]
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and ev_before(&a[c + 1], &a[c]):
                c += 1
            if ev_before(&a[c], &last):
                a[i] = a[c]
                i = c
            else:
                break
        a[i] = last
    return top
