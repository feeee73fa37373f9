"""`offload codec-server`: decrypt payloads for the Temporal Web UI and `temporal` CLI."""

from __future__ import annotations

import argparse

from offload.codec import EncryptionKeyError, encryption_codec, new_key, start_codec_server
from offload.settings import Settings
from starters.console import CommandError
from starters.worker import stop_on_signals


async def codec_server_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.new_key:
        print(new_key())
        return 0
    if args.address:
        settings = settings.model_copy(update={"codec_server_address": args.address})
    stop = stop_on_signals()
    try:
        runner = await start_codec_server(settings)
    except EncryptionKeyError as err:
        raise CommandError(str(err)) from err
    except OSError as err:
        raise CommandError(
            f"--address: cannot listen on {settings.codec_server_address} ({err})"
        ) from err
    token = "bearer token required" if settings.codec_server_token else "no token (loopback only)"
    codec = encryption_codec(settings)
    assert codec is not None  # start_codec_server refused to start without a key
    print(
        f"codec server on {settings.codec_server_url} for the Web UI at "
        f"{settings.temporal_ui_url}; {token}; {codec.describe()}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "codec-server",
        help="serve /encode and /decode for the Web UI when payloads are encrypted",
        description="Decrypt payloads for the Temporal Web UI with OFFLOAD_ENCRYPTION_KEY (and "
        "OFFLOAD_ENCRYPTION_OLD_KEYS), and print the key ids it holds. Only requests from the "
        "UI's origin (TEMPORAL_UI_URL) are served: one with another Origin, or none, is "
        "refused. With OFFLOAD_CODEC_TOKEN set, requests need `Authorization: Bearer <token>`. "
        "Point the UI at it with TEMPORAL_CODEC_ENDPOINT (self-hosted UI) or the UI's codec "
        "settings; the temporal CLI with --codec-endpoint, --codec-auth and --codec-header "
        "Origin=<TEMPORAL_UI_URL>.",
    )
    parser.add_argument(
        "--address", help="host:port to listen on (default OFFLOAD_CODEC_SERVER_ADDRESS)"
    )
    parser.add_argument(
        "--new-key", action="store_true", help="print a fresh random key for OFFLOAD_ENCRYPTION_KEY"
    )
    parser.set_defaults(handler=codec_server_command)
