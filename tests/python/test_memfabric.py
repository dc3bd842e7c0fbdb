"""MemFabric bindings: library calls, enums and errors, the config store
(client and embedded server) and a two-rank BM pool in child processes."""

import pytest

import memfabric as mf
from memfabric import MfError, Status

from conftest import run_in_children
import workers


def test_version_status_enums():
    assert mf.version().count(".") == 2
    for st in Status:
        assert mf.status_name(st) == "MF_" + st.name
    from memfabric import _memcache, MmcStatus
    for st in MmcStatus:
        if st != MmcStatus.OK:  # 0 is named MF_OK in every range
            assert _memcache.status_name(st) == "MMC_" + st.name
    assert _memcache.status_name(Status.ERR_TIMEOUT) == "MF_ERR_TIMEOUT"
    assert mf.status_str(Status.ERR_TIMEOUT)
    assert int(mf.CopyDir.AUTO) == 12 and int(mf.MemType.DEVICE) == 1
    assert mf.RANK_AUTO == 0xFFFFFFFF


def test_error_object():
    e = MfError(-10)
    assert e.status == -10 and e.name == "MF_ERR_TIMEOUT"
    assert "MF_ERR_TIMEOUT" in str(e) and not e.is_peer_error
    assert MfError(-101).is_peer_error
    assert issubclass(mf.MmcError, MfError)


def _public(obj):
    return [n for n in dir(obj) if not n.startswith("_")]


def test_docstrings():
    import memfabric.memcache as mc
    for mod in (mf, mc):
        assert mod.__doc__
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, (int, str)):
                continue
            assert obj.__doc__, name
            if isinstance(obj, type) and not issubclass(obj, int):
                for meth in _public(obj):
                    attr = getattr(obj, meth)
                    if callable(attr) or isinstance(attr, property):
                        assert attr.__doc__, "%s.%s" % (name, meth)


def test_log_level_and_help():
    old = mf.log_get_level()
    mf.log_set_level("debug")
    assert mf.log_get_level() == mf.LogLevel.DEBUG
    mf.log_set_level(old)
    assert mf.log_get_level() == old
    with pytest.raises(ValueError):
        mf.log_set_level(9)
    assert "copy_threads" in mf.bm_config_help()


def test_store_client():
    with mf.StoreServer() as server:
        assert server.port > 0
        with mf.Store(server.url) as st:
            st.set("a", b"1")
            assert st.get("a") == b"1"
            st.set(b"bin", bytearray(b"\x00\xff"))
            assert st.get("bin") == b"\x00\xff"
            assert st.add("n", 5) == 5 and st.add("n") == 6
            st.append("a", b"23")
            assert st.get("a") == b"123"
            assert st.cas("a", b"123", b"x") == (True, None)
            assert st.cas("a", b"nope", b"y") == (False, b"x")
            assert st.cas("new", None, b"v") == (True, None)
            assert st.rank_join("grp", 4) == 0
            assert st.rank_join("grp", 4, 2) == 2
            assert st.rank_list("grp") == [0, 2]
            st.rank_leave("grp", 2)
            assert st.rank_list("grp") == [0]
            st.remove("a")
            with pytest.raises(MfError) as ei:
                st.get("a")
            assert ei.value.name == "MF_ERR_NOT_FOUND"
            assert ei.value.status == Status.ERR_NOT_FOUND
            with pytest.raises(MfError) as ei:
                st.get("a", timeout_ms=50)
            assert ei.value.name == "MF_ERR_TIMEOUT"
            with pytest.raises(MfError) as ei:
                st.remove("a")
            assert ei.value.name == "MF_ERR_NOT_FOUND"
            with pytest.raises(MfError) as ei:
                st.add("new", 1)  # "v" is no integer
            assert ei.value.name == "MF_ERR_INVALID"
            with pytest.raises(TypeError):
                st.set(5, b"x")
            with pytest.raises(ValueError):
                st.set("a\0b", b"x")
        with pytest.raises(MfError) as ei:
            st.get("n")
        assert ei.value.name == "MF_ERR_STATE"
    with pytest.raises(MfError) as ei:
        mf.Store(server.url, connect_timeout_ms=500)
    assert ei.value.status < 0


def test_store_allgather_barrier(spawn):
    with mf.StoreServer() as server:
        n = 3
        res = run_in_children(spawn, workers.store_party,
                              [(server.url, i, n) for i in range(n)])
    expect = [b"rank-%02d" % i for i in range(n)]
    assert all(r["gathered"] == expect for r in res)
    assert sorted(r["total"] for r in res) == [1, 2, 3]
    assert all(r["final"] == 3 for r in res)


def test_pool_two_ranks(spawn):
    with mf.StoreServer() as server:
        res = run_in_children(spawn, workers.pool_rank,
                              [(server.url, 2), (server.url, 2)])
    assert sorted(r["rank"] for r in res) == [0, 1]
    for r in res:
        assert r["world"] == 2
        assert r["joined"] == [True, True]
        assert r["local_size"] == 1 << 20
        assert r["rank_of_peer_gva"] == (r["rank"] + 1) % 2
        assert r["async_done"] and r["bytes_ok"] and r["registered"]
        assert r["double_register"] == "MF_ERR_EXISTS"
        assert r["reg_pinned"]
        err = r["errors"]
        assert err["out_of_range"] == "MF_ERR_OUT_OF_RANGE"
        name, results = err["batch"]
        assert name in ("MF_ERR_OUT_OF_RANGE", "MF_ERR_INVALID")
        assert results[0] == 0 and results[1] < 0
        assert err["readonly"] == "BufferError"
        assert err["too_big"] == "ValueError"
        assert err["no_size"] == "TypeError"
        assert r["after_destroy"] == "MF_ERR_STATE"
        assert r["destroy_busy"] == "MF_ERR_BUSY"


def test_pool_needs_bm_init(spawn):
    res = run_in_children(spawn, _pool_without_init, [()])
    assert res[0] == "MF_ERR_STATE"


def _pool_without_init():
    mf.init()
    try:
        mf.Pool(0, 1 << 20)
    except MfError as exc:
        return exc.name
    finally:
        mf.uninit()
    return None
