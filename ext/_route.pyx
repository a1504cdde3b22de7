# cython: language_level=3
"""The routing service's per-order loops in C (``twin.serve.router``): reading a batch of order
structs into ``[n, W]`` arrays with the feasibility layer and the estimates, and writing each
decision's JSON (the response object and the audit event's data) without building dicts.

The arithmetic is the one the numpy version had, operation for operation (IEEE order, no fast
math), so the numbers are the same to the bit; the rounding of a reported number is numpy's
``round(x, 6)`` (``rint(x * 1e6) / 1e6``) and a float is written as Python's ``repr``.
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport int64_t, uint8_t
from libc.math cimport INFINITY, cos, fmod, isfinite, isnan, rint, signbit, sin
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import json

import numpy as np


cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0


class UnknownName(LookupError):
    """``args``: ``(order index, field, candidate index or -1, value)`` of the first name the
    network does not have (``field``: ``region``, ``service_level`` or ``warehouse_id``)."""


# ---------------------------------------------------------------------------- a JSON buffer
cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2 if b.cap else 4096
    cdef char* q
    while cap < b.n + need:
        cap *= 2
    q = <char*>realloc(b.p, cap)
    if q == NULL:
        raise MemoryError()
    b.p, b.cap = q, cap
    return 0


cdef inline int put(Buf* b, const char* s, Py_ssize_t m) except -1:
    if b.n + m > b.cap:
        _grow(b, m)
    memcpy(b.p + b.n, s, m)
    b.n += m
    return 0


cdef inline int put_bytes(Buf* b, bytes s) except -1:
    return put(b, <const char*>s, len(s))


cdef inline int put_int(Buf* b, long long v) except -1:
    cdef char tmp[24]
    cdef int i = 0, j
    cdef unsigned long long u
    cdef char c
    if v < 0:
        put(b, "-", 1)
        u = <unsigned long long>(-(v + 1)) + 1
    else:
        u = <unsigned long long>v
    while True:
        tmp[i] = <char>(48 + u % 10)
        i += 1
        u //= 10
        if u == 0:
            break
    for j in range(i // 2):
        c = tmp[j]
        tmp[j] = tmp[i - 1 - j]
        tmp[i - 1 - j] = c
    return put(b, tmp, i)


cdef inline int put_float(Buf* b, double x) except -1:
    """``repr(x)``; ``null`` when not finite."""
    cdef char* s
    cdef Py_ssize_t m = 0
    if not isfinite(x):
        return put(b, "null", 4)
    s = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    while s[m] != 0:
        m += 1
    try:
        put(b, s, m)
    finally:
        PyMem_Free(s)
    return 0


cdef int put_round6(Buf* b, double x) except -1:
    """numpy's ``round(x, 6)`` as JSON (``null`` when not finite): the decimal ``N / 10**6``
    (``N = rint(x * 1e6)``) with its trailing zeros dropped, which reads back as the same
    double as ``repr`` does (below 2**53 / 1e6 two such decimals are different doubles, so
    none shorter reads back the same); ``repr`` beyond that."""
    cdef double y
    cdef unsigned long long N, ip, fp
    cdef char tmp[8]
    cdef int i, m
    if not isfinite(x):
        return put(b, "null", 4)
    y = rint(x * 1e6)
    if not (-9007199254740992.0 < y < 9007199254740992.0):
        return put_float(b, y / 1e6)
    if signbit(y):
        put(b, "-", 1)
        y = -y
    N = <unsigned long long>y
    ip, fp = N // 1000000, N % 1000000
    put_int(b, <long long>ip)
    put(b, ".", 1)
    if fp == 0:
        return put(b, "0", 1)
    for i in range(6):
        tmp[5 - i] = <char>(48 + fp % 10)
        fp //= 10
    m = 6
    while tmp[m - 1] == 48:
        m -= 1
    return put(b, tmp, m)


def round6_json(double x):
    """What :meth:`RouteKernel.write` writes for the number ``x`` (tests)."""
    cdef Buf b
    b.p, b.n, b.cap = NULL, 0, 0
    try:
        put_round6(&b, x)
        return PyBytes_FromStringAndSize(b.p, b.n)
    finally:
        free(b.p)


cdef const char* HEX = "0123456789abcdef"


cpdef bytes json_str(str s):
    """``s`` as a JSON string (quotes included): UTF-8, ``"``, ``\\`` and control characters
    escaped; a string that is not valid UTF-8 (a lone surrogate) as ``json.dumps`` writes it."""
    cdef Py_ssize_t m, i
    cdef const char* u
    cdef unsigned char c
    cdef Buf b
    try:
        u = PyUnicode_AsUTF8AndSize(s, &m)
    except UnicodeEncodeError:
        return json.dumps(s).encode()
    b.p, b.n, b.cap = NULL, 0, 0
    try:
        _grow(&b, m + 2)
        put(&b, '"', 1)
        for i in range(m):
            c = <unsigned char>u[i]
            if c == 34:
                put(&b, '\\"', 2)
            elif c == 92:
                put(&b, '\\\\', 2)
            elif c < 32:
                put(&b, "\\u00", 4)
                put(&b, &HEX[c >> 4], 1)
                put(&b, &HEX[c & 15], 1)
            else:
                put(&b, <const char*>&u[i], 1)
        put(&b, '"', 1)
        return PyBytes_FromStringAndSize(b.p, b.n)
    finally:
        free(b.p)



cdef void* _data(object a, Py_ssize_t itemsize, Py_ssize_t min_items, char fmt, str what) except NULL:
    """The data of ``a``, a C-contiguous buffer of at least ``min_items`` items of ``itemsize``
    bytes (and of struct format ``fmt``, unless 0): a raw pointer, valid while the caller holds
    ``a`` (a typed memoryview per array cost more than the whole loop on one order)."""
    cdef Py_buffer view
    cdef void* p
    PyObject_GetBuffer(a, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    try:
        if (view.itemsize != itemsize or view.len < min_items * itemsize
                or (fmt != 0 and (view.format == NULL or view.format[0] != fmt or view.format[1] != 0))):
            raise ValueError(f"{what}: must be a C-contiguous array of >= {min_items} items of {itemsize} bytes"
                             f"{' (format ' + chr(fmt) + ')' if fmt else ''}; got {view.len // max(1, view.itemsize)} of "
                             f"{view.itemsize} bytes")
        p = view.buf
    finally:
        PyBuffer_Release(&view)
    return p


cdef inline double _pymod(double a, double b):
    """Python's ``a % b`` of floats."""
    cdef double m = fmod(a, b)
    if m != 0:
        if (b < 0) != (m < 0):
            m += b
    else:
        m = 0.0 if b > 0 else -0.0
    return m


