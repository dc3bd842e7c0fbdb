"""Device memory from Python: objects exporting __cuda_array_interface__
and raw device addresses with sizes, byte for byte through the fake CUDA
driver (tests/fakecuda).

The fake maps device memory PROT_NONE at its device address, so a host
load or store of it by the bindings or the library would crash the
process.  The device bodies (_dev_*) run in one child process whose
library loads the fake ($MF_FAKECUDA, given by CMake when the build has
the cuda memory kind; the tests skip without it); the child contributes
its own segment, so objects land both there and, over tcp, in this
process's.  Malformed interfaces are refused before the library is
called: those tests run here, without a driver."""

import concurrent.futures
import os
import sys

import pytest

from memfabric import MmcError, MmcMem, MmcStatus, ReplicateConfig, Status
from memfabric.memcache import G2L, L2G

from conftest import cuda_driver_here
import workers

TIMEOUT = 120
SIZE_MISMATCH = int(MmcStatus.ERR_SIZE_MISMATCH)


@pytest.fixture(scope="module")
def device(meta, spawn):
    """Runs fn(*args) in the device test process: device(fn, *args)."""
    path = os.environ.get("MF_FAKECUDA")
    if not path:
        pytest.skip("MF_FAKECUDA unset: this build has no cuda memory kind")
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=spawn, initializer=workers.device_setup,
        initargs=(path, meta.url))
    try:
        yield lambda fn, *args: pool.submit(fn, *args).result(TIMEOUT)
        assert pool.submit(workers.device_teardown).result(TIMEOUT) == 0
    finally:
        pool.shutdown()


# ------------------------------------------------- refused before the call

# never dereferenced: every call below fails before the library runs
BOGUS = 0x7F0000000000


def bogus(shape=(4, 4), typestr="<f4", **kw):
    return workers.CudaArray(BOGUS, shape, typestr, **kw)


class NotADict:
    __cuda_array_interface__ = [BOGUS, 16]


@pytest.mark.parametrize("obj, exc, match", [
    (bogus(strides=(4, 16)), ValueError, "C-contiguous"),   # Fortran order
    (bogus(strides=(32, 4)), ValueError, "C-contiguous"),   # every other row
    (bogus(strides=(-16, 4)), ValueError, "C-contiguous"),
    (bogus(strides=(16,)), ValueError, "one length"),
    (bogus(mask=BOGUS), ValueError, "masked"),
    (bogus(typestr="f4"), ValueError, "typestr"),
    (bogus(typestr="<f"), ValueError, "typestr"),
    (bogus(typestr=4), ValueError, "typestr"),
    (bogus(shape=(4, -1)), ValueError, "shape"),
    (bogus(stream=0), ValueError, "stream"),
    (bogus(data=None), ValueError, "lacks"),
    (bogus(data=(BOGUS,)), ValueError, "data"),
    (bogus(data=(-1, False)), ValueError, "data"),
    (NotADict(), TypeError, "must be a dict"),
    (object(), TypeError, "__cuda_array_interface__"),
    ((BOGUS, 16, 7), ValueError, "mem must be"),
    ((BOGUS, 16, "device"), ValueError, "mem must be"),
    ((BOGUS, 16, 2, 0), ValueError, r"\(address, size, mem\)"),
])
def test_refused(store, obj, exc, match):
    with pytest.raises(exc, match=match):
        store.put("dev/refused", obj)
    with pytest.raises(exc, match=match):
        store.put_batch(["dev/refused"], [obj])
    with pytest.raises(exc, match=match):
        store.get_into_buffer("dev/refused", obj)
    with pytest.raises(exc, match=match):
        store.client.put("dev/refused", [b"host", obj])


def test_readonly_target(store):
    ro = bogus(readonly=True)
    with pytest.raises(ValueError, match="read-only"):
        store.get_into_buffer("dev/any", ro)
    with pytest.raises(ValueError, match="read-only"):
        store.client.get_batch(["dev/any"], [[ro]])


@pytest.mark.skipif(cuda_driver_here(), reason="a CUDA driver is loadable")
def test_no_driver(store):
    """Without a driver, well-formed device arrays reach the library as
    device memory, which answers MF_ERR_UNSUPPORTED (and touches
    nothing)."""
    unsupported = int(Status.ERR_UNSUPPORTED)
    for arr in (bogus(), bogus(strides=(16, 4)), bogus(version=2),
                bogus(shape=(4, 1, 4), strides=(16, 999, 4))):
        assert store.put("dev/none", arr) == unsupported
    assert store.put_from("dev/none", BOGUS, 64, L2G) == unsupported
    assert store.is_exist("dev/none") == 0


# ------------------------------------------------ in the device process

def test_roundtrip(device, store):
    device(_dev_roundtrip, store.get_local_service_id())


