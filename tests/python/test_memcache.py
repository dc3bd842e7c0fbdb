"""MemCache bindings against a real mmc-meta: every DistributedObjectStore
method (single, batch and layers forms, byte for byte), the raising
Client, error cases, several client processes, the NumPy path and a leak
guard (10k put/get with flat memory)."""

import ctypes
import importlib.util
import sys
import threading

import pytest

import memfabric
from memfabric import (Client, DistributedObjectStore, KeyInfo, LocalConfig,
                       MetaServer, MfError, MmcError, MmcStatus,
                       ReplicateConfig, Status)
from memfabric.memcache import G2L, H2G, L2G

from conftest import cuda_driver_here, run_in_children
import workers

NOT_FOUND = int(MmcStatus.ERR_NOT_FOUND)


def cbuf(data_or_size):
    """A ctypes buffer and its address."""
    if isinstance(data_or_size, int):
        b = ctypes.create_string_buffer(data_or_size)
    else:
        b = ctypes.create_string_buffer(bytes(data_or_size),
                                        len(data_or_size))
    return b, ctypes.addressof(b)


# ------------------------------------------------------------ MetaServer

def test_meta_server(meta):
    assert meta.running() and meta.port > 0 and meta.store_port > 0
    assert meta.url == "tcp://127.0.0.1:%d" % meta.port
    with MetaServer(settings={"http_enable": False}) as m2:
        assert m2.http_port == 0 and m2.port != meta.port
    assert not m2.running() and m2.stop() == 0
    with pytest.raises(RuntimeError):
        MetaServer(settings={"no_such_key": 1})


# ------------------------------------------------------------- puts/gets

def test_put_get_bytes(store):
    data = workers.pattern(1, 100000)
    assert store.put("t/pg", data) == 0
    assert store.get("t/pg") == data
    assert store.is_exist("t/pg") == 1
    # upstream convention: a second put of the key succeeds, first one stays
    assert store.put("t/pg", b"other") == 0
    assert store.get("t/pg") == data
    # an extension: replace
    assert store.put("t/pg", b"other", ReplicateConfig(replace=True)) == 0
    assert store.get("t/pg") == b"other"
    assert store.put("t/ba", bytearray(b"ba")) == 0
    assert store.put("t/mv", memoryview(b"xxmvxx")[2:4]) == 0
    assert store.get_batch(["t/ba", "t/mv", "t/none"]) == [b"ba", b"mv", b""]
    assert store.remove_batch(["t/pg", "t/ba", "t/mv", "t/none"]) == [
        0, 0, 0, NOT_FOUND]


def test_put_get_batch(store):
    keys = ["t/b%d" % i for i in range(50)]
    vals = [workers.pattern(i, 1000 + 37 * i) for i in range(50)]
    assert store.put_batch(keys, vals) == 0
    assert store.get_batch(keys) == vals
    assert store.batch_is_exist(keys + ["t/bx"]) == [1] * 50 + [0]
    assert store.put_batch(["t/b0", "t/bnew"], [b"x", b"y"]) == 0
    assert store.get("t/bnew") == b"y" and store.get("t/b0") == vals[0]
    assert store.remove_batch(keys + ["t/bnew"]) == [0] * 51
    assert store.batch_is_exist(keys) == [0] * 50


def test_put_from_get_into(store):
    data = workers.pattern(2, 50000)
    src, addr = cbuf(data)
    assert store.put_from("t/pf", addr, len(data)) == 0
    dst, daddr = cbuf(len(data))
    assert store.get_into("t/pf", daddr, len(data)) == 0
    assert dst.raw == data
    # the size must be the object's
    assert store.get_into("t/pf", daddr, 10) == MmcStatus.ERR_SIZE_MISMATCH
    assert store.get_into("t/missing", daddr, 10) == NOT_FOUND
    # buffer-protocol objects
    out = bytearray(len(data))
    assert store.get_into_buffer("t/pf", out) == 0 and bytes(out) == data
    with pytest.raises(BufferError):
        store.get_into_buffer("t/pf", bytes(len(data)))  # read-only
    # the device directions need a CUDA driver (test_device.py has one)
    if not cuda_driver_here():
        assert store.put_from("t/dev", addr, 10, L2G) == \
            Status.ERR_UNSUPPORTED
        assert store.get_into("t/pf", daddr, len(data), G2L) == \
            Status.ERR_UNSUPPORTED
        assert store.batch_get_into(["t/pf"], [daddr], [len(data)], G2L) == \
            [Status.ERR_UNSUPPORTED]
    with pytest.raises(ValueError):
        store.put_from("t/dev", addr, 10, 7)
    with pytest.raises(ValueError):
        store.get_into("t/pf", daddr, len(data), H2G)  # a put's direction
    assert store.remove("t/pf") == 0


