"""Ed25519 signatures over the exact body bytes (contract section 2).

The station holds the central system's public keys by id and acts only on bodies whose
`x-signature` verifies under the key named by `x-key-id`. The private-key side here serves
the reference tools (`printstation keys generate`, `printstation submit`) and the tests.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from printstation.drivers.errors import PrintstationError

SIGNATURE_HEADER = "x-signature"
KEY_ID_HEADER = "x-key-id"


class SignatureError(PrintstationError):
    """The body is unsigned, signed by an unknown key, or its signature does not verify."""

    code = "bad_signature"


class KeyFileError(PrintstationError):
    """A key file that cannot be read or is not an Ed25519 key."""

    code = "key_file"


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(data.strip(), validate=True))
        except (ValueError, binascii.Error):
            raise KeyFileError(f"{path}: not a PEM or base64 Ed25519 public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 public key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
    except ValueError:
        raise KeyFileError(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def generate_keypair(directory: Path, key_id: str) -> tuple[Path, Path]:
    """Write `<id>.key` (private, 0600) and `<id>.pub` (public) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    priv_path, pub_path = directory / f"{key_id}.key", directory / f"{key_id}.pub"
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv_path, pub_path


def signature_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Only the headers that carry a body's signature, as strings: what a station stores.

    The rest of an AMQP header table is the broker's (`x-death` holds timestamps and
    nested tables on every re-driven dead letter) and is neither needed nor JSON.
    """
    out = {}
    for name in (SIGNATURE_HEADER, KEY_ID_HEADER):
        value = (headers or {}).get(name)
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if isinstance(value, str):
            out[name] = value[:512]
    return out


def sign_headers(private: Ed25519PrivateKey, key_id: str, body: bytes) -> dict[str, str]:
    """The AMQP headers that carry a body's signature."""
    return {
        SIGNATURE_HEADER: base64.b64encode(private.sign(body)).decode(),
        KEY_ID_HEADER: key_id,
    }


class Verifier:
    """Checks signatures against the trusted keys, or says plainly that it does not."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey], *, enabled: bool = True):
        self._keys = dict(keys)
        self.enabled = enabled

    @classmethod
    def from_files(cls, files: Mapping[str, Path], *, enabled: bool = True) -> Verifier:
        return cls({kid: load_public_key(Path(p)) for kid, p in files.items()}, enabled=enabled)

    def verify(self, body: bytes, headers: Mapping[str, Any] | None) -> None:
        if not self.enabled:
            return
        headers = headers or {}
        sig_b64, key_id = headers.get(SIGNATURE_HEADER), headers.get(KEY_ID_HEADER)
        if isinstance(sig_b64, bytes):
            sig_b64 = sig_b64.decode("ascii", "replace")
        if isinstance(key_id, bytes):
            key_id = key_id.decode("ascii", "replace")
        if not sig_b64 or not key_id:
            raise SignatureError("unsigned: x-signature and x-key-id headers are required")
        if not isinstance(sig_b64, str) or not isinstance(key_id, str):
            raise SignatureError("x-signature and x-key-id must be strings")
        key = self._keys.get(key_id)
        if key is None:
            raise SignatureError(f"unknown key id {key_id[:64]!r}")
        try:
            signature = base64.b64decode(sig_b64, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("x-signature is not base64") from None
        if len(signature) != 64:
            raise SignatureError(f"x-signature is {len(signature)} bytes, not 64")
        try:
            key.verify(signature, body)
        except InvalidSignature:
            raise SignatureError(f"signature does not verify under key {key_id!r}") from None
