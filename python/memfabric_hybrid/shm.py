"""Upstream MemFabric's ``shm`` module: symmetric regions as upstream's
Python calls them, on :class:`memfabric.shm.Region`.  A region is device
memory where the CUDA driver and a device are there, else host memory.
Calls return upstream's codes; :func:`create` returns a handle or None."""

import enum

import memfabric as _mf
from memfabric import MfError, Status
from memfabric.shm import REACH_MAPPED, REACH_TRANSPORT, Region

from ._common import SM_INVALID_PARAM, SM_NOT_INITIALIZED, SM_OK, fail

__all__ = ["ShmDataOpType", "ShmConfig", "initialize", "uninitialize",
           "create", "ShmHandle", "query_support_data_operation"]


class ShmDataOpType(enum.IntEnum):
    MTE = 1 << 0   # the part is mapped here: its GVA is a pointer
    SDMA = 1 << 1
    ROCE = 1 << 2  # reached through a network transport


class ShmConfig:
    """Upstream's ``smem_shm_config_t`` (timeouts in seconds)."""

    def __init__(self, **kw):
        self.shm_init_timeout = 120
        self.shm_create_timeout = 120
        self.control_operation_timeout = 120
        self.start_config_store = True
        self.flags = 0
        for key, value in kw.items():
            if not hasattr(self, key):
                raise AttributeError("ShmConfig has no setting %r" % key)
            setattr(self, key, value)


def initialize(store_url, world_size, rank_id, device_id=0, config=None):
    """Bootstraps this process as rank_id of world_size; rank 0 serves the
    config store at store_url when the config says so."""
    from . import create_config_store

    cfg = config if config is not None else ShmConfig()
    if cfg.start_config_store and int(rank_id) == 0:
        res = create_config_store(store_url)
        if res not in (SM_OK, -2005):
            return res
    timeout = max(cfg.shm_init_timeout, cfg.shm_create_timeout)
    settings = {"timeout_ms": "%ds" % timeout,
                "op_timeout_ms": "%ds" % cfg.control_operation_timeout}
    try:
        _mf.init()
        _mf.bm_init(store_url, int(world_size), int(rank_id),
                    settings=settings)
    except MfError as exc:
        return fail("shm.initialize", exc, store_url)
    return SM_OK


def uninitialize(flags=0):
    _mf.bm_uninit()


def query_support_data_operation():
    return int(ShmDataOpType.MTE | ShmDataOpType.ROCE)


def create(id, rank_size, rank_id, symmetric_size,
           data_op_type=ShmDataOpType.MTE, flags=0):
    """Region id of symmetric_size bytes a rank; a :class:`ShmHandle` or
    None (see ``memfabric_hybrid.get_last_err_msg()``)."""
    try:
        if int(rank_size) != _mf.bm_world_size() or \
                int(rank_id) != _mf.bm_rank_id():
            fail("shm.create", SM_INVALID_PARAM,
                 "rank %d of %d is not this process's" % (rank_id, rank_size))
            return None
        # decided before the collective, by each rank alike
        region = Region(int(id), int(symmetric_size),
                        device=_mf.device_ready())
    except MfError as exc:
        fail("shm.create", exc, "region %d" % id)
        return None
    return ShmHandle(region)


class ShmHandle:
    """A region as upstream's handle: int results, never exceptions."""

    def __init__(self, region):
        self._r = region

    @property
    def gva(self):
        return self._r.gva

    def get_global_rank(self):
        return self._r.rank

    def get_global_rank_size(self):
        return self._r.world

    def _call(self, name, fn, *args):
        if self._r is None:
            return fail("shm." + name, SM_NOT_INITIALIZED, "destroyed")
        try:
            fn(*args)
        except MfError as exc:
            return fail("shm." + name, exc)
        return SM_OK

    def barrier(self):
        return self._call("barrier", lambda: self._r.barrier())

    def allgather(self, data):
        """Every rank's bytes concatenated by rank (b"" on failure)."""
        try:
            return b"".join(self._r.allgather(bytes(data)))
        except MfError as exc:
            fail("shm.allgather", exc)
            return b""

    def set_extra_context(self, data):
        return self._call("set_extra_context", self._r.set_context,
                          bytes(data))

    def topology_can_reach(self, remote_rank):
        """(0, SMEMS_DATA_OP_* bits): MTE mapped here, ROCE over the
        network, 0 unreachable."""
        try:
            flags, _ = self._r.can_reach(int(remote_rank))
        except MfError as exc:
            if exc.status in (Status.ERR_UNREACHABLE, Status.ERR_PEER_LOST):
                return SM_OK, 0
            return fail("shm.topology_can_reach", exc), 0
        info = (int(ShmDataOpType.MTE) if flags & REACH_MAPPED else
                int(ShmDataOpType.ROCE) if flags & REACH_TRANSPORT else 0)
        return SM_OK, info

    def register_exit(self, fn):
        """fn(status) runs on every rank when one calls global_exit."""
        return self._call("register_exit", self._r.register_exit,
                          (lambda status, _rank: fn(status)) if fn else None)

    def global_exit(self, status):
        self._call("global_exit", self._r.global_exit, int(status))

    def destroy(self, flags=0):
        if self._r is not None:
            self._r.destroy()
            self._r = None
        return SM_OK