cdef inline double _clip(double x, double lo, double hi):
    """numpy's ``clip(x, lo, hi)`` of a float (NaN passes through)."""
    if not (isnan(x) or x > lo):
        x = lo
    if not (isnan(x) or x < hi):
        x = hi
    return x


def masked_scores(logits, mask):
    """``[m, W]`` scores (lower is better) of the policy: ``-logits`` where ``mask``, else inf
    (``np.where(mask, -logits.astype(float), np.inf)``)."""
    lg = np.ascontiguousarray(logits, dtype=np.float32)
    mk = np.ascontiguousarray(mask, dtype=bool)
    if lg.ndim != 2 or mk.shape != lg.shape:
        raise ValueError(f"masked_scores: logits {lg.shape} and mask {mk.shape} must be the same [m, W]")
    cdef Py_ssize_t size = lg.size, i
    out = np.empty(lg.shape)
    cdef const float* L = <const float*>_data(lg, 4, size, b'f', "logits")
    cdef const uint8_t* M = <const uint8_t*>_data(mk, 1, size, b'?', "mask")
    cdef double* O = <double*>_data(out, 8, size, b'd', "scores")
    for i in range(size):
        O[i] = -<double>L[i] if M[i] else INFINITY
    return out


#: the prepared arrays by name: (block, kind, index); kind 0 an [n, W] array (the index-th of its
#: block), 1 an [n] array (after the block's [n, W] ones and stock/qty), 2 stock [n, W, L], 3 qty [n, L]
_LAYOUT = {
    "ratio": (0, 0, 0), "backlog": (0, 0, 1), "est_cost": (0, 0, 2), "est_h": (0, 0, 3), "est_co2": (0, 0, 4),
    "slack": (0, 0, 5), "transit": (0, 0, 6), "cover": (0, 0, 7), "promise": (0, 1, 0), "mult": (0, 1, 1),
    "t_h": (0, 1, 2),
    "listed": (1, 0, 0), "usable": (1, 0, 1), "whole": (1, 0, 2), "open": (1, 0, 3), "has_lane": (1, 0, 4),
    "cold": (1, 1, 0), "busy": (1, 1, 1),
    "why": (2, 0, 0), "carrier": (2, 0, 1), "car0": (2, 0, 2), "stock": (2, 2, 0), "qty": (2, 3, 0),
    "region": (2, 1, 0), "units": (2, 1, 1), "outside": (2, 1, 2), "bad_line": (2, 1, 3),
}
_NW = (8, 5, 3)  # [n, W] arrays in each block


