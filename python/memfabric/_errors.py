"""Status codes and the exceptions that carry them.

MemFabric calls return ``mf_status_t`` codes (0 = OK, errors negative:
-1..-99 the call itself, -100..-199 a peer or link); MemCache adds its own
outcomes from -200 to -299.  A failed call raises :class:`MfError` (from
the MemFabric module) or :class:`MmcError` (from the MemCache client),
whose ``status`` is the code and ``name`` its C name, e.g.
``"MMC_ERR_NOT_FOUND"``.  The C extension modules import this module to
raise them.
"""

import enum

__all__ = ["Status", "MmcStatus", "MfError", "MmcError"]


class Status(enum.IntEnum):
    """MemFabric status codes (``mf_status_t``)."""

    OK = 0
    INPROGRESS = 1
    ERR_INVALID = -1
    ERR_NOMEM = -2
    ERR_UNSUPPORTED = -3
    ERR_NOT_FOUND = -4
    ERR_EXISTS = -5
    ERR_OUT_OF_RANGE = -6
    ERR_TOO_LARGE = -7
    ERR_STATE = -8
    ERR_BUSY = -9
    ERR_TIMEOUT = -10
    ERR_IO = -11
    ERR_ADDR_IN_USE = -12
    ERR_MISMATCH = -13
    ERR_CANCELED = -14
    ERR_PROTO = -15
    ERR_VERSION = -16
    ERR_CONFIG = -17
    ERR_PEER_LOST = -100
    ERR_CONN_REFUSED = -101
    ERR_CONN_RESET = -102
    ERR_UNREACHABLE = -103
    ERR_PEER_REJECTED = -104


class MmcStatus(enum.IntEnum):
    """MemCache's own status codes (``mmc_status_t``, -200..-299)."""

    OK = 0
    ERR_NOT_FOUND = -200
    ERR_EXISTS = -201
    ERR_NO_SPACE = -202
    ERR_SIZE_MISMATCH = -203
    ERR_BUSY = -204
    ERR_ABORTED = -205
    ERR_LEASE_EXPIRED = -206
    ERR_PARTIAL = -207
    ERR_NO_REPLICA = -208
    ERR_CORRUPT = -209


class MfError(Exception):
    """A MemFabric call failed.

    Attributes:
        status: the (negative) status code, an ``int``.
        name: its C name, e.g. ``"MF_ERR_TIMEOUT"``.
        message: its description.
        results: for a batch copy, the status of every piece (else None).
    """

    def __init__(self, status, name=None, message=None):
        self.status = int(status)
        self.name = name if name is not None else _name_of(self.status)
        self.message = message if message is not None else self.name
        self.results = None
        super().__init__(self.status, self.name, self.message)

    def __str__(self):
        return "%s (%d): %s" % (self.name, self.status, self.message)

    @property
    def is_peer_error(self):
        """True for a failure of a peer or link (-100..-199), where another
        peer or replica may succeed."""
        return -199 <= self.status <= -100


class MmcError(MfError):
    """A MemCache call failed; ``status`` may be a MemCache code
    (-200..-299) or a MemFabric one with its MemFabric meaning."""


def _name_of(status):
    for enum_cls, prefix in ((Status, "MF_"), (MmcStatus, "MMC_")):
        try:
            return prefix + enum_cls(status).name
        except ValueError:
            pass
    return "UNKNOWN(%d)" % status
