"""Python bindings of MemFabric and MemCache.

MemFabric (``libmemfabric``) pools the DRAM of many processes into one
global address space; MemCache (``libmemcache``) is a distributed object
cache on top of it.  This package wraps their public C APIs:

* MemFabric: :func:`init`, :func:`bm_init`, :class:`Pool` (create,
  join/leave, rank and GVA queries, copies single, batched and
  asynchronous, memory registration), the config store client
  :class:`Store` and the embeddable :class:`StoreServer`;
* TRANS (:mod:`memfabric.trans`): :class:`TransferEngine`, reads and
  writes between registered buffers of named processes, with the method
  names of Mooncake's and upstream's transfer engines;
* MemCache (:mod:`memfabric.memcache`): :class:`DistributedObjectStore`
  with the method names and return conventions of upstream MemCache's
  Python class, the raising :class:`Client` under it, and
  :class:`MetaServer`, which runs the ``mmc-meta`` daemon.

Failures raise :class:`MfError` / :class:`MmcError`, which carry the
status code (``.status``) and its C name (``.name``).  The two libraries
keep separate copies of MemFabric's internals: a pool joined through
:class:`Pool` is not the one a MemCache client joins.
"""

import enum

from ._errors import MfError, MmcError, MmcStatus, Status
from . import _memfabric

__all__ = [
    "MfError", "MmcError", "Status", "MmcStatus", "CopyDir", "MemType",
    "LogLevel", "RANK_AUTO", "CREATE_ELASTIC", "init", "uninit", "version",
    "status_name", "status_str", "log_set_level", "log_get_level",
    "bm_config_help", "bm_init", "bm_uninit", "bm_rank_id", "bm_world_size",
    "buffer_address", "device_ready", "Pool", "CopyRequest", "Store", "StoreServer",
    "DistributedObjectStore", "ReplicateConfig", "KeyInfo", "LocalConfig",
    "MmcCopyDirect", "MmcMem", "MetaServer", "MetaService", "Client",
    "TransferEngine", "TransferOpcode",
]


class CopyDir(enum.IntEnum):
    """Direction of a copy (``mf_copy_dir_t``): L = local memory, G = a
    global address (GVA), H = host, D = device.  AUTO infers it."""

    LH2GH = 0
    GH2LH = 1
    GH2GH = 2
    LD2GH = 3
    GH2LD = 4
    LH2GD = 5
    GD2LH = 6
    LD2GD = 7
    GD2LD = 8
    GH2GD = 9
    GD2GH = 10
    GD2GD = 11
    AUTO = 12


class MemType(enum.IntEnum):
    """Kind of segment memory (``mf_mem_type_t``)."""

    HOST = 0
    DEVICE = 1


class LogLevel(enum.IntEnum):
    """Log levels of the libraries (``mf_log_level_t``)."""

    OFF = 0
    ERROR = 1
    WARN = 2
    INFO = 3
    DEBUG = 4
    TRACE = 5


#: Take the lowest free rank (``MF_RANK_AUTO``).
RANK_AUTO = _memfabric.RANK_AUTO
#: Pool flag: an elastic pool, no rank waits for the others at create.
CREATE_ELASTIC = _memfabric.CREATE_ELASTIC

init = _memfabric.init
uninit = _memfabric.uninit
version = _memfabric.version
status_name = _memfabric.status_name
status_str = _memfabric.status_str
bm_config_help = _memfabric.bm_config_help
bm_init = _memfabric.bm_init
bm_uninit = _memfabric.bm_uninit
bm_rank_id = _memfabric.bm_rank_id
bm_world_size = _memfabric.bm_world_size
buffer_address = _memfabric.buffer_address
device_ready = _memfabric.device_ready
CopyRequest = _memfabric.CopyRequest


def log_set_level(level):
    """Sets the log level of libmemfabric (a :class:`LogLevel` or its
    name, e.g. ``"debug"``).  libmemcache follows ``MF_LOG_LEVEL``."""
    if isinstance(level, str):
        level = LogLevel[level.upper()]
    _memfabric.log_set_level(int(level))


def log_get_level():
    """The log level of libmemfabric, a :class:`LogLevel`."""
    return LogLevel(_memfabric.log_get_level())


class Pool(_memfabric.Pool):
    """A MemFabric BM pool of this process (``mf_bm_t``).

    ``Pool(id, local_dram_size, max_dram_per_rank=0, flags=0,
    local_hbm_size=0, max_hbm_per_rank=0)`` creates pool ``id``
    (``max_dram_per_rank`` 0: the local size; the device window likewise,
    its stride a multiple of 2 MiB); call :meth:`join` next.  Needs :func:`init` and :func:`bm_init` first.
    Usable as a context manager: leaving the block destroys the pool.
    Addresses are ints; the local side of a copy may also be any
    buffer-protocol object (bytes, bytearray, memoryview, NumPy array).
    """

    def gva(self, rank, offset=0):
        """Global address of byte ``offset`` of ``rank``'s host segment."""
        return self.gva_of_rank(rank, MemType.HOST) + offset

    def close(self):
        """Same as :meth:`destroy`."""
        self.destroy()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()
        return False


class Store(_memfabric.Store):
    """A config store client session: ``Store("tcp://host:port")``.

    Keys are str or bytes, values bytes-like.  A context manager (closes
    on exit).  See :meth:`set`, :meth:`get`, :meth:`add`,
    :meth:`barrier`, :meth:`allgather`.
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class StoreServer(_memfabric.StoreServer):
    """A config store server embedded in this process:
    ``StoreServer(host="127.0.0.1", port=0)``; :attr:`port` is the port
    it bound, :attr:`url` its client URL.  A context manager (stops on
    exit)."""

    def __init__(self, host="127.0.0.1", port=0, settings=None):
        super().__init__(host, port, settings)
        self.host = host or "127.0.0.1"

    @property
    def url(self):
        """``tcp://host:port`` for :class:`Store` and :func:`bm_init`."""
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        return "tcp://%s:%d" % (host, self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


from .memcache import (  # noqa: E402  (needs the names above)
    Client, DistributedObjectStore, KeyInfo, LocalConfig, MetaServer,
    MetaService, MmcCopyDirect, MmcMem, ReplicateConfig)
from .trans import TransferEngine, TransferOpcode  # noqa: E402
