"""What the upstream-named modules (``memcache_hybrid``,
``memfabric_hybrid``) share: upstream's status codes and the translation
of upstream's config files (``ock.mmc.*`` keys) into ours.

Upstream configuration is a ``key = value`` file whose path is in
``MMC_LOCAL_CONFIG_PATH`` (a local service) or ``MMC_META_CONFIG_PATH``
(the meta service).  Every upstream key is either mapped to one of our
settings, accepted with no effect here (a warning says why: the meta
service decides it, or the transport is chosen per peer), or unknown (a
warning names it).  A value we cannot honour (TLS on, an unknown
protocol) is an error, never silently dropped.
"""

import logging
import os
import re

from . import _memcache

__all__ = ["UpstreamStatus", "upstream_status", "read_conf",
           "local_settings", "meta_settings", "ConfigError"]

_log = logging.getLogger("memfabric.compat")


class ConfigError(ValueError):
    """An upstream setting whose value cannot be honoured."""


class UpstreamStatus:
    """Upstream MemCache's result codes (``MmcErrorCode``)."""

    MMC_OK = 0
    MMC_ERROR = -1
    MMC_INVALID_PARAM = -3000
    MMC_MALLOC_FAILED = -3001
    MMC_NEW_OBJECT_FAILED = -3002
    MMC_NOT_STARTED = -3003
    MMC_TIMEOUT = -3004
    MMC_REPEAT_CALL = -3005
    MMC_DUPLICATED_OBJECT = -3006
    MMC_OBJECT_NOT_EXISTS = -3007
    MMC_NOT_INITIALIZED = -3008
    MMC_EXCEED_CAPACITY = -3013
    MMC_NOT_ENOUGH_MEMORY = -3016
    MMC_NOT_CONNET_META = -3017
    MMC_NOT_CONNET_LOCAL = -3018
    MMC_CLIENT_NOT_INIT = -3019
    MMC_UNMATCHED_STATE = -3101
    MMC_UNMATCHED_KEY = -3102
    MMC_UNMATCHED_RET = -3103
    MMC_LEASE_NOT_EXPIRED = -3104
    MMC_LEASE_EXPIRED = -3106


def upstream_status(st):
    """Our status code (``mf_status_t`` or ``mmc_status_t``) as upstream
    returns it (libmemcache's ``mmcc_status``): 0, a positive value
    unchanged (a GVA, a count), else an ``MMC_*`` code (``MMC_ERROR``
    where upstream has no match)."""
    st = int(st)
    return st if st >= 0 else _memcache.upstream_status(st)


# ------------------------------------------------------------ config files

_LINE = re.compile(r"^\s*([^=#\s][^=]*?)\s*=\s*(.*?)\s*$")


