"""MemCache from Python: the object store, its raw client and the daemon.

:class:`DistributedObjectStore` follows upstream MemCache's Python class
of that name (method names, arguments and return conventions), so code
written against ``memcache`` / ``memcache_hybrid`` ports by changing its
import::

    from memfabric.memcache import DistributedObjectStore, ReplicateConfig

Conventions (as upstream): ``put``/``remove`` and the single ``*_from`` /
``*_into`` forms return an int, 0 on success and a negative status code
on failure; ``get`` returns ``bytes`` (empty on failure); batch forms
return a list with one entry per key; ``is_exist`` returns 1 / 0 (or a
negative status).  Errors of the Python arguments themselves (wrong types,
lists of different lengths) raise ``TypeError`` / ``ValueError``.

Device memory needs no CUDA Python package: a raw device address is an
``int`` with a size (``put_from(key, ptr, size, L2G)``, or the tuple
``(ptr, size, MmcMem.DEVICE)`` where buffers are taken), and any object
exporting ``__cuda_array_interface__`` (a PyTorch CUDA tensor, a CuPy
array) is taken wherever a buffer object is.  The bindings pass device
addresses to the library and never touch the memory themselves.

:class:`Client` is the same service with Pythonic errors: every failed
single-object call raises :class:`~memfabric.MmcError`.

:class:`MetaServer` starts the ``mmc-meta`` daemon as a child process on
free ports and stops it again.
"""

import enum
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time

from ._errors import MfError, MmcError, MmcStatus, Status
from . import _memcache

#: ``batch_get_key_info``'s flag for readable objects only (upstream's).
READABLE_GVA_QUERY = 1

__all__ = [
    "READABLE_GVA_QUERY", "Client", "DistributedObjectStore",
    "ReplicateConfig", "KeyInfo", "LocalConfig", "MmcCopyDirect", "MmcMem", "L2G", "G2L", "G2H", "H2G",
    "PUT_REPLACE", "MetaServer", "MetaService", "config_help",
]

#: Put flag: overwrite a committed object (``MMC_PUT_REPLACE``).
PUT_REPLACE = _memcache.PUT_REPLACE

config_help = _memcache.config_help


class MmcMem(enum.IntEnum):
    """Where a raw buffer lives (``mmc_mem_t``), the third item of an
    ``(address, size, mem)`` tuple.  AUTO lets the library ask the CUDA
    driver; HOST and DEVICE say it outright."""

    AUTO = _memcache.MEM_AUTO
    HOST = _memcache.MEM_HOST
    DEVICE = _memcache.MEM_DEVICE


class MmcCopyDirect(enum.IntEnum):
    """Copy directions of upstream's ``*_from`` / ``*_into`` methods.

    Puts take H2G (the default) or L2G, gets G2H (the default) or G2L.
    L2G and G2L say the addresses are device memory (``MmcMem.DEVICE``);
    H2G and G2H leave it to the library (``MmcMem.AUTO``: host memory, or
    device memory the driver recognises).  Device memory needs the cuda
    memory kind: without a driver it gives ``MF_ERR_UNSUPPORTED``.
    """

    SMEMB_COPY_L2G = 0
    SMEMB_COPY_G2L = 1
    SMEMB_COPY_G2H = 2
    SMEMB_COPY_H2G = 3


L2G = MmcCopyDirect.SMEMB_COPY_L2G
G2L = MmcCopyDirect.SMEMB_COPY_G2L
G2H = MmcCopyDirect.SMEMB_COPY_G2H
H2G = MmcCopyDirect.SMEMB_COPY_H2G

_UINT32_MAX = 0xFFFFFFFF