def test_batch_put_from_get_into(store):
    n = 20
    keys = ["t/bpf%d" % i for i in range(n)]
    datas = [workers.pattern(10 + i, 3000 + i) for i in range(n)]
    srcs = [cbuf(d) for d in datas]
    res = store.batch_put_from(keys, [a for _, a in srcs],
                               [len(d) for d in datas], H2G)
    assert res == [0] * n
    dsts = [cbuf(len(d)) for d in datas]
    sizes = [len(d) for d in datas]
    sizes[3] += 1  # one wrong size: that item alone fails
    res = store.batch_get_into(keys, [a for _, a in dsts], sizes)
    assert res[3] == MmcStatus.ERR_SIZE_MISMATCH
    assert res[:3] + res[4:] == [0] * (n - 1)
    for i, (b, _) in enumerate(dsts):
        if i != 3:
            assert b.raw == datas[i]
    with pytest.raises(ValueError):
        store.batch_get_into(keys, [0], [1])
    assert store.remove_batch(keys) == [0] * n


def test_layers(store):
    # a KV-cache shaped object: 6 x 16 KiB + 6 x 4 KiB
    sizes = [16384] * 6 + [4096] * 6
    layers = [workers.pattern(50 + j, s) for j, s in enumerate(sizes)]
    srcs = [cbuf(d) for d in layers]
    assert store.put_from_layers("t/lay", [a for _, a in srcs], sizes) == 0
    assert store.get("t/lay") == b"".join(layers)
    dsts = [cbuf(s) for s in sizes]
    assert store.get_into_layers("t/lay", [a for _, a in dsts], sizes) == 0
    assert [b.raw for b, _ in dsts] == layers
    # different split of the same bytes
    whole = cbuf(sum(sizes))
    half = sum(sizes) // 2
    assert store.get_into_layers("t/lay", [whole[1], whole[1] + half],
                                 [half, sum(sizes) - half]) == 0
    assert whole[0].raw == b"".join(layers)
    assert store.get_into_layers("t/lay", [whole[1]], [10]) == \
        MmcStatus.ERR_SIZE_MISMATCH
    # buffer objects as layers
    outs = [bytearray(s) for s in sizes]
    assert store.get_into_buffers("t/lay", outs) == 0
    assert [bytes(o) for o in outs] == layers
    assert store.put_from_buffers("t/lay2", [memoryview(x) for x in layers]) == 0
    assert store.get("t/lay2") == b"".join(layers)
    assert store.remove_batch(["t/lay", "t/lay2"]) == [0, 0]


def test_batch_layers(store):
    n = 8
    keys = ["t/bl%d" % i for i in range(n)]
    sizes = [[1000 + i, 2000, 3000 - i] for i in range(n)]
    datas = [[workers.pattern(i * 10 + j, s) for j, s in enumerate(row)]
             for i, row in enumerate(sizes)]
    srcs = [[cbuf(d) for d in row] for row in datas]
    res = store.batch_put_from_layers(
        keys, [[a for _, a in row] for row in srcs], sizes)
    assert res == [0] * n
    dsts = [[cbuf(s) for s in row] for row in sizes]
    spare = cbuf(1)
    res = store.batch_get_into_layers(
        keys + ["t/blx"], [[a for _, a in row] for row in dsts] + [[spare[1]]],
        sizes + [[1]])
    assert res == [0] * n + [NOT_FOUND]
    for i in range(n):
        assert [b.raw for b, _ in dsts[i]] == datas[i]
        assert store.get(keys[i]) == b"".join(datas[i])
    with pytest.raises(ValueError):
        store.batch_put_from_layers(keys, [[1]], [[1]])
    assert store.remove_batch(keys) == [0] * n


# ---------------------------------------------------------- metadata

def test_key_info_and_ids(store):
    rank = store.get_local_service_id()
    assert 0 <= rank < 16
    assert store.put("t/ki", b"z" * 5000,
                     ReplicateConfig(1, [rank])) == 0
    info = store.get_key_info("t/ki")
    assert isinstance(info, KeyInfo)
    assert info.size() == 5000 and info.loc_list() == [rank]
    assert info.type_list() == [0] and len(info.gva_list()) == 1
    assert "5000" in str(info)
    missing = store.get_key_info("t/none")
    assert missing.size() == 0 and missing.loc_list() == []
    infos = store.batch_get_key_info(["t/ki", "t/none"])
    assert [i.size() for i in infos] == [5000, 0]
    assert store.remove("t/ki") == 0
    assert store.remove("t/ki") == NOT_FOUND


