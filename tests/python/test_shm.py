"""SHM regions from Python (memfabric.shm.Region) across two rank
processes on one host: parts through put/get at their GVAs, collectives,
subgroups, topology, counters, the context block and a global exit."""

import memfabric as mf
from memfabric.shm import REACH_MAPPED, REACH_SELF

from conftest import run_in_children
import workers


def test_region_two_ranks(spawn):
    with mf.StoreServer() as server:
        res = run_in_children(spawn, workers.shm_rank,
                              [(server.url, 2, 0), (server.url, 2, 1)])
    for rank, r in enumerate(res):
        assert r["shape"] == (rank, 2, (1 << 20) + 7, 0)
        assert r["peer_bytes"] and r["slot"]
        assert r["gather"] == [b"r0", b"r1"]
        assert r["group"] == [b"g0", b"g1"]
        assert r["reach"][rank] == REACH_SELF | REACH_MAPPED
        assert r["self_mapped"] and r["peer_mapped"]
        assert r["count"] == 20
        assert r["context"] == b"ctx-bytes"
        assert tuple(r["exit"]) == (3, 1)
        assert r["bad_rank"] == "ValueError"
        assert r["after_destroy"] == "MF_ERR_STATE"
    # exactly one rank's compare-and-swap found the counter at 0
    assert sorted(r["cas"][0] for r in res) == [False, True]
