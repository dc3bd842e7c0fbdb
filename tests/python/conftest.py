"""Fixtures of the Python binding tests: one mmc-meta daemon for the whole
session (free loopback ports), a MemCache store in the test process, and
helpers to run code in child processes started with "spawn"."""

import ctypes
import multiprocessing
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import memfabric  # noqa: E402


@pytest.fixture(scope="session")
def meta():
    """The mmc-meta daemon, stopped (and checked to exit 0) at the end."""
    server = memfabric.MetaServer(settings={
        "max_ranks": 16, "max_segment_size": "256M", "log_level": "error",
        "lease_ms": "30s"})
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="session")
def store(meta):
    """A DistributedObjectStore of this process, contributing 64 MiB."""
    s = memfabric.DistributedObjectStore()
    assert s.setup({"meta_url": meta.url, "dram_size": "64M",
                    "timeout_ms": "30s"}) == 0
    assert s.init(0) == 0
    yield s
    assert s.close() == 0


@pytest.fixture(scope="session")
def spawn():
    """The "spawn" multiprocessing context (fresh interpreters)."""
    return multiprocessing.get_context("spawn")


def run_in_children(ctx, fn, arg_lists, timeout=120):
    """Runs fn(*args) in one spawned process per args; their results."""
    with ctx.Pool(len(arg_lists)) as pool:
        pending = [pool.apply_async(fn, args) for args in arg_lists]
        return [p.get(timeout) for p in pending]


def cuda_driver_here():
    """Whether the library could load a CUDA driver in this process."""
    try:
        ctypes.CDLL(os.environ.get("MF_CUDA_LIBRARY") or "libcuda.so.1")
    except OSError:
        return False
    return True
