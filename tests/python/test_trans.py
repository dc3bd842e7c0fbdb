"""memfabric.TransferEngine, called as P/D connectors written for
Mooncake's transfer engine call it: initialize, session id from the RPC
port, register buffers, sync and batch writes and reads, async submits
with their status calls, and the return codes of failures; then a peer
in another process."""

import pytest

import memfabric as mf
from memfabric import Status, TransferEngine, TransferOpcode

from conftest import run_in_children
import workers

SIZE = 1 << 20


def _engine(url):
    eng = TransferEngine()
    assert eng.initialize("127.0.0.1", url, "tcp", "") == 0
    assert eng.get_session_id() == "127.0.0.1:%d" % eng.get_rpc_port()
    return eng


@pytest.fixture
def pair():
    with mf.StoreServer() as server:
        a, b = _engine(server.url), _engine(server.url)
        abuf = bytearray(workers.pattern(1, SIZE))
        bbuf = bytearray(workers.pattern(2, SIZE))
        aaddr, _ = mf.buffer_address(abuf, True)
        baddr, _ = mf.buffer_address(bbuf, True)
        assert a.register_memory(aaddr, SIZE) == 0
        assert b.batch_register_memory([baddr], [SIZE]) == 0
        yield server, a, b, abuf, aaddr, bbuf, baddr
        a.close()
        b.close()


def test_sync(pair):
    _, a, b, abuf, aaddr, bbuf, baddr = pair
    peer = a.get_session_id()
    assert b.transfer_sync_write(peer, baddr, aaddr + 100, 4096) == 0
    assert abuf[100:4196] == bbuf[:4096]
    assert b.transfer_sync_read(peer, baddr + 8192, aaddr, SIZE - 8192) == 0
    assert bbuf[8192:] == abuf[:SIZE - 8192]
    assert b.transfer_sync(peer, baddr, aaddr, 16, TransferOpcode.WRITE) == 0
    assert abuf[:16] == bbuf[:16]


def test_batch_and_async(pair):
    _, a, b, abuf, aaddr, bbuf, baddr = pair
    peer = a.get_session_id()
    sizes = [64 << 10] * 4 + [8 << 10] * 4  # within each half
    offs = [sum(sizes[:i]) for i in range(len(sizes))]
    bbuf[:sum(sizes)] = workers.pattern(9, sum(sizes))
    assert b.batch_transfer_sync_write(
        peer, [baddr + o for o in offs], [aaddr + o for o in offs],
        sizes) == 0
    assert abuf[:sum(sizes)] == bbuf[:sum(sizes)]
    half = SIZE // 2
    assert b.batch_transfer_sync_read(
        peer, [baddr + half + o for o in offs], [aaddr + o for o in offs],
        sizes) == 0
    assert bbuf[half:half + sum(sizes)] == abuf[:sum(sizes)]

    # one write submitted, polled to completion
    bbuf[:4096] = workers.pattern(3, 4096)
    batch = b.transfer_submit_write(peer, baddr, aaddr + 4096, 4096)
    assert batch > 0
    while True:
        st = b.transfer_check_status(batch)
        if st != 0:
            break
    assert st == 1 and abuf[4096:8192] == bbuf[:4096]
    assert b.transfer_check_status(batch) == -1  # finished: forgotten
    # batches in flight at once, waited for together
    ids = [b.batch_transfer_async_read(peer, [baddr + half], [aaddr],
                                       [half]),
           b.batch_transfer_async(peer, [baddr], [aaddr + half], [4096],
                                  TransferOpcode.WRITE)]
    assert all(i > 0 for i in ids)
    assert b.get_batch_transfer_status(ids) == 0
    assert bbuf[half:] == abuf[:half]
    assert abuf[half:half + 4096] == bbuf[:4096]


def test_failures(pair):
    server, a, b, abuf, aaddr, bbuf, baddr = pair
    peer = a.get_session_id()
    assert b.transfer_sync_write("127.0.0.1:1", baddr, aaddr, 8) == \
        Status.ERR_NOT_FOUND
    assert b.transfer_sync_write(peer, baddr, aaddr + SIZE - 4, 8) == \
        Status.ERR_OUT_OF_RANGE
    assert b.batch_transfer_sync_write(peer, [baddr], [aaddr], [1, 2]) == \
        Status.ERR_INVALID
    assert b.batch_transfer_async_write("127.0.0.1:1", [baddr], [aaddr],
                                        [8]) > 0  # starts, then fails
    assert a.register_memory(aaddr + 8, 8) == Status.ERR_EXISTS
    assert a.unregister_memory(aaddr + 1) == Status.ERR_NOT_FOUND
    assert a.initialize("127.0.0.1", server.url, "tcp", "") == \
        Status.ERR_STATE
    other = TransferEngine()
    assert other.initialize("127.0.0.1", server.url, "rdma", "") == \
        Status.ERR_UNSUPPORTED
    assert other.initialize(peer, server.url, "tcp", "") == \
        Status.ERR_EXISTS  # the session id is taken
    assert other.register_memory(baddr, 8) == Status.ERR_STATE
    other.close()
    # withdrawn: b can no longer write there
    assert a.unregister_memory(aaddr) == 0
    assert b.transfer_sync_write(peer, baddr, aaddr, 8) < 0


def test_two_processes(spawn):
    with mf.StoreServer() as server:
        eng = _engine(server.url)
        local = bytearray(2 * SIZE)
        laddr, _ = mf.buffer_address(local, True)
        with spawn.Pool(1) as procs:
            pending = procs.apply_async(workers.trans_peer,
                                        (server.url, SIZE))
            with mf.Store(server.url) as st:
                sid, paddr = st.get("py/trans/peer", 60000).split()
                sid, paddr = sid.decode(), int(paddr)
                assert eng.transfer_sync_read(sid, laddr, paddr, SIZE) == 0
                assert bytes(local[:SIZE]) == workers.pattern(5, SIZE)
                local[SIZE:] = workers.pattern(6, SIZE)
                assert eng.transfer_sync_write(sid, laddr + SIZE,
                                               paddr + SIZE, SIZE) == 0
                st.set("py/trans/done", b"1")
            assert pending.get(120) == workers.pattern(6, SIZE)
        eng.close()
