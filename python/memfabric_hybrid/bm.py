"""Upstream MemFabric's ``bm`` module: the big-memory pool as upstream's
Python calls it, on :class:`memfabric.Pool`.  Calls return upstream's
codes (0 success, ``SM_*`` errors); :func:`create` returns a handle or
None."""

import enum

import memfabric as _mf
from memfabric import CopyDir, MemType, MfError

from ._common import (SM_INVALID_PARAM, SM_NOT_INITIALIZED, SM_OK,
                      SMEM_PARTIAL_FAILED, code, fail)

__all__ = ["BmDataOpType", "BmCopyType", "BmMemType", "BmConfig",
           "ASYNC_COPY_FLAG", "initialize", "uninitialize", "get_rank_id",
           "create", "create2", "BmHandle"]

ASYNC_COPY_FLAG = 1 << 0


class BmDataOpType(enum.IntEnum):
    """How upstream moves data; here every transport competes per peer."""

    SDMA = 1 << 0
    HOST_RDMA = 1 << 1
    HOST_TCP = 1 << 2
    DEVICE_RDMA = 1 << 3
    HOST_URMA = 1 << 4
    HOST_SHM = 1 << 5
    MTE = 1 << 6


class BmCopyType(enum.IntEnum):
    """L: local device memory, H: local host memory, G: a global address
    (GH: in the host window)."""

    L2G = 0
    G2L = 1
    G2H = 2
    H2G = 3
    L2GH = 4
    GH2L = 5
    GH2H = 6
    H2GH = 7
    G2G = 8
    AUTO = 9


class BmMemType(enum.IntEnum):
    LOCAL_DEVICE = 0
    LOCAL_HOST = 1
    DEVICE = 2
    HOST = 3


# ours where upstream names both sides, else AUTO (the library looks)
_DIRS = {BmCopyType.L2GH: CopyDir.LD2GH, BmCopyType.GH2L: CopyDir.GH2LD,
         BmCopyType.GH2H: CopyDir.GH2LH, BmCopyType.H2GH: CopyDir.LH2GH}


def _dir(copy_type):
    t = BmCopyType(int(copy_type))
    return _DIRS.get(t, CopyDir.AUTO)


def _mem(mem_type):
    t = BmMemType(int(mem_type))
    return MemType.DEVICE if t in (BmMemType.LOCAL_DEVICE,
                                   BmMemType.DEVICE) else MemType.HOST


class BmConfig:
    """Upstream's ``smem_bm_config_t`` (timeouts in seconds)."""

    def __init__(self, **kw):
        self.init_timeout = 120
        self.create_timeout = 120
        self.control_operation_timeout = 120
        self.start_config_store_server = True
        self.start_config_store_only = False
        self.dynamic_world_size = False
        self.unified_address_space = False
        self.auto_ranking = False
        self.rank_id = 0
        self.flags = 0
        for key, value in kw.items():
            if not hasattr(self, key):
                raise AttributeError("BmConfig has no setting %r" % key)
            setattr(self, key, value)


_state = {"elastic": False}


def initialize(store_url, world_size, device_id=0, config=None):
    """Bootstraps this process through the config store at store_url;
    rank 0 serves the store there when the config says so."""
    from . import create_config_store

    cfg = config if config is not None else BmConfig()
    rank = _mf.RANK_AUTO if cfg.auto_ranking else int(cfg.rank_id)
    if cfg.start_config_store_server and (cfg.start_config_store_only or
                                          rank == 0):
        res = create_config_store(store_url)
        if res not in (SM_OK, -2005):
            return res
    if cfg.start_config_store_only:
        return SM_OK
    _state["elastic"] = bool(cfg.dynamic_world_size)
    settings = {"timeout_ms": "%ds" % cfg.init_timeout,
                "op_timeout_ms": "%ds" % cfg.control_operation_timeout}
    try:
        _mf.init()
        _mf.bm_init(store_url, int(world_size), rank, settings=settings)
    except MfError as exc:
        return fail("bm.initialize", exc, store_url)
    return SM_OK


def uninitialize(flags=0):
    _mf.bm_uninit()


def get_rank_id():
    """This process's rank; 0xFFFFFFFF before :func:`initialize`."""
    try:
        return _mf.bm_rank_id()
    except MfError:
        return 0xFFFFFFFF


