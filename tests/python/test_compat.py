"""The upstream-named modules: memcache_hybrid driven exactly as
vllm-ascend's MemCache backend drives it (config file from
MMC_LOCAL_CONFIG_PATH, KV layers, whole blocks, the layer-wise GVA path
with leases), in host memory and in device memory through the fake CUDA
driver; the translation of upstream config files and status codes; and
MetaService with MMC_META_CONFIG_PATH."""

import logging
import os
import subprocess
import sys

import pytest

from memfabric import MmcStatus, Status
from memfabric._compat import (ConfigError, UpstreamStatus, local_settings,
                               meta_settings, read_conf, upstream_status)

from conftest import run_in_children
import workers


def _local_conf(tmp_path, url, extra=""):
    path = tmp_path / "mmc-local.conf"
    path.write_text(
        "# written as upstream's mmc-local.conf\n"
        "ock.mmc.meta_service_url = %s\n"
        "ock.mmc.log_level = error\n"
        "ock.mmc.tls.enable = false\n"
        "ock.mmc.local_service.world_size = 256\n"
        "ock.mmc.local_service.protocol = host_tcp\n"
        "ock.mmc.local_service.dram.size = 16MB\n"
        "ock.mmc.client.timeout.seconds = 30\n" % url + extra)
    return str(path)


@pytest.mark.parametrize("memory", ["host", "device"])
def test_vllm_ascend_sequence(meta, spawn, tmp_path, memory):
    fake = os.environ.get("MF_FAKECUDA") if memory == "device" else None
    if memory == "device" and not fake:
        pytest.skip("MF_FAKECUDA unset: this build has no cuda memory kind")
    conf = _local_conf(tmp_path, meta.url)
    out = run_in_children(spawn, workers.vllm_ascend_kv, [(conf, fake)])[0]
    blocks = 6
    assert out["init"] == 0
    assert out["register"] == [0] * 8
    assert out["exist_before"] == [0] * blocks
    assert out["put"] == [0] * blocks
    assert out["exist_after"] == [1] * blocks
    assert out["get"] == [0] * blocks
    assert out["get_bytes"]
    assert all(g > 0 for g in out["alloc"])
    assert out["lease_writing"] == [UpstreamStatus.MMC_UNMATCHED_STATE]
    assert out["save"] == [0] * 4
    assert out["finish"] == [0] * blocks
    assert out["info_sizes"] == [2 * 4 * 8192] * blocks
    assert out["lease"] == [0] * blocks
    assert out["load"] == [0] * 4
    assert out["load_bytes"]
    assert out["unlease"] == [0] * blocks
    assert out["unlease_again"] == [UpstreamStatus.MMC_UNMATCHED_KEY]
    assert out["remove_all"] == 0
    assert out["exist_end"] == [0] * (2 * blocks)
    assert out["missing"] == UpstreamStatus.MMC_UNMATCHED_KEY
    assert out["close"] == 0


def test_local_config_translation(tmp_path, caplog):
    conf = _local_conf(tmp_path, "tcp://10.0.0.1:5800",
                       "ock.mmc.local_service.max.dram.size = 64GB\n"
                       "ock.mmc.local_service.hbm.size = 2GB\n"
                       "ock.mmc.no_such.key = 1\n")
    with caplog.at_level(logging.WARNING, logger="memfabric.compat"):
        settings = local_settings(read_conf(conf))
    assert settings == {
        "meta_url": "tcp://10.0.0.1:5800", "log_level": "error",
        "fabric.transport": "tcp", "dram_size": "16M", "hbm_size": "2G",
        "timeout_ms": "30000ms"}
    text = caplog.text
    assert "ock.mmc.no_such.key" in text and "unknown" in text
    assert "ock.mmc.local_service.world_size" in text
    assert "ock.mmc.local_service.max.dram.size" in text and "no effect" in text


@pytest.mark.parametrize("line, match", [
    ("ock.mmc.tls.enable = true", "TLS"),
    ("ock.mmc.local_service.protocol = carrier_pigeon", "unknown protocol"),
    ("ock.mmc.local_service.dram.size = lots", "not a size"),
    ("ock.mmc.log_level = chatty", "unknown level"),
])
def test_local_config_refused(tmp_path, line, match):
    path = tmp_path / "bad.conf"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match=match):
        local_settings(read_conf(str(path)))


def test_tls_translated(tmp_path, caplog):
    path = tmp_path / "tls.conf"
    path.write_text(
        "ock.mmc.meta_service_url = tcp://10.0.0.1:5800\n"
        "ock.mmc.tls.enable = true\n"
        "ock.mmc.tls.top.path = /opt/ock/security/\n"
        "ock.mmc.tls.ca.path = certs/ca.cert.pem\n"
        "ock.mmc.tls.ca.crl.path = certs/ca.crl.pem\n"
        "ock.mmc.tls.cert.path = certs/client.cert.pem\n"
        "ock.mmc.tls.key.path = /elsewhere/client.key.pem\n"
        "ock.mmc.tls.key.pass.path = certs/client.passphrase\n"
        "ock.mmc.tls.package.path = /opt/ock/openssl\n"
        "ock.mmc.config_store.tls.enable = false\n"
        "ock.mmc.local_service.hcom.tls.enable = false\n")
    settings = local_settings(read_conf(str(path)))
    assert settings["tls.enable"] == "true"
    assert settings["tls.ca_file"] == "/opt/ock/security/certs/ca.cert.pem"
    assert settings["tls.crl_file"] == "/opt/ock/security/certs/ca.crl.pem"
    assert settings["tls.cert_file"] == \
        "/opt/ock/security/certs/client.cert.pem"
    assert settings["tls.key_file"] == "/elsewhere/client.key.pem"
    assert settings["tls.key_password_file"] == \
        "/opt/ock/security/certs/client.passphrase"
    assert "package.path" in caplog.text
    assert meta_settings(read_conf(str(path)))["tls.cert_file"] == \
        "/opt/ock/security/certs/client.cert.pem"
    # an encrypted data path cannot be had
    path.write_text("ock.mmc.local_service.hcom.tls.enable = true\n")
    with pytest.raises(ConfigError, match="not encrypted"):
        local_settings(read_conf(str(path)))