class Client(_memcache.Client):
    """The MemCache local service with Python exceptions.

    ``Client(settings=None, config_file=None, load_env=True)`` connects to
    ``mmc-meta``, joins the pool and registers ``dram_size`` bytes of this
    process.  ``settings`` are ``mmc-local.conf`` keys (a dict or
    ``(key, value)`` pairs; values are converted with ``str``), applied
    over the defaults, ``config_file`` and the ``MMC_*`` environment.  One
    per process.  A context manager: leaving the block closes it.

    Memory ranges ("layers") are buffer-protocol objects, device arrays
    exporting ``__cuda_array_interface__`` (C-contiguous; a read-only one
    cannot be read into), or ``(address, size)`` / ``(address, size,
    mem)`` tuples of raw memory (``mem`` a :class:`MmcMem`).
    Single-object calls raise :class:`~memfabric.MmcError`; batch calls
    return one status per key.
    """

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ReplicateConfig:
    """Placement of a put (upstream ``ReplicateConfig``).

    Attributes:
        replicaNum: replicas (1..8); 0 uses the configured default.
        preferredLocalServiceIDs: ranks to place replicas on first.
        replace: overwrite an object that exists (an extension of this
            package; upstream has no way to overwrite).
        media: where every replica goes, ``"dram"`` (default) or
            ``"hbm"`` (the local services' device memory); a put that
            finds no room there fails rather than use the other.
    """

    def __init__(self, replicaNum=0, preferredLocalServiceIDs=None,
                 replace=False, media="dram"):
        self.replicaNum = replicaNum
        self.preferredLocalServiceIDs = list(preferredLocalServiceIDs or [])
        self.replace = replace
        self.media = media

    def _opts(self):
        return {
            "replicas": int(self.replicaNum),
            "flags": PUT_REPLACE if self.replace else 0,
            "preferred": [int(r) for r in self.preferredLocalServiceIDs],
            "media": self.media,
        }

    def __repr__(self):
        return ("ReplicateConfig(replicaNum=%r, preferredLocalServiceIDs=%r, "
                "replace=%r, media=%r)" % (self.replicaNum,
                                           self.preferredLocalServiceIDs,
                                           self.replace, self.media))


_DEFAULT_REPLICATE = ReplicateConfig()


class KeyInfo:
    """Where an object lives (upstream ``KeyInfo``): :meth:`size`,
    :meth:`loc_list` (ranks of the replicas), :meth:`type_list` (their
    media: 0 DRAM, 1 HBM) and :meth:`gva_list` (their global addresses,
    an extension).  A missing key gives size 0 and empty lists."""

    def __init__(self, size=0, replicas=()):
        self._size = size
        self._replicas = list(replicas)

    def size(self):
        """Bytes of the object (0: not found)."""
        return self._size

    def loc_list(self):
        """Ranks holding a replica."""
        return [r[0] for r in self._replicas]

    def type_list(self):
        """Media of every replica (``MMC_MEDIA_DRAM`` = 0, HBM = 1)."""
        return [r[1] for r in self._replicas]

    def gva_list(self):
        """Global address of every replica."""
        return [r[2] for r in self._replicas]

    def __str__(self):
        return "KeyInfo(size=%d, locs=%s, types=%s)" % (
            self._size, self.loc_list(), self.type_list())

    __repr__ = __str__


class LocalConfig:
    """Settings of a local service for :meth:`DistributedObjectStore.setup`
    (upstream ``LocalConfig``).

    The upstream attribute names map to ``mmc-local.conf`` keys:
    ``meta_service_url`` -> ``meta_url``, ``dram_size``, ``replicas``,
    ``log_level`` (exported as ``MF_LOG_LEVEL`` before the client starts).
    Any other key (``timeout_ms``, ``name``, ``fabric.transport``...) goes
    through :meth:`set`.  Unset values keep the defaults.
    """

    _ALIASES = {"meta_service_url": "meta_url"}

    def __init__(self, **settings):
        object.__setattr__(self, "_settings", {})
        for key, value in settings.items():
            self.set(key, value)

    def set(self, key, value):
        """Sets one ``mmc-local.conf`` key (or an upstream alias)."""
        self._settings[self._ALIASES.get(key, key)] = value

    def settings(self):
        """The keys set, as a dict of ``mmc-local.conf`` names."""
        return dict(self._settings)

    def __setattr__(self, name, value):
        self.set(name, value)

    def __getattr__(self, name):
        try:
            return self._settings[self._ALIASES.get(name, name)]
        except KeyError:
            raise AttributeError(name) from None


