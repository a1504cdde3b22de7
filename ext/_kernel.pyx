# cython: language_level=3
"""The ``kernel`` engine's order flow in typed Cython: no Python call per order.

Arrival -> routing (stock reserved at once) -> pick queue (c(t) servers, FIFO) -> pack queue ->
carrier departure with capacity (reefer for cold chain; lanes into closed regions wait) ->
transit (x weather) -> delivery, on one event calendar. The semantics are those of
``twin/engine_simpy.py`` (the reference); :class:`twin.sim.kernel.KernelEngine` is the Python
wrapper that builds the tables, validates them and drives this kernel between agent events.

The kernel reads and writes the State arrays through typed memoryviews on the same numpy
arrays (never copies). Routing runs inside for the parameter policies (score tables with the
optional queue term of ``Fastest``/``WeightedScore``, allocation shares); any other Python
policy is called once per routing interval on a batch of orders (``policy.route``).
"""

cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from cython.view cimport array as cyarray
from libc.string cimport memmove
from libc.math cimport INFINITY, NAN, ceil, erfc, exp, floor, log, log1p, nearbyint, sqrt

from ext._core cimport (DIST_DETERMINISTIC, DIST_EXPONENTIAL, DIST_LOGNORMAL, Ev, Heap, Rng, alias_draw, heap_pop,
                        heap_push, rng_exponential, rng_next, rng_normal, rng_poisson, rng_scaled, rng_seed,
                        rng_uniform)

import numpy as np

__all__ = ["Kernel", "build_alias", "STATUS_CODES", "RECORD_COLUMNS", "ROUTE_MODES", "DIST_CODES", "PICK_PRIORITY_CODES"]

# the record columns in the order ``columns()`` returns them (twin.sim.records.RECORD_DTYPES)
_COLUMN_ORDER = ("order_id", "shipment_id", "region", "warehouse", "carrier", "status", "cold_chain", "service_level",
                 "lines", "created_at", "routed_at", "pick_start", "pick_end", "shipped_at", "delivered_at",
                 "promised_at", "cost", "co2_kg")

# event codes (the low 3 bits of an event's data; the payload is above them)
cdef enum:
    EV_PICK_END = 0
    EV_PACK_END = 1
    EV_DEPART = 2
    EV_RETRY = 3
    EV_GIVEUP = 4
    EV_BATCH = 5
    EV_AGV = 6

# pick priorities: the compiled copy of twin.scenario.schema.PICK_PRIORITIES (exposed as
# PICK_PRIORITY_CODES; tests/test_seams.py checks both agree)
cdef enum:
    PRIO_FIFO = 0
    PRIO_EXPRESS = 1
    PRIO_PROMISE = 2

#: Pick priority name (twin.scenario.schema.PICK_PRIORITIES) -> the kernel's code.
PICK_PRIORITY_CODES = {"fifo": PRIO_FIFO, "express_first": PRIO_EXPRESS, "earliest_promise": PRIO_PROMISE}

# route modes: the compiled copy of twin.policies.plan.PLAN_MODES (exposed as ROUTE_MODES;
# tests/test_seams.py checks both agree)
cdef enum:
    MODE_STATIC = 0
    MODE_DYNAMIC = 1
    MODE_SHARES = 2
    MODE_BATCH = 3
    MODE_PROMISE = 4

#: Plan mode name (twin.policies.plan.RoutingPlan.mode) -> the kernel's code.
ROUTE_MODES = {"static": MODE_STATIC, "queue": MODE_DYNAMIC, "shares": MODE_SHARES, "batch": MODE_BATCH,
               "promise": MODE_PROMISE}
#: Distribution name (twin.scenario.distributions.DISTRIBUTIONS) -> the code ``rng_scaled`` reads.
DIST_CODES = {"deterministic": DIST_DETERMINISTIC, "exponential": DIST_EXPONENTIAL, "lognormal": DIST_LOGNORMAL}

# statuses: the compiled copy of twin.sim.records.Status, exposed as STATUS_CODES (the test
# tests/test_records.py checks both agree)
cdef enum:
    ST_QUEUED = 0
    ST_PICKING = 1
    ST_PACKING = 2
    ST_AWAITING = 3
    ST_TRANSIT = 4
    ST_DELIVERED = 5
    ST_LOST = 6
    ST_BACKORDERED = 7

#: Status name (twin.sim.records.Status) -> the code the kernel writes.
STATUS_CODES = {"queued": ST_QUEUED, "picking": ST_PICKING, "packing": ST_PACKING,
                "awaiting_carrier": ST_AWAITING, "in_transit": ST_TRANSIT, "delivered": ST_DELIVERED,
                "lost": ST_LOST, "backordered": ST_BACKORDERED}
#: The record columns, in the order ``Kernel.columns()`` returns them.
RECORD_COLUMNS = _COLUMN_ORDER


cdef inline bint _on_time(double delivered, double promised) noexcept nogil:
    """The compiled copy of ``twin.sim.records.is_on_time``: delivered at or before the promise
    (the guard tests in tests/test_records.py compare the counter with the records)."""
    return delivered <= promised


cdef struct Fifo:
    int64_t* buf
    Py_ssize_t cap
    Py_ssize_t head
    Py_ssize_t n


cdef struct Vec:
    int64_t* buf
    Py_ssize_t n
    Py_ssize_t cap


cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    #endif
    #include <stdint.h>
    /* Ask for transparent huge pages on a large block (as numpy does for its arrays): the
       record arrays are written once, front to back, and first touches of 4 KiB pages would
       cost more than the writes. */
    static void twin_hugepage(void* p, size_t n) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (n >= ((size_t)4 << 20)) {
            uintptr_t a = ((uintptr_t)p) & ~(uintptr_t)4095;
            madvise((void*)a, n + ((uintptr_t)p - a), MADV_HUGEPAGE);
        }
    #endif
    }
    """
    void twin_hugepage(void* p, size_t n) noexcept nogil


cdef void* _grow(void* p, Py_ssize_t n, size_t size) except NULL:
    cdef void* q = realloc(p, (n if n > 0 else 1) * size)
    if q == NULL:
        raise MemoryError(f"kernel: out of memory growing an array to {n} items")
    twin_hugepage(q, n * size)
    return q


cdef object _adopt(void* p, Py_ssize_t n, Py_ssize_t itemsize, str fmt):
    """A numpy array of the first ``n`` items of the malloc'd block ``p``, without a copy; the
    array owns the block (shrunk to ``n`` items) and frees it when it is released."""
    cdef cyarray a
    cdef void* q
    if n == 0:
        free(p)
        return np.empty(0, dtype=fmt)
    q = realloc(p, n * itemsize)
    if q != NULL:
        p = q
    a = cyarray(shape=(n,), itemsize=itemsize, format=fmt, mode="c", allocate_buffer=False)
    a.data = <char*>p
    a.callback_free_data = free
    return np.asarray(a)


cdef int fifo_push(Fifo* q, int64_t x) except -1:
    cdef Py_ssize_t i, newcap
    cdef int64_t* nb
    if q.n == q.cap:
        newcap = 16 if q.cap < 16 else 2 * q.cap
        nb = <int64_t*>_grow(NULL, newcap, sizeof(int64_t))
        for i in range(q.n):
            nb[i] = q.buf[(q.head + i) % q.cap]
        free(q.buf)
        q.buf = nb
        q.cap = newcap
        q.head = 0
    i = q.head + q.n
    if i >= q.cap:
        i -= q.cap
    q.buf[i] = x
    q.n += 1
    return 0


cdef inline int64_t fifo_pop(Fifo* q) noexcept:
    cdef int64_t x = q.buf[q.head]
    q.head += 1
    if q.head == q.cap:
        q.head = 0
    q.n -= 1
    return x


cdef int vec_push(Vec* v, int64_t x) except -1:
    if v.n == v.cap:
        v.cap = 16 if v.cap < 16 else 2 * v.cap
        v.buf = <int64_t*>_grow(v.buf, v.cap, sizeof(int64_t))
    v.buf[v.n] = x
    v.n += 1
    return 0


cdef object _vec_array(Vec* v):
    """A copy of ``v``'s items as an int64 numpy array."""
    if v.n == 0:
        return np.empty(0, np.int64)
    return np.array(<int64_t[:v.n]>v.buf, dtype=np.int64)


