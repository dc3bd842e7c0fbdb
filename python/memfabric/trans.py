"""TRANS for Python: :class:`TransferEngine`, peer-to-peer reads and
writes between registered buffers of named processes (``mf_trans.h``).

The method names, arguments and return conventions are those that the
transfer engines of Mooncake and of upstream MemFabric share, so a
P/D-disaggregation connector written for them runs on this one: raw
integer addresses, ``0`` for success and a negative status code (this
package's :class:`~memfabric.Status`) for failure, batch ids for
asynchronous transfers.

What differs, and why:

* ``metadata_server`` is the config store every instance of the job
  uses (``tcp://host:port``, or ``host:port``; a list with commas for
  several endpoints): peers find each other's buffers there.  Mooncake's
  ``P2PHANDSHAKE`` needs no server; with it this engine reads the URL
  from ``MF_TRANS_STORE_URL``.
* ``protocol`` is ``"tcp"`` (or ``"auto"``); ``"rdma"`` needs the ucx
  transport and answers ``Status.ERR_UNSUPPORTED`` until it is built.
* The session id peers use is ``local_hostname`` if it names a port,
  else ``local_hostname:<get_rpc_port()>``; :meth:`get_session_id` says
  which.  The port is part of the name (unique per host), nothing has to
  listen on it.
"""

import enum
import os
import socket

from ._errors import MfError, Status
from . import _memfabric, _trans

__all__ = ["TransferEngine", "TransferOpcode"]


class TransferOpcode(enum.IntEnum):
    """Direction of a transfer, numbered as Mooncake numbers them."""

    READ = 0
    WRITE = 1


_OP = {TransferOpcode.READ: _trans.READ, TransferOpcode.WRITE: _trans.WRITE}


