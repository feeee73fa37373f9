"""The AES-GCM payload codec: round trips, key ids, rotation, tampering."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes, PayloadConverter
from temporalio.exceptions import ApplicationError

from offload.codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    EncryptionFailureConverter,
    EncryptionKeyError,
    encryption_codec,
    held_key_ids,
    key_id,
    new_key,
    parse_key,
    rotation_gaps,
    ui_origins,
)
from offload.dev.stack import ui_codec_args
from offload.settings import Settings
from offload.temporal import data_converter

PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"to":"ada@example.com"}')


def settings(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


async def test_a_payload_round_trips_and_its_ciphertext_hides_the_data() -> None:
    key = parse_key(new_key())
    codec = EncryptionCodec(key)
    [sealed] = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == key_id(key).encode()
    assert b"ada@example.com" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [PLAIN]


async def test_the_same_payload_encrypts_differently_each_time() -> None:
    codec = EncryptionCodec(parse_key(new_key()))
    first, second = await codec.encode([PLAIN, PLAIN])
    assert first.data != second.data


async def test_after_rotation_old_payloads_decrypt_and_new_ones_use_the_new_key() -> None:
    old, new = parse_key(new_key()), parse_key(new_key())
    [before] = await EncryptionCodec(old).encode([PLAIN])
    rotated = EncryptionCodec(new, [old])
    assert await rotated.decode([before]) == [PLAIN]
    [after] = await rotated.encode([PLAIN])
    assert after.metadata[KEY_ID] == key_id(new).encode()
    with pytest.raises(EncryptionKeyError, match="does not hold"):
        await EncryptionCodec(new).decode([before])


async def test_a_tampered_or_relabelled_payload_is_refused() -> None:
    one, two = parse_key(new_key()), parse_key(new_key())
    codec = EncryptionCodec(one, [two])
    [sealed] = await codec.encode([PLAIN])
    flipped = Payload(
        metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    relabelled = Payload(
        metadata={"encoding": ENCODING, KEY_ID: key_id(two).encode()}, data=sealed.data
    )
    for bad in (flipped, relabelled):
        with pytest.raises(EncryptionKeyError, match="authentication"):
            await codec.decode([bad])


async def test_unencrypted_payloads_from_before_the_key_pass_through() -> None:
    codec = EncryptionCodec(parse_key(new_key()))
    assert await codec.decode([PLAIN]) == [PLAIN]


def test_keys_must_be_base64_of_32_bytes() -> None:
    with pytest.raises(EncryptionKeyError, match="OFFLOAD_ENCRYPTION_KEY: not base64"):
        parse_key("not base64!")
    with pytest.raises(EncryptionKeyError, match="32 bytes, this one 16"):
        parse_key(base64.b64encode(b"x" * 16).decode())


def test_the_converter_encrypts_only_with_a_key_set() -> None:
    assert data_converter(settings()).payload_codec is None
    first, second = new_key(), new_key()
    codec = encryption_codec(
        settings(OFFLOAD_ENCRYPTION_KEY=second, OFFLOAD_ENCRYPTION_OLD_KEYS=f"{first}, ")
    )
    assert codec is not None
    assert codec.key_id == key_id(parse_key(second))
    converter = data_converter(settings(OFFLOAD_ENCRYPTION_KEY=first))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert isinstance(converter.failure_converter, EncryptionFailureConverter)
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    with pytest.raises(EncryptionKeyError, match="OFFLOAD_ENCRYPTION_OLD_KEYS"):
        encryption_codec(settings(OFFLOAD_ENCRYPTION_KEY=first, OFFLOAD_ENCRYPTION_OLD_KEYS="x"))


def test_the_codec_token_is_its_own_never_the_api_token() -> None:
    assert settings().codec_server_token is None
    assert settings(OFFLOAD_API_TOKEN="api").codec_server_token is None
    both = settings(OFFLOAD_API_TOKEN="api", OFFLOAD_CODEC_TOKEN="codec")
    assert both.codec_server_token == "codec"
    assert isinstance(both.codec_token, SecretStr)


def test_the_dev_ui_decodes_through_the_codec_server_only_with_a_key() -> None:
    assert ui_codec_args(settings()) == []
    keyed = settings(
        OFFLOAD_ENCRYPTION_KEY=new_key(), OFFLOAD_CODEC_SERVER_ADDRESS="127.0.0.1:9999"
    )
    assert ui_codec_args(keyed) == ["--ui-codec-endpoint=http://127.0.0.1:9999"]


def test_blank_keys_from_compose_mean_no_encryption() -> None:
    assert (
        settings(OFFLOAD_ENCRYPTION_KEY="", OFFLOAD_ENCRYPTION_OLD_KEYS=" ").encryption_key is None
    )
    assert encryption_codec(settings(OFFLOAD_ENCRYPTION_KEY="")) is None


def test_the_ui_origin_on_loopback_is_allowed_by_name_and_by_address() -> None:
    assert ui_origins("http://localhost:8233") == ["http://localhost:8233", "http://127.0.0.1:8233"]
    assert ui_origins("http://127.0.0.1:8080/") == [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    ]
    assert ui_origins("https://temporal.example.com") == ["https://temporal.example.com"]


async def undecryptable_error(sdk_message: str, non_retryable: bool) -> ApplicationError:
    """What the SDK raises when a codec fails on an activity's input or heartbeat details."""
    incoming = EncryptionCodec(parse_key(new_key()))
    [sealed] = await incoming.encode([PLAIN])
    try:
        await EncryptionCodec(parse_key(new_key())).decode([sealed])
    except EncryptionKeyError as err:
        wrapped = ApplicationError(sdk_message, non_retryable=non_retryable)
        wrapped.__cause__ = err
        return wrapped
    raise AssertionError("decoded without the key")