def test_config_file_syntax(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("ock.mmc.log_level = info\nthis line has no value\n")
    with pytest.raises(ValueError, match=":2:"):
        read_conf(str(path))


def test_init_refuses_bad_config(spawn, tmp_path):
    path = tmp_path / "tls.conf"
    path.write_text("ock.mmc.tls.enable = true\n")
    assert run_in_children(spawn, workers.hybrid_init, [(str(path),)])[0] == \
        UpstreamStatus.MMC_INVALID_PARAM


def test_status_codes():
    assert upstream_status(0) == 0
    assert upstream_status(0x200000000000) == 0x200000000000  # a GVA
    assert upstream_status(MmcStatus.ERR_BUSY) == -3101
    assert upstream_status(MmcStatus.ERR_NOT_FOUND) == -3102
    assert upstream_status(MmcStatus.ERR_LEASE_EXPIRED) == -3106
    assert upstream_status(MmcStatus.ERR_NO_SPACE) == -3016
    assert upstream_status(Status.ERR_INVALID) == -3000
    assert upstream_status(Status.ERR_TIMEOUT) == -3004
    assert upstream_status(Status.ERR_STATE) == -3019
    assert upstream_status(-12345) == -1


def test_meta_service_config(tmp_path):
    path = tmp_path / "mmc-meta.conf"
    path.write_text(
        "ock.mmc.meta_service_url = tcp://127.0.0.1:6100\n"
        "ock.mmc.meta_service.config_store_url = tcp://127.0.0.1:6101\n"
        "ock.mmc.meta_service.metrics_url = http://127.0.0.1:6102\n"
        "ock.mmc.evict_threshold_high = 85\n"
        "ock.mmc.evict_threshold_low = 70\n"
        "ock.mmc.meta.lease_ttl_ms = 10000\n"
        "ock.mmc.log_path = /var/log/mmc\n")
    settings = meta_settings(read_conf(str(path)))
    assert settings == {"addr": "127.0.0.1", "port": "6100",
                        "store_port": "6101", "http_port": "6102",
                        "evict_high_pct": "85", "evict_low_pct": "70",
                        "lease_ms": "10000"}
    env = dict(os.environ, MMC_META_CONFIG_PATH=str(path))
    code = ("import sys, memcache_hybrid; "
            "sys.exit(memcache_hybrid.MetaService.main(['--dump-config']))")
    res = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    dump = res.stdout
    for line in ("port = 6100", "store_port = 6101", "http_port = 6102",
                 "evict_high_pct = 85", "lease_ms = 10000"):
        assert line in dump, dump


def test_memfabric_hybrid_two_ranks(spawn):
    import memfabric as mf

    with mf.StoreServer() as server:
        res = run_in_children(spawn, workers.hybrid_rank,
                              [(server.url, 2, 0), (server.url, 2, 1)])
    for rank, r in enumerate(res):
        assert r["init"] == 0 and r["bm_init"] == 0 and r["rank"] == rank
        assert r["join"] == 0 and r["gva_to_va"]
        assert r["size"] == 1 << 20
        assert r["rank_of"] == (rank + 1) % 2
        assert r["h2g"] == 0 and r["g2h"] == 0 and r["bytes"]
        assert r["async"] == 0 and r["wait"] == 0
        assert r["partial"] == -2012  # SMEM_PARTIAL_FAILED
        assert r["bad_type"] == -2000  # SM_INVALID_PARAM
        assert "copy type" in r["err_msg"]
        assert r["leave"] == 0
        assert r["shm_init"] == 0 and r["shm_gva"]
        assert r["shm_rank"] == (rank, 2)
        assert r["shm_barrier"] == 0
        assert r["shm_gather"] == b"01"
        assert r["shm_reach"] == (0, 1)  # MTE: mapped here
        assert r["shm_ctx"] == 0
        assert r["shm_bad"]
        assert r["shm_barrier2"] == 0
        assert r["shm_destroy"] == 0


def test_memfabric_hybrid_common():
    import memfabric_hybrid as mfh

    assert mfh.set_log_level(9) == -2000
    assert "level" in mfh.get_and_clear_last_err_msg()
    assert mfh.get_last_err_msg() == ""
    assert mfh.set_conf_store_tls(True) == -2000
    assert mfh.set_conf_store_tls(False) == 0
    assert mfh.set_log_level(3) == 0
    assert mfh.TransferEngine is not None
