"""Code run in the child processes of the Python tests (started with the
multiprocessing "spawn" method: a fresh interpreter, no inherited threads).
Each function returns a value the parent checks, or raises."""

import ctypes
import os
import time


def pattern(seed, size):
    """size bytes that depend on seed and on every position."""
    block = bytes((seed * 31 + i * 7 + (i >> 8)) & 0xFF for i in range(256))
    return (block * (size // 256 + 1))[:size]


# -------------------------------------------------------------- MemFabric

def store_party(url, index, count):
    """One participant of a config store allgather and barrier."""
    import memfabric as mf

    with mf.Store(url, connect_timeout_ms=10000) as st:
        total = st.add("py/counter", 1)
        gathered = st.allgather("py/ag", index, count,
                                b"rank-%02d" % index, 60000)
        st.barrier("py/bar", count, 60000)
        final = int(st.get("py/counter"))
    return {"gathered": gathered, "total": total, "final": final}


def pool_rank(url, world):
    """One rank of a 2-rank BM pool: every Pool call, byte for byte."""
    import memfabric as mf
    from memfabric import CopyDir, MfError

    seg = 1 << 20
    mf.init()
    mf.bm_init(url, world, settings={"timeout_ms": "60s",
                                     "copy_threads": 1})
    rank = mf.bm_rank_id()
    out = {"rank": rank, "world": mf.bm_world_size()}
    st = mf.Store(url)
    with mf.Pool(0, seg, seg) as pool:
        pool.join()
        st.barrier("pool/joined", world, 60000)
        peer = (rank + 1) % world
        # the peer joined; its descriptor reaches this process on its own
        pool.rank_wait(peer, 30000)
        out["joined"] = [pool.rank_joined(r) for r in range(world)]
        out["local_size"] = pool.local_size()
        base = pool.gva_of_rank(rank)
        pbase = pool.gva_of_rank(peer)
        out["rank_of_peer_gva"] = pool.rank_of_gva(pbase + 100)

        # single copy from a bytes object into the peer's segment
        mine = pattern(rank, 64 << 10)
        pool.copy(mine, pbase, direction=CopyDir.LH2GH)
        # batch copy: four pieces from a bytearray and a raw address
        src = bytearray(pattern(rank + 10, 4096))
        raw = ctypes.create_string_buffer(pattern(rank + 20, 4096), 4096)
        pieces = [(src, pbase + (128 << 10) + i * 4096) for i in range(2)]
        pieces.append((ctypes.addressof(raw), pbase + (140 << 10), 4096))
        pieces.append((memoryview(src)[:100], pbase + (150 << 10)))
        pool.copy_batch(pieces, CopyDir.LH2GH)
        # async copy, waited on
        big = bytearray(pattern(rank + 30, 256 << 10))
        req = pool.copy_async(big, pbase + (256 << 10))
        try:
            pool.destroy()  # refused: the copy is not finished
        except MfError as exc:
            out["destroy_busy"] = exc.name
        req.wait(60000)
        out["async_done"] = req.done
        breq = pool.copy_batch_async([(big, pbase + (512 << 10), 1000),
                                      (mine, pbase + (600 << 10), 1000)])
        while not breq.test():
            pass
        st.barrier("pool/written", world, 60000)

        # read back what the peer wrote into my segment
        got = bytearray(64 << 10)
        pool.copy(base, got, direction=CopyDir.GH2LH)
        ok = bytes(got) == pattern(peer, 64 << 10)
        got = bytearray(4096)
        pool.copy(base + (128 << 10) + 4096, got)
        ok = ok and bytes(got) == pattern(peer + 10, 4096)
        pool.copy(base + (140 << 10), got)
        ok = ok and bytes(got) == pattern(peer + 20, 4096)
        small = bytearray(100)
        pool.copy(base + (150 << 10), small)
        ok = ok and bytes(small) == pattern(peer + 10, 100)
        got = bytearray(256 << 10)
        pool.copy_async(base + (256 << 10), got).wait()
        ok = ok and bytes(got) == pattern(peer + 30, 256 << 10)
        one = bytearray(1000)
        pool.copy(base + (600 << 10), one)
        ok = ok and bytes(one) == pattern(peer, 1000)
        out["bytes_ok"] = ok

        # registration of a buffer and of a raw address
        reg = bytearray(8192)
        addr = pool.register(reg)
        out["registered"] = addr == mf.buffer_address(reg)[0]
        try:
            pool.register(reg)
            out["double_register"] = None
        except MfError as exc:
            out["double_register"] = exc.name
        try:
            reg.append(0)  # registered: pinned, not resizable
            out["reg_pinned"] = False
        except BufferError:
            out["reg_pinned"] = True
        pool.unregister(reg)
        reg.append(0)
        pool.register(ctypes.addressof(raw), 4096)
        pool.unregister(ctypes.addressof(raw))

        # errors
        errors = {}
        try:
            pool.copy(mine, base + seg - 10, direction=CopyDir.LH2GH)
        except MfError as exc:
            errors["out_of_range"] = exc.name
        try:
            pool.copy_batch([(mine, pbase, 10), (mine, base + seg * 200, 10)],
                            CopyDir.LH2GH)
        except MfError as exc:
            errors["batch"] = (exc.name, exc.results)
        try:
            pool.copy(base, b"read-only", 4)
        except BufferError:
            errors["readonly"] = "BufferError"
        try:
            pool.copy(bytes(10), bytearray(100), 50)
        except ValueError:
            errors["too_big"] = "ValueError"
        try:
            pool.copy(base, pbase)
        except TypeError:
            errors["no_size"] = "TypeError"
        out["errors"] = errors
        st.barrier("pool/read", world, 60000)
        pool.leave()
    try:
        pool.join()
    except MfError as exc:
        out["after_destroy"] = exc.name
    st.close()
    mf.bm_uninit()
    mf.uninit()
    return out


# --------------------------------------------------------------- MemCache

def cache_client(url, index, nprocs, barrier, nkeys, size):
    """A MemCache client process: puts its own objects (single, batch and
    layers forms), then, once everybody did (barrier), reads every
    process's objects and checks them byte for byte."""
    from memfabric import DistributedObjectStore

    store = DistributedObjectStore()
    store.setup({"meta_url": url, "dram_size": "32M", "timeout_ms": "30s",
                 "fabric.prefault": False})
    assert store.init(0) == 0
    rank = store.get_local_service_id()
    prefix = "mp/%d/" % index
    keys = [prefix + "b%d" % i for i in range(nkeys)]
    vals = [pattern(index * 100 + i, size + i) for i in range(nkeys)]
    res = {"rank": rank, "put": store.put_batch(keys, vals)}
    layer_bufs = [bytearray(pattern(index * 100 + 50 + j, 1000 + j))
                  for j in range(3)]
    addrs = [ctypes.addressof((ctypes.c_char * len(b)).from_buffer(b))
             for b in layer_bufs]
    res["layers"] = store.put_from_layers(prefix + "layers", addrs,
                                          [len(b) for b in layer_bufs])
    barrier.wait(120)

    bad = []
    for other in range(nprocs):
        okeys = ["mp/%d/b%d" % (other, i) for i in range(nkeys)]
        got = store.get_batch(okeys)
        for i, g in enumerate(got):
            if g != pattern(other * 100 + i, size + i):
                bad.append(okeys[i])
        lsizes = [1000, 1001, 1002]
        outs = [bytearray(n) for n in lsizes]
        optrs = [ctypes.addressof((ctypes.c_char * n).from_buffer(o))
                 for n, o in zip(lsizes, outs)]
        st = store.get_into_layers("mp/%d/layers" % other, optrs, lsizes)
        if st != 0 or any(bytes(o) != pattern(other * 100 + 50 + j, n)
                          for j, (o, n) in enumerate(zip(outs, lsizes))):
            bad.append("mp/%d/layers" % other)
    res["bad"] = bad
    barrier.wait(120)  # nobody leaves while others still read
    res["close"] = store.close()
    return res


def cache_client_entry(url, index, nprocs, barrier, nkeys, size, queue):
    """Process entry: runs cache_client and reports through queue."""
    try:
        queue.put((index, cache_client(url, index, nprocs, barrier, nkeys,
                                       size)))
    except BaseException as exc:  # reported to the parent
        queue.put((index, {"error": repr(exc)}))
        barrier.abort()


def second_client(url):
    """A child holding one client tries a second one (MF_ERR_STATE)."""
    from memfabric import Client, MfError

    with Client({"meta_url": url, "dram_size": 0}) as c:
        try:
            Client({"meta_url": url, "dram_size": 0})
        except MfError as exc:
            return exc.name
    return None


def config_file_client(path):
    """A store set up from an mmc-local.conf file."""
    from memfabric import DistributedObjectStore

    store = DistributedObjectStore()
    res = [store.setup(path), store.init(0), store.put("cf/key", b"f"),
           store.get("cf/key"), store.remove("cf/key"), store.close()]
    return res


def numpy_roundtrip(url):
    """The NumPy path: put from an array, get into an array."""
    import numpy as np

    from memfabric import DistributedObjectStore

    store = DistributedObjectStore()
    store.setup({"meta_url": url, "dram_size": 0})
    assert store.init(0) == 0
    a = np.arange(10000, dtype=np.float32)
    res = [store.put("np/a", a)]
    b = np.zeros_like(a)
    res.append(store.get_into_buffer("np/a", b))
    res.append(bool((a == b).all()))
    c = np.zeros_like(a)
    res.append(store.get_into("np/a", c.ctypes.data, c.nbytes))
    res.append(bool((a == c).all()))
    res.append(np.frombuffer(store.get("np/a"), dtype=np.float32).sum()
               == a.sum())
    # a non-contiguous view is refused (BufferError), not copied wrongly
    try:
        store.put("np/strided", a[::2])
        res.append("accepted")
    except (BufferError, ValueError):
        res.append("refused")
    store.remove("np/a")
    store.close()
    return res


# ------------------------------------------------ device memory (fake CUDA)

def nbytes_of(shape, typestr):
    """Bytes of an array of shape and NumPy type string ('<f2': 2 each)."""
    size = int(typestr[2:])
    for dim in shape:
        size *= dim
    return size


class CudaArray:
    """An array in device memory as a PyTorch CUDA tensor or a CuPy array
    shows it: ``__cuda_array_interface__`` and no buffer protocol.  The
    interface dict is built from the arguments (``extra`` adds entries),
    so tests can make malformed ones too."""

    def __init__(self, ptr, shape, typestr="|u1", strides=None,
                 readonly=False, stream=None, version=3, **extra):
        self.ptr = ptr
        cai = {"data": (ptr, readonly), "shape": tuple(shape),
               "typestr": typestr, "strides": strides, "version": version}
        if stream is not None:
            cai["stream"] = stream
        cai.update(extra)
        self.__cuda_array_interface__ = cai


class FakeCuda:
    """The fake CUDA driver (tests/fakecuda) through ctypes, with the
    primary context of device 0 current in the calling thread.  Device
    memory is unreachable from the host: it is filled and read back with
    the driver's copies only."""

    HOST_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        u64, ptr, size = ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t
        sigs = {
            "cuInit": [ctypes.c_uint],
            "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(ptr), ctypes.c_int],
            "cuCtxSetCurrent": [ptr],
            "cuMemAlloc_v2": [ctypes.POINTER(u64), size],
            "cuMemFree_v2": [u64],
            "cuMemcpy": [u64, u64, size],
            "cuMemcpyAsync": [u64, u64, size, ptr],
            "cuStreamCreate": [ctypes.POINTER(ptr), ctypes.c_uint],
            "cuStreamSynchronize": [ptr],
            "cuStreamDestroy_v2": [ptr],
            "cuLaunchHostFunc": [ptr, self.HOST_FN, ptr],
        }
        for name, argtypes in sigs.items():
            getattr(lib, name).argtypes = argtypes
            getattr(lib, name).restype = ctypes.c_int
        self.lib = lib
        self._keep = []  # host functions and buffers the driver may use
        self._check(lib.cuInit(0), "cuInit")
        dev, ctx = ctypes.c_int(), ptr()
        self._check(lib.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
        self._check(lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev),
                    "cuDevicePrimaryCtxRetain")
        self._check(lib.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")

    @staticmethod
    def _check(res, what):
        if res != 0:
            raise RuntimeError("%s failed: CUresult %d" % (what, res))

    def alloc(self, size, data=None):
        """A device address of size bytes (the fake zero-fills them),
        holding data when given."""
        dptr = ctypes.c_uint64()
        self._check(self.lib.cuMemAlloc_v2(ctypes.byref(dptr), size),
                    "cuMemAlloc")
        if data is not None:
            self.write(dptr.value, data)
        return dptr.value

    def free(self, dptr):
        self._check(self.lib.cuMemFree_v2(dptr), "cuMemFree")

    def array(self, shape, typestr="|u1", data=None, **kw):
        """A CudaArray over new device memory."""
        size = nbytes_of(shape, typestr)
        arr = CudaArray(self.alloc(size, data), shape, typestr, **kw)
        arr.nbytes = size
        return arr

    def write(self, dptr, data, stream=None):
        """Copies data to device memory (queued on stream when given)."""
        buf = ctypes.create_string_buffer(bytes(data), len(data))
        if stream is None:
            self._check(self.lib.cuMemcpy(dptr, ctypes.addressof(buf),
                                          len(data)), "cuMemcpy")
        else:
            self._keep.append(buf)
            self._check(self.lib.cuMemcpyAsync(
                dptr, ctypes.addressof(buf), len(data), stream),
                "cuMemcpyAsync")

    def read(self, dptr, size):
        """size bytes of device memory."""
        buf = ctypes.create_string_buffer(size)
        self._check(self.lib.cuMemcpy(ctypes.addressof(buf), dptr, size),
                    "cuMemcpy")
        return buf.raw

    def stream(self):
        handle = ctypes.c_void_p()
        self._check(self.lib.cuStreamCreate(ctypes.byref(handle), 0),
                    "cuStreamCreate")
        return handle.value

    def sleep_on(self, stream, seconds):
        """Queues a host function that sleeps on stream: what is queued
        behind it runs that much later."""
        fn = self.HOST_FN(lambda _: time.sleep(seconds))
        self._keep.append(fn)
        self._check(self.lib.cuLaunchHostFunc(stream, fn, None),
                    "cuLaunchHostFunc")

    def sync(self, stream):
        self._check(self.lib.cuStreamSynchronize(stream),
                    "cuStreamSynchronize")


_device = {}


def device_setup(fake_path, url):
    """Initializer of the device test process: the library's driver is
    the fake one (MF_CUDA_LIBRARY, set before the library first looks),
    a context is current in this thread and a store contributes 16 MiB."""
    os.environ["MF_CUDA_LIBRARY"] = fake_path
    from memfabric import DistributedObjectStore

    _device["cuda"] = FakeCuda(fake_path)
    store = DistributedObjectStore()
    store.setup({"meta_url": url, "dram_size": "16M", "timeout_ms": "30s"})
    assert store.init(0) == 0
    _device["store"] = store


def device_teardown():
    """Closes the store of the device test process."""
    return _device.pop("store").close()


def device():
    """(FakeCuda, DistributedObjectStore) of the device test process."""
    return _device["cuda"], _device["store"]


def rss_bytes():
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trans_peer(url, size):
    """A TransferEngine in its own process: a registered buffer holding
    pattern(5, size), announced in the store with the engine's session
    id; waits for the parent's word, then returns what the parent wrote
    into the buffer's second half."""
    import memfabric as mf

    eng = mf.TransferEngine()
    assert eng.initialize("127.0.0.1", url, "tcp", "") == 0
    buf = bytearray(pattern(5, size) + bytes(size))
    addr, _ = mf.buffer_address(buf, True)
    assert eng.register_memory(addr, 2 * size) == 0
    with mf.Store(url) as st:
        st.set("py/trans/peer", b"%s %d" % (eng.get_session_id().encode(),
                                           addr))
        st.get("py/trans/done", 60000)
    got = bytes(buf[size:])
    assert eng.unregister_memory(addr) == 0
    eng.close()
    return got


# ------------------------------------------------- upstream-named modules

def vllm_ascend_kv(conf_path, fake_path):
    """A KV pool worker as vllm-ascend's MemCache backend drives
    memcache_hybrid: config from MMC_LOCAL_CONFIG_PATH, KV layers
    registered, whole blocks put and got layer by layer, then the
    layer-wise GVA path (alloc, per-layer copies, write finish; key info,
    leases with the retry on -3101, per-layer copies back, lease release).
    Device memory through the fake driver when fake_path is given (L2G /
    G2L, as on an NPU), else host memory (H2G / G2H).  Returns what it saw
    for the parent to check."""
    os.environ["MMC_LOCAL_CONFIG_PATH"] = conf_path
    if fake_path:
        os.environ["MF_CUDA_LIBRARY"] = fake_path
    from memcache_hybrid import DistributedObjectStore

    layers, blocks, bs = 4, 6, 8192
    cuda = FakeCuda(fake_path) if fake_path else None
    put_dir, get_dir = (0, 1) if cuda else (3, 2)
    keep = []

    def alloc(size):
        if cuda:
            return cuda.alloc(size)
        buf = ctypes.create_string_buffer(size)
        keep.append(buf)
        return ctypes.addressof(buf)

    def write(addr, data):
        if cuda:
            cuda.write(addr, data)
        else:
            ctypes.memmove(addr, data, len(data))

    def read(addr, size):
        return cuda.read(addr, size) if cuda else ctypes.string_at(addr, size)

    out = {}
    store = DistributedObjectStore()
    out["init"] = store.init(0)
    # the KV cache: a K and a V buffer per layer, one block every bs bytes
    kv = [(alloc(blocks * bs), alloc(blocks * bs)) for _ in range(layers)]
    out["register"] = [store.register_buffer(p, blocks * bs)
                       for pair in kv for p in pair]

    def block_addrs(b):
        return [p + b * bs for pair in kv for p in pair]

    def fill(seed):
        for li, pair in enumerate(kv):
            for vi, p in enumerate(pair):
                write(p, pattern(seed + 2 * li + vi, blocks * bs))

    def check(seed):
        return all(read(p, blocks * bs) == pattern(seed + 2 * li + vi,
                                                   blocks * bs)
                   for li, pair in enumerate(kv) for vi, p in enumerate(pair))

    keys = ["blk-%d" % b for b in range(blocks)]
    sizes = [[bs] * (2 * layers) for _ in keys]
    fill(10)
    out["exist_before"] = store.batch_is_exist(keys)
    out["put"] = store.batch_put_from_layers(
        keys, [block_addrs(b) for b in range(blocks)], sizes, put_dir)
    out["exist_after"] = store.batch_is_exist(keys)
    fill(50)
    out["get"] = store.batch_get_into_layers(
        keys, [block_addrs(b) for b in range(blocks)], sizes, get_dir)
    out["get_bytes"] = check(10)

    # layer-wise: one object per block, K then V of every layer
    lw = ["lw-%d" % b for b in range(blocks)]
    obj = 2 * layers * bs
    fill(90)
    gvas = store.batch_alloc(lw, [obj] * blocks)
    out["alloc"] = gvas
    out["lease_writing"] = store.batch_add_lease(lw[:1], 300000)
    out["save"] = []
    for li, (k, v) in enumerate(kv):
        g, a, s = [], [], []
        for b in range(blocks):
            g += [gvas[b] + 2 * li * bs, gvas[b] + (2 * li + 1) * bs]
            a += [k + b * bs, v + b * bs]
            s += [bs, bs]
        out["save"].append(store.batch_copy(g, a, s, put_dir))
    out["finish"] = store.batch_write_finish(lw, [0] * blocks)
    fill(130)
    infos = store.batch_get_key_info(lw, flag=1)  # READABLE_GVA_QUERY
    out["info_sizes"] = [ki.size() for ki in infos]
    load = [ki.gva_list()[0] for ki in infos]
    for _ in range(10):
        leases = store.batch_add_lease(lw, 300000)
        if -3101 not in leases:
            break
        time.sleep(0.001)
    out["lease"] = leases
    out["load"] = []
    for li, (k, v) in enumerate(kv):
        g, a, s = [], [], []
        for b in range(blocks):
            g += [load[b] + 2 * li * bs, load[b] + (2 * li + 1) * bs]
            a += [k + b * bs, v + b * bs]
            s += [bs, bs]
        out["load"].append(store.batch_copy(g, a, s, get_dir))
    out["load_bytes"] = check(90)
    out["unlease"] = store.batch_remove_lease(lw)
    out["unlease_again"] = store.batch_remove_lease(lw[:1])
    out["remove_all"] = store.remove_all()
    out["exist_end"] = store.batch_is_exist(keys + lw)
    out["missing"] = store.remove("blk-0")
    out["close"] = store.close()
    return out


def hybrid_init(conf_path):
    """memcache_hybrid's init with the config file conf_path."""
    os.environ["MMC_LOCAL_CONFIG_PATH"] = conf_path
    from memcache_hybrid import DistributedObjectStore

    return DistributedObjectStore().init(0)


# -------------------------------------------------------------------- SHM

def shm_rank(url, world, rank):
    """One rank of a 2-rank SHM region: every Region call."""
    import threading

    import memfabric as mf
    from memfabric import MfError
    from memfabric.shm import REACH_MAPPED, REACH_SELF, Region

    size = (1 << 20) + 7
    out = {}
    mf.init()
    mf.bm_init(url, world, rank, settings={"timeout_ms": "60s"})
    exited = threading.Event()
    seen = []

    def on_exit(status, from_rank):
        seen.append((status, from_rank))
        exited.set()

    with Region(5, size) as r:
        peer = (rank + 1) % world
        out["shape"] = (r.rank, r.world, r.size, r.stride % 4096)
        r.put(r.ptr(rank), pattern(rank, size))
        r.barrier()
        out["peer_bytes"] = r.get(r.ptr(peer), size) == pattern(peer, size)
        # this rank's slot in the peer's part, by raw address
        buf = ctypes.create_string_buffer(pattern(9 + rank, 4096), 4096)
        r.put(r.ptr(peer) + 8192 * (rank + 1), (ctypes.addressof(buf), 4096))
        r.barrier()
        back = bytearray(4096)
        r.get_into(r.ptr(rank) + 8192 * (peer + 1), back)
        out["slot"] = bytes(back) == pattern(9 + peer, 4096)
        out["gather"] = r.allgather(b"r%d" % rank)
        out["group"] = r.group_allgather("pair", rank, world, b"g%d" % rank)
        r.group_barrier("pair", world)
        out["reach"] = [r.can_reach(x)[0] for x in range(world)]
        out["self_mapped"] = bool(r.can_reach(rank)[0] & REACH_SELF)
        out["peer_mapped"] = bool(r.can_reach(peer)[0] & REACH_MAPPED)
        for _ in range(10):
            r.atomic_add("n", 1)
        r.barrier()
        out["count"] = r.atomic_add("n", 0)
        out["cas"] = r.atomic_cas("flag", 0, 10 + rank)
        if rank == 0:
            r.set_context(b"ctx-bytes")
        out["context"] = r.get_context(timeout_ms=30000)
        r.register_exit(on_exit)
        r.barrier()
        if rank == world - 1:
            r.global_exit(3)
        out["exit"] = exited.wait(60) and seen[0]
        try:
            r.ptr(world)
        except ValueError:
            out["bad_rank"] = "ValueError"
        r.barrier()
    try:
        r.barrier()
    except MfError as exc:
        out["after_destroy"] = exc.name
    mf.bm_uninit()
    mf.uninit()
    return out


# ------------------------------------------------------- memfabric_hybrid

def hybrid_rank(url, world, rank):
    """One rank driving memfabric_hybrid (bm, then shm) as upstream's
    callers do; returns the codes and checks."""
    import memfabric as mf
    import memfabric_hybrid as mfh
    from memfabric_hybrid import bm, shm

    seg = 1 << 20
    out = {"init": mfh.initialize()}
    cfg = bm.BmConfig(rank_id=rank, start_config_store_server=False)
    out["bm_init"] = bm.initialize(url, world, 0, cfg)
    out["rank"] = bm.get_rank_id()
    h = bm.create(0, world, bm.BmDataOpType.HOST_TCP, seg, 0)
    out["join"] = h.join()
    st = mf.Store(url)
    st.barrier("hy/joined", world, 60000)
    peer = (rank + 1) % world
    mine = h.peer_rank_ptr(rank, bm.BmMemType.HOST)
    theirs = h.peer_rank_ptr(peer, bm.BmMemType.HOST)
    out["gva_to_va"] = h.gva_to_va(mine, bm.BmMemType.LOCAL_HOST) == mine
    out["size"] = h.local_mem_size(bm.BmMemType.LOCAL_HOST)
    out["rank_of"] = h.rank_id_by_gva(theirs)
    src = ctypes.create_string_buffer(pattern(rank, seg), seg)
    out["h2g"] = h.copy_data(ctypes.addressof(src), theirs, seg,
                             bm.BmCopyType.H2G)
    st.barrier("hy/copied", world, 60000)
    dst = ctypes.create_string_buffer(seg)
    out["g2h"] = h.copy_data(mine, ctypes.addressof(dst), seg,
                             bm.BmCopyType.G2H)
    out["bytes"] = dst.raw == pattern(peer, seg)
    out["async"] = h.copy_data_batch([ctypes.addressof(src)], [theirs], [64],
                                     bm.BmCopyType.H2GH, bm.ASYNC_COPY_FLAG)
    out["wait"] = h.wait()
    out["partial"] = h.copy_data_batch(
        [ctypes.addressof(src)] * 2, [theirs, theirs + 2 * seg], [16, 16],
        bm.BmCopyType.H2G)
    out["bad_type"] = h.copy_data(mine, ctypes.addressof(dst), 1, 42)
    out["err_msg"] = mfh.get_last_err_msg()
    st.barrier("hy/done", world, 60000)
    out["leave"] = h.leave()
    h.destroy()
    bm.uninitialize()

    out["shm_init"] = shm.initialize(url, world, rank, 0,
                                     shm.ShmConfig(start_config_store=False))
    s = shm.create(1, world, rank, seg, shm.ShmDataOpType.MTE)
    out["shm_gva"] = s is not None and s.gva > 0
    out["shm_rank"] = (s.get_global_rank(), s.get_global_rank_size())
    out["shm_barrier"] = s.barrier()
    out["shm_gather"] = s.allgather(b"%d" % rank)
    out["shm_reach"] = s.topology_can_reach(peer)
    out["shm_ctx"] = s.set_extra_context(b"x")
    out["shm_bad"] = shm.create(2, world + 1, rank, seg) is None
    # no rank leaves before the other looked at it
    out["shm_barrier2"] = s.barrier()
    out["shm_destroy"] = s.destroy()
    shm.uninitialize()
    st.close()
    mfh.uninitialize()
    return out