def _status(exc):
    return exc.status if isinstance(exc, MfError) else int(Status.ERR_INVALID)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class TransferEngine:
    """A TRANS instance with Mooncake's Python method names."""

    def __init__(self):
        self._t = None
        self._port = 0
        self._reqs = {}
        self._next_id = 1
        self._inited = False

    # ------------------------------------------------------------ setup

    def initialize(self, local_hostname, metadata_server, protocol="tcp",
                   device_name=""):
        """Creates the instance; ``0``, or a negative status."""
        del device_name  # NIC selection belongs to the ucx transport
        if self._t is not None:
            return int(Status.ERR_STATE)
        if metadata_server in ("P2PHANDSHAKE", "", None):
            metadata_server = os.environ.get("MF_TRANS_STORE_URL", "")
            if not metadata_server:
                return int(Status.ERR_CONFIG)
        if "://" not in metadata_server:
            metadata_server = "tcp://" + metadata_server
        transport = {"tcp": "tcp", "auto": "auto"}.get(protocol or "tcp")
        if transport is None:
            return int(Status.ERR_UNSUPPORTED)
        host, sep, port = local_hostname.rpartition(":")
        fixed = bool(sep) and port.isdigit()
        if not fixed:
            host = local_hostname
        try:
            if not self._inited:
                _memfabric.init()
                self._inited = True
            for _ in range(16):
                self._port = int(port) if fixed else _free_port()
                try:
                    self._t = _trans.Trans(metadata_server,
                                           "%s:%d" % (host, self._port),
                                           transport)
                    return 0
                except MfError as e:
                    # a port another instance of the host took meanwhile
                    if fixed or e.status != int(Status.ERR_EXISTS):
                        raise
            return int(Status.ERR_EXISTS)
        except MfError as e:
            return _status(e)

    def initialize_ext(self, local_hostname, metadata_server, protocol,
                       device_name, metadata_type=""):
        """:meth:`initialize`; the metadata type is the config store's."""
        del metadata_type
        return self.initialize(local_hostname, metadata_server, protocol,
                               device_name)

    def get_rpc_port(self):
        """The port of the session id."""
        return self._port

    def get_session_id(self):
        """The id peers name this instance by (``host:port``)."""
        return self._t.id if self._t is not None else ""

    def close(self):
        """Withdraws the instance (waits for its asynchronous transfers)."""
        for req in self._reqs.values():
            req.wait(-1)
        self._reqs.clear()
        if self._t is not None:
            self._t.close()
            self._t = None
        if self._inited:
            _memfabric.uninit()
            self._inited = False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing to report to
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------- buffers

    def _call(self, name, *args):
        if self._t is None:
            return int(Status.ERR_STATE)
        try:
            getattr(self._t, name)(*args)
            return 0
        except MfError as e:
            return _status(e)
        except (TypeError, ValueError):
            return int(Status.ERR_INVALID)

    def register_memory(self, buffer_addr, capacity):
        """Registers [buffer_addr, +capacity): peers may reach it."""
        return self._call("register", [buffer_addr], [capacity])

    def batch_register_memory(self, buffer_addresses, capacities):
        """Registers every buffer, all or none."""
        return self._call("register", list(buffer_addresses),
                          list(capacities))

    def unregister_memory(self, buffer_addr):
        """Withdraws the buffer registered at buffer_addr."""
        return self._call("deregister", buffer_addr)

    def batch_unregister_memory(self, buffer_addresses):
        """Withdraws every buffer named; the first failure."""
        ret = 0
        for addr in buffer_addresses:
            st = self.unregister_memory(addr)
            ret = ret or st
        return ret

    # -------------------------------------------------------- transfers

    def _batch(self, target, op, buffers, peers, lengths):
        if self._t is None:
            return int(Status.ERR_STATE)
        try:
            status, _ = self._t.batch(target, _OP[TransferOpcode(op)],
                                      list(buffers), list(peers),
                                      list(lengths))
            return status
        except MfError as e:
            return _status(e)
        except (TypeError, ValueError):
            return int(Status.ERR_INVALID)

    def transfer_sync_write(self, target_hostname, buffer,
                            peer_buffer_address, length):
        """Writes length bytes from buffer to the peer's address."""
        return self._batch(target_hostname, TransferOpcode.WRITE, [buffer],
                           [peer_buffer_address], [length])

    def transfer_sync_read(self, target_hostname, buffer,
                           peer_buffer_address, length):
        """Reads length bytes from the peer's address into buffer."""
        return self._batch(target_hostname, TransferOpcode.READ, [buffer],
                           [peer_buffer_address], [length])

    def transfer_sync(self, target_hostname, buffer, peer_buffer_address,
                      length, opcode):
        """One transfer in the direction opcode (TransferOpcode)."""
        return self._batch(target_hostname, opcode, [buffer],
                           [peer_buffer_address], [length])

    def batch_transfer_sync_write(self, target_hostname, buffers,
                                  peer_buffer_addresses, lengths):
        """Writes every piece in one call; 0 if all moved."""
        return self._batch(target_hostname, TransferOpcode.WRITE, buffers,
                           peer_buffer_addresses, lengths)

    def batch_transfer_sync_read(self, target_hostname, buffers,
                                 peer_buffer_addresses, lengths):
        """Reads every piece in one call; 0 if all moved."""
        return self._batch(target_hostname, TransferOpcode.READ, buffers,
                           peer_buffer_addresses, lengths)

    def batch_transfer_sync(self, target_hostname, buffers,
                            peer_buffer_addresses, lengths, opcode):
        """Every piece in the direction opcode, in one call."""
        return self._batch(target_hostname, opcode, buffers,
                           peer_buffer_addresses, lengths)

    # ----------------------------------------------------- asynchronous

    def _submit(self, target, op, buffers, peers, lengths):
        """A batch id (> 0), or a negative status."""
        if self._t is None:
            return int(Status.ERR_STATE)
        try:
            req = self._t.submit(target, _OP[TransferOpcode(op)],
                                 list(buffers), list(peers), list(lengths))
        except MfError as e:
            return _status(e)
        except (TypeError, ValueError):
            return int(Status.ERR_INVALID)
        batch_id = self._next_id
        self._next_id += 1
        self._reqs[batch_id] = req
        return batch_id

    def transfer_submit_write(self, target_hostname, buffer,
                              peer_buffer_address, length):
        """Starts one write: a batch id (> 0) or a negative status."""
        return self._submit(target_hostname, TransferOpcode.WRITE, [buffer],
                            [peer_buffer_address], [length])

    def transfer_submit_read(self, target_hostname, buffer,
                             peer_buffer_address, length):
        """Starts one read: a batch id (> 0) or a negative status."""
        return self._submit(target_hostname, TransferOpcode.READ, [buffer],
                            [peer_buffer_address], [length])

    def transfer_check_status(self, batch_id):
        """1 done, 0 running, -1 failed (or no such batch)."""
        req = self._reqs.get(batch_id)
        if req is None:
            return -1
        try:
            status = req.wait(0)
        except MfError:  # another thread is waiting for it
            return 0
        if status is None:
            return 0
        del self._reqs[batch_id]
        return 1 if status == 0 else -1

    def batch_transfer_async_write(self, target_hostname, buffers,
                                   peer_buffer_addresses, lengths):
        """A batch id, or 0 when it could not start."""
        return max(self._submit(target_hostname, TransferOpcode.WRITE,
                                buffers, peer_buffer_addresses, lengths), 0)

    def batch_transfer_async_read(self, target_hostname, buffers,
                                  peer_buffer_addresses, lengths):
        """Starts a batch of reads: a batch id, or 0."""
        return max(self._submit(target_hostname, TransferOpcode.READ,
                                buffers, peer_buffer_addresses, lengths), 0)

    def batch_transfer_async(self, target_hostname, buffers,
                             peer_buffer_addresses, lengths, opcode):
        """Starts a batch in the direction opcode: a batch id, or 0."""
        return max(self._submit(target_hostname, opcode, buffers,
                                peer_buffer_addresses, lengths), 0)

    def get_batch_transfer_status(self, batch_ids):
        """Waits for every batch: 0 if all succeeded, else -1."""
        ret = 0
        for batch_id in batch_ids:
            req = self._reqs.pop(batch_id, None)
            if req is None or req.wait(-1) != 0:
                ret = -1
        return ret