def _new(call, pool_id, dram, max_dram, hbm, max_hbm):
    page = 4096
    align = 2 << 20
    dram_local = dram if dram else page
    max_dram = max(max_dram, dram_local)
    max_dram = (max_dram + page - 1) // page * page
    max_hbm = (max(max_hbm, hbm) + align - 1) // align * align
    try:
        pool = _mf.Pool(int(pool_id), dram_local, max_dram,
                        _mf.CREATE_ELASTIC if _state["elastic"] else 0,
                        int(hbm), max_hbm)
    except MfError as exc:
        fail(call, exc, "pool %d" % pool_id)
        return None
    return BmHandle(pool)


def create(id, member_size, data_op_type, local_dram_size, local_hbm_size,
           flags=0):
    """A pool of ``local_dram_size`` host and ``local_hbm_size`` device
    bytes per rank; a :class:`BmHandle`, or None (see
    ``memfabric_hybrid.get_last_err_msg()``)."""
    return _new("bm.create", id, int(local_dram_size), int(local_dram_size),
                int(local_hbm_size), int(local_hbm_size))


def create2(id=0, local_dram_size=0, max_dram_size=0, local_hbm_size=0,
            max_hbm_size=0, data_op_type=BmDataOpType.HOST_TCP,
            enable_56bits_gva=False, flags=0, **ignored):
    """:func:`create` with the windows' strides per rank apart."""
    return _new("bm.create2", id, int(local_dram_size), int(max_dram_size),
                int(local_hbm_size), int(max_hbm_size))


class BmHandle:
    """A pool as upstream's handle: int results, never exceptions."""

    def __init__(self, pool):
        self._pool = pool
        self._reqs = []

    def _call(self, name, fn, *args):
        if self._pool is None:
            return fail("bm." + name, SM_NOT_INITIALIZED, "destroyed")
        try:
            fn(*args)
        except MfError as exc:
            return fail("bm." + name, exc)
        return SM_OK

    def join(self, flags=0):
        return self._call("join", lambda: self._pool.join())

    def leave(self, flags=0):
        return self._call("leave", lambda: self._pool.leave())

    def destroy(self):
        self.wait()
        if self._pool is not None:
            self._pool.destroy()
            self._pool = None

    def local_mem_size(self, mem_type):
        return self._pool.local_size(_mem(mem_type))

    def peer_rank_ptr(self, peer_rank, mem_type):
        """The GVA of peer_rank's segment of mem_type (0 when none)."""
        try:
            return self._pool.gva_of_rank(int(peer_rank), _mem(mem_type))
        except (MfError, ValueError):
            return 0

    def gva_to_va(self, gva, mem_type=None):
        """A GVA here: the same address (the window is this process's)."""
        return int(gva)

    def rank_id_by_gva(self, gva):
        try:
            return self._pool.rank_of_gva(int(gva))
        except MfError:
            return 0xFFFFFFFF

    def copy_data(self, src, dst, size, copy_type, flags=0):
        """Copies size bytes between raw addresses (local or global)."""
        return self.copy_data_batch([src], [dst], [size], copy_type, flags)

    def copy_data_batch(self, srcs, dsts, sizes, copy_type, flags=0):
        srcs, dsts, sizes = list(srcs), list(dsts), list(sizes)
        if not len(srcs) == len(dsts) == len(sizes):
            return fail("bm.copy_data_batch", SM_INVALID_PARAM,
                        "lists of different lengths")
        try:
            direction = _dir(copy_type)
        except ValueError:
            return fail("bm.copy_data_batch", SM_INVALID_PARAM,
                        "copy type %r" % (copy_type,))
        pieces = [(int(s), int(d), int(n)) for s, d, n in
                  zip(srcs, dsts, sizes)]
        if self._pool is None:
            return fail("bm.copy_data_batch", SM_NOT_INITIALIZED, "destroyed")
        try:
            if flags & ASYNC_COPY_FLAG:
                self._reqs.append(self._pool.copy_batch_async(pieces,
                                                              direction))
            else:
                self._pool.copy_batch(pieces, direction)
        except MfError as exc:
            if exc.results is not None and any(r == 0 for r in exc.results):
                fail("bm.copy_data_batch", exc)
                return SMEM_PARTIAL_FAILED
            return fail("bm.copy_data_batch", exc)
        return SM_OK

    def wait(self):
        """Completes the copies started with ASYNC_COPY_FLAG."""
        reqs, self._reqs = self._reqs, []
        first = SM_OK
        for req in reqs:
            try:
                req.wait()
            except MfError as exc:
                if first == SM_OK:
                    first = fail("bm.wait", exc)
        return first

    def register_mem(self, addr, size):
        return self._call("register_mem", self._pool.register, int(addr),
                          int(size))

    def unregister_mem(self, addr):
        return self._call("unregister_mem", self._pool.unregister, int(addr))