def _dev_roundtrip(parent_rank):
    cuda, store = workers.device()
    me = store.get_local_service_id()
    shape, typestr = (64, 300), "<f2"
    n = workers.nbytes_of(shape, typestr)
    data = workers.pattern(1, n)
    src = cuda.array(shape, typestr, data)
    for where in (me, parent_rank):
        key = "dev/rt/%d" % where
        cfg = ReplicateConfig(preferredLocalServiceIDs=[where])
        assert store.put(key, src, cfg) == 0
        assert store.get_key_info(key).loc_list() == [where]
        assert store.get(key) == data
        dst = cuda.array(shape, typestr)
        assert store.get_into_buffer(key, dst) == 0
        assert cuda.read(dst.ptr, n) == data
        out = bytearray(n)  # into host memory too
        assert store.get_into_buffer(key, out) == 0 and out == data
        assert store.remove(key) == 0
    # no reference to the arrays is kept
    refs = sys.getrefcount(src), sys.getrefcount(dst)
    for _ in range(50):
        assert store.put("dev/rt", src) == 0
        assert store.get_into_buffer("dev/rt", dst) == 0
        assert store.remove("dev/rt") == 0
    assert (sys.getrefcount(src), sys.getrefcount(dst)) == refs


def test_raw_pointers(device):
    device(_dev_raw_pointers)


def _dev_raw_pointers():
    cuda, store = workers.device()
    n = 100000
    data = workers.pattern(2, n)
    src = cuda.alloc(n, data)
    dst = [cuda.alloc(n) for _ in range(3)]
    # upstream's device directions
    assert store.put_from("dev/raw", src, n, L2G) == 0
    assert store.get_into("dev/raw", dst[0], n, G2L) == 0
    assert cuda.read(dst[0], n) == data
    # the host directions leave it to the library, which asks the driver
    assert store.put_from("dev/raw2", src, n) == 0
    assert store.get_into("dev/raw2", dst[1], n) == 0
    assert cuda.read(dst[1], n) == data
    # the raising client takes (address, size, mem)
    c = store.client
    c.put("dev/raw3", [(src, n, MmcMem.DEVICE)])
    c.get("dev/raw3", [(dst[2], 1000, MmcMem.DEVICE),
                       (dst[2] + 1000, n - 1000)])
    assert cuda.read(dst[2], n) == data
    # wrong sizes copy nothing
    cuda.write(dst[0], bytes(n))
    assert store.get_into("dev/raw", dst[0], n - 1, G2L) == SIZE_MISMATCH
    with pytest.raises(MmcError) as ei:
        c.get("dev/raw3", [(dst[0], n + 1, MmcMem.DEVICE)])
    assert ei.value.status == SIZE_MISMATCH
    assert cuda.read(dst[0], n) == bytes(n)
    assert store.remove_batch(["dev/raw", "dev/raw2", "dev/raw3"]) == [0] * 3
    for p in [src] + dst:
        cuda.free(p)


def test_layers_and_batches(device):
    device(_dev_layers_and_batches)


