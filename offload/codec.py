"""Payload encryption: an AES-GCM `PayloadCodec`, and the codec server the Web UI decodes with.

Every payload a client or worker sends to Temporal (job inputs, results, failures' details)
is encrypted with the current key; the key's id travels in the payload's metadata, so a
payload encrypted before a rotation is decrypted with the old key that made it. Temporal
stores only ciphertext: customers' names and addresses never sit in its history in clear.

A process holds one current key (`OFFLOAD_ENCRYPTION_KEY`) and any number of decrypt-only
keys (`OFFLOAD_ENCRYPTION_OLD_KEYS`): a rotation first rolls the new key out as decrypt-only
everywhere, then makes it current, then retires the old one (docs/security.md). Each
process's Temporal identity names the key ids it holds, so `offload stats` can tell whether
every worker decrypts what every other one encrypts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.converter import (
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    PayloadConverter,
)
from temporalio.exceptions import ApplicationError

from offload.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# In a Temporal identity (`1234@host keys=<current>,<decrypt-only>...`): the ids a process holds.
_IDENTITY_KEYS = re.compile(r"\bkeys=([0-9a-f]{16}(?:,[0-9a-f]{16})*)")


class EncryptionKeyError(ValueError):
    """A key in the settings is not base64 of 32 bytes, or a payload's key is unknown.

    Its message names a key id or a variable, never a key or a payload: logs may show it.
    """

    safe_to_log = True


def parse_key(text: str, variable: str = "OFFLOAD_ENCRYPTION_KEY") -> bytes:
    """The 32 bytes of a base64 AES-256 key (`openssl rand -base64 32` makes one)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as err:
        raise EncryptionKeyError(f"{variable}: not base64 ({err})") from err
    if len(key) != 32:
        raise EncryptionKeyError(f"{variable}: an AES-256 key is 32 bytes, this one {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A short public name for a key: it tells which key made a payload, never the key."""
    return hashlib.sha256(b"offload-key-id:" + key).hexdigest()[:16]


def new_key() -> str:
    """A fresh random key, base64, as `OFFLOAD_ENCRYPTION_KEY` takes it."""
    return base64.b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload, with the key id in its metadata.

    Payloads without the encrypted encoding (written before encryption was turned on) pass
    through `decode` unchanged, so turning encryption on leaves older histories readable.
    """

    def __init__(self, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        self.key_id = key_id(key)
        self._current = AESGCM(key)
        self._keys = {key_id(k): AESGCM(k) for k in old_keys}
        self._keys[self.key_id] = self._current

    @property
    def decrypt_only_ids(self) -> list[str]:
        """The ids of the keys this codec decrypts with but never encrypts with."""
        return [kid for kid in self._keys if kid != self.key_id]

    @property
    def identity_label(self) -> str:
        """`keys=<current>,<decrypt-only>...`, for the Temporal identity of the process."""
        return "keys=" + ",".join([self.key_id, *self.decrypt_only_ids])

    def describe(self) -> str:
        """The key ids held, as a person reads them."""
        also = ", ".join(self.decrypt_only_ids) or "none"
        return f"encrypts with key {self.key_id}; also decrypts {also}"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        # The key id is authenticated data: a payload cannot be relabelled to another key.
        sealed = self._current.encrypt(nonce, payload.SerializeToString(), self.key_id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()},
            data=nonce + sealed,
        )

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode()
        aes = self._keys.get(kid)
        if aes is None:
            raise EncryptionKeyError(
                f"payload encrypted with key {kid!r}, which this process does not hold "
                f"(it holds {', '.join(self._keys)}): add that key to "
                "OFFLOAD_ENCRYPTION_OLD_KEYS"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = aes.decrypt(nonce, sealed, kid.encode())
        except InvalidTag as err:
            raise EncryptionKeyError(f"payload under key {kid!r} fails authentication") from err
        return Payload.FromString(plain)


def encryption_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec of the settings' keys, or None when `OFFLOAD_ENCRYPTION_KEY` is unset."""
    if settings.encryption_key is None:
        return None
    key = parse_key(settings.encryption_key.get_secret_value())
    old_text = (
        settings.encryption_old_keys.get_secret_value() if settings.encryption_old_keys else ""
    )
    old = [
        parse_key(part, "OFFLOAD_ENCRYPTION_OLD_KEYS")
        for part in old_text.split(",")
        if part.strip()
    ]
    return EncryptionCodec(key, old)


def held_key_ids(identity: str) -> list[str] | None:
    """The key ids a Temporal identity says its process holds (current first), if it says."""
    match = _IDENTITY_KEYS.search(identity)
    return match.group(1).split(",") if match else None


def rotation_gaps(holders: dict[str, list[str]]) -> list[str]:
    """What a rolling key rotation would break now, one sentence each.

    `holders` maps each process (a Temporal identity) to the key ids it holds, current
    first. Every process must decrypt every key that any process encrypts with; a key
    current somewhere but missing elsewhere fails the jobs that cross between them.
    """
    gaps = []
    current = {keys[0]: who for who, keys in holders.items() if keys}
    for who, keys in sorted(holders.items()):
        for kid, encrypter in sorted(current.items()):
            if kid not in keys:
                gaps.append(f"{who} cannot decrypt key {kid}, current at {encrypter}")
    return gaps


class EncryptionFailureConverter(DefaultFailureConverterWithEncodedAttributes):
    """Failures with their messages encoded, and undecryptable inputs typed by their cause.

    The SDK turns a codec error on an activity's input into an untyped `ApplicationError`
    ("Failed decoding arguments", retryable), and on its heartbeat details into a
    non-retryable one, both caused by the codec's error. This converter gives such a
    failure the type `EncryptionKeyError` and the key id in its message, keeping the SDK's
    retryability. Job activities' retry policies (`workflows.policies.retry_policy`) list
    that type as non-retryable: the job is dead-lettered at once, saying which key is
    missing, instead of failing the same way on every attempt until it is out of them.
    The dead-letter queue's own activities retry it until a worker with the key takes them,
    so the entry is not lost. A workflow task that cannot decode its activation is left to
    the SDK: the task fails, visibly, and Temporal retries it until a worker with the key
    takes it.
    """

    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: Failure,
    ) -> None:
        key_error = _cause_of_type(exception, EncryptionKeyError)
        if isinstance(exception, ApplicationError) and key_error is not None:
            replacement = ApplicationError(
                f"{exception.message}: {key_error}",
                type=EncryptionKeyError.__name__,
                non_retryable=exception.non_retryable,
            )
            replacement.__traceback__ = exception.__traceback__
            exception = replacement
        super().to_failure(exception, payload_converter, failure)


