"""The one place that connects a Temporal client: data converter, TLS, API key, metrics runtime."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConfigTLS
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from offload import tracing
from offload.codec import EncryptionFailureConverter, encryption_codec
from offload.net import port_is_free, split_address
from offload.settings import Settings

log = logging.getLogger(__name__)


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads for every job model, encrypted when `OFFLOAD_ENCRYPTION_KEY` is set."""
    codec = encryption_codec(settings)
    if codec is None:
        return pydantic_data_converter
    # Failure messages and stack traces can quote what failed (an address, a name): they are
    # moved into an encoded payload too, so the history shows only "Encoded failure".
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=EncryptionFailureConverter,
    )


def client_identity(settings: Settings) -> str:
    """The SDK's default identity (`pid@host`), followed by the key ids this process holds.

    Workers poll under it, so `offload stats` reads from DescribeTaskQueue which keys each
    worker has: what a rolling key rotation must know before its next phase.
    """
    identity = f"{os.getpid()}@{socket.gethostname()}"
    codec = encryption_codec(settings)
    return identity if codec is None else f"{identity} {codec.identity_label}"


def client_profile(settings: Settings) -> ClientConfigProfile:
    """The settings as the SDK's client profile (`temporalio.envconfig`): address, namespace,
    API key and TLS.

    An API key turns TLS on (it travels as a bearer token, never over plain text); a client
    certificate (mTLS), a private CA (`TEMPORAL_TLS_CA`) or a server name
    (`TEMPORAL_TLS_SERVER_NAME`) give TLS those options. Temporal Cloud needs only the key or
    the certificate: its certificates chain to public roots.

    Raises:
        ValueError: one of TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY without the other.
    """
    if (settings.temporal_tls_cert is None) != (settings.temporal_tls_key is None):
        raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY: set both for mTLS, or neither")
    custom = (
        settings.temporal_tls_cert is not None
        or settings.temporal_tls_ca is not None
        or settings.temporal_tls_server_name is not None
    )
    tls = (
        ClientConfigTLS(
            server_name=settings.temporal_tls_server_name,
            server_root_ca_cert=settings.temporal_tls_ca,
            client_cert=settings.temporal_tls_cert,
            client_private_key=settings.temporal_tls_key,
        )
        if custom
        else None
    )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return ClientConfigProfile(
        address=settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=api_key,
        tls=tls,
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The client's TLS, as `client_profile` makes it: False for plain text."""
    return client_profile(settings).to_client_connect_config().get("tls", False)


# One runtime per metrics address and process: a runtime owns its Prometheus endpoint, and
# the SDK wants runtimes few and long-lived. Clients that serve no metrics share the default.
_runtimes: dict[str, Runtime] = {}


def metrics_runtime(address: str) -> Runtime:
    """The runtime whose workers and clients export Prometheus metrics at `address`."""
    runtime = _runtimes.get(address)
    if runtime is None:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=address,
                    counters_total_suffix=True,
                    unit_suffix=True,
                    durations_as_seconds=True,
                )
            )
        )
        _runtimes[address] = runtime
    return runtime


def _runtime_for(settings: Settings) -> Runtime | None:
    address = settings.metrics_address
    if not address:
        return None
    if address in _runtimes:
        return _runtimes[address]
    host, port = split_address(address)
    if not port_is_free(port, host):
        # Metrics must not keep jobs from running: a second worker on one host goes without.
        log.warning("metrics off: %s is in use (OFFLOAD_METRICS_ADDRESS)", address)
        return None
    try:
        return metrics_runtime(address)
    except RuntimeError as err:
        log.warning("metrics off: cannot serve them at %s (%s)", address, err)
        return None


class TemporalUnavailableError(ConnectionError):
    """Temporal cannot be reached at the configured address."""


async def connect(settings: Settings, *, serve_metrics: bool = False, lazy: bool = False) -> Client:
    """A client for the configured address and namespace, with Offload's data converter.

    With `serve_metrics` (workers do), the client and the workers built on it export the
    SDK's and Offload's metrics at `OFFLOAD_METRICS_ADDRESS`. `lazy` connects on first use
    instead, so a process that can work without Temporal for a while (the API) starts
    while Temporal is down.

    Raises:
        TemporalUnavailableError: nothing answers at `TEMPORAL_ADDRESS`.
    """
    runtime = _runtime_for(settings) if serve_metrics else None
    try:
        return await Client.connect(
            **client_profile(settings).to_client_connect_config(),
            data_converter=data_converter(settings),
            identity=client_identity(settings),
            runtime=runtime,
            lazy=lazy,
            interceptors=tracing.client_interceptors(),
        )
    except RuntimeError as err:
        raise TemporalUnavailableError(
            f"cannot connect to Temporal at {settings.temporal_address} "
            f"(TEMPORAL_ADDRESS); is `make dev` running? ({err})"
        ) from err
