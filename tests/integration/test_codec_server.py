"""The codec server: decodes for the Web UI's origin with the token, refuses anyone else."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from offload.codec import EncryptionCodec, codec_app, key_id, new_key, parse_key
from offload.net import free_port
from offload.settings import Settings
from tests.harness import offload_process, run_offload

UI = "http://localhost:8233"
TOKEN = "s3cret-token"


@pytest.fixture
async def codec() -> EncryptionCodec:
    return EncryptionCodec(parse_key(new_key()))


@pytest.fixture
async def server(codec: EncryptionCodec) -> AsyncIterator[str]:
    runner = web.AppRunner(codec_app(codec, allowed_origin=UI, token=TOKEN))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def encrypted_body(codec: EncryptionCodec) -> str:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"to": "ada@example.com"}')
    return json_format.MessageToJson(Payloads(payloads=await codec.encode([plain])))


async def test_the_ui_origin_with_the_token_gets_plaintext(
    server: str, codec: EncryptionCodec
) -> None:
    headers = {"Origin": UI, "Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}
    async with ClientSession() as http:
        async with http.options(f"{server}/decode", headers={"Origin": UI}) as preflight:
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == UI
            assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        body = await encrypted_body(codec)
        async with http.post(f"{server}/decode", data=body, headers=headers) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == UI
            decoded = json_format.Parse(await response.text(), Payloads())
    assert decoded.payloads[0].data == b'{"to": "ada@example.com"}'


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": UI}, 401),
        ({"Origin": UI, "Authorization": "Bearer wrong"}, 401),
        ({"Origin": "http://evil.example", "Authorization": f"Bearer {TOKEN}"}, 403),
        ({"Origin": "http://localhost:8234", "Authorization": f"Bearer {TOKEN}"}, 403),
        # No Origin at all (a script, not a browser) is no exception.
        ({"Authorization": f"Bearer {TOKEN}"}, 403),
    ],
)
async def test_refused_without_the_token_or_from_another_origin(
    server: str, codec: EncryptionCodec, headers: dict[str, str], status: int
) -> None:
    body = await encrypted_body(codec)
    async with ClientSession() as http:
        async with http.post(f"{server}/decode", data=body, headers=headers) as response:
            assert response.status == status
            assert "Access-Control-Allow-Origin" not in response.headers or status != 403
            text = await response.text()
    assert "ada@example.com" not in text


async def test_the_command_serves_with_the_settings_keys_and_stops_on_sigterm(
    settings: Settings,
) -> None:
    key, port = new_key(), free_port()
    keyed = settings.model_copy(
        update={
            "encryption_key": SecretStr(key),
            "codec_token": SecretStr(TOKEN),
            "codec_server_address": f"127.0.0.1:{port}",
        }
    )
    refused = await asyncio.to_thread(run_offload, settings, "codec-server")
    assert refused.returncode == 2
    assert "OFFLOAD_ENCRYPTION_KEY is not set" in refused.stderr

    process = offload_process(keyed, "codec-server", stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        assert f"codec server on http://127.0.0.1:{port}" in line.decode()
        # It says which keys it holds, by id, for a rotation's checks.
        assert f"encrypts with key {key_id(parse_key(key))}; also decrypts none" in line.decode()
        body = await encrypted_body(EncryptionCodec(parse_key(key)))
        headers = {"Origin": settings.temporal_ui_url, "Authorization": f"Bearer {TOKEN}"}
        async with ClientSession() as http:
            url = f"http://127.0.0.1:{port}/decode"
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 200
                decoded = json_format.Parse(await response.text(), Payloads())
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
    assert decoded.payloads[0].data == b'{"to": "ada@example.com"}'