def read_conf(path):
    """The ``key = value`` pairs of an upstream config file, in order
    (``#`` comments and blank lines skipped).  ValueError names the line
    that is neither."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            m = _LINE.match(text)
            if m is None:
                raise ValueError("%s:%d: not 'key = value': %r" %
                                 (path, no, line.rstrip("\n")))
            pairs.append((m.group(1), m.group(2)))
    return pairs


def _size(value):
    """Upstream sizes ("64GB", "512MB", "1024") as ours ("64G")."""
    v = value.strip().upper()
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)I?B?", v)
    if m is None:
        raise ConfigError("not a size: %r" % (value,))
    return m.group(1) + m.group(2)


def _bool(value):
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ConfigError("not a boolean: %r" % (value,))


_PROTOCOLS = {
    "host_tcp": "tcp",
    "host_shm": "shm",
    # RDMA and the Ascend device transports: every transport of this build
    # competes per peer
    "host_rdma": "auto",
    "host_urma": "auto",
    "device_rdma": "auto",
    "device_sdma": "auto",
}

_LOG_LEVELS = {"debug": "debug", "info": "info", "warn": "warn",
               "warning": "warn", "error": "error"}


# upstream's TLS paths (relative to its top.path) -> our tls.* keys
_TLS_PATHS = {
    "ca.path": "tls.ca_file",
    "ca.crl.path": "tls.crl_file",
    "cert.path": "tls.cert_file",
    "key.path": "tls.key_file",
    "key.pass.path": "tls.key_password_file",
    "decrypter.path": "tls.decrypter_lib",
    "decrypter.lib.path": "tls.decrypter_lib",
}


def _tls_group(pairs, prefix):
    """The settings of one upstream TLS group (``<prefix>enable``,
    ``<prefix>top.path``, its paths) as our tls.* keys; None when off."""
    group = {k[len(prefix):]: v for k, v in pairs if k.startswith(prefix)}
    if not _bool(group.get("enable", "false")):
        return None
    top = group.get("top.path", "")
    out = {"tls.enable": "true"}
    for name, value in group.items():
        if name in _TLS_PATHS and value.strip():
            out[_TLS_PATHS[name]] = os.path.join(top, value.strip())
        elif name == "package.path":
            _log.warning("%spackage.path has no effect here: the system's "
                         "OpenSSL is used", prefix)
        elif name not in ("enable", "top.path"):
            _log.warning("%s%s: unknown TLS setting, ignored", prefix, name)
    missing = [k for k in ("tls.ca_file", "tls.cert_file", "tls.key_file")
               if k not in out]
    if missing:
        raise ConfigError("%senable = true: TLS needs the CA, certificate "
                          "and key paths (%sca.path, cert.path, key.path)"
                          % (prefix, prefix))
    return out


def _tls_settings(pairs):
    """Our tls.* settings of upstream's TLS groups: ock.mmc.tls.* and
    ock.mmc.config_store.tls.* are one set here (the first that is on);
    an encrypted data path (hcom TLS) cannot be had."""
    pairs = [(k.strip(), v) for k, v in pairs]
    for key, value in pairs:
        if key == "ock.mmc.local_service.hcom.tls.enable" and _bool(value):
            raise ConfigError("%s = %s: the data path is not encrypted here "
                              "(its connections are authenticated: see "
                              "docs/security.md); TLS is for the control "
                              "connections (ock.mmc.tls.*)" % (key, value))
    main = _tls_group(pairs, "ock.mmc.tls.")
    store = _tls_group(pairs, "ock.mmc.config_store.tls.")
    if main is not None and store is not None and main != store:
        _log.warning("ock.mmc.config_store.tls.* differs from "
                     "ock.mmc.tls.*: one set serves both here, "
                     "ock.mmc.tls.*")
    return main if main is not None else (store or {})


def _noop(reason):
    def apply(key, value, out):
        _log.warning("%s = %s has no effect here: %s", key, value, reason)
    return apply


def _to(name, conv=str):
    def apply(key, value, out):
        try:
            out[name] = conv(value)
        except ConfigError as exc:
            raise ConfigError("%s: %s" % (key, exc)) from None
    return apply


def _protocol(key, value, out):
    v = value.strip().lower()
    if v not in _PROTOCOLS:
        raise ConfigError("%s = %s: unknown protocol (%s)" %
                          (key, value, ", ".join(sorted(_PROTOCOLS))))
    out["fabric.transport"] = _PROTOCOLS[v]


def _log_level(key, value, out):
    v = value.strip().lower()
    if v not in _LOG_LEVELS:
        raise ConfigError("%s = %s: unknown level (debug, info, warn, "
                          "error)" % (key, value))
    out["log_level"] = _LOG_LEVELS[v]


def _seconds_ms(value):
    return str(int(float(value) * 1000)) + "ms"


_BY_META = "the meta service decides it (mmc-meta's settings)"

_LOCAL_KEYS = {
    "ock.mmc.meta_service_url": _to("meta_url"),
    "ock.mmc.log_level": _log_level,
    "ock.mmc.local_service.config_store_url":
        _noop("the pool's config store is the meta service's"),
    "ock.mmc.local_service.world_size":
        _noop("the pool's size is mmc-meta's max_ranks"),
    "ock.mmc.local_service.protocol": _protocol,
    "ock.mmc.local_service.hcom_url":
        _noop("transports pick their own addresses"),
    "ock.mmc.local_service.dram.size": _to("dram_size", _size),
    "ock.mmc.local_service.max.dram.size": _noop(_BY_META),
    "ock.mmc.local_service.hbm.size": _to("hbm_size", _size),
    "ock.mmc.local_service.max.hbm.size": _noop(_BY_META),
    "ock.mmc.local_service.memory.pool.mode":
        _noop("segments are contiguous windows here"),
    "ock.mmc.client.timeout.seconds": _to("timeout_ms", _seconds_ms),
    "ock.mmc.client.retry_milliseconds":
        _noop("requests are retried until timeout_ms"),
    "ock.mmc.client.read_thread_pool.size":
        _noop("copies run on fabric.copy_threads"),
    "ock.mmc.client.write_thread_pool.size":
        _noop("copies run on fabric.copy_threads"),
    "ock.mmc.client.aggregate.io":
        _noop("batches are aggregated always"),
    "ock.mmc.client.aggregate.num":
        _noop("batches are aggregated always"),
}


def _url_parts(key, value):
    m = re.fullmatch(r"(?:[a-z]+://)?([^:/]+):(\d+)/?", value.strip())
    if m is None:
        raise ConfigError("%s = %s: not tcp://host:port (or http://host:port)" % (key, value))
    return m.group(1), m.group(2)


def _meta_url(key, value, out):
    host, port = _url_parts(key, value)
    out["addr"] = host
    out["port"] = port


def _store_url(key, value, out):
    host, port = _url_parts(key, value)
    out["store_port"] = port


def _metrics_url(key, value, out):
    host, port = _url_parts(key, value)
    out["http_port"] = port


def _ha(key, value, out):
    if _bool(value):
        _log.warning("%s = %s: high availability needs etcd_endpoints (the "
                     "etcd cluster the candidates elect a leader through)",
                     key, value)


def _pct(name):
    return _to(name, lambda v: str(int(float(v))))


_META_KEYS = {
    "ock.mmc.meta_service_url": _meta_url,
    "ock.mmc.meta_service.config_store_url": _store_url,
    "ock.mmc.meta_service.metrics_url": _metrics_url,
    "ock.mmc.meta.ha.enable": _ha,
    "ock.mmc.log_level": _noop("mmc-meta logs at MF_LOG_LEVEL"),
    "ock.mmc.log_path": _noop("mmc-meta logs to its standard error"),
    "ock.mmc.log_rotation_file_size": _noop("no log files here"),
    "ock.mmc.log_rotation_file_count": _noop("no log files here"),
    "ock.mmc.evict_threshold_high": _pct("evict_high_pct"),
    "ock.mmc.evict_threshold_low": _pct("evict_low_pct"),
    "ock.mmc.meta.lease_ttl_ms": _to("lease_ms", lambda v: str(int(v))),
}


def _translate(pairs, table, what):
    pairs = list(pairs)
    out = _tls_settings(pairs)
    for key, value in pairs:
        if key.startswith("ock.mmc.") and ".tls." in key:
            continue  # the TLS groups: _tls_settings above
        apply = table.get(key)
        if apply is None:
            _log.warning("%s: unknown setting %s = %s, ignored", what, key,
                         value)
            continue
        apply(key, value, out)
    return out


def local_settings(pairs):
    """``mmc-local.conf`` settings (a dict) of an upstream local-service
    config's pairs; ``log_level`` among them is for ``MF_LOG_LEVEL``.
    ConfigError for a value that cannot be honoured."""
    return _translate(pairs, _LOCAL_KEYS, "local config")


def meta_settings(pairs):
    """``mmc-meta`` settings (a dict for ``--set key=value``) of an
    upstream meta-service config's pairs."""
    return _translate(pairs, _META_KEYS, "meta config")
