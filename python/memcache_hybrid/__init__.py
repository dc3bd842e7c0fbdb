"""Upstream MemCache's Python module name, on this package.

Code written for upstream's ``memcache_hybrid`` runs unchanged::

    from memcache_hybrid import DistributedObjectStore
    store = DistributedObjectStore()
    assert store.init(local_rank) == 0   # config from MMC_LOCAL_CONFIG_PATH

It is :class:`memfabric.memcache.DistributedObjectStore` with upstream's
conventions on top:

* configuration comes, as upstream's does, from the file
  ``MMC_LOCAL_CONFIG_PATH`` names when :meth:`~DistributedObjectStore.setup`
  was not called; its ``ock.mmc.*`` keys are translated to ours
  (:mod:`memfabric._compat` lists them), keys with no effect here and
  unknown keys are logged as warnings, values that cannot be honoured (TLS
  on) fail ``init`` with ``MMC_INVALID_PARAM``;
* every status a method returns is upstream's code
  (:class:`UpstreamStatus`): -3101 (``MMC_UNMATCHED_STATE``) for a lease
  on an object still being written, -3102 (``MMC_UNMATCHED_KEY``) for a
  missing key, and so on; GVAs, sizes and counts are returned as they
  are.

:class:`MetaService` runs ``mmc-meta`` with the settings of the file
``MMC_META_CONFIG_PATH`` names, translated the same way.
"""

import functools
import logging
import os
import sys

from memfabric import memcache as _mc
from memfabric._compat import (ConfigError, UpstreamStatus, local_settings,
                               meta_settings, read_conf, upstream_status)
from memfabric.memcache import (G2H, G2L, H2G, L2G, READABLE_GVA_QUERY,
                                KeyInfo, LocalConfig, MmcCopyDirect,
                                ReplicateConfig)

__all__ = [
    "DistributedObjectStore", "ReplicateConfig", "KeyInfo", "LocalConfig",
    "MmcCopyDirect", "L2G", "G2L", "G2H", "H2G", "MetaService",
    "UpstreamStatus", "upstream_status", "READABLE_GVA_QUERY",
]

_log = logging.getLogger("memcache_hybrid")


def _codes(value):
    """A method's result with our statuses as upstream's codes."""
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        return value
    if isinstance(value, list):
        return [_codes(v) for v in value]
    return upstream_status(value)


def _upstream(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        return _codes(method(self, *args, **kw))
    return wrapper


class DistributedObjectStore(_mc.DistributedObjectStore):
    """Upstream's ``DistributedObjectStore``: see the module."""

    def init(self, device_id=0, init_bm=True):
        """Connects (settings of :meth:`setup`, else of the file
        ``MMC_LOCAL_CONFIG_PATH`` names, else defaults and ``MMC_*``
        variables) and joins the pool.  Returns 0 or an upstream code."""
        if not self._settings and self._config_file is None:
            path = os.environ.get("MMC_LOCAL_CONFIG_PATH")
            if path:
                try:
                    settings = local_settings(read_conf(path))
                except (OSError, ValueError) as exc:
                    _log.error("MMC_LOCAL_CONFIG_PATH=%s: %s", path, exc)
                    return UpstreamStatus.MMC_INVALID_PARAM
                super().setup(settings)
        return upstream_status(super().init(device_id, init_bm))


for _name in (
        "setup", "close", "put", "put_batch", "put_from", "batch_put_from",
        "put_from_layers", "batch_put_from_layers", "get_into",
        "batch_get_into", "get_into_layers", "batch_get_into_layers",
        "put_from_buffer", "get_into_buffer", "put_from_buffers",
        "get_into_buffers", "is_exist", "batch_is_exist", "remove",
        "remove_batch", "register_buffer", "unregister_buffer",
        "batch_alloc", "batch_copy", "batch_copy_layers",
        "batch_write_finish", "batch_add_lease", "batch_remove_lease",
        "remove_all"):
    setattr(DistributedObjectStore, _name,
            _upstream(getattr(_mc.DistributedObjectStore, _name)))
del _name


class MetaService:
    """Upstream's ``MetaService``: runs the meta service in the
    foreground."""

    @staticmethod
    def main(args=None, binary=None):
        """Runs ``mmc-meta`` with the settings of ``MMC_META_CONFIG_PATH``
        (translated) followed by ``args`` (default: this program's command
        line), until it exits; returns its exit status."""
        argv = []
        path = os.environ.get("MMC_META_CONFIG_PATH")
        if path:
            try:
                settings = meta_settings(read_conf(path))
            except (OSError, ValueError, ConfigError) as exc:
                _log.error("MMC_META_CONFIG_PATH=%s: %s", path, exc)
                return 2
            for key, value in settings.items():
                argv += ["--set", "%s=%s" % (key, value)]
        argv += list(sys.argv[1:] if args is None else args)
        return _mc.MetaService.main(argv, binary=binary)
