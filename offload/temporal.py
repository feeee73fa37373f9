"""The one place that connects a Temporal client."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import TLSConfig

from offload.settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads for every job model."""
    return pydantic_data_converter


def tls_config(settings: Settings) -> TLSConfig | bool:
    """mTLS when a client certificate is configured, plain TLS with an API key, else none."""
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return settings.temporal_api_key is not None


class TemporalUnavailableError(ConnectionError):
    """Temporal cannot be reached at the configured address."""


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client for the configured address and namespace, with Offload's data converter.

    `lazy` connects on first use instead, so a process that can work without Temporal for
    a while (the API) starts while Temporal is down.

    Raises:
        TemporalUnavailableError: nothing answers at `TEMPORAL_ADDRESS`.
    """
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            tls=tls_config(settings),
            api_key=api_key,
            lazy=lazy,
        )
    except RuntimeError as err:
        raise TemporalUnavailableError(
            f"cannot connect to Temporal at {settings.temporal_address} "
            f"(TEMPORAL_ADDRESS); is `make dev` running? ({err})"
        ) from err