cdef class Arrays:
    """A prepared batch (:meth:`RouteKernel.prepare`) by name, as a dict reads: ``A["whole"]``
    (numpy views of three blocks, made when first read), ``A["_blocks"]``, and the lists
    ``skus``, ``qtys``, ``any_whole``, ``outside_why`` and ``obs``; an item may be set."""

    cdef public dict d
    cdef tuple blocks
    cdef Py_ssize_t n, W, L

    def __init__(self, tuple blocks, Py_ssize_t n, Py_ssize_t W, Py_ssize_t L):
        self.blocks, self.n, self.W, self.L = blocks, n, W, L
        self.d = {"_blocks": blocks}

    def __getitem__(self, str key):
        v = self.d.get(key)
        if v is None and key not in self.d:
            v = self.d[key] = self._view(key)
        return v

    def __setitem__(self, str key, value):
        self.d[key] = value

    def __contains__(self, str key):
        return key in self.d or key in _LAYOUT

    def keys(self):
        return list(_LAYOUT) + [k for k in self.d if k not in _LAYOUT]

    cdef object _view(self, str key):
        cdef Py_ssize_t n = self.n, W = self.W, L = self.L, nw = n * W, start
        b, kind, i = _LAYOUT[key]
        block = self.blocks[b]
        if kind == 0:
            start = i * nw
            return block[start:start + nw].reshape(n, W)
        if kind == 2:
            return block[3 * nw:3 * nw + nw * L].reshape(n, W, L)
        if kind == 3:
            return block[3 * nw + nw * L:3 * nw + nw * L + n * L].reshape(n, L)
        start = _NW[b] * nw + (nw * L + n * L if b == 2 else 0) + i * n
        return block[start:start + n]


