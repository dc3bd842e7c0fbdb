"""SHM from Python: a region of the same size on every rank of the world,
addressed by one GVA range (``mf_shm.h``).

The process bootstraps once, as for BM::

    import memfabric as mf
    from memfabric.shm import Region, REACH_MAPPED

    mf.init()
    mf.bm_init("tcp://10.0.0.1:5801", world, rank)
    with Region(7, 64 << 20) as r:          # collective
        r.put(r.ptr(peer) + 128, b"hello")  # any rank's part
        r.barrier()
        parts = r.allgather(b"%08d" % r.rank)

``device=True`` makes the parts device memory (the CUDA driver and a
device are needed); a same-host peer's part is then a device pointer
kernels can use (``can_reach(rank)[0] & REACH_MAPPED``).  Failures raise
:class:`memfabric.MfError`.
"""

from . import _shm

__all__ = ["Region", "REACH_SELF", "REACH_MAPPED", "REACH_TRANSPORT",
           "CONTEXT_MAX"]

REACH_SELF = _shm.REACH_SELF
REACH_MAPPED = _shm.REACH_MAPPED
REACH_TRANSPORT = _shm.REACH_TRANSPORT
CONTEXT_MAX = _shm.CONTEXT_MAX


class Region(_shm.Region):
    """``Region(id, size, device=False, gva_base=0)``: region ``id`` with
    ``size`` bytes a rank, created by every rank of the world together.
    A context manager: leaving the block destroys it here."""

    def get(self, gva, size):
        """``size`` bytes from the region at ``gva``, as bytes."""
        buf = bytearray(size)
        self.get_into(gva, buf)
        return bytes(buf)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False
