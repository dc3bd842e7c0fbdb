"""What memfabric_hybrid's modules share: upstream's SM_* codes (from
libmemfabric's smem_status) and the last error of a thread."""

import threading

from memfabric import MfError
from memfabric import _memfabric

SM_OK = 0
SM_ERROR = -1
SM_INVALID_PARAM = -2000
SM_NOT_INITIALIZED = -2008
SM_REPEAT_CALL = -2005
SMEM_PARTIAL_FAILED = -2012

_last = threading.local()


def code(status):
    """Upstream's SM_* code of one of our statuses (0 stays 0)."""
    status = int(status)
    return status if status >= 0 else _memfabric.smem_status(status)


def fail(call, why, detail=""):
    """Records the failure of call (an MfError, or an SM_* code) as this
    thread's last error; returns its SM_* code."""
    if isinstance(why, MfError):
        sm = code(why.status)
        text = "%s: %s (%s)" % (call, detail or why.message, why.name)
    else:
        sm = int(why)
        text = "%s: %s" % (call, detail)
    _last.msg = text
    return sm


def get_last_err_msg():
    """The reason of this thread's last failed call ("" if none)."""
    return getattr(_last, "msg", "")


def get_and_clear_last_err_msg():
    """The same, and forgets it."""
    msg = get_last_err_msg()
    _last.msg = ""
    return msg