def _status_of(exc):
    return exc.status if isinstance(exc, MfError) else int(Status.ERR_INVALID)


class DistributedObjectStore:
    """The MemCache object store with upstream MemCache's Python API.

    Typical use::

        store = DistributedObjectStore()
        store.setup({"meta_url": "tcp://10.0.0.1:5800", "dram_size": "1G"})
        assert store.init(0) == 0
        store.put("k", b"bytes")
        data = store.get("k")
        store.close()

    Every data method returns what upstream returns (see the module
    documentation); an object method called before :meth:`init` or after
    :meth:`close` returns ``MF_ERR_STATE`` (-8).
    """

    def __init__(self):
        self._client = None
        self._settings = {}
        self._config_file = None

    # ------------------------------------------------------------ life

    def setup(self, config=None, **settings):
        """Chooses the settings :meth:`init` connects with.

        ``config`` is a :class:`LocalConfig`, a dict of ``mmc-local.conf``
        keys, the path of an ``mmc-local.conf`` file, or None (defaults
        and the ``MMC_*`` environment); keyword arguments add keys.
        Returns 0, or ``MF_ERR_STATE`` once initialized.
        """
        if self._client is not None:
            return int(Status.ERR_STATE)
        self._settings = {}
        self._config_file = None
        if isinstance(config, LocalConfig):
            self._settings.update(config.settings())
        elif isinstance(config, dict):
            self._settings.update(config)
        elif isinstance(config, (str, os.PathLike)):
            self._config_file = os.fspath(config)
        elif config is not None:
            raise TypeError("config must be a LocalConfig, a dict, a path "
                            "or None")
        self._settings.update(settings)
        return 0

    def init(self, device_id=0, init_bm=True):
        """Connects to the meta service and joins the pool.

        ``device_id`` is accepted for compatibility (the device is the
        driver's choice, ``MF_CUDA_DEVICE``); ``init_bm=False`` joins as a
        pure client that contributes no memory (``dram_size = 0``).
        Returns 0 or a negative status.
        """
        if self._client is not None:
            return int(Status.ERR_STATE)
        settings = dict(self._settings)
        level = settings.pop("log_level", None)
        if level is not None:
            os.environ["MF_LOG_LEVEL"] = str(level)
        if not init_bm:
            settings["dram_size"] = 0
        try:
            self._client = Client(list(settings.items()),
                                  config_file=self._config_file)
        except MfError as exc:
            return exc.status
        return 0

    def close(self):
        """Leaves the pool and disconnects.  Returns 0 (also when not
        initialized), or ``MF_ERR_BUSY`` while another thread is in a
        call."""
        client = self._client
        if client is None:
            return 0
        try:
            client.close()
        except MfError as exc:
            return exc.status
        self._client = None
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def get_local_service_id(self):
        """This process's rank in the pool (its "local service id");
        ``0xFFFFFFFF`` before :meth:`init`."""
        if self._client is None:
            return _UINT32_MAX
        return self._client.rank()

    @property
    def client(self):
        """The underlying :class:`Client` (None before :meth:`init`)."""
        return self._client

    # --------------------------------------------------------- helpers

    def _call(self, fn, *args, **kw):
        """Runs fn on the client; a failure becomes its status."""
        if self._client is None:
            return int(Status.ERR_STATE)
        try:
            fn(self._client, *args, **kw)
        except MfError as exc:
            return exc.status
        return 0

    def _batch(self, fn, count, *args, **kw):
        if self._client is None:
            return [int(Status.ERR_STATE)] * count
        return fn(self._client, *args, **kw)

    @staticmethod
    def _put_status(st):
        # upstream: a put of a key that exists is skipped and succeeds
        return 0 if st == MmcStatus.ERR_EXISTS else st

    @staticmethod
    def _mem_of(direct, host, device):
        """The MmcMem of raw addresses given with ``direct``."""
        direct = int(direct)
        if direct == device:
            return MmcMem.DEVICE
        if direct != host:
            raise ValueError("direct is invalid: %r" % (direct,))
        return MmcMem.AUTO

    @staticmethod
    def _ranges(ptrs, sizes, mem):
        if len(ptrs) != len(sizes):
            raise ValueError("%d buffers but %d sizes" % (len(ptrs),
                                                          len(sizes)))
        if mem == MmcMem.AUTO:
            return [(int(p), int(s)) for p, s in zip(ptrs, sizes)]
        return [(int(p), int(s), int(mem)) for p, s in zip(ptrs, sizes)]

    # ------------------------------------------------------------ puts

    def put(self, key, buf, replicateConfig=_DEFAULT_REPLICATE):
        """Stores the bytes of ``buf`` (any buffer-protocol object, or a
        device array exporting ``__cuda_array_interface__``) under
        ``key``.  Returns 0 (also when the key exists already: the stored
        object stays, as upstream) or a negative status."""
        st = self._call(Client.put, key, [buf], **replicateConfig._opts())
        return self._put_status(st)

    def put_batch(self, keys, values, replicateConfig=_DEFAULT_REPLICATE):
        """Stores ``values[i]`` (buffer objects or device arrays) under
        ``keys[i]``.  Returns 0 when every item was stored (or existed),
        else the first failing status."""
        keys = list(keys)
        values = list(values)
        if len(keys) != len(values):
            raise ValueError("%d keys but %d values" % (len(keys),
                                                        len(values)))
        res = self._batch(Client.put_batch, len(keys), keys,
                          [[v] for v in values], **replicateConfig._opts())
        for st in res:
            st = self._put_status(st)
            if st != 0:
                return st
        return 0

    def put_from(self, key, buffer_ptr, size, direct=H2G,
                 replicateConfig=_DEFAULT_REPLICATE):
        """Stores ``size`` bytes at raw address ``buffer_ptr``, device
        memory with ``direct=L2G``.  Returns 0 or a negative status."""
        ranges = self._ranges([buffer_ptr], [size],
                              self._mem_of(direct, H2G, L2G))
        st = self._call(Client.put, key, ranges, **replicateConfig._opts())
        return self._put_status(st)

    def batch_put_from(self, keys, buffer_ptrs, sizes, direct=H2G,
                       replicateConfig=_DEFAULT_REPLICATE):
        """Stores ``sizes[i]`` bytes at ``buffer_ptrs[i]`` under
        ``keys[i]``.  Returns a list of statuses (0 = stored)."""
        keys = list(keys)
        mem = self._mem_of(direct, H2G, L2G)
        layers = [[r] for r in self._ranges(buffer_ptrs, sizes, mem)]
        return self._put_batch_layers(keys, layers, replicateConfig)

    def put_from_layers(self, key, buffer_ptrs, sizes, direct=H2G,
                        replicateConfig=_DEFAULT_REPLICATE):
        """Stores the concatenation of the buffers ``buffer_ptrs[j]`` of
        ``sizes[j]`` bytes as one object.  Returns 0 or a status."""
        ranges = self._ranges(buffer_ptrs, sizes,
                              self._mem_of(direct, H2G, L2G))
        st = self._call(Client.put, key, ranges, **replicateConfig._opts())
        return self._put_status(st)

    def batch_put_from_layers(self, keys, buffer_ptrs, sizes, direct=H2G,
                              replicateConfig=_DEFAULT_REPLICATE):
        """Batch of :meth:`put_from_layers`: ``buffer_ptrs[i]`` and
        ``sizes[i]`` are the layers of ``keys[i]``.  Returns a list of
        statuses."""
        keys = list(keys)
        if len(buffer_ptrs) != len(keys) or len(sizes) != len(keys):
            raise ValueError("keys, buffer_ptrs and sizes differ in length")
        mem = self._mem_of(direct, H2G, L2G)
        layers = [self._ranges(p, s, mem) for p, s in zip(buffer_ptrs, sizes)]
        return self._put_batch_layers(keys, layers, replicateConfig)

    def _put_batch_layers(self, keys, layers, replicateConfig):
        if len(layers) != len(keys):
            raise ValueError("%d keys but %d buffers" % (len(keys),
                                                         len(layers)))
        res = self._batch(Client.put_batch, len(keys), keys, layers,
                          **replicateConfig._opts())
        return [self._put_status(s) for s in res]

    # ------------------------------------------------------------ gets

    def get(self, key):
        """The object's bytes; ``b""`` when it is missing or the read
        failed (as upstream)."""
        if self._client is None:
            return b""
        try:
            return self._client.get_bytes(key)
        except MfError:
            return b""

    def get_batch(self, keys):
        """The bytes of every key (``b""`` where missing or failed)."""
        keys = list(keys)
        if self._client is None:
            return [b""] * len(keys)
        return [r if isinstance(r, bytes) else b""
                for r in self._client.get_batch_bytes(keys)]

    def get_into(self, key, buffer_ptr, size, direct=G2H):
        """Reads the object into ``size`` bytes at raw address
        ``buffer_ptr`` (``size`` must equal the object's size), device
        memory with ``direct=G2L``.  Returns 0 or a negative status."""
        return self._call(Client.get, key, self._ranges(
            [buffer_ptr], [size], self._mem_of(direct, G2H, G2L)))

    def batch_get_into(self, keys, buffer_ptrs, sizes, direct=G2H):
        """Batch of :meth:`get_into`.  Returns a list of statuses."""
        keys = list(keys)
        mem = self._mem_of(direct, G2H, G2L)
        layers = [[r] for r in self._ranges(buffer_ptrs, sizes, mem)]
        return self._get_batch_layers(keys, layers)

    def get_into_layers(self, key, buffer_ptrs, sizes, direct=G2H):
        """Reads the object into several buffers, in order (their sizes
        add up to the object's).  Returns 0 or a negative status."""
        return self._call(Client.get, key, self._ranges(
            buffer_ptrs, sizes, self._mem_of(direct, G2H, G2L)))

    def batch_get_into_layers(self, keys, buffer_ptrs, sizes, direct=G2H):
        """Batch of :meth:`get_into_layers`.  Returns a list of
        statuses."""
        keys = list(keys)
        if len(buffer_ptrs) != len(keys) or len(sizes) != len(keys):
            raise ValueError("keys, buffer_ptrs and sizes differ in length")
        mem = self._mem_of(direct, G2H, G2L)
        layers = [self._ranges(p, s, mem) for p, s in zip(buffer_ptrs, sizes)]
        return self._get_batch_layers(keys, layers)

    def _get_batch_layers(self, keys, layers):
        if len(layers) != len(keys):
            raise ValueError("%d keys but %d buffers" % (len(keys),
                                                         len(layers)))
        return self._batch(Client.get_batch, len(keys), keys, layers)

    # ------------------------------------------------ buffer objects
    # Extensions: the same calls taking buffer-protocol objects or device
    # arrays (``__cuda_array_interface__``).

    def put_from_buffer(self, key, buf, replicateConfig=_DEFAULT_REPLICATE):
        """Like :meth:`put` (kept for symmetry with
        :meth:`get_into_buffer`)."""
        return self.put(key, buf, replicateConfig)

    def get_into_buffer(self, key, buf):
        """Reads the object into a writable buffer-protocol object or
        device array of exactly its size (bytearray, memoryview, NumPy
        array, CUDA tensor).  Returns 0 or a negative status."""
        return self._call(Client.get, key, [buf])

    def put_from_buffers(self, key, bufs, replicateConfig=_DEFAULT_REPLICATE):
        """Stores the concatenation of several buffer objects or device
        arrays."""
        st = self._call(Client.put, key, list(bufs),
                        **replicateConfig._opts())
        return self._put_status(st)

    def get_into_buffers(self, key, bufs):
        """Reads the object into several writable buffer objects or
        device arrays."""
        return self._call(Client.get, key, list(bufs))

    # ---------------------------------------------------- metadata

    def is_exist(self, key):
        """1 if a committed object exists under ``key``, 0 if not, else a
        negative status."""
        if self._client is None:
            return int(Status.ERR_STATE)
        res = self._client.exist_batch([key])[0]
        return self._exist_value(res)

    @staticmethod
    def _exist_value(st):
        if st == 0:
            return 1
        if st == MmcStatus.ERR_NOT_FOUND:
            return 0
        return st

    def batch_is_exist(self, keys):
        """For every key: 1 exists, 0 does not, or a negative status."""
        keys = list(keys)
        res = self._batch(Client.exist_batch, len(keys), keys)
        return [self._exist_value(st) for st in res]

    def remove(self, key):
        """Removes the object.  Returns 0, or a negative status
        (``MMC_ERR_NOT_FOUND`` = -200 when absent)."""
        return self._call(Client.remove, key)

    def remove_batch(self, keys):
        """Removes many objects; a list of statuses."""
        keys = list(keys)
        return self._batch(Client.remove_batch, len(keys), keys)

    def get_key_info(self, key):
        """A :class:`KeyInfo` of the object (size 0 when missing)."""
        if self._client is None:
            return KeyInfo()
        try:
            size, replicas = self._client.query(key)
        except MfError:
            return KeyInfo()
        return KeyInfo(size, replicas)

    def batch_get_key_info(self, keys, flag=0):
        """A :class:`KeyInfo` per key (size 0 where missing).  ``flag``
        is upstream's (``READABLE_GVA_QUERY`` = 1: readable objects
        only); both values answer the same here, as an object being
        written is invisible until its finish."""
        keys = list(keys)
        if self._client is None:
            return [KeyInfo() for _ in keys]
        return [KeyInfo(*info) if st == 0 else KeyInfo()
                for st, info in self._client.query_batch(keys)]

    # ------------------------------------------- layer-wise streaming

    def batch_alloc(self, keys, sizes, replicateConfig=_DEFAULT_REPLICATE):
        """Allocates objects the caller writes itself: for every key the
        global address (GVA, an ``int`` > 0) of its first replica, or a
        negative status.  Fill it with :meth:`batch_copy` (a write there
        goes to every replica of the allocation), then
        :meth:`batch_write_finish`.  An allocation not finished within the
        meta service's ``put_timeout_ms`` is reclaimed."""
        keys = list(keys)
        sizes = [int(s) for s in sizes]
        if len(keys) != len(sizes):
            raise ValueError("%d keys but %d sizes" % (len(keys), len(sizes)))
        if self._client is None:
            return [int(Status.ERR_STATE)] * len(keys)
        res = self._client.alloc_batch(keys, sizes, **replicateConfig._opts())
        return [st if st != 0 else info[1][0][2] for st, info in res]

    @staticmethod
    def _pieces(gvas, addrs, sizes, direct):
        """Copy pieces of (GVA, local address, size) items."""
        direct = int(direct)
        if direct not in (L2G, G2L, G2H, H2G):
            raise ValueError("direct is invalid: %r" % (direct,))
        if direct in (L2G, H2G):
            return [(int(a), int(g), int(s))
                    for g, a, s in zip(gvas, addrs, sizes)]
        return [(int(g), int(a), int(s)) for g, a, s in zip(gvas, addrs, sizes)]

    def _copy(self, pieces):
        if self._client is None:
            return int(Status.ERR_STATE)
        for st in self._client.copy_batch(pieces, _memcache.COPY_AUTO):
            if st != 0:
                return st
        return 0

    def batch_copy(self, gvas, buffer_ptrs, sizes, direct):
        """Copies ``sizes[i]`` bytes between the pool at ``gvas[i]`` and
        the raw address ``buffer_ptrs[i]`` (host or device memory):
        ``L2G``/``H2G`` write into an allocation (:meth:`batch_alloc`;
        every replica), ``G2L``/``G2H`` read (from a GVA of
        :meth:`batch_get_key_info`, under :meth:`batch_add_lease`).
        Returns 0 or the first failing status."""
        gvas, buffer_ptrs, sizes = list(gvas), list(buffer_ptrs), list(sizes)
        if not len(gvas) == len(buffer_ptrs) == len(sizes):
            raise ValueError("gvas, buffer_ptrs and sizes differ in length")
        return self._copy(self._pieces(gvas, buffer_ptrs, sizes, direct))

    def batch_copy_layers(self, gvas, buffer_ptrs, sizes, direct):
        """:meth:`batch_copy` where object i is the concatenation of the
        buffers ``buffer_ptrs[i][j]`` of ``sizes[i][j]`` bytes (a KV block
        as layers).  Returns 0 or the first failing status."""
        flat_gvas, flat_ptrs, flat_sizes = [], [], []
        gvas, buffer_ptrs, sizes = list(gvas), list(buffer_ptrs), list(sizes)
        if not len(gvas) == len(buffer_ptrs) == len(sizes):
            raise ValueError("gvas, buffer_ptrs and sizes differ in length")
        for gva, ptrs, lens in zip(gvas, buffer_ptrs, sizes):
            ptrs, lens = list(ptrs), list(lens)
            if len(ptrs) != len(lens):
                raise ValueError("%d buffers but %d sizes" % (len(ptrs),
                                                              len(lens)))
            off = 0
            for ptr, size in zip(ptrs, lens):
                flat_gvas.append(int(gva) + off)
                flat_ptrs.append(ptr)
                flat_sizes.append(size)
                off += int(size)
        return self._copy(self._pieces(flat_gvas, flat_ptrs, flat_sizes,
                                       direct))

    def batch_write_finish(self, keys, results=None):
        """Commits each allocated key whose ``results[i]`` is 0 (None: all)
        and aborts the others.  A list of statuses (0 = readable now)."""
        keys = list(keys)
        if results is not None:
            results = [int(r) for r in results]
            if len(results) != len(keys):
                raise ValueError("%d keys but %d results" % (len(keys),
                                                             len(results)))
        if self._client is None:
            return [int(Status.ERR_STATE)] * len(keys)
        return self._client.write_finish_batch(keys, results)

    def batch_add_lease(self, keys, ttl):
        """Read leases of ``ttl`` ms: until released (or expired) the
        objects are neither evicted nor their space reused.  A list of
        statuses; ``MMC_ERR_BUSY`` (-204) while a key is being written."""
        keys = list(keys)
        if self._client is None:
            return [int(Status.ERR_STATE)] * len(keys)
        return [st for st, _ in self._client.lease_batch(keys, int(ttl))]

    def batch_remove_lease(self, keys):
        """Releases this process's leases of every key; a list of
        statuses."""
        keys = list(keys)
        return self._batch(Client.lease_release_batch, len(keys), keys)

    def remove_all(self):
        """Removes every committed object of the pool.  Returns 0 or a
        negative status."""
        return self._call(Client.remove_all)

    def register_buffer(self, buffer_ptr, size):
        """Registers raw memory for reuse by puts and gets (optional).
        Returns 0 or a negative status."""
        return self._call(Client.register_buffer, int(buffer_ptr), int(size))

    def unregister_buffer(self, buffer_ptr, size=0):
        """Undoes :meth:`register_buffer` (``size`` is accepted for
        upstream compatibility).  Returns 0 or a negative status."""
        return self._call(Client.unregister_buffer, int(buffer_ptr))