# ---------------------------------------------------------------------------- the kernel
cdef class RouteKernel:
    """The network's tables for :meth:`prepare` and the names' JSON for :meth:`write`."""

    cdef public dict wh_index, region_index, levels
    cdef public int W, S
    cdef uint8_t[:, :, ::1] lane_ok
    cdef uint8_t[::1] cold_capable
    cdef int64_t[:, :, ::1] car_lane
    cdef double[::1] agvs, pick_h, pack_h, half_gap, ship_rate, handling
    cdef double[:, :, ::1] transit_mean, lane_co2
    cdef double[:, :, :, ::1] parcel
    cdef double lines_mean, eps
    cdef int64_t[:, ::1] init_stock
    cdef double[:, ::1] distance_km
    cdef double[:, :, ::1] obs_lane_cost, obs_lane_transit
    cdef public double max_promise_h, horizon_h, max_weather
    cdef public int R, F
    cdef list wh_json, car_json, why_json, wh_key_json
    cdef dict sku_cache
    cdef object sku_index

    def __init__(self, list warehouses, list regions, list carriers, dict levels, lane_ok, cold_capable, car_lane,
                 agvs, transit_mean_h, parcel, handling_per_line, lane_co2_kg, pick_h, pack_h, half_gap,
                 double lines_mean, ship_rate, initial_stock, sku_index, double eps, list why_texts,
                 distance_km, lane_cost, lane_transit, double max_promise_h, double horizon_h, double max_weather):
        self.wh_index = {w: i for i, w in enumerate(warehouses)}
        self.region_index = {r: i for i, r in enumerate(regions)}
        self.levels = {k: float(v) for k, v in levels.items()}
        self.W = len(warehouses)
        self.lane_ok = np.ascontiguousarray(lane_ok, dtype=np.uint8)
        self.cold_capable = np.ascontiguousarray(cold_capable, dtype=np.uint8)
        self.car_lane = np.ascontiguousarray(car_lane, dtype=np.int64)
        self.agvs = np.ascontiguousarray(agvs, dtype=float)
        self.transit_mean = np.ascontiguousarray(transit_mean_h, dtype=float)
        self.parcel = np.ascontiguousarray(parcel, dtype=float)
        self.handling = np.ascontiguousarray(handling_per_line, dtype=float)
        self.lane_co2 = np.ascontiguousarray(lane_co2_kg, dtype=float)
        self.pick_h = np.ascontiguousarray(pick_h, dtype=float)
        self.pack_h = np.ascontiguousarray(pack_h, dtype=float)
        self.half_gap = np.ascontiguousarray(half_gap, dtype=float)
        self.lines_mean = lines_mean
        self.ship_rate = np.ascontiguousarray(ship_rate, dtype=float)
        self.init_stock = np.ascontiguousarray(initial_stock, dtype=np.int64)
        self.S = self.init_stock.shape[1]
        self.sku_index = sku_index
        self.sku_cache = {}
        self.eps = eps
        self.wh_json = [json_str(w) for w in warehouses]
        self.wh_key_json = [json_str(w) + b":" for w in warehouses]
        self.car_json = [json_str(c) for c in carriers]
        self.why_json = [b"null" if t is None else json_str(t) for t in why_texts]
        # the observation's tables (twin.policies.features.OrderLanes) and scales
        self.R = len(regions)
        self.F = 6 + self.R + 7 * self.W
        self.distance_km = np.ascontiguousarray(distance_km, dtype=float)
        self.obs_lane_cost = np.ascontiguousarray(lane_cost, dtype=float)
        self.obs_lane_transit = np.ascontiguousarray(lane_transit, dtype=float)
        self.max_promise_h, self.horizon_h, self.max_weather = max_promise_h, horizon_h, max_weather

    def prepare(self, list orders, bint observe, double now_h):
        """The arrays of ``orders`` (:class:`Arrays`; see ``Router._prepare``). ``observe``:
        also the observation (``obs``, ``[n, F]`` float32: the arithmetic of
        ``twin.policies.features.order_features``, operation for operation; a test holds the two
        equal), its inputs (SKU indices, stock cover) and why an order is outside the training
        ranges (``outside_why``: 0 inside, 1 an unknown SKU (its line in ``bad_line``), 2 the
        weather, 3 a backlog beyond training's), at the orders' hour (``created_at``, else
        ``now_h``). Raises :class:`UnknownName` for the first unknown region, service level or
        warehouse, in the order the fields are read."""
        cdef Py_ssize_t n = len(orders), k, j, w, l, L = 0, nl, nw
        cdef int W = self.W, R = self.R, F = self.F, r, c, cl, ci, i0
        cdef object o, dest, lines, line, cand, av, lv, ri, wi, created, sku, ix
        cdef double u, servers, ready, gap, tr, rate, bh, cv, init, x, t, day, ag
        cdef long long q, total
        cdef bint cold, hl, bad
        cdef float* xo
        for k in range(n):
            nl = len((<object>orders[k]).lines)
            if nl > L:
                L = nl
        # three blocks (one allocation each instead of thirty: one order costs less), their
        # arrays sliced from them when first read (Arrays)
        nw = n * W
        fb = np.zeros((8 * nw + 3 * n,))
        bb = np.zeros((5 * nw + 2 * n,), dtype=bool)
        ib = np.zeros((3 * nw + nw * L + n * L + 4 * n,), dtype=np.int64)
        # raw pointers into the blocks (one buffer each: a typed memoryview per array cost more
        # than the whole loop on one order)
        cdef double* ratio = <double*>_data(fb, 8, 8 * nw + 3 * n, 0, "fb")
        cdef double* backlog = ratio + nw
        cdef double* est_cost = ratio + 2 * nw
        cdef double* est_h = ratio + 3 * nw
        cdef double* est_co2 = ratio + 4 * nw
        cdef double* slack = ratio + 5 * nw
        cdef double* transit = ratio + 6 * nw
        cdef double* cover = ratio + 7 * nw
        cdef double* promise = ratio + 8 * nw
        cdef double* mult = promise + n
        cdef double* t_h = promise + 2 * n
        cdef uint8_t* listed = <uint8_t*>_data(bb, 1, 5 * nw + 2 * n, 0, "bb")
        cdef uint8_t* usable = listed + nw
        cdef uint8_t* whole = listed + 2 * nw
        cdef uint8_t* open_ = listed + 3 * nw
        cdef uint8_t* has = listed + 4 * nw
        cdef uint8_t* cold_v = listed + 5 * nw
        cdef uint8_t* busy = cold_v + n
        cdef int64_t* why = <int64_t*>_data(ib, 8, 3 * nw + nw * L + n * L + 4 * n, 0, "ib")
        cdef int64_t* car = why + nw
        cdef int64_t* c0 = why + 2 * nw
        cdef int64_t* stock = why + 3 * nw
        cdef int64_t* qty = stock + nw * L
        cdef int64_t* region = qty + n * L
        cdef int64_t* units = region + n
        cdef int64_t* outside = units + n
        cdef int64_t* bad_line = outside + n
        cdef float* obs = NULL
        cdef uint8_t cap_w[64]
        cdef uint8_t coldok_w[64]
        cdef long long sidx[256]
        if W > 64:
            raise ValueError("the service's kernel takes at most 64 warehouses")
        if L > 256:
            raise ValueError("the service's kernel takes at most 256 lines an order")
        for k in range(n):
            bad_line[k] = -1
        obs_a = None
        if observe:
            obs_a = np.zeros((n, F), dtype=np.float32)
            obs = <float*>_data(obs_a, 4, n * F, 0, "obs")
        skus, qtys, any_whole = [None] * n, [None] * n, [False] * n
        outside_why = [0] * n
        region_index, levels, wh_index, cache = self.region_index, self.levels, self.wh_index, self.sku_cache
        for k in range(n):
            o = orders[k]
            dest = o.destination
            ri = region_index.get(dest.region)
            if ri is None:
                raise UnknownName(k, "region", -1, dest.region)
            lv = levels.get(o.service_level)
            if lv is None:
                raise UnknownName(k, "service_level", -1, o.service_level)
            r = ri
            lines = o.lines
            nl = len(lines)
            sku_l, q_l = [None] * nl, [None] * nl
            cold = False
            total = 0
            for l in range(nl):
                line = lines[l]
                sku_l[l] = line.sku
                q = line.qty
                q_l[l] = q
                qty[k * L + l] = q
                total += q
                if line.cold_chain:
                    cold = True
            for w in range(W):
                cap_w[w] = 0
                coldok_w[w] = 0
            j = 0
            for cand in o.candidates:
                wi = wh_index.get(cand.warehouse_id)
                if wi is None:
                    raise UnknownName(k, "warehouse_id", j, cand.warehouse_id)
                w = wi
                listed[k * W + w] = 1
                open_[k * W + w] = 1 if cand.open else 0
                cap_w[w] = 1 if cand.remaining_capacity_orders > 0 else 0
                coldok_w[w] = 1 if cand.cold_ok else 0
                ratio[k * W + w] = cand.agvs_up_ratio
                backlog[k * W + w] = cand.backlog_orders
                av = cand.available
                for l in range(nl):
                    stock[(k * W + w) * L + l] = av.get(sku_l[l], 0)
                j += 1
            skus[k], qtys[k] = sku_l, q_l
            region[k] = r
            cold_v[k] = cold
            units[k] = total
            promise[k] = lv if o.promise_h is None else float(o.promise_h)
            mult[k] = float(dest.transit_multiplier)
            ci = 1 if cold else 0
            u = <double>total
            for w in range(W):
                # feasibility
                coldok_w[w] = coldok_w[w] and self.cold_capable[w]
                hl = open_[k * W + w] and cap_w[w] and self.lane_ok[ci, w, r] and (coldok_w[w] or not cold)
                usable[k * W + w] = hl
                if hl:
                    for l in range(nl):
                        if stock[(k * W + w) * L + l] < qty[k * L + l]:
                            hl = False
                            break
                whole[k * W + w] = hl
                if hl:
                    any_whole[k] = True
                if hl:
                    why[k * W + w] = 0
                elif not listed[k * W + w]:
                    why[k * W + w] = 1
                elif not open_[k * W + w]:
                    why[k * W + w] = 2
                elif not cap_w[w]:
                    why[k * W + w] = 3
                elif not self.lane_ok[ci, w, r]:
                    why[k * W + w] = 4
                elif cold and not coldok_w[w]:
                    why[k * W + w] = 5
                else:
                    why[k * W + w] = 6
                # estimates on the base heuristic's carrier
                c = self.car_lane[ci, w, r]
                car[k * W + w] = c
                has[k * W + w] = c >= 0
                cl = c if c >= 0 else 0
                c0[k * W + w] = cl
                servers = ratio[k * W + w] * self.agvs[w]
                if servers < 1.0:
                    servers = 1.0
                tr = self.transit_mean[cl, w, r] * mult[k]
                transit[k * W + w] = tr
                ready = backlog[k * W + w] * self.pick_h[w] * self.lines_mean / servers + u * self.pick_h[w] + self.pack_h[w]
                gap = self.half_gap[cl]
                if c >= 0:
                    est_h[k * W + w] = ready + gap + tr
                    est_cost[k * W + w] = self.parcel[ci, cl, w, r] + self.handling[w] * u
                    est_co2[k * W + w] = self.lane_co2[cl, w, r]
                else:
                    est_h[k * W + w] = INFINITY
                    est_cost[k * W + w] = INFINITY
                    est_co2[k * W + w] = INFINITY
                slack[k * W + w] = promise[k] - (ready + gap)
            if not observe:
                continue
            created = o.created_at
            if created is None:
                t_h[k] = now_h
            else:
                t_h[k] = created.hour + created.minute / 60 + created.second / 3600
            bad = False
            for l in range(nl):
                sku = sku_l[l]
                ix = cache.get(sku)
                if ix is None:
                    ix = self.sku_index(sku, self.S)
                    if ix is None:
                        ix = -1
                    if len(cache) < 100_000:
                        cache[sku] = ix
                sidx[l] = ix
                if sidx[l] < 0:
                    outside[k] = 1
                    bad_line[k] = l
                    bad = True
                    break
            if not bad:
                # more than 48 h of backlog at a working site (twin.policies.features.backlog_hours;
                # an idle or closed one reads 24 h: not busy; a test holds the two equal)
                for w in range(W):
                    rate = ratio[k * W + w] * self.agvs[w] if (listed[k * W + w] and open_[k * W + w]) else 0.0
                    rate = rate * self.ship_rate[w]
                    if rate > 0:
                        bh = backlog[k * W + w] / (rate if rate > self.eps else self.eps)
                    else:
                        bh = 24.0 if backlog[k * W + w] > 0 else 0.0
                    if bh > 48.0:
                        busy[k] = 1
                for w in range(W):
                    cv = INFINITY
                    for l in range(nl):
                        init = <double>self.init_stock[w, sidx[l]]
                        if init < 1.0:
                            init = 1.0
                        x = <double>stock[(k * W + w) * L + l] / init
                        if x < cv:
                            cv = x
                    cover[k * W + w] = cv
            outside_why[k] = 1 if bad else (2 if mult[k] > self.max_weather else (3 if busy[k] else 0))
            # the observation (twin.policies.features.order_features; an order with an unknown
            # SKU has cover 0, as the numpy version read it: it is not asked)
            xo = obs + k * F
            t = t_h[k]
            day = 2 * 3.141592653589793 * _pymod(t, 24.0) / 24.0
            xo[0] = <float>_clip(sin(day), -1.0, 1.0)
            xo[1] = <float>_clip(cos(day), -1.0, 1.0)
            x = t / self.horizon_h
            xo[2] = <float>_clip(1.0 if 1.0 < x else x, 0.0, 1.0)
            xo[3 + r] = 1.0
            i0 = 3 + R
            xo[i0] = 1.0 if cold else 0.0
            xo[i0 + 1] = <float>_clip(u / 5.0, 0.0, 1.0)
            xo[i0 + 2] = <float>_clip(promise[k] / self.max_promise_h, 0.0, 1.0)
            i0 += 3
            for w in range(W):
                servers = ratio[k * W + w] * self.agvs[w]
                rate = (servers if (listed[k * W + w] and open_[k * W + w]) else 0.0) * self.ship_rate[w]
                if rate > 0:
                    bh = backlog[k * W + w] / (rate if rate > self.eps else self.eps)
                else:
                    bh = 24.0 if backlog[k * W + w] > 0 else 0.0
                ag = self.agvs[w] if self.agvs[w] > 1.0 else 1.0
                xo[i0 + w] = 1.0 if whole[k * W + w] else 0.0
                xo[i0 + W + w] = <float>_clip(bh / 24.0, 0.0, 1.0)
                xo[i0 + 2 * W + w] = <float>_clip(servers / ag, 0.0, 1.0)
                xo[i0 + 3 * W + w] = <float>_clip(self.distance_km[w, r] / 4000.0, 0.0, 1.0)
                xo[i0 + 4 * W + w] = <float>_clip(self.obs_lane_cost[ci, w, r] / 50.0, 0.0, 1.0)
                xo[i0 + 5 * W + w] = <float>_clip(self.obs_lane_transit[ci, w, r] * mult[k] / 72.0, 0.0, 1.0)
                xo[i0 + 6 * W + w] = <float>_clip(cover[k * W + w], 0.0, 1.0)
        A = Arrays((fb, bb, ib), n, W, L)
        A.d.update(skus=skus, qtys=qtys, any_whole=any_whole, obs=obs_a, outside_why=outside_why,
                   region_index=[region[k] for k in range(n)])
        return A

    def write(self, list order_ids, list skus, list qtys, S_, tuple blocks, list kind, list reasons,
              list fb_reasons, dict fb_json, list action, dict splits, list dids, list digests, list strategies,
              bytes policy_json):
        """``(bodies, audit_data, choices)``, per order the decision's JSON object (the
        response's), the audit event's ``data`` up to its ``"latency_s":`` (the caller ends it),
        and the warehouse index chosen or -1. ``S_``: ``[n, W]`` scores (lower is better);
        ``blocks``: the prepared batch's (``prepare(...)["_blocks"]``).

        ``kind``: per order 0-2 the reason is ``reasons[kind]`` (policy/heuristic/strategy, as
        JSON), 3 a fallback; ``fb_reasons``: per order the fallback reason or None, written as
        ``fb_json[reason]``; ``action``: per order the policy's warehouse (-1: the best score);
        ``splits``: order index -> the warehouse of each line (a split), or None (unfillable),
        for the orders with no whole candidate; ``dids``, ``digests``: the decision ids and
        request digests (hex); ``strategies``: the strategy each decision records."""
        cdef Py_ssize_t n = len(order_ids), k, w, i, nl, i0
        cdef int W = self.W, best, nlisted
        cdef Py_ssize_t nw = n * W
        cdef double* S = <double*>_data(S_, 8, nw, b'd', "S_")
        cdef double* est_cost = <double*>_data(blocks[0], 8, 8 * nw, 0, "blocks[0]") + 2 * nw
        cdef double* est_h = est_cost + nw
        cdef double* est_co2 = est_cost + 2 * nw
        cdef uint8_t* listed = <uint8_t*>_data(blocks[1], 1, 5 * nw, 0, "blocks[1]")
        cdef uint8_t* whole = listed + 2 * nw
        cdef int64_t* why = <int64_t*>_data(blocks[2], 8, 3 * nw, 0, "blocks[2]")
        cdef int64_t* car = why + nw
        cdef int order[64]
        cdef double key[64]
        cdef int grp[64]
        cdef bint any_whole, fin
        cdef double bs
        cdef Buf b, a
        cdef object split, oid_j, reason_j, fb_j, did_b, dig_b, st_j
        bodies, data, choice = [None] * n, [None] * n, [-1] * n
        b.p, b.n, b.cap = NULL, 0, 0
        a.p, a.n, a.cap = NULL, 0, 0
        wh_json, car_json, why_json, wh_key = self.wh_json, self.car_json, self.why_json, self.wh_key_json
        try:
            _grow(&b, 4096)
            _grow(&a, 2048)
            for k in range(n):
                b.n = 0
                a.n = 0
                # the ranking's order: feasible first, then scored, by score, by warehouse (stable)
                nlisted = 0
                any_whole = False
                for w in range(W):
                    if not listed[k * W + w]:
                        continue
                    fin = isfinite(S[k * W + w])
                    if whole[k * W + w]:
                        any_whole = True
                    grp[nlisted] = (0 if whole[k * W + w] else 2) + (0 if fin else 1)
                    key[nlisted] = S[k * W + w] if fin else 0.0
                    order[nlisted] = <int>w
                    i = nlisted
                    while i > 0 and (grp[i - 1] > grp[i] or (grp[i - 1] == grp[i] and key[i - 1] > key[i])):
                        grp[i - 1], grp[i] = grp[i], grp[i - 1]
                        key[i - 1], key[i] = key[i], key[i - 1]
                        order[i - 1], order[i] = order[i], order[i - 1]
                        i -= 1
                    nlisted += 1
                best = -1  # whole implies listed (an unlisted candidate is not open)
                split = None
                if any_whole:
                    best = action[k]
                    if best < 0:
                        bs = INFINITY
                        for w in range(W):
                            if whole[k * W + w] and (best < 0 or S[k * W + w] < bs):
                                best, bs = <int>w, S[k * W + w]
                    reason_j = reasons[kind[k]]
                else:
                    split = splits.get(k)
                    reason_j = b'"unfillable"' if split is None else b'"split"'
                oid_j = json_str(order_ids[k])
                did_b = (<str>dids[k]).encode()
                dig_b = (<str>digests[k]).encode()
                st_j = json_str(strategies[k])
                put(&b, '{"decision_id":"', 16)
                put_bytes(&b, did_b)
                put(&b, '","order_id":', 13)
                put_bytes(&b, oid_j)
                put(&b, ',"warehouse_id":', 16)
                if best >= 0:
                    put_bytes(&b, wh_json[best])
                    put(&b, ',"carrier":', 11)
                    put_bytes(&b, car_json[car[k * W + best] % len(car_json)])
                else:
                    put(&b, 'null,"carrier":null', 19)
                put(&b, ',"rankings":[', 13)
                # audit data, up to the scores
                put(&a, '{"order_id":', 12)
                put_bytes(&a, oid_j)
                put(&a, ',"decision_id":"', 16)
                put_bytes(&a, did_b)
                put(&a, '","request_digest":"', 20)
                put_bytes(&a, dig_b)
                put(&a, '","strategy":', 13)
                put_bytes(&a, st_j)
                put(&a, ',"scores":{', 11)
                for i in range(nlisted):
                    w = order[i]
                    if i:
                        put(&b, ",", 1)
                        put(&a, ",", 1)
                    put(&b, '{"warehouse_id":', 16)
                    put_bytes(&b, wh_json[w])
                    put(&b, ',"rank":', 8)
                    put_int(&b, i + 1)
                    put(&b, ',"score":', 9)
                    i0 = b.n
                    put_round6(&b, S[k * W + w])
                    put_bytes(&a, wh_key[w])
                    put(&a, b.p + i0, b.n - i0)
                    if whole[k * W + w]:
                        put(&b, ',"feasible":true,"est_cost_cny":', 32)
                    else:
                        put(&b, ',"feasible":false,"est_cost_cny":', 33)
                    put_round6(&b, est_cost[k * W + w])
                    put(&b, ',"est_delivery_h":', 18)
                    put_round6(&b, est_h[k * W + w])
                    put(&b, ',"est_co2_kg":', 14)
                    put_round6(&b, est_co2[k * W + w])
                    put(&b, ',"why_not":', 11)
                    put_bytes(&b, why_json[why[k * W + w]])
                    put(&b, "}", 1)
                put(&b, '],"assignments":[', 17)
                put(&a, '},"choice":', 11)
                put_bytes(&a, wh_json[best] if best >= 0 else b"null")
                put(&a, ',"assignments":[', 16)
                sk, qs = skus[k], qtys[k]
                nl = len(sk)
                if best >= 0 or split is not None:
                    for i in range(nl):
                        w = best if best >= 0 else split[i]
                        if i:
                            put(&b, ",", 1)
                            put(&a, ",", 1)
                        put(&b, '{"line":', 8)
                        put_int(&b, i)
                        put(&b, ',"sku":', 7)
                        put_bytes(&b, json_str(sk[i]))
                        put(&b, ',"qty":', 7)
                        put_int(&b, qs[i])
                        put(&b, ',"warehouse_id":', 16)
                        put_bytes(&b, wh_json[w])
                        put(&b, ',"carrier":', 11)
                        put_bytes(&b, car_json[car[k * W + w] % len(car_json)])
                        put(&b, "}", 1)
                        put(&a, "[", 1)
                        put_int(&a, i)
                        put(&a, ",", 1)
                        put_bytes(&a, wh_json[w])
                        put(&a, "]", 1)
                fb_j = fb_json[fb_reasons[k]]
                put(&b, '],"reason":', 11)
                put_bytes(&b, reason_j)
                put(&a, '],"reason":', 11)
                put_bytes(&a, reason_j)
                if kind[k] == 3:
                    put(&b, ',"fallback":true,"fallback_reason":', 35)
                    put(&a, ',"fallback":true,"fallback_reason":', 35)
                else:
                    put(&b, ',"fallback":false,"fallback_reason":', 36)
                    put(&a, ',"fallback":false,"fallback_reason":', 36)
                put_bytes(&b, fb_j)
                put_bytes(&a, fb_j)
                put(&b, ',"policy":', 10)
                put_bytes(&b, policy_json)
                put(&b, "}", 1)
                put(&a, ',"policy":', 10)
                put_bytes(&a, policy_json)
                put(&a, ',"latency_s":', 13)
                bodies[k] = PyBytes_FromStringAndSize(b.p, b.n)
                data[k] = PyBytes_FromStringAndSize(a.p, a.n)
                choice[k] = best
            return bodies, data, choice
        finally:
            free(b.p)
            free(a.p)