def _dev_layers_and_batches():
    cuda, store = workers.device()
    # one object from device and host layers, read back split elsewhere
    parts = [workers.pattern(3, 5000), workers.pattern(4, 7000),
             workers.pattern(5, 3000)]
    whole = b"".join(parts)
    layers = [cuda.array((5000,), "|u1", parts[0]), parts[1],
              cuda.array((750,), "<f4", parts[2])]
    assert store.put_from_buffers("dev/mix", layers) == 0
    assert store.get("dev/mix") == whole
    head, tail = cuda.array((5000,), "<u2"), bytearray(5000)
    assert store.get_into_buffers("dev/mix", [head, tail]) == 0
    assert cuda.read(head.ptr, 10000) == whole[:10000]
    assert tail == whole[10000:]

    # batches of device arrays, and the raw forms of upstream
    keys = ["dev/b%d" % i for i in range(8)]
    datas = [workers.pattern(10 + i, 1000 + 100 * i) for i in range(8)]
    srcs = [cuda.array((len(d),), "|u1", d) for d in datas]
    assert store.put_batch(keys, srcs) == 0
    assert store.get_batch(keys) == datas
    dsts = [cuda.array((len(d),), "|u1") for d in datas]
    assert store.client.get_batch(keys, [[d] for d in dsts]) == [0] * 8
    assert [cuda.read(d.ptr, len(x)) for d, x in zip(dsts, datas)] == datas
    outs = [cuda.alloc(len(d)) for d in datas]
    sizes = [len(d) for d in datas]
    sizes[5] -= 1
    res = store.batch_get_into(keys, outs, sizes, G2L)
    assert res == [0] * 5 + [SIZE_MISMATCH] + [0] * 2
    assert [cuda.read(o, len(d)) for o, d in zip(outs, datas)][:5] == \
        datas[:5]

    half = [len(d) // 2 for d in datas[:2]]
    ptrs = [[s.ptr, s.ptr + h] for s, h in zip(srcs, half)]
    lsizes = [[h, len(d) - h] for h, d in zip(half, datas)]
    assert store.batch_put_from_layers(["dev/l0", "dev/l1"], ptrs, lsizes,
                                       L2G) == [0, 0]
    optrs = [[o, o + h] for o, h in zip(outs, half)]
    assert store.batch_get_into_layers(["dev/l0", "dev/l1"], optrs, lsizes,
                                       G2L) == [0, 0]
    assert [cuda.read(o, len(d)) for o, d in zip(outs, datas[:2])] == \
        datas[:2]
    # one batch mixing device and host items
    assert store.client.put_batch(["dev/m0", "dev/m1"],
                                  [[srcs[0]], [datas[1]]]) == [0, 0]
    assert store.get_batch(["dev/m0", "dev/m1"]) == datas[:2]
    assert store.remove_batch(keys + ["dev/mix", "dev/l0", "dev/l1",
                                      "dev/m0", "dev/m1"]) == [0] * 13


def test_stream(device):
    device(_dev_stream)


def _dev_stream():
    """Version 3: the array's stream is waited for before it is used."""
    cuda, store = workers.device()
    n = 1 << 16
    data = workers.pattern(6, n)
    s = cuda.stream()
    src = cuda.array((n,), "|u1", stream=s)  # zeros until the copy lands
    cuda.sleep_on(s, 0.3)
    cuda.write(src.ptr, data, stream=s)
    assert store.put("dev/stream", src) == 0
    assert store.get("dev/stream") == data
    # a get waits too: zeros queued on the stream land before the object
    dst = cuda.array((n,), "|u1", stream=s)
    cuda.sleep_on(s, 0.3)
    cuda.write(dst.ptr, bytes(n), stream=s)
    assert store.get_into_buffer("dev/stream", dst) == 0
    cuda.sync(s)
    assert cuda.read(dst.ptr, n) == data
    # the legacy (1) and per-thread (2) default streams
    for default in (1, 2):
        arr = workers.CudaArray(src.ptr, (n,), stream=default)
        key = "dev/stream%d" % default
        assert store.put(key, arr) == 0 and store.get(key) == data
    # version 2 has no stream entry
    arr = workers.CudaArray(src.ptr, (n,), version=2)
    assert store.put("dev/v2", arr) == 0 and store.get("dev/v2") == data
    assert store.remove_batch(["dev/stream", "dev/stream1", "dev/stream2",
                               "dev/v2"]) == [0] * 4


def test_shapes(device):
    device(_dev_shapes)


def _dev_shapes():
    """Sizes from shape and item size; strides that are C-contiguous,
    read-only sources."""
    cuda, store = workers.device()
    n = 4096
    data = workers.pattern(7, n)
    src = cuda.array((n,), "|u1", data)
    ok = [
        workers.CudaArray(src.ptr, (8, 64), "<f8"),
        workers.CudaArray(src.ptr, (8, 64), "<f8", strides=(512, 8)),
        workers.CudaArray(src.ptr, (1, 32, 128), "|u1",
                          strides=(999, 128, 1)),
        workers.CudaArray(src.ptr, (4, 4, 16), "<c16"),
        workers.CudaArray(src.ptr, (2048,), ">i2", readonly=True),
        workers.CudaArray(src.ptr, (), "|V4096"),
    ]
    for i, arr in enumerate(ok):
        key = "dev/shape%d" % i
        assert store.put(key, arr) == 0, arr.__cuda_array_interface__
        assert store.get(key) == data and store.remove(key) == 0
    part = workers.CudaArray(src.ptr + 96, (10, 10), "<u4")
    assert store.put("dev/part", part) == 0
    assert store.get("dev/part") == data[96:496]
    # an empty array is an empty buffer, which the library refuses
    assert store.put("dev/empty", workers.CudaArray(0, (0, 4), "<f4")) == \
        Status.ERR_INVALID
    # wrong sizes copy nothing
    small = cuda.array((n // 2,), "|u1")
    assert store.get_into_buffer("dev/part", small) == SIZE_MISMATCH
    with pytest.raises(MmcError) as ei:
        store.client.get("dev/part", [small])
    assert ei.value.name == "MMC_ERR_SIZE_MISMATCH"
    assert cuda.read(small.ptr, n // 2) == bytes(n // 2)
    # refused in this process too, before anything is read
    with pytest.raises(ValueError, match="C-contiguous"):
        store.put("dev/strided", workers.CudaArray(src.ptr, (32, 64),
                                                   strides=(1, 32)))
    with pytest.raises(ValueError, match="read-only"):
        store.get_into_buffer("dev/part", ok[4])
    assert store.remove("dev/part") == 0