def test_batch_misses(store):
    # a missing key is an answer: no raise, one status per key
    keys = ["t/miss%d" % i for i in range(4)]
    c = store.client
    assert c.exist_batch(keys) == [NOT_FOUND] * 4
    assert c.query_batch(keys) == [(NOT_FOUND, None)] * 4
    assert store.batch_is_exist(keys) == [0] * 4
    assert store.put(keys[1], b"found") == 0
    assert c.exist_batch(keys) == [NOT_FOUND, 0, NOT_FOUND, NOT_FOUND]
    res = c.query_batch(keys)
    assert [st for st, _ in res] == [NOT_FOUND, 0, NOT_FOUND, NOT_FOUND]
    assert res[1][1][0] == 5 and res[0][1] is None
    assert store.batch_is_exist(keys + [""]) == [0, 1, 0, 0,
                                                 Status.ERR_INVALID]
    assert store.remove(keys[1]) == 0


def test_register_buffer(store):
    b, addr = cbuf(1 << 20)
    assert store.register_buffer(addr, 1 << 20) == 0
    assert store.put_from("t/reg", addr, 4096) == 0
    assert store.get_into("t/reg", addr + 4096, 4096) == 0
    assert store.unregister_buffer(addr, 1 << 20) == 0
    assert store.remove("t/reg") == 0


def test_bad_input(store):
    assert store.put("t/empty", b"") == Status.ERR_INVALID
    assert store.put("k" * 300, b"x") < 0
    assert store.put("", b"x") < 0
    assert store.is_exist("k" * 300) < 0
    assert store.get("") == b""
    with pytest.raises(TypeError):
        store.put(5, b"x")
    with pytest.raises(TypeError):
        store.put("t/x", 12345)
    with pytest.raises(ValueError):
        store.put("t/a\0b", b"x")
    with pytest.raises(ValueError):
        store.put_batch(["a", "b"], [b"x"])
    assert store.put("t/rep", b"x", ReplicateConfig(replicaNum=8)) == \
        MmcStatus.ERR_NO_SPACE


def test_client_raises(store):
    c = store.client
    assert isinstance(c, Client) and c.rank() == store.get_local_service_id()
    c.put("t/cl", [b"abc"])
    with pytest.raises(MmcError) as ei:
        c.put("t/cl", [b"abc"])
    assert ei.value.name == "MMC_ERR_EXISTS"
    assert ei.value.status == MmcStatus.ERR_EXISTS
    c.put("t/cl", [b"new!"], flags=memfabric.memcache.PUT_REPLACE)
    assert c.get_bytes("t/cl") == b"new!"
    assert c.exist("t/cl") and not c.exist("t/none")
    size, reps = c.query("t/cl")
    assert size == 4 and reps[0][0] == c.rank()
    with pytest.raises(MmcError) as ei:
        c.get_bytes("t/none")
    assert ei.value.name == "MMC_ERR_NOT_FOUND"
    with pytest.raises(MmcError) as ei:
        c.get("t/cl", [bytearray(3)])
    assert ei.value.name == "MMC_ERR_SIZE_MISMATCH"
    with pytest.raises(MfError) as ei:
        c.put("t/zero", [b""])
    assert ei.value.name == "MF_ERR_INVALID"
    with pytest.raises(TypeError):
        c.put("t/x", [12])  # an address without a size
    c.remove("t/cl")
    with pytest.raises(MmcError):
        c.remove("t/cl")
    # a second client in one process is refused
    with pytest.raises(MfError) as ei:
        Client({"meta_url": "tcp://127.0.0.1:1", "dram_size": 0})
    assert ei.value.name == "MF_ERR_STATE"
    with pytest.raises(MfError) as ei:
        Client({"no_such_key": 1})
    assert ei.value.name == "MF_ERR_CONFIG"


def test_put_media(store):
    """A put names the media of its replicas: DRAM lands, HBM (no local
    service contributes any here) fails rather than fall back, and a bad
    name or number is refused before the call."""
    c = store.client
    c.put("t/media", [b"dram"], media="DRAM")
    assert c.get_bytes("t/media") == b"dram"
    with pytest.raises(MmcError) as ei:
        c.put("t/media-hbm", [b"hbm"], media="hbm")
    assert ei.value.status == MmcStatus.ERR_NO_SPACE
    assert not c.exist("t/media-hbm")
    assert store.put("t/media-hbm", b"hbm",
                     ReplicateConfig(media="hbm")) == MmcStatus.ERR_NO_SPACE
    assert store.put_batch(["t/media-b"], [b"b"],
                           ReplicateConfig(media="hbm")) == \
        MmcStatus.ERR_NO_SPACE
    for bad, exc in (("ssd", ValueError), (7, ValueError),
                     (1.5, TypeError)):
        with pytest.raises(exc):
            c.put("t/media-bad", [b"x"], media=bad)
    c.remove("t/media")