@pytest.mark.parametrize(
    ("sdk_message", "sdk_non_retryable"),
    [("Failed decoding arguments", False), ("Failed decoding heartbeat details", True)],
)
async def test_an_undecryptable_input_fails_as_an_encryption_key_error_naming_the_key(
    sdk_message: str, sdk_non_retryable: bool
) -> None:
    err = await undecryptable_error(sdk_message, sdk_non_retryable)
    cause = err.__cause__
    assert isinstance(cause, EncryptionKeyError)
    failure = Failure()
    EncryptionFailureConverter().to_failure(err, PayloadConverter.default, failure)
    info = failure.application_failure_info
    # Typed for the retry policies; as retryable as the SDK made it.
    assert (info.type, info.non_retryable) == ("EncryptionKeyError", sdk_non_retryable)
    [attributes] = PayloadConverter.default.from_payloads([failure.encoded_attributes])
    assert sdk_message in attributes["message"]
    assert str(cause) in attributes["message"]
    assert "which this process does not hold" in str(cause)


def test_other_failures_are_converted_as_before() -> None:
    failure = Failure()
    err = ApplicationError("recipient refused", type="SmtpPermanentError", non_retryable=False)
    EncryptionFailureConverter().to_failure(err, PayloadConverter.default, failure)
    info = failure.application_failure_info
    assert (info.type, info.non_retryable) == ("SmtpPermanentError", False)
    assert failure.message == "Encoded failure"


def test_identities_name_the_keys_and_gaps_say_who_cannot_decrypt_what() -> None:
    old, new = EncryptionCodec(parse_key(new_key())), EncryptionCodec(parse_key(new_key()))
    assert held_key_ids(f"1@a {old.identity_label}") == [old.key_id]
    assert held_key_ids("1@a") is None
    a, b = old.key_id, new.key_id
    # Phase 1: the new key decrypt-only on one process, not yet on the other: nothing breaks.
    assert rotation_gaps({"1@a": [a], "2@b": [a, b]}) == []
    # Phase 2 on that process while the other still lacks the new key: that one would fail.
    assert rotation_gaps({"1@a": [a], "2@b": [b, a]}) == [
        f"1@a cannot decrypt key {b}, current at 2@b"
    ]
    assert rotation_gaps({"1@a": [a, b], "2@b": [b, a]}) == []