cdef inline Py_ssize_t _bisect_right(const double* a, Py_ssize_t n, double x) noexcept:
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def build_alias(p):
    """Walker/Vose alias tables ``(prob, alias)`` of the categorical law ``p`` (normalised here)."""
    cdef double[::1] q = np.asarray(p, dtype=np.float64) / np.sum(p) * len(p)
    cdef Py_ssize_t n = q.shape[0], i, s, l, ns = 0, nl = 0
    prob_a = np.ones(n, dtype=np.float64)
    alias_a = np.arange(n, dtype=np.int32)
    cdef double[::1] prob = prob_a
    cdef int32_t[::1] alias = alias_a
    cdef int64_t[::1] small = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] large = np.empty(n, dtype=np.int64)
    for i in range(n):
        if q[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        l = large[nl - 1]
        prob[s] = q[s]
        alias[s] = <int>l
        q[l] = (q[l] + q[s]) - 1.0
        if q[l] < 1.0:
            nl -= 1
            small[ns] = l
            ns += 1
    return prob_a, alias_a


@cython.final  # direct (inlinable) calls between the event methods, not through a vtable
cdef class Kernel:
    """The order flow of one run. Built by :class:`twin.sim.kernel.KernelEngine`."""

    # sizes and clock
    cdef int W, R, C, K
    cdef public double now
    # one generator per source of randomness (common random numbers): demand (arrivals and
    # order contents), pick times, pack times, transit times, routing draws (allocation shares)
    cdef Rng r_dem, r_pick, r_pack, r_tr, r_route
    cdef bint log_lines
    cdef Vec ln_order, ln_sku, ln_qty
    cdef Heap heap
    # State (views on the model's arrays)
    cdef int64_t[:, ::1] inv
    cdef uint8_t[::1] wh_open, cold_ok, region_open
    cdef int64_t[::1] pick_servers, backlog, agv_up, agvs
    # the largest backlog reached so far: per warehouse, and over the network
    cdef int64_t[::1] bpeak
    cdef int64_t btotal, bpeak_total
    # its exact time integral per warehouse (shipment-hours), accounted at every change
    cdef double[::1] barea, blast
    cdef double[::1] agv_disabled, duty
    cdef double[::1] ag_t
    cdef int32_t[::1] ag_w
    cdef int64_t[::1] ag_d
    cdef double[::1] transit_mult, cap_mult
    # routing
    cdef int mode
    cdef bint allow_split
    cdef double[:, :, ::1] static_score
    cdef int32_t[:, :, ::1] pref
    cdef int32_t[:, ::1] npref
    cdef int64_t[:, :, ::1] lane_carrier
    cdef int64_t[:, :, :, ::1] service_carrier
    cdef bint use_sc
    cdef double[::1] pick_h
    cdef double dyn_a, dyn_b
    cdef double[:, ::1] shares
    cdef double prom_co2, lines_mean
    cdef double[::1] prom_late_k, prom_offset  # promise mode: late penalty per service level, score offset per warehouse
    cdef int route_car  # promise mode: the carrier _route chose for the whole order
    cdef int64_t[:, ::1] dock_waiting
    cdef double[::1] clock, dep_first_v
    cdef object policy, policy_label, state_obj, batch_cls, wh_names
    cdef double route_interval
    cdef bint batch_scheduled
    # demand
    cdef double cold_share, lam_lines, exp_neg_lam
    cdef double[::1] amb_prob, cold_prob, sl_cum, sl_promise
    cdef int32_t[::1] amb_alias, cold_alias
    cdef int64_t[::1] amb_sku, cold_sku
    cdef long n_amb, n_cold
    cdef bint backorder
    cdef double retry_h, max_h
    # stations and lanes
    cdef int32_t[::1] pick_kind, pack_kind, tr_kind
    cdef double[::1] pick_mean, pick_sigma, pick_mu, pack_mean, pack_sigma, pack_mu, tr_sigma, tr_mu
    cdef int64_t[::1] pack_cap, car_cap, car_reefer
    cdef double[::1] dep_interval
    cdef bint spill
    cdef uint8_t[:, :, ::1] lane_ok  # [C, W, R]: the carrier serves the lane
    cdef double[:, :, ::1] transit_mean
    cdef long* p_busy
    cdef long* p_cap
    cdef double* p_busy_area
    cdef double* p_cap_area
    cdef double* p_last
    cdef long* k_busy
    cdef Fifo* pick_q
    cdef Heap* pick_pq  # per warehouse: the pick queue when its priority is not FIFO
    cdef int64_t[::1] pick_prio  # the State's pick_priority: read at each queueing (policies may change it)
    cdef double[::1] sl_rank
    cdef Fifo* pack_q
    cdef Vec* docks
    # parcels in transit, by the hour of their delivery (bucket b holds [b, b + 1)); see _flush
    cdef Vec* dbk
    cdef Py_ssize_t n_dbk, dbk_lo
    # arrivals of the current window
    cdef double* arr_cum
    cdef double arr_total, arr_end, next_arr
    # counters
    cdef public int64_t created, delivered, on_time, lost
    cdef public double cost_total, co2_total  # of every shipment routed so far
    # cost and CO2 per shipment: lane tables [C*W*R] and per warehouse / carrier terms
    cdef double[::1] parcel_cost, lane_co2, handling
    # order records
    cdef Py_ssize_t cap_o
    cdef int64_t* o_first
    cdef int32_t* o_region
    cdef uint8_t* o_cold
    cdef uint8_t* o_service
    cdef int8_t* o_status
    cdef int32_t* o_remaining
    cdef int32_t* o_nship
    cdef int32_t* o_lines
    cdef double* o_created
    # shipment records
    cdef Py_ssize_t n_s, cap_s
    cdef int64_t* s_order
    cdef int32_t* s_wh
    cdef int32_t* s_car
    cdef uint8_t* s_left  # the parcel was left behind by a full departure of its carrier (spill)
    cdef int8_t* s_status
    cdef int32_t* s_lines
    cdef double* s_routed
    cdef double* s_pstart
    cdef double* s_pend
    cdef double* s_shipped
    cdef double* s_delivered
    # held orders (backorders): their lines
    cdef Py_ssize_t n_bo, cap_bo, n_bl, cap_bl
    cdef int64_t* bo_order
    cdef int64_t* bo_ls
    cdef int64_t* bo_n
    cdef int64_t* bl_sku
    cdef int64_t* bl_qty
    # the batch being gathered (batch mode)
    cdef Py_ssize_t n_bt, cap_bt, n_btl, cap_btl
    cdef int64_t* bt_order
    cdef int64_t* bt_bo
    cdef int64_t* bt_ls
    cdef int64_t* bt_sku
    cdef int64_t* bt_qty
    # scratch for one order's lines
    cdef Py_ssize_t cap_l
    cdef int64_t* l_sku
    cdef int64_t* l_qty
    cdef int64_t* l_wh
    cdef uint8_t* l_left
    cdef uint8_t* feas
    cdef double* score
    cdef double* share_tmp

    def __cinit__(self):
        self.heap.a = NULL
        self.heap.n = self.heap.cap = 0
        self.heap.seq = 0
        self.ln_order.buf = self.ln_sku.buf = self.ln_qty.buf = NULL
        self.ln_order.n = self.ln_sku.n = self.ln_qty.n = 0
        self.ln_order.cap = self.ln_sku.cap = self.ln_qty.cap = 0

    def __init__(self, *, seeds, state, tables, bint log_lines=False):
        """``seeds``: five 64-bit seeds, one per source of randomness, in the order of
        :data:`twin.sim.rng.KERNEL_STREAMS` (demand, pick, pack, transit, routing); ``state``:
        the model's :class:`twin.world.state.State`; ``tables``: the prepared scenario tables, a
        :class:`twin.sim.kernel.KernelTables` (typed in ``_kernel.pyi``); ``log_lines``: keep
        every order's lines (SKU, quantity) for :meth:`order_lines`."""
        cdef int w, c
        t = tables
        self.W, self.R, self.C = t.W, t.R, t.C
        seeds = tuple(int(x) for x in seeds)
        if len(seeds) != 5:
            raise ValueError(f"kernel: seeds must be 5 (demand, pick, pack, transit, routing), got {len(seeds)}")
        rng_seed(&self.r_dem, seeds[0])
        rng_seed(&self.r_pick, seeds[1])
        rng_seed(&self.r_pack, seeds[2])
        rng_seed(&self.r_tr, seeds[3])
        rng_seed(&self.r_route, seeds[4])
        self.log_lines = log_lines
        self.now = 0.0
        self.state_obj = state
        self.inv = state.inventory
        self.wh_open = state.wh_open.view(np.uint8)
        self.cold_ok = state.cold_ok.view(np.uint8)
        self.region_open = state.region_open.view(np.uint8)
        self.pick_servers = state.pick_servers
        self.agv_up = state.agv_up
        self.agv_disabled = state.agv_disabled_frac
        self.agvs = t.agvs
        self.duty = t.duty
        self.backlog = state.backlog
        self.bpeak = np.array(state.backlog, dtype=np.int64)
        self.barea = np.zeros(self.W)
        self.blast = np.zeros(self.W)
        self.btotal = self.bpeak_total = int(np.sum(state.backlog))
        self.transit_mult = state.region_transit_mult
        self.cap_mult = state.carrier_capacity_mult
        # routing
        self.mode = t.mode
        self.allow_split = t.allow_split
        self.static_score = t.static_score
        self.pref = t.pref
        self.npref = t.npref
        self.lane_carrier = t.lane_carrier
        self.service_carrier = t.service_carrier
        self.use_sc = t.use_service_carrier
        self.pick_h = t.pick_h
        self.dyn_a, self.dyn_b = t.dyn_a, t.dyn_b
        self.shares = t.shares
        self.prom_co2, self.lines_mean = t.co2_price, t.lines_mean
        self.prom_late_k, self.prom_offset = t.late_penalty_by_service, t.warehouse_offset
        self.route_car = -1
        self.dock_waiting = state.dock_waiting
        self.clock = state.clock
        self.dep_first_v = t.dep_first
        self.policy = t.policy
        self.policy_label = t.policy_label
        self.batch_cls = t.batch_cls
        self.wh_names = list(t.wh_names)
        self.route_interval = t.route_interval
        # demand
        self.cold_share = t.cold_share
        self.lam_lines = t.lam_lines
        self.exp_neg_lam = np.exp(-self.lam_lines)
        self.amb_prob, self.amb_alias, self.amb_sku = t.amb_prob, t.amb_alias, t.amb_sku
        self.cold_prob, self.cold_alias, self.cold_sku = t.cold_prob, t.cold_alias, t.cold_sku
        self.n_amb, self.n_cold = self.amb_sku.shape[0], self.cold_sku.shape[0]
        self.sl_cum, self.sl_promise = t.sl_cum, t.sl_promise
        self.pick_prio, self.sl_rank = state.pick_priority, t.sl_rank
        self.K = self.sl_cum.shape[0]
        if self.K > 127:
            raise ValueError(f"kernel: at most 127 service levels, got {self.K}")
        self.backorder = t.backorder
        self.retry_h, self.max_h = t.retry_h, t.max_h
        # stations and lanes
        self.pick_kind, self.pick_mean, self.pick_sigma, self.pick_mu = (
            t.pick_kind, t.pick_mean, t.pick_sigma, t.pick_mu)
        self.pack_kind, self.pack_mean, self.pack_sigma, self.pack_mu, self.pack_cap = (
            t.pack_kind, t.pack_mean, t.pack_sigma, t.pack_mu, t.pack_cap)
        self.tr_kind, self.tr_sigma, self.tr_mu = t.tr_kind, t.tr_sigma, t.tr_mu
        self.transit_mean = t.transit_mean
        self.parcel_cost, self.lane_co2 = t.parcel_cost, t.lane_co2
        self.handling = t.handling
        self.car_cap, self.car_reefer, self.dep_interval = t.car_cap, t.car_reefer, t.dep_interval
        self.spill, self.lane_ok = t.spill, t.lane_ok
        W, C = self.W, self.C
        self.p_busy = <long*>_grow(NULL, W, sizeof(long))
        self.p_cap = <long*>_grow(NULL, W, sizeof(long))
        self.k_busy = <long*>_grow(NULL, W, sizeof(long))
        self.p_busy_area = <double*>_grow(NULL, W, sizeof(double))
        self.p_cap_area = <double*>_grow(NULL, W, sizeof(double))
        self.p_last = <double*>_grow(NULL, W, sizeof(double))
        self.pick_q = <Fifo*>_grow(NULL, W, sizeof(Fifo))
        self.pick_pq = <Heap*>_grow(NULL, W, sizeof(Heap))
        self.pack_q = <Fifo*>_grow(NULL, W, sizeof(Fifo))
        self.docks = <Vec*>_grow(NULL, W * C, sizeof(Vec))
        self.arr_cum = <double*>_grow(NULL, self.R, sizeof(double))
        self.score = <double*>_grow(NULL, W, sizeof(double))
        self.share_tmp = <double*>_grow(NULL, W, sizeof(double))
        for w in range(W):
            self.p_busy[w] = 0
            self.k_busy[w] = 0
            self.p_cap[w] = self.pick_servers[w] if self.wh_open[w] else 0
            self.p_busy_area[w] = 0.0
            self.p_cap_area[w] = 0.0
            self.p_last[w] = 0.0
            self.pick_q[w].buf = NULL
            self.pick_q[w].cap = self.pick_q[w].head = self.pick_q[w].n = 0
            self.pick_pq[w].a = NULL
            self.pick_pq[w].n = self.pick_pq[w].cap = self.pick_pq[w].seq = 0
            self.pack_q[w].buf = NULL
            self.pack_q[w].cap = self.pack_q[w].head = self.pack_q[w].n = 0
        for w in range(W * C):
            self.docks[w].buf = NULL
            self.docks[w].n = self.docks[w].cap = 0
        self.arr_total = 0.0
        self.arr_end = 0.0
        self.next_arr = INFINITY
        self._ensure_lines(16)
        first = t.dep_first
        active = t.dock_active  # [C, W] bool
        for c in range(C):
            for w in range(W):
                if active[c, w]:
                    heap_push(&self.heap, first[c], (<int64_t>(c * W + w)) * 8 + EV_DEPART)

    def __dealloc__(self):
        cdef int i
        self._free_records()
        free(self.heap.a)
        if self.pick_q != NULL:
            for i in range(self.W):
                free(self.pick_q[i].buf)
                free(self.pick_pq[i].a)
                free(self.pack_q[i].buf)
        if self.docks != NULL:
            for i in range(self.W * self.C):
                free(self.docks[i].buf)
        free(self.pick_q)
        free(self.pick_pq)
        free(self.pack_q)
        free(self.docks)
        free(self.p_busy)
        free(self.p_cap)
        free(self.k_busy)
        free(self.p_busy_area)
        free(self.p_cap_area)
        free(self.p_last)
        free(self.arr_cum)
        if self.dbk != NULL:
            for i in range(self.dbk_lo, self.n_dbk):
                free(self.dbk[i].buf)
        free(self.dbk)
        free(self.score)
        free(self.share_tmp)
        free(self.bo_order)
        free(self.bo_ls)
        free(self.bo_n)
        free(self.bl_sku)
        free(self.bl_qty)
        free(self.bt_order)
        free(self.bt_bo)
        free(self.bt_ls)
        free(self.bt_sku)
        free(self.bt_qty)
        free(self.ln_order.buf)
        free(self.ln_sku.buf)
        free(self.ln_qty.buf)
        free(self.l_sku)
        free(self.l_qty)
        free(self.l_wh)
        free(self.l_left)
        free(self.feas)

    cdef void _free_records(self) noexcept:
        free(self.o_first); free(self.o_region); free(self.o_cold); free(self.o_service); free(self.o_status)
        free(self.o_remaining); free(self.o_nship); free(self.o_lines); free(self.o_created)
        free(self.s_order); free(self.s_wh); free(self.s_car); free(self.s_left); free(self.s_status); free(self.s_lines)
        free(self.s_routed); free(self.s_pstart); free(self.s_pend); free(self.s_shipped); free(self.s_delivered)
        self.o_first = NULL; self.o_region = NULL; self.o_cold = NULL; self.o_service = NULL
        self.o_status = NULL; self.o_remaining = NULL; self.o_nship = NULL; self.o_lines = NULL
        self.o_created = NULL; self.s_order = NULL; self.s_wh = NULL; self.s_car = NULL; self.s_left = NULL; self.s_status = NULL
        self.s_lines = NULL; self.s_routed = NULL; self.s_pstart = NULL; self.s_pend = NULL
        self.s_shipped = NULL; self.s_delivered = NULL
        self.cap_o = 0
        self.cap_s = 0

    # ------------------------------------------------------------------ storage
    cdef int _ensure_lines(self, Py_ssize_t n) except -1:
        if n <= self.cap_l:
            return 0
        n = max(n, 2 * self.cap_l)
        self.l_sku = <int64_t*>_grow(self.l_sku, n, sizeof(int64_t))
        self.l_qty = <int64_t*>_grow(self.l_qty, n, sizeof(int64_t))
        self.l_wh = <int64_t*>_grow(self.l_wh, n, sizeof(int64_t))
        self.l_left = <uint8_t*>_grow(self.l_left, n, sizeof(uint8_t))
        self.feas = <uint8_t*>_grow(self.feas, n * self.W, sizeof(uint8_t))
        self.cap_l = n
        return 0

    cdef int _grow_orders(self, Py_ssize_t want=0) except -1:
        cdef Py_ssize_t n = 4096 if self.cap_o < 4096 else 2 * self.cap_o
        if want > n:
            n = want
        self.o_first = <int64_t*>_grow(self.o_first, n, sizeof(int64_t))
        self.o_region = <int32_t*>_grow(self.o_region, n, sizeof(int32_t))
        self.o_cold = <uint8_t*>_grow(self.o_cold, n, sizeof(uint8_t))
        self.o_service = <uint8_t*>_grow(self.o_service, n, sizeof(uint8_t))
        self.o_status = <int8_t*>_grow(self.o_status, n, sizeof(int8_t))
        self.o_remaining = <int32_t*>_grow(self.o_remaining, n, sizeof(int32_t))
        self.o_nship = <int32_t*>_grow(self.o_nship, n, sizeof(int32_t))
        self.o_lines = <int32_t*>_grow(self.o_lines, n, sizeof(int32_t))
        self.o_created = <double*>_grow(self.o_created, n, sizeof(double))
        self.cap_o = n
        return 0

    cdef int _grow_ships(self, Py_ssize_t want=0) except -1:
        cdef Py_ssize_t n = 4096 if self.cap_s < 4096 else 2 * self.cap_s
        if want > n:
            n = want
        self.s_order = <int64_t*>_grow(self.s_order, n, sizeof(int64_t))
        self.s_wh = <int32_t*>_grow(self.s_wh, n, sizeof(int32_t))
        self.s_car = <int32_t*>_grow(self.s_car, n, sizeof(int32_t))
        self.s_left = <uint8_t*>_grow(self.s_left, n, sizeof(uint8_t))
        self.s_status = <int8_t*>_grow(self.s_status, n, sizeof(int8_t))
        self.s_lines = <int32_t*>_grow(self.s_lines, n, sizeof(int32_t))
        self.s_routed = <double*>_grow(self.s_routed, n, sizeof(double))
        self.s_pstart = <double*>_grow(self.s_pstart, n, sizeof(double))
        self.s_pend = <double*>_grow(self.s_pend, n, sizeof(double))
        self.s_shipped = <double*>_grow(self.s_shipped, n, sizeof(double))
        self.s_delivered = <double*>_grow(self.s_delivered, n, sizeof(double))
        self.cap_s = n
        return 0

    def storage_bytes(self) -> tuple:
        """``(bytes allocated for order and shipment records, shipment records, orders)``."""
        per_order = 8 + 4 + 1 + 1 + 1 + 4 + 4 + 4 + 8
        per_ship = 8 + 4 + 4 + 1 + 1 + 4 + 5 * 8
        return self.cap_o * per_order + self.cap_s * per_ship, self.n_s, self.created

    # ------------------------------------------------------------------ driving
    def start_arrivals(self, double t0, double t1, rates) -> None:
        """Orders arrive in ``[t0, t1)`` at ``rates`` per hour per region (read now, as the
        reference engine does). A window still running stops at ``t0`` (the clock): a rate
        change inside a tick starts the rest of it again at the new rates."""
        cdef double[::1] r = np.ascontiguousarray(rates, dtype=np.float64)
        cdef double total = 0.0, acc = 0.0
        cdef int i
        self.next_arr = INFINITY
        for i in range(self.R):
            total += r[i]
        if not total > 0:
            return
        for i in range(self.R):
            acc += r[i]
            self.arr_cum[i] = acc / total
        self.arr_total = total
        self.arr_end = t1
        self.next_arr = t0 + rng_exponential(&self.r_dem) / total
        if self.next_arr >= t1:
            self.next_arr = INFINITY

    def reserve(self, Py_ssize_t orders, Py_ssize_t shipments) -> None:
        """Room for this many order and shipment records at once (it is only address space
        until written; the records grow past it as needed)."""
        if orders > self.cap_o:
            self._grow_orders(orders)
        if shipments > self.cap_s:
            self._grow_ships(shipments)

    def set_agv_schedule(self, times, warehouses, deltas) -> None:
        """Play the AGV fleets' breakdowns (-1) and repairs (+1), ``times`` ascending, inside
        the event loop: ``State.agv_up`` changes and the pick servers are recomputed with
        ``agents.warehouse.AGVFleetAgent.servers``' formula."""
        t = np.ascontiguousarray(times, dtype=np.float64)
        w = np.ascontiguousarray(warehouses, dtype=np.int32)
        d = np.ascontiguousarray(deltas, dtype=np.int64)
        if not t.shape == w.shape == d.shape or t.ndim != 1:
            raise ValueError("kernel: the AGV schedule's times, warehouses and deltas must be 1-d and of one length")
        if len(t) and (np.any(np.diff(t) < 0) or t[0] < self.now):
            raise ValueError("kernel: the AGV schedule's times must be ascending and not in the past")
        if len(t) and np.any((w < 0) | (w >= self.W)):
            raise ValueError(f"kernel: the AGV schedule names a warehouse outside 0..{self.W - 1}")
        self.ag_t, self.ag_w, self.ag_d = t, w, d
        if len(t):
            heap_push(&self.heap, self.ag_t[0], EV_AGV)

    def set_shares(self, shares) -> None:
        """Point the allocation-share routing at ``shares`` (``[R, W]``, rows summing to 1)."""
        self.shares = shares

    def run_until(self, double until) -> None:
        """Process every order event before ``until``; the clock then reads ``until``."""
        self._run(until)

    def on_state_change(self) -> None:
        """Read the pick servers again (AGVs, outages) and start waiting picks if they grew."""
        cdef int w
        for w in range(self.W):
            self._account(w)
            self.p_cap[w] = self.pick_servers[w] if self.wh_open[w] else 0
            self._fill_pick(w)

    def station_areas(self):
        """Per warehouse: (busy pick server-hours, available pick server-hours) up to now."""
        busy = np.empty(self.W)
        cap = np.empty(self.W)
        cdef int w
        for w in range(self.W):
            self._account(w)
            busy[w] = self.p_busy_area[w]
            cap[w] = self.p_cap_area[w]
        return busy, cap

    cdef inline void _bl_account(self, int w) noexcept:
        self.barea[w] += self.backlog[w] * (self.now - self.blast[w])
        self.blast[w] = self.now

    def backlog_areas(self):
        """Per warehouse: the backlog's time integral up to now (shipment-hours), exact."""
        cdef int w
        for w in range(self.W):
            self._bl_account(w)
        return np.array(self.barea, dtype=np.float64)

    def backlog_peaks(self):
        """``(per warehouse [W] int64, network)``: the largest backlog (shipments routed, not yet
        shipped) reached so far, events at one instant taken in the kernel's order."""
        return np.array(self.bpeak, dtype=np.int64), int(self.bpeak_total)

    def counters(self) -> tuple:
        """``(created, delivered, on_time, lost, shipments, cost, co2_kg)``: orders, then the
        shipments routed and their cost and CO2, up to now."""
        self._flush(self.now)
        return (self.created, self.delivered, self.on_time, self.lost, self.n_s, self.cost_total,
                self.co2_total)

    # ------------------------------------------------------------------ the event loop
    cdef int _run(self, double until) except -1:
        cdef Ev e
        cdef double th
        cdef int64_t code, p
        while True:
            if self.now >= self.dbk_lo + 1:
                self._flush(self.now)
            th = self.heap.a[0].t if self.heap.n > 0 else INFINITY
            if self.next_arr <= th:
                if self.next_arr >= until:
                    break
                self.now = self.next_arr
                self._arrival()
            else:
                if th >= until:
                    break
                e = heap_pop(&self.heap)
                self.now = e.t
                code = e.data & 7
                p = e.data >> 3
                if code == EV_PICK_END:
                    self._pick_end(p)
                elif code == EV_DEPART:
                    self._depart(<int>p)
                elif code == EV_PACK_END:
                    self._pack_end(p)
                elif code == EV_RETRY:
                    self._retry(p)
                elif code == EV_GIVEUP:
                    self._lose(self.bo_order[p])
                elif code == EV_BATCH:
                    self._route_batch()
                elif code == EV_AGV:
                    self._agv(p)
        if until > self.now:
            self.now = until
        return 0

    # ------------------------------------------------------------------ orders
    cdef int _arrival(self) except -1:
        cdef Py_ssize_t region = 0
        if self.R > 1:
            region = _bisect_right(self.arr_cum, self.R, rng_uniform(&self.r_dem))
            if region >= self.R:
                region = self.R - 1
        self.next_arr = self.now + rng_exponential(&self.r_dem) / self.arr_total
        if self.next_arr >= self.arr_end:
            self.next_arr = INFINITY
        return self._new_order(<int>region)

    cdef int _new_order(self, int region) except -1:
        cdef int64_t oid = self.created
        cdef bint cold
        cdef long n = 1, i
        cdef Py_ssize_t nl = 0, j, k
        if oid == self.cap_o:
            self._grow_orders()
        self.created += 1
        cold = self.cold_share > 0 and rng_uniform(&self.r_dem) < self.cold_share
        if self.lam_lines > 0:
            n += rng_poisson(&self.r_dem, self.lam_lines, self.exp_neg_lam)
        if n > self.cap_l:
            self._ensure_lines(n)
        for i in range(n):
            if cold:
                k = self.cold_sku[alias_draw(&self.r_dem, &self.cold_prob[0], &self.cold_alias[0], self.n_cold)]
            else:
                k = self.amb_sku[alias_draw(&self.r_dem, &self.amb_prob[0], &self.amb_alias[0], self.n_amb)]
            for j in range(nl):
                if self.l_sku[j] == k:
                    self.l_qty[j] += 1
                    break
            else:
                self.l_sku[nl] = k
                self.l_qty[nl] = 1
                nl += 1
        k = 0
        if self.K > 1:
            k = _bisect_right(&self.sl_cum[0], self.K, rng_uniform(&self.r_dem) * self.sl_cum[self.K - 1])
            if k >= self.K:
                k = self.K - 1
        self.o_first[oid] = -1
        self.o_region[oid] = <int32_t>region
        self.o_cold[oid] = cold
        self.o_service[oid] = <uint8_t>k
        self.o_status[oid] = ST_QUEUED
        self.o_remaining[oid] = 0
        self.o_nship[oid] = 0
        self.o_lines[oid] = <int32_t>n
        self.o_created[oid] = self.now
        if self.log_lines:
            for j in range(nl):
                vec_push(&self.ln_order, oid)
                vec_push(&self.ln_sku, self.l_sku[j])
                vec_push(&self.ln_qty, self.l_qty[j])
        if self.mode == MODE_BATCH:
            return self._batch_add(oid, -1, nl)
        if self._route(oid, nl):
            return self._commit(oid, nl)
        return self._unroutable(oid, -1, nl)

    cdef bint _whole_ok(self, int w, int cold, Py_ssize_t nl) noexcept:
        cdef Py_ssize_t j
        if not self.wh_open[w] or (cold and not self.cold_ok[w]):
            return False
        for j in range(nl):
            if self.inv[w, self.l_sku[j]] < self.l_qty[j]:
                return False
        return True

    cdef int _route(self, int64_t oid, Py_ssize_t nl) except -1:
        """Fill ``l_wh`` for the order's lines (in ``l_sku``/``l_qty``); 1 if it can be served."""
        cdef int r = self.o_region[oid], c = self.o_cold[oid]
        cdef int w, i, best = -1, n = self.npref[c, r]
        cdef double s, best_s = INFINITY, tot = 0.0, u, sh
        cdef Py_ssize_t j
        if self.mode == MODE_STATIC:
            for i in range(n):
                w = self.pref[c, r, i]
                if self._whole_ok(w, c, nl):
                    best = w
                    break
        elif self.mode == MODE_PROMISE:
            best = self._promise_best(oid, c, r, nl)
        elif self.mode == MODE_DYNAMIC:
            self._dynamic_scores(c, r)
            for i in range(n):  # the score order, ties to the static order (a stable sort)
                w = self.pref[c, r, i]
                s = self.score[w]
                if s < best_s and self._whole_ok(w, c, nl):
                    best = w
                    best_s = s
        else:  # allocation shares: a draw among the warehouses that can serve it whole
            # First a draw over all of the region's shares, kept if that warehouse can serve the
            # order (most orders: one stock check instead of W); otherwise a draw among the
            # feasible ones. Either way warehouse w is chosen with probability share_w / (the
            # feasible shares' sum): s_w + (1 - S_F) * s_w / S_F = s_w / S_F.
            for w in range(self.W):
                tot += self.shares[r, w]
            u = rng_uniform(&self.r_route) * tot
            for w in range(self.W):
                sh = self.shares[r, w]
                if sh > 0:
                    best = w
                    if u < sh:
                        break
                    u -= sh
            if best >= 0 and not (self.static_score[c, r, best] < INFINITY and self._whole_ok(best, c, nl)):
                best = -1
        if self.mode == MODE_SHARES and best < 0:
            tot = 0.0
            for w in range(self.W):
                sh = self.shares[r, w]
                if sh > 0 and self.static_score[c, r, w] < INFINITY and self._whole_ok(w, c, nl):
                    self.share_tmp[w] = sh
                    tot += sh
                    best = w  # the last feasible one, in case of round-off below
                else:
                    self.share_tmp[w] = 0.0
            if tot > 0:
                u = rng_uniform(&self.r_route) * tot
                for w in range(self.W):
                    sh = self.share_tmp[w]
                    if sh > 0:
                        if u < sh:
                            best = w
                            break
                        u -= sh
        if best >= 0:
            for j in range(nl):
                self.l_wh[j] = best
            return 1
        if not self.allow_split or nl == 1:
            return 0
        if self.mode == MODE_STATIC or self.mode == MODE_PROMISE:
            for w in range(self.W):
                self.score[w] = self.static_score[c, r, w]
        elif self.mode == MODE_SHARES:  # the exponential race of AllocationShares.scores
            for w in range(self.W):
                sh = self.shares[r, w]
                if sh > 0 and self.static_score[c, r, w] < INFINITY:
                    self.score[w] = rng_exponential(&self.r_route) / sh
                else:
                    self.score[w] = INFINITY
        return self._split(c, nl)

    cdef int _promise_best(self, int64_t oid, int c, int r, Py_ssize_t nl) except -2:
        """``promise_aware`` (:mod:`twin.policies.promise`, the reference): the warehouse able to
        serve the order whole, and the carrier (``route_car``), of the lowest expected objective;
        -1 if none can."""
        cdef int w, car, i, best = -1, n = self.npref[c, r], k = self.o_service[oid]
        cdef long srv
        cdef int64_t cap
        cdef double t = self.now, ready, dep, mean, slack, p_late, s, best_s = INFINITY, z
        cdef double lines = self.o_lines[oid]
        cdef Py_ssize_t lane
        self.clock[0] = t
        self.route_car = -1
        for i in range(n):
            w = self.pref[c, r, i]
            if not self._whole_ok(w, c, nl):
                continue
            srv = self.pick_servers[w]
            if srv < 1:
                srv = 1
            ready = (t + self.backlog[w] * self.pick_h[w] * self.lines_mean / srv + lines * self.pick_h[w]
                     + self.pack_mean[w])
            for car in range(self.C):
                if not self.lane_ok[car, w, r] or (c and self.car_reefer[car] <= 0):
                    continue
                cap = <int64_t>((self.car_reefer[car] if c else self.car_cap[car]) * self.cap_mult[car])
                if cap <= 0:
                    p_late = 1.0
                else:
                    dep = self.dep_first_v[car]
                    if ready > dep:
                        dep = dep + self.dep_interval[car] * ceil((ready - dep) / self.dep_interval[car])
                    dep += (self.dock_waiting[car, w] // cap) * self.dep_interval[car]
                    mean = self.transit_mean[car, w, r] * self.transit_mult[r]
                    slack = t + self.sl_promise[k] - dep
                    if not slack > 0:
                        p_late = 1.0
                    elif self.tr_kind[car] == DIST_EXPONENTIAL:
                        p_late = exp(-slack / mean) if mean > 0 else 0.0
                    elif self.tr_kind[car] == DIST_LOGNORMAL and self.tr_sigma[car] > 0 and mean > 0:
                        z = (log(slack) - log(mean) - self.tr_mu[car]) / (self.tr_sigma[car] * sqrt(2.0))
                        p_late = 0.5 * erfc(z)
                    else:
                        p_late = 1.0 if mean > slack else 0.0
                lane = (car * self.W + w) * self.R + r
                s = (self._cost(car, w, r, <int64_t>lines, c) + self.prom_co2 * self.lane_co2[lane]
                     + self.prom_late_k[k] * p_late + self.prom_offset[w])
                if s < best_s:
                    best_s = s
                    best = w
                    self.route_car = car
        return best

    cdef void _dynamic_scores(self, int c, int r) noexcept:
        """``score = static + dyn_a * (backlog * pick_h / max(servers, 1) + pick_h) / dyn_b``
        (Fastest.dynamic_score, and WeightedScore's scaling of it)."""
        cdef int w
        cdef long srv
        cdef double d
        for w in range(self.W):
            srv = self.pick_servers[w]
            if srv < 1:
                srv = 1
            d = self.backlog[w] * self.pick_h[w] / srv + self.pick_h[w]
            self.score[w] = self.static_score[c, r, w] + self.dyn_a * d / self.dyn_b

    cdef int _split(self, int c, Py_ssize_t nl) except -1:
        """``assign_order`` when no warehouse can serve the whole order: lines go greedily to
        the warehouse covering most remaining lines, ties to the better score, then the lower
        index. 0 if some line has no feasible warehouse."""
        cdef int w, bw
        cdef Py_ssize_t j, cov, bc, left = nl
        cdef bint okw, any_ok
        cdef double bs
        cdef int W = self.W
        for w in range(W):
            okw = self.wh_open[w] and (not c or self.cold_ok[w]) and self.score[w] < INFINITY
            for j in range(nl):
                self.feas[w * nl + j] = okw and self.inv[w, self.l_sku[j]] >= self.l_qty[j]
        for j in range(nl):
            any_ok = False
            for w in range(W):
                if self.feas[w * nl + j]:
                    any_ok = True
                    break
            if not any_ok:
                return 0
            self.l_left[j] = 1
        while left > 0:
            bw = -1
            bc = 0
            bs = INFINITY
            for w in range(W):
                cov = 0
                for j in range(nl):
                    if self.l_left[j] and self.feas[w * nl + j]:
                        cov += 1
                if cov > bc or (cov == bc and cov > 0 and self.score[w] < bs):
                    bw = w
                    bc = cov
                    bs = self.score[w]
            for j in range(nl):
                if self.l_left[j] and self.feas[bw * nl + j]:
                    self.l_wh[j] = bw
                    self.l_left[j] = 0
            left -= bc
        return 1

    cdef int _commit(self, int64_t oid, Py_ssize_t nl) except -1:
        """Reserve the stock of the routed lines and start one shipment per warehouse (in
        warehouse order)."""
        cdef int r = self.o_region[oid], c = self.o_cold[oid]
        cdef Py_ssize_t j
        cdef int64_t cur = -1, nxt, lines, first = self.n_s, sid
        for j in range(nl):
            self.inv[self.l_wh[j], self.l_sku[j]] -= self.l_qty[j]
        self.o_first[oid] = first
        for j in range(1, nl):
            if self.l_wh[j] != self.l_wh[0]:
                break
        else:  # the whole order from one warehouse
            lines = 0
            for j in range(nl):
                lines += self.l_qty[j]
            self._new_ship(oid, <int>self.l_wh[0], self.route_car if self.mode == MODE_PROMISE and self.route_car >= 0
                           else self._carrier(oid, c, <int>self.l_wh[0], r), lines)
            return self._arrive_pick(first)
        while True:
            nxt = self.W
            for j in range(nl):
                if cur < self.l_wh[j] < nxt:
                    nxt = self.l_wh[j]
            if nxt == self.W:
                break
            lines = 0
            for j in range(nl):
                if self.l_wh[j] == nxt:
                    lines += self.l_qty[j]
            self._new_ship(oid, <int>nxt, self._carrier(oid, c, <int>nxt, r), lines)
            cur = nxt
        for sid in range(first, self.n_s):
            self._arrive_pick(sid)
        return 0

    cdef inline double _cost(self, int c, int w, int r, int64_t lines, bint cold) noexcept:
        """The compiled copy of :func:`twin.world.costs.shipment_cost` (CNY): the parcel's price
        on the lane from the cost table ``[cold, C, W, R]`` plus handling per line."""
        return (self.parcel_cost[(((<int>cold) * self.C + c) * self.W + w) * self.R + r]
                + self.handling[w] * lines)

    cdef inline int _carrier(self, int64_t oid, int c, int w, int r) noexcept:
        """The policy's carrier for the order's parcel from ``w`` (by its service level when the
        plan has a table per level)."""
        if self.use_sc:
            return <int>self.service_carrier[c, self.o_service[oid], w, r]
        return <int>self.lane_carrier[c, w, r]

    cdef int _new_ship(self, int64_t oid, int w, int car, int64_t lines) except -1:
        cdef int64_t sid = self.n_s
        cdef int r = self.o_region[oid]
        self.cost_total += self._cost(car, w, r, lines, self.o_cold[oid])
        self.co2_total += self.lane_co2[(car * self.W + w) * self.R + r]
        if sid == self.cap_s:
            self._grow_ships()
        self.n_s += 1
        self.s_order[sid] = oid
        self.s_wh[sid] = <int32_t>w
        self.s_car[sid] = <int32_t>car
        self.s_left[sid] = 0
        self.s_status[sid] = ST_QUEUED
        self.s_lines[sid] = <int32_t>lines
        self.s_routed[sid] = self.now
        self.s_pstart[sid] = NAN
        self.s_pend[sid] = NAN
        self.s_shipped[sid] = NAN
        self.s_delivered[sid] = NAN
        self.o_remaining[oid] += 1
        self.o_nship[oid] += 1
        self._bl_account(w)
        self.backlog[w] += 1
        if self.backlog[w] > self.bpeak[w]:
            self.bpeak[w] = self.backlog[w]
        self.btotal += 1
        if self.btotal > self.bpeak_total:
            self.bpeak_total = self.btotal
        return 0

    cdef int _unroutable(self, int64_t oid, int64_t bo, Py_ssize_t nl) except -1:
        """No feasible routing now: backorder (retry later) or lose, as the scenario says."""
        cdef Py_ssize_t j
        if not self.backorder:
            return self._lose(oid)
        if bo < 0:
            if self.n_bo == self.cap_bo:
                self.cap_bo = 64 if self.cap_bo < 64 else 2 * self.cap_bo
                self.bo_order = <int64_t*>_grow(self.bo_order, self.cap_bo, sizeof(int64_t))
                self.bo_ls = <int64_t*>_grow(self.bo_ls, self.cap_bo, sizeof(int64_t))
                self.bo_n = <int64_t*>_grow(self.bo_n, self.cap_bo, sizeof(int64_t))
            while self.n_bl + nl > self.cap_bl:
                self.cap_bl = 256 if self.cap_bl < 256 else 2 * self.cap_bl
                self.bl_sku = <int64_t*>_grow(self.bl_sku, self.cap_bl, sizeof(int64_t))
                self.bl_qty = <int64_t*>_grow(self.bl_qty, self.cap_bl, sizeof(int64_t))
            bo = self.n_bo
            self.n_bo += 1
            self.bo_order[bo] = oid
            self.bo_ls[bo] = self.n_bl
            self.bo_n[bo] = nl
            for j in range(nl):
                self.bl_sku[self.n_bl + j] = self.l_sku[j]
                self.bl_qty[self.n_bl + j] = self.l_qty[j]
            self.n_bl += nl
        self.o_status[oid] = ST_BACKORDERED
        cdef double give_up = self.o_created[oid] + self.max_h
        if self.now + self.retry_h <= give_up + 1e-9:
            heap_push(&self.heap, self.now + self.retry_h, bo * 8 + EV_RETRY)
        else:
            heap_push(&self.heap, give_up if give_up > self.now else self.now, bo * 8 + EV_GIVEUP)
        return 0

    cdef int _retry(self, int64_t bo) except -1:
        cdef int64_t oid = self.bo_order[bo], a = self.bo_ls[bo]
        cdef Py_ssize_t nl = self.bo_n[bo], j
        self._ensure_lines(nl)
        for j in range(nl):
            self.l_sku[j] = self.bl_sku[a + j]
            self.l_qty[j] = self.bl_qty[a + j]
        if self.mode == MODE_BATCH:
            return self._batch_add(oid, bo, nl)
        if self._route(oid, nl):
            return self._commit(oid, nl)
        return self._unroutable(oid, bo, nl)

    cdef int _lose(self, int64_t oid) except -1:
        self.o_status[oid] = ST_LOST
        self.lost += 1
        return 0

    # ------------------------------------------------------------------ batch routing
    cdef int _batch_add(self, int64_t oid, int64_t bo, Py_ssize_t nl) except -1:
        cdef Py_ssize_t j
        if self.n_bt + 1 >= self.cap_bt:
            self.cap_bt = 256 if self.cap_bt < 256 else 2 * self.cap_bt
            self.bt_order = <int64_t*>_grow(self.bt_order, self.cap_bt, sizeof(int64_t))
            self.bt_bo = <int64_t*>_grow(self.bt_bo, self.cap_bt, sizeof(int64_t))
            self.bt_ls = <int64_t*>_grow(self.bt_ls, self.cap_bt + 1, sizeof(int64_t))
        while self.n_btl + nl > self.cap_btl:
            self.cap_btl = 512 if self.cap_btl < 512 else 2 * self.cap_btl
            self.bt_sku = <int64_t*>_grow(self.bt_sku, self.cap_btl, sizeof(int64_t))
            self.bt_qty = <int64_t*>_grow(self.bt_qty, self.cap_btl, sizeof(int64_t))
        self.bt_order[self.n_bt] = oid
        self.bt_bo[self.n_bt] = bo
        self.bt_ls[self.n_bt] = self.n_btl
        for j in range(nl):
            self.bt_sku[self.n_btl + j] = self.l_sku[j]
            self.bt_qty[self.n_btl + j] = self.l_qty[j]
        self.n_btl += nl
        self.n_bt += 1
        self.bt_ls[self.n_bt] = self.n_btl
        if not self.batch_scheduled:
            self.batch_scheduled = True
            heap_push(&self.heap, (floor(self.now / self.route_interval) + 1.0) * self.route_interval, EV_BATCH)
        return 0

    cdef int _route_batch(self) except -1:
        """Route the gathered orders with one call of the Python policy, check every answer,
        then reserve and ship exactly as it said."""
        cdef Py_ssize_t n = self.n_bt, L = self.n_btl, i, j, a, b, nl, nneg
        cdef int64_t oid, w, k, bo
        cdef int c, r
        self.batch_scheduled = False
        if n == 0:
            return 0
        region = np.empty(n, dtype=np.int64)
        cold = np.empty(n, dtype=bool)
        cdef int64_t[::1] rg = region
        cdef uint8_t[::1] cd = cold.view(np.uint8)
        line_start = np.empty(n + 1, dtype=np.int64)
        sku = np.empty(L, dtype=np.int64)
        qty = np.empty(L, dtype=np.int64)
        cdef int64_t[::1] ls = line_start, sk = sku, qt = qty
        for i in range(n):
            rg[i] = self.o_region[self.bt_order[i]]
            cd[i] = self.o_cold[self.bt_order[i]]
        for i in range(n + 1):
            ls[i] = self.bt_ls[i]
        for j in range(L):
            sk[j] = self.bt_sku[j]
            qt[j] = self.bt_qty[j]
        batch = self.batch_cls(region, cold, line_start, sku, qty)
        out = self.policy.route(batch, self.state_obj)
        lbl = self.policy_label
        arr = np.asarray(out)
        if arr.shape != (L,):
            raise ValueError(f"routing policy {lbl}: route() must return one warehouse index per order line, "
                             f"shape ({L},); got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"routing policy {lbl}: route() must return integer warehouse indices; "
                             f"got dtype {arr.dtype}")
        cdef int64_t[::1] res = np.ascontiguousarray(arr, dtype=np.int64)
        self.n_bt = 0
        self.n_btl = 0
        for i in range(n):
            oid = self.bt_order[i]
            bo = self.bt_bo[i]
            a = ls[i]
            b = ls[i + 1]
            nl = b - a
            c = self.o_cold[oid]
            r = self.o_region[oid]
            self._ensure_lines(nl)
            nneg = 0
            for j in range(nl):
                self.l_sku[j] = sk[a + j]
                self.l_qty[j] = qt[a + j]
                self.l_wh[j] = res[a + j]
                if res[a + j] == -1:
                    nneg += 1
            if nneg == nl:
                self._unroutable(oid, bo, nl)
                continue
            for j in range(nl):
                w = self.l_wh[j]
                k = self.l_sku[j]
                where = f"routing policy {lbl} sent line {a + j} (order {oid}, sku {k}) to warehouse {w}"
                if w < 0 or w >= self.W:
                    raise ValueError(f"{where}: not a warehouse index; allowed: 0..{self.W - 1} "
                                     f"({', '.join(self.wh_names)}), or -1 for every line of an order it "
                                     f"cannot serve whole")
                name = self.wh_names[w]
                if not self.wh_open[w]:
                    raise ValueError(f"{where} ({name}), which is closed at t = {self.now:g} h; allowed: the "
                                     f"open warehouses {self._open_names()}")
                if c and not self.cold_ok[w]:
                    raise ValueError(f"{where} ({name}), which cannot take a cold-chain order now (no working "
                                     f"cold storage); allowed: {self._cold_names()}")
                if self.lane_carrier[c, w, r] < 0:
                    raise ValueError(f"{where} ({name}), which has no carrier lane to the order's region "
                                     f"{r}; allowed: warehouses with a lane there")
                if self.inv[w, k] < self.l_qty[j]:
                    raise ValueError(f"{where} ({name}), which holds {self.inv[w, k]} units of sku {k}; the "
                                     f"line needs {self.l_qty[j]} (earlier orders of the batch reserve first)")
            self._commit(oid, nl)
        return 0

    def _open_names(self) -> list:
        return [self.wh_names[w] for w in range(self.W) if self.wh_open[w]]

    def _cold_names(self) -> list:
        return [self.wh_names[w] for w in range(self.W) if self.wh_open[w] and self.cold_ok[w]]

    # ------------------------------------------------------------------ stations
    cdef int _agv(self, int64_t i) except -1:
        """Schedule entry ``i``: a robot breaks down or comes back; the servers follow
        ``round((up - round(disabled_frac * agvs)) * duty)`` (round half to even, as Python)."""
        cdef int w = self.ag_w[i]
        cdef double disabled
        cdef long n
        self.agv_up[w] += self.ag_d[i]
        disabled = nearbyint(self.agv_disabled[w] * self.agvs[w])
        n = <long>nearbyint((self.agv_up[w] - disabled) * self.duty[w])
        if n < 0:
            n = 0
        if self.pick_servers[w] != n:
            self.pick_servers[w] = n
            self._account(w)
            self.p_cap[w] = n if self.wh_open[w] else 0
            self._fill_pick(w)
        if i + 1 < self.ag_t.shape[0]:
            heap_push(&self.heap, self.ag_t[i + 1], (i + 1) * 8 + EV_AGV)
        return 0

    cdef inline void _account(self, int w) noexcept:
        cdef double dt = self.now - self.p_last[w]
        if dt > 0:
            self.p_busy_area[w] += self.p_busy[w] * dt
            self.p_cap_area[w] += self.p_cap[w] * dt
            self.p_last[w] = self.now

    cdef int _arrive_pick(self, int64_t sid) except -1:
        cdef int w = self.s_wh[sid]
        cdef int64_t oid
        cdef int prio = self.pick_prio[w]
        if self.p_busy[w] < self.p_cap[w] and self.pick_q[w].n == 0 and self.pick_pq[w].n == 0:
            self._account(w)
            self.p_busy[w] += 1
            return self._begin_pick(sid, w)
        if prio == PRIO_FIFO:
            return fifo_push(&self.pick_q[w], sid)
        oid = self.s_order[sid]
        if prio == PRIO_EXPRESS:  # by the service level's rank (shortest promise first), FIFO within
            return heap_push(&self.pick_pq[w], self.sl_rank[self.o_service[oid]], sid)
        # earliest promised delivery first, FIFO on ties
        return heap_push(&self.pick_pq[w], self.o_created[oid] + self.sl_promise[self.o_service[oid]], sid)

    cdef int _begin_pick(self, int64_t sid, int w) except -1:
        self.s_pstart[sid] = self.now
        self.s_status[sid] = ST_PICKING
        cdef double dt = rng_scaled(&self.r_pick, self.pick_kind[w], self.pick_mean[w] * self.s_lines[sid],
                                    self.pick_sigma[w], self.pick_mu[w])
        return heap_push(&self.heap, self.now + dt, sid * 8 + EV_PICK_END)

    cdef int _fill_pick(self, int w) except -1:
        while self.pick_q[w].n > 0 and self.p_busy[w] < self.p_cap[w]:
            self.p_busy[w] += 1
            self._begin_pick(fifo_pop(&self.pick_q[w]), w)
        while self.pick_pq[w].n > 0 and self.p_busy[w] < self.p_cap[w]:
            self.p_busy[w] += 1
            self._begin_pick(heap_pop(&self.pick_pq[w]).data, w)
        return 0

    cdef int _pick_end(self, int64_t sid) except -1:
        cdef int w = self.s_wh[sid]
        self.s_pend[sid] = self.now
        self._account(w)
        self.p_busy[w] -= 1
        self._fill_pick(w)
        self.s_status[sid] = ST_PACKING
        if self.pack_cap[w] > 0:
            if self.k_busy[w] < self.pack_cap[w] and self.pack_q[w].n == 0:
                self.k_busy[w] += 1
                return self._begin_pack(sid, w)
            return fifo_push(&self.pack_q[w], sid)
        return self._to_dock(sid, w)

    cdef int _begin_pack(self, int64_t sid, int w) except -1:
        cdef double dt = rng_scaled(&self.r_pack, self.pack_kind[w], self.pack_mean[w], self.pack_sigma[w],
                                    self.pack_mu[w])
        return heap_push(&self.heap, self.now + dt, sid * 8 + EV_PACK_END)

    cdef int _pack_end(self, int64_t sid) except -1:
        cdef int w = self.s_wh[sid]
        self.k_busy[w] -= 1
        while self.pack_q[w].n > 0 and self.k_busy[w] < self.pack_cap[w]:
            self.k_busy[w] += 1
            self._begin_pack(fifo_pop(&self.pack_q[w]), w)
        return self._to_dock(sid, w)

    cdef int _to_dock(self, int64_t sid, int w) except -1:
        self.s_status[sid] = ST_AWAITING
        self.dock_waiting[self.s_car[sid], w] += 1
        return vec_push(&self.docks[self.s_car[sid] * self.W + w], sid)

    # ------------------------------------------------------------------ carriers
    cdef int _depart(self, int d) except -1:
        """A linehaul leaves dock ``d`` = (carrier, warehouse): FIFO, ambient parcels take
        ``capacity``, cold ones ``reefer_capacity`` (both x the State's multiplier); parcels
        into closed regions wait; with ``spill``, room left then takes parcels other carriers'
        full departures left behind (:meth:`_take_spill`)."""
        cdef int c = d // self.W, w = d % self.W
        cdef Vec* v = &self.docks[d]
        cdef Py_ssize_t i, keep = 0, n = v.n, keep_i
        cdef int64_t cap, reefer, sid, oid
        cdef double mult
        heap_push(&self.heap, self.now + self.dep_interval[c], (<int64_t>d) * 8 + EV_DEPART)
        if (n == 0 and not self.spill) or not self.wh_open[w]:
            return 0
        mult = self.cap_mult[c]
        cap = <int64_t>(self.car_cap[c] * mult)
        reefer = <int64_t>(self.car_reefer[c] * mult)
        for i in range(n):
            if cap <= 0 and reefer <= 0:
                if self.spill:  # the rest is left behind for lack of room
                    for keep_i in range(i, n):
                        self.s_left[v.buf[keep_i]] = 1
                memmove(&v.buf[keep], &v.buf[i], (n - i) * sizeof(int64_t))
                keep += n - i
                break
            sid = v.buf[i]
            oid = self.s_order[sid]
            if not self.region_open[self.o_region[oid]]:
                v.buf[keep] = sid
                keep += 1
            elif self.o_cold[oid]:
                if reefer > 0:
                    reefer -= 1
                    self._ship(sid, c, w, self.o_region[oid])
                else:
                    self.s_left[sid] = 1  # no reefer room: left behind
                    v.buf[keep] = sid
                    keep += 1
            elif cap > 0:
                cap -= 1
                self._ship(sid, c, w, self.o_region[oid])
            else:
                self.s_left[sid] = 1  # no room: left behind
                v.buf[keep] = sid
                keep += 1
        v.n = keep
        if self.spill and (cap > 0 or reefer > 0):
            self._take_spill(c, w, cap, reefer)
        return 0

    cdef int _take_spill(self, int c, int w, int64_t cap, int64_t reefer) except -1:
        """Spill: after its own parcels, a departure of carrier ``c`` from ``w`` with room takes
        the parcels that full departures of other carriers left behind at ``w`` (docks in carrier
        order, each oldest first) into regions it serves and that are open, cold ones in reefer
        room; each becomes ``c``'s parcel (its cost and CO2 those of ``c``'s lane)."""
        cdef int c2, r
        cdef Vec* v
        cdef Py_ssize_t i, keep, n
        cdef int64_t sid, oid
        cdef double old
        for c2 in range(self.C):
            if c2 == c or (cap <= 0 and reefer <= 0):
                continue
            v = &self.docks[c2 * self.W + w]
            n = v.n
            keep = 0
            for i in range(n):
                sid = v.buf[i]
                oid = self.s_order[sid]
                r = self.o_region[oid]
                if (self.s_left[sid] and self.lane_ok[c, w, r] and self.region_open[r]
                        and ((reefer > 0) if self.o_cold[oid] else (cap > 0))):
                    if self.o_cold[oid]:
                        reefer -= 1
                    else:
                        cap -= 1
                    self.cost_total += (self._cost(c, w, r, self.s_lines[sid], self.o_cold[oid])
                                        - self._cost(c2, w, r, self.s_lines[sid], self.o_cold[oid]))
                    self.co2_total += (self.lane_co2[(c * self.W + w) * self.R + r]
                                       - self.lane_co2[(c2 * self.W + w) * self.R + r])
                    self._ship(sid, c, w, r)
                    self.s_car[sid] = <int32_t>c
                else:
                    v.buf[keep] = sid
                    keep += 1
            v.n = keep
        return 0

    cdef int _ship(self, int64_t sid, int c, int w, int r) except -1:
        self.s_shipped[sid] = self.now
        self.s_status[sid] = ST_TRANSIT
        self.dock_waiting[self.s_car[sid], w] -= 1  # the dock it waited at (before a spill)
        self._bl_account(w)
        self.backlog[w] -= 1
        self.btotal -= 1
        cdef double mean = self.transit_mean[c, w, r] * self.transit_mult[r]
        cdef double dt = rng_scaled(&self.r_tr, self.tr_kind[c], mean, self.tr_sigma[c], self.tr_mu[c])
        return self._in_transit(sid, self.now + dt)

    cdef int _in_transit(self, int64_t sid, double t) except -1:
        """The parcel is delivered at ``t``: written now, counted when its hour is flushed."""
        cdef Py_ssize_t b, i, n
        if not t < 1e9:
            raise ValueError(f"kernel: delivery time {t} h of shipment {sid} is not finite or beyond 1e9 h")
        self.s_delivered[sid] = t
        b = <Py_ssize_t>t
        if b >= self.n_dbk:
            n = b + 64 if b + 64 > 2 * self.n_dbk else 2 * self.n_dbk
            self.dbk = <Vec*>_grow(self.dbk, n, sizeof(Vec))
            for i in range(self.n_dbk, n):
                self.dbk[i].buf = NULL
                self.dbk[i].n = self.dbk[i].cap = 0
            self.n_dbk = n
        return vec_push(&self.dbk[b], sid)
        return 0

    cdef void _flush(self, double t) noexcept:
        """Deliver the parcels that arrive before ``t``.

        A delivery changes nothing the flow depends on (only records and counters), so parcels
        in transit wait in hourly buckets instead of the event calendar, and each hour is
        delivered at once when the clock has passed it (and when counters or records are
        read): every parcel is touched once, in about the order it arrives."""
        cdef Py_ssize_t i, keep, n
        cdef Vec* v
        cdef int64_t sid
        while self.dbk_lo + 1 <= t:  # the whole hour is before t
            if self.dbk_lo < self.n_dbk:
                v = &self.dbk[self.dbk_lo]
                for i in range(v.n):
                    self._deliver(v.buf[i])
                free(v.buf)
                v.buf = NULL
                v.n = v.cap = 0
            self.dbk_lo += 1
        if self.dbk_lo < self.n_dbk and self.dbk_lo < t:  # part of the hour
            v = &self.dbk[self.dbk_lo]
            keep = 0
            for i in range(v.n):
                sid = v.buf[i]
                if self.s_delivered[sid] < t:
                    self._deliver(sid)
                else:
                    v.buf[keep] = sid
                    keep += 1
            v.n = keep

    cdef void _deliver(self, int64_t sid) noexcept:
        cdef int64_t oid = self.s_order[sid], s, f
        cdef double last = self.s_delivered[sid]
        self.s_status[sid] = ST_DELIVERED
        self.o_remaining[oid] -= 1
        if self.o_remaining[oid] == 0:
            self.o_status[oid] = ST_DELIVERED
            self.delivered += 1
            f = self.o_first[oid]
            for s in range(f, f + self.o_nship[oid]):  # the order arrives with its last parcel
                if self.s_delivered[s] > last:
                    last = self.s_delivered[s]
            if _on_time(last, self.o_created[oid] + self.sl_promise[self.o_service[oid]]):
                self.on_time += 1

    # ------------------------------------------------------------------ records
    def columns(self, bint adopt=True) -> dict:
        """The records as ``twin.sim.records.ShipmentTable.columns()`` gives them, one row per
        shipment and one per order without any, sorted by order then shipment.

        When every order has exactly one shipment (the common case) and ``adopt`` is true, the
        kernel's record arrays become the columns without a copy and the records are released
        (a second call raises); otherwise the columns are new arrays."""
        cdef Py_ssize_t n_o = self.created, no_ship = 0, rows, i, row = 0, s, f
        if self.created > 0 and self.o_first == NULL:
            raise RuntimeError("kernel: the records were already released")
        self._flush(self.now)
        for i in range(n_o):
            if self.o_nship[i] == 0:
                no_ship += 1
        if adopt and no_ship == 0 and self.n_s == n_o:
            for i in range(n_o):
                if self.o_first[i] != i:
                    break
            else:
                return self._adopt_columns()
        rows = self.n_s + no_ship
        col = {
            "order_id": np.empty(rows, np.int64), "shipment_id": np.empty(rows, np.int64),
            "region": np.empty(rows, np.int32), "warehouse": np.empty(rows, np.int32),
            "carrier": np.empty(rows, np.int32), "status": np.empty(rows, np.int8),
            "cold_chain": np.empty(rows, bool), "service_level": np.empty(rows, np.int8),
            "lines": np.empty(rows, np.int32), "created_at": np.empty(rows), "routed_at": np.empty(rows),
            "pick_start": np.empty(rows), "pick_end": np.empty(rows), "shipped_at": np.empty(rows),
            "delivered_at": np.empty(rows), "promised_at": np.empty(rows),
            "cost": np.empty(rows), "co2_kg": np.empty(rows),
        }
        cdef int64_t[::1] c_oid = col["order_id"], c_sid = col["shipment_id"]
        cdef int32_t[::1] c_reg = col["region"], c_wh = col["warehouse"], c_car = col["carrier"]
        cdef int32_t[::1] c_lines = col["lines"]
        cdef int8_t[::1] c_st = col["status"], c_sl = col["service_level"]
        cdef uint8_t[::1] c_cold = col["cold_chain"].view(np.uint8)
        cdef double[::1] c_cr = col["created_at"], c_ro = col["routed_at"], c_ps = col["pick_start"]
        cdef double[::1] c_pe = col["pick_end"], c_sh = col["shipped_at"], c_de = col["delivered_at"]
        cdef double[::1] c_pr = col["promised_at"], c_cost = col["cost"], c_co2 = col["co2_kg"]
        cdef double promised
        cdef int cw, cc, cr
        for i in range(n_o):
            promised = self.o_created[i] + self.sl_promise[self.o_service[i]]
            if self.o_nship[i] == 0:
                c_oid[row] = i
                c_sid[row] = -1
                c_reg[row] = self.o_region[i]
                c_wh[row] = -1
                c_car[row] = -1
                c_st[row] = self.o_status[i]
                c_cold[row] = self.o_cold[i]
                c_sl[row] = self.o_service[i]
                c_lines[row] = self.o_lines[i]
                c_cr[row] = self.o_created[i]
                c_ro[row] = NAN
                c_ps[row] = NAN
                c_pe[row] = NAN
                c_sh[row] = NAN
                c_de[row] = NAN
                c_pr[row] = promised
                c_cost[row] = 0.0
                c_co2[row] = 0.0
                row += 1
                continue
            f = self.o_first[i]
            for s in range(f, f + self.o_nship[i]):
                c_oid[row] = i
                c_sid[row] = s
                c_reg[row] = self.o_region[i]
                c_wh[row] = self.s_wh[s]
                c_car[row] = self.s_car[s]
                c_st[row] = self.s_status[s]
                c_cold[row] = self.o_cold[i]
                c_sl[row] = self.o_service[i]
                c_lines[row] = self.s_lines[s]
                c_cr[row] = self.o_created[i]
                c_ro[row] = self.s_routed[s]
                c_ps[row] = self.s_pstart[s]
                c_pe[row] = self.s_pend[s]
                c_sh[row] = self.s_shipped[s]
                c_de[row] = self.s_delivered[s] if self.s_status[s] == ST_DELIVERED else NAN
                c_pr[row] = promised
                cw, cc, cr = self.s_wh[s], self.s_car[s], self.o_region[i]
                c_cost[row] = self._cost(cc, cw, cr, self.s_lines[s], self.o_cold[i])
                c_co2[row] = self.lane_co2[(cc * self.W + cw) * self.R + cr]
                row += 1
        return col

    cdef dict _adopt_columns(self):
        """``columns()`` when every order has exactly one shipment, with the same id: the record
        arrays become the columns without a copy (the records are released)."""
        cdef Py_ssize_t n = self.n_s, i
        col = {"order_id": np.arange(n, dtype=np.int64), "shipment_id": np.arange(n, dtype=np.int64),
               "promised_at": np.empty(n), "cost": np.empty(n), "co2_kg": np.empty(n)}
        cdef double[::1] c_pr = col["promised_at"], c_cost = col["cost"], c_co2 = col["co2_kg"]
        cdef int cw, cc, cr
        for i in range(n):
            c_pr[i] = self.o_created[i] + self.sl_promise[self.o_service[i]]
            cw, cc, cr = self.s_wh[i], self.s_car[i], self.o_region[i]
            c_cost[i] = self._cost(cc, cw, cr, self.s_lines[i], self.o_cold[i])
            c_co2[i] = self.lane_co2[(cc * self.W + cw) * self.R + cr]
            if self.s_status[i] != ST_DELIVERED:
                self.s_delivered[i] = NAN
        col["region"] = _adopt(self.o_region, n, 4, "i")
        col["warehouse"] = _adopt(self.s_wh, n, 4, "i")
        col["carrier"] = _adopt(self.s_car, n, 4, "i")
        col["status"] = _adopt(self.s_status, n, 1, "b")
        col["cold_chain"] = _adopt(self.o_cold, n, 1, "?")
        col["service_level"] = _adopt(self.o_service, n, 1, "b")
        col["lines"] = _adopt(self.s_lines, n, 4, "i")
        col["created_at"] = _adopt(self.o_created, n, 8, "d")
        col["routed_at"] = _adopt(self.s_routed, n, 8, "d")
        col["pick_start"] = _adopt(self.s_pstart, n, 8, "d")
        col["pick_end"] = _adopt(self.s_pend, n, 8, "d")
        col["shipped_at"] = _adopt(self.s_shipped, n, 8, "d")
        col["delivered_at"] = _adopt(self.s_delivered, n, 8, "d")
        self.o_region = NULL; self.s_wh = NULL; self.s_car = NULL; self.s_status = NULL; self.o_cold = NULL
        self.o_service = NULL; self.s_lines = NULL; self.o_created = NULL; self.s_routed = NULL
        self.s_pstart = NULL; self.s_pend = NULL; self.s_shipped = NULL; self.s_delivered = NULL
        self._free_records()
        return {k: col[k] for k in _COLUMN_ORDER}

    def order_lines(self) -> dict:
        """Every order's lines as created (``log_lines``): ``order_id``, ``sku``, ``quantity``
        (int64 arrays, in order of creation, distinct SKUs of an order in draw order)."""
        if not self.log_lines:
            raise RuntimeError("kernel: order lines are kept only with log_lines=True")
        return {"order_id": _vec_array(&self.ln_order), "sku": _vec_array(&self.ln_sku),
                "quantity": _vec_array(&self.ln_qty)}

    def release_records(self) -> None:
        """Free the record storage (after :meth:`columns`); counters and stations stay."""
        self._free_records()


# ---------------------------------------------------------------------------- test hooks
