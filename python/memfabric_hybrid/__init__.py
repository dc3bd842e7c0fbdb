"""Upstream MemFabric's Python module name, on the memfabric package.

Code written for upstream's ``memfabric_hybrid`` runs unchanged::

    import memfabric_hybrid as mf
    from memfabric_hybrid import bm, shm

    assert mf.initialize() == 0
    assert bm.initialize("tcp://10.0.0.1:8573", world, device_id,
                         bm.BmConfig(rank_id=rank)) == 0
    handle = bm.create(0, world, bm.BmDataOpType.HOST_TCP, 1 << 30, 0)
    assert handle.join() == 0

Calls return upstream's codes (``SM_*``: 0 success, -2000 invalid
parameter, ...) where upstream's return them; the reason of the last
failure of this thread is :func:`get_last_err_msg`.  :class:`TransferEngine`
is :class:`memfabric.TransferEngine` (upstream's and Mooncake's transfer
engine names).  What this build cannot honour (TLS, device streams) fails
with ``SM_INVALID_PARAM`` and says so.
"""

import threading

import memfabric as _mf
from memfabric import MfError, StoreServer
from memfabric.trans import TransferEngine, TransferOpcode

from ._common import SM_INVALID_PARAM, SM_OK, SM_REPEAT_CALL, code, fail
from ._common import get_and_clear_last_err_msg, get_last_err_msg
from . import bm, shm  # noqa: E402  (submodules, as upstream's)

__all__ = [
    "initialize", "uninitialize", "create_config_store", "set_log_level",
    "set_conf_store_tls", "get_last_err_msg", "get_and_clear_last_err_msg",
    "TransferEngine", "TransferOpcode", "bm", "shm",
]

_lock = threading.Lock()
_server = None

# upstream's levels (0 debug .. 3 error) as ours
_LEVELS = (_mf.LogLevel.DEBUG, _mf.LogLevel.INFO, _mf.LogLevel.WARN,
           _mf.LogLevel.ERROR)


def initialize(flags=0):
    """Initializes the library; 0."""
    _mf.init()
    return SM_OK


def uninitialize():
    """Stops the config store :func:`create_config_store` started and
    pairs :func:`initialize`."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop()
    _mf.uninit()


def create_config_store(store_url):
    """Serves a config store in this process at ``tcp://ip:port``."""
    global _server
    host, _, port = store_url.replace("tcp://", "").rpartition(":")
    with _lock:
        if _server is not None:
            return fail("create_config_store", SM_REPEAT_CALL,
                        "a config store runs in this process already")
        try:
            _server = StoreServer(host or "127.0.0.1", int(port))
        except (MfError, ValueError) as exc:
            return fail("create_config_store", exc, store_url)
    return SM_OK


def set_log_level(level):
    """0 debug, 1 info, 2 warn, 3 error."""
    if not 0 <= int(level) <= 3:
        return fail("set_log_level", SM_INVALID_PARAM,
                    "level %r (0 debug .. 3 error)" % (level,))
    _mf.log_set_level(_LEVELS[int(level)])
    return SM_OK


def set_conf_store_tls(enable, tls_info=""):
    """TLS of the config store: only ``False`` here."""
    if enable:
        return fail("set_conf_store_tls", SM_INVALID_PARAM,
                    "TLS of the config store is not available in this build")
    return SM_OK

