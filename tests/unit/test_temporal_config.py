"""The client configuration `offload.temporal` builds: TLS, mTLS, API keys, the metrics runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from offload.net import free_port
from offload.settings import Settings
from offload.temporal import metrics_runtime, tls_config


def settings(**env: object) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("cert", "key", "ca"):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(f"-----{name}-----".encode())
    return files


def test_no_tls_by_default() -> None:
    assert tls_config(settings()) is False


def test_an_api_key_implies_tls() -> None:
    assert tls_config(settings(TEMPORAL_API_KEY="key")) is True


def test_mtls_sends_the_client_certificate(pems: dict[str, Path]) -> None:
    tls = tls_config(settings(TEMPORAL_TLS_CERT=pems["cert"], TEMPORAL_TLS_KEY=pems["key"]))
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----cert-----"
    assert tls.client_private_key == b"-----key-----"
    assert tls.server_root_ca_cert is None


def test_a_private_ca_and_server_name(pems: dict[str, Path]) -> None:
    tls = tls_config(
        settings(
            TEMPORAL_TLS_CA=pems["ca"],
            TEMPORAL_TLS_SERVER_NAME="temporal.internal",
            TEMPORAL_API_KEY="key",
        )
    )
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == b"-----ca-----"
    assert tls.domain == "temporal.internal"
    assert tls.client_cert is None


def test_half_an_mtls_pair_is_refused(pems: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"):
        tls_config(settings(TEMPORAL_TLS_CERT=pems["cert"]))


def test_one_metrics_runtime_per_address() -> None:
    address = f"127.0.0.1:{free_port()}"
    assert metrics_runtime(address) is metrics_runtime(address)


def test_the_address_is_the_dev_servers_unless_temporal_address_is_set() -> None:
    assert settings().temporal_address == "localhost:7233"
    moved = settings(OFFLOAD_DEV_TEMPORAL_PORT="7300")
    assert moved.temporal_address == "localhost:7300"
    assert not moved.uses_own("temporal_address")  # `offload dev` starts its own there
    assert "TEMPORAL_ADDRESS" not in moved.to_env()
    assert settings(TEMPORAL_ADDRESS="t:1", OFFLOAD_DEV_TEMPORAL_PORT="7300").temporal_address == (
        "t:1"
    )
    with pytest.raises(ValueError, match="OFFLOAD_DEV_TEMPORAL_PORT"):
        settings(OFFLOAD_DEV_TEMPORAL_PORT="0")