def test_not_initialized():
    s = DistributedObjectStore()
    assert s.get_local_service_id() == 0xFFFFFFFF
    assert s.put("k", b"x") == Status.ERR_STATE
    assert s.get("k") == b""
    assert s.is_exist("k") == Status.ERR_STATE
    assert s.batch_is_exist(["a", "b"]) == [Status.ERR_STATE] * 2
    assert s.get_key_info("k").size() == 0
    assert s.close() == 0
    with pytest.raises(TypeError):
        s.setup(42)
    cfg = LocalConfig(meta_service_url="tcp://127.0.0.1:1", dram_size="1M")
    cfg.timeout_ms = "1s"
    assert cfg.settings() == {"meta_url": "tcp://127.0.0.1:1",
                              "dram_size": "1M", "timeout_ms": "1s"}
    assert s.setup(cfg) == 0
    assert "meta_url" in memfabric.memcache.config_help()


# --------------------------------------------------- several processes

def test_multi_process(meta, store, spawn):
    nprocs, nkeys, size = 3, 16, 20000
    barrier = spawn.Barrier(nprocs + 1)
    queue = spawn.Queue()
    procs = [spawn.Process(target=workers.cache_client_entry,
                           args=(meta.url, i, nprocs, barrier, nkeys, size,
                                 queue))
             for i in range(nprocs)]
    for p in procs:
        p.start()
    try:
        barrier.wait(120)  # every child has put its objects
        for other in range(nprocs):
            keys = ["mp/%d/b%d" % (other, i) for i in range(nkeys)]
            assert store.get_batch(keys) == [
                workers.pattern(other * 100 + i, size + i)
                for i in range(nkeys)]
            infos = store.batch_get_key_info(keys)
            assert all(i.size() == size + k for k, i in enumerate(infos))
        barrier.wait(120)  # every child has read every object
        results = dict(queue.get(timeout=120) for _ in procs)
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    assert sorted(results) == list(range(nprocs))
    for r in results.values():
        assert "error" not in r, r
        assert r["put"] == 0 and r["layers"] == 0
        assert r["bad"] == [] and r["close"] == 0
    ranks = {r["rank"] for r in results.values()}
    assert len(ranks) == nprocs and store.get_local_service_id() not in ranks
    # the children left: their objects went with their segments
    assert store.batch_is_exist(["mp/%d/b0" % i for i in range(nprocs)]) == \
        [0] * nprocs


def test_second_client_in_child(meta, spawn):
    assert run_in_children(spawn, workers.second_client,
                           [(meta.url,)]) == ["MF_ERR_STATE"]


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None,
                    reason="numpy not installed")
def test_numpy(meta, spawn):
    res = run_in_children(spawn, workers.numpy_roundtrip, [(meta.url,)])[0]
    assert res == [0, 0, True, 0, True, True, "refused"]


# ------------------------------------------------------------ leak guard

def test_memory_flat(store):
    payload = workers.pattern(7, 4096)
    out = bytearray(4096)
    src, addr = cbuf(payload)

    def rounds(n):
        for i in range(n):
            key = "t/leak%d" % (i % 64)
            assert store.put(key, payload) == 0
            assert store.get(key) == payload
            assert store.get_into_buffer(key, out) == 0
            assert store.get_into(key, addr, 4096) == 0
            assert store.remove(key) == 0

    rounds(500)  # warm-up: allocator pools, caches
    refs = sys.getrefcount(payload), sys.getrefcount(out)
    before = workers.rss_bytes()
    rounds(10000)
    grown = workers.rss_bytes() - before
    assert grown < 16 << 20, "RSS grew by %d bytes" % grown
    # every buffer view was released: no reference is left behind and the
    # bytearray can be resized (a held export would refuse it)
    assert (sys.getrefcount(payload), sys.getrefcount(out)) == refs
    out.append(0)
    del out[-1]


def test_threads(store):
    """Calls from several Python threads run concurrently (the GIL is
    released inside) and stay correct."""
    errors = []

    def worker(t):
        try:
            for i in range(100):
                key = "t/th%d/%d" % (t, i)
                data = workers.pattern(t * 1000 + i, 2000 + t)
                assert store.put(key, data) == 0
                assert store.get(key) == data
                out = bytearray(len(data))
                assert store.get_into_buffer(key, out) == 0
                assert bytes(out) == data
                assert store.remove(key) == 0
        except BaseException as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_config_file(meta, spawn, tmp_path):
    path = tmp_path / "mmc-local.conf"
    path.write_text("# test\nmeta_url = %s\ndram_size = 8M\n"
                    "name = \"from file\"\n" % meta.url)
    assert run_in_children(spawn, workers.config_file_client,
                           [(str(path),)]) == [[0, 0, 0, b"f", 0, 0]]