# ------------------------------------------------------------ mmc-meta

def _find_meta_bin(binary):
    if binary:
        return binary
    env = os.environ.get("MMC_META_BIN")
    if env:
        return env
    try:
        from ._build_info import MMC_META_BIN  # written by the CMake build
        if MMC_META_BIN and os.access(MMC_META_BIN, os.X_OK):
            return MMC_META_BIN
    except ImportError:
        pass
    found = shutil.which("mmc-meta")
    if found:
        return found
    raise FileNotFoundError("mmc-meta not found: pass binary= or set "
                            "MMC_META_BIN")


class MetaServer:
    """Runs the ``mmc-meta`` daemon as a child process.

    ``MetaServer(addr="127.0.0.1", settings=None, binary=None,
    timeout=60)`` starts it with free ports (``port``, ``store_port`` and
    ``http_port`` 0 unless ``settings`` name them; ``settings`` are
    ``mmc-meta.conf`` keys passed as ``--set key=value``), waits for its
    ready line and parses it into :attr:`addr`, :attr:`port`,
    :attr:`store_port` and :attr:`http_port`; :attr:`url` is what clients
    use as ``meta_url``.  :meth:`stop` (or leaving a ``with`` block) sends
    SIGTERM and waits.

    The binary is ``binary``, else ``$MMC_META_BIN``, else the one of the
    build tree the package was built in, else ``mmc-meta`` on ``PATH``.
    """

    def __init__(self, addr="127.0.0.1", settings=None, binary=None,
                 timeout=60.0, stderr=None):
        self.binary = _find_meta_bin(binary)
        sets = {"addr": addr, "port": 0, "store_port": 0, "http_port": 0}
        sets.update(dict(settings or {}))
        argv = [self.binary]
        for key, value in sets.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            argv += ["--set", "%s=%s" % (key, value)]
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE,
                                        stderr=stderr, close_fds=True)
        try:
            line = self._read_ready(timeout)
            self._parse(line)
        except BaseException:
            self._kill()
            raise

    def _read_ready(self, timeout):
        out = self.process.stdout
        deadline = time.monotonic() + timeout
        data = b""
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while b"\n" not in data:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError("mmc-meta did not report ready")
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    code = self.process.wait()
                    raise RuntimeError("mmc-meta exited (status %s) before "
                                       "it was ready" % code)
                data += chunk
        out.close()  # the daemon prints nothing else on stdout
        return data.split(b"\n", 1)[0].decode()

    def _parse(self, line):
        prefix = "mmc-meta ready rpc="
        if not line.startswith(prefix):
            raise RuntimeError("unexpected first line from mmc-meta: %r"
                               % line)
        fields = line[len(prefix):].split()
        rpc = fields[0]
        self.addr, port = rpc.rsplit(":", 1)
        self.port = int(port)
        rest = dict(f.split("=", 1) for f in fields[1:])
        self.store_port = int(rest.get("store", 0))
        self.http_port = int(rest.get("http", 0))
        self.ready_line = line

    @property
    def url(self):
        """``tcp://addr:port`` of the RPC server (a client's
        ``meta_url``)."""
        return "tcp://%s:%d" % (self.addr, self.port)

    @property
    def pid(self):
        """Process id of the daemon."""
        return self.process.pid

    def running(self):
        """Whether the daemon is still running."""
        return self.process.poll() is None

    def stop(self, timeout=60.0):
        """Stops the daemon (SIGTERM, then SIGKILL after ``timeout``
        seconds) and returns its exit status (0: clean).  Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        return self.process.returncode

    close = stop

    def _kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __del__(self):
        proc = getattr(self, "process", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


class MetaService:
    """Upstream's ``MetaService``: runs the meta service in the
    foreground."""

    @staticmethod
    def main(args=None, binary=None):
        """Runs ``mmc-meta`` with ``args`` (default: this program's
        command line arguments) until it exits; returns its exit status.
        A blocking call, as upstream."""
        argv = [_find_meta_bin(binary)]
        argv += list(sys.argv[1:] if args is None else args)
        return subprocess.call(argv)