def _cause_of_type(err: BaseException, cls: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current = err.__cause__
    while current is not None and id(current) not in seen:
        if isinstance(current, cls):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


# The codec server: the Web UI posts {"payloads": [...]} (protobuf JSON) to /encode and /decode.

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ui_origins(ui_url: str) -> list[str]:
    """The browser origins of the Web UI at `ui_url`; on loopback, by name and by address."""
    parts = urlsplit(ui_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.hostname not in LOOPBACK:
        return [origin]
    port = f":{parts.port}" if parts.port else ""
    return [origin] + [
        f"{parts.scheme}://{host}{port}"
        for host in ("localhost", "127.0.0.1")
        if host != parts.hostname
    ]


def codec_app(
    codec: PayloadCodec, *, allowed_origin: str | Sequence[str], token: str | None
) -> web.Application:
    """The HTTP app of the codec server.

    Only the allowed origins (the Web UI's) get CORS headers, and a request from any other
    origin, or with no `Origin` at all, is refused outright: a page elsewhere cannot make a
    browser decode for it, and a script that is no browser must say where it comes from
    (the `temporal` CLI with `--codec-header Origin=<UI URL>`). With a token, every request
    must carry `Authorization: Bearer <token>`.
    """
    allowed = [allowed_origin] if isinstance(allowed_origin, str) else list(allowed_origin)
    origins_allowed = {o.rstrip("/") for o in allowed}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or origin.rstrip("/") not in origins_allowed:
            return web.json_response(
                {"error": f"Origin must be one of {', '.join(sorted(origins_allowed))}"},
                status=403,
            )
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        elif token is not None and not _bearer_matches(request, token):
            response = web.json_response({"error": "missing or wrong bearer token"}, status=401)
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = (
            "Content-Type, X-Namespace, Authorization"
        )
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
        return response

    def endpoint(transform: Callable[[Sequence[Payload]], Awaitable[list[Payload]]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                payloads = json_format.Parse(await request.text(), Payloads())
            except (json_format.ParseError, ValueError) as err:
                return web.json_response({"error": f"body is not Payloads JSON: {err}"}, status=400)
            try:
                result = await transform(payloads.payloads)
            except EncryptionKeyError as err:
                return web.json_response({"error": str(err)}, status=422)
            body = json_format.MessageToJson(Payloads(payloads=result))
            return web.Response(text=body, content_type="application/json")

        return handle

    app = web.Application(middlewares=[guard])
    app.router.add_route("*", "/encode", endpoint(codec.encode))
    app.router.add_route("*", "/decode", endpoint(codec.decode))
    return app


def _bearer_matches(request: web.Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def settings_codec_app(settings: Settings) -> web.Application:
    """The codec server for `settings`: its keys, the Web UI's origin, its token."""
    codec = encryption_codec(settings)
    if codec is None:
        raise EncryptionKeyError("OFFLOAD_ENCRYPTION_KEY is not set: there is nothing to decode")
    return codec_app(
        codec,
        allowed_origin=ui_origins(settings.temporal_ui_url),
        token=settings.codec_server_token,
    )


async def start_codec_server(settings: Settings) -> web.AppRunner:
    """Serve at `OFFLOAD_CODEC_SERVER_ADDRESS` until `await runner.cleanup()`."""
    host, _, port = settings.codec_server_address.rpartition(":")
    if settings.codec_server_token is None and host not in LOOPBACK:
        # Anyone who can reach it could decrypt: off the loopback interface it needs a token.
        raise EncryptionKeyError(
            f"the codec server on {settings.codec_server_address} needs OFFLOAD_CODEC_TOKEN "
            "when it listens beyond this machine"
        )
    runner = web.AppRunner(settings_codec_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
    return runner
