"""Key files: the master key wrapped by password-derived keys (several passwords allowed).

A key file is plain JSON so it can be read before anything is decrypted; its
``mac`` (keyed with a sub-key of the master key) lets `check` detect any change
to key files whose password it does not know.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import blake3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import CellsBackupError, IntegrityError, WrongPasswordError
from .backends.base import Backend
from .crypto import DEFAULT_KDF, MasterKey, derive_wrapping_key, kdf_params, open_sealed, seal

KEY_FORMAT_VERSION = 1
_WRAP_AD = b"cells-backup master key"


@dataclass
class KeyFile:
    id: str
    created: str
    hostname: str
    username: str
    raw: dict

    @property
    def name(self) -> str:
        return f"keys/{self.id}"


def _mac_payload(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k not in ("mac", "checksum")}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _checksum(doc: dict) -> str:
    """Unkeyed: lets damage be named even when no password is known."""
    return blake3.blake3(_mac_payload(doc)).hexdigest()


def _mac(master: MasterKey, doc: dict) -> str:
    return blake3.blake3(_mac_payload(doc), key=master.mac_key("key file")).hexdigest()


def make_key_file(master: MasterKey, password: bytes, kdf: dict | None = None) -> tuple[str, bytes]:
    """Wrap ``master`` with ``password``; returns (key id, file bytes)."""
    params = kdf_params(DEFAULT_KDF if kdf is None else kdf)
    salt = os.urandom(16)
    wrapping = derive_wrapping_key(password, salt, params)
    key_id = secrets.token_hex(16)
    doc = {
        "version": KEY_FORMAT_VERSION,
        "id": key_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "username": getpass.getuser(),
        "kdf": {**params, "salt": base64.b64encode(salt).decode()},
        "master": base64.b64encode(seal(AESGCM(wrapping), master.to_bytes(), _WRAP_AD)).decode(),
    }
    doc["mac"] = _mac(master, doc)
    doc["checksum"] = _checksum(doc)
    return key_id, json.dumps(doc, indent=2).encode() + b"\n"


def parse_key_file(name: str, data: bytes) -> KeyFile:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        version = doc["version"]
        if not isinstance(version, int):
            raise ValueError("bad version")
        if version > KEY_FORMAT_VERSION:
            raise CellsBackupError(
                f"{name}: key format {version} is newer than this cells-backup understands; upgrade it"
            )
        if doc.get("checksum") != _checksum(doc):
            raise ValueError("checksum mismatch")
        return KeyFile(
            id=str(doc["id"]),
            created=str(doc.get("created", "")),
            hostname=str(doc.get("hostname", "")),
            username=str(doc.get("username", "")),
            raw=doc,
        )
    except CellsBackupError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{name}: not a valid key file ({exc})") from None


def unwrap(key: KeyFile, password: bytes) -> MasterKey | None:
    """The master key if ``password`` opens this key file, else None."""
    doc = key.raw
    try:
        kdf = doc["kdf"]
        params = kdf_params(kdf)  # bounded: refuses absurd costs
        salt = base64.b64decode(kdf["salt"], validate=True)
        sealed = base64.b64decode(doc["master"], validate=True)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    try:
        wrapping = derive_wrapping_key(password, salt, params)
    except ValueError:  # parameters the KDF itself rejects (e.g. scrypt n not a power of two)
        return None
    try:
        master = MasterKey.from_bytes(open_sealed(AESGCM(wrapping), sealed, key.name, _WRAP_AD))
    except IntegrityError:
        return None
    return master


def verify_mac(key: KeyFile, master: MasterKey) -> bool:
    mac = key.raw.get("mac")
    return isinstance(mac, str) and secrets.compare_digest(mac, _mac(master, key.raw))


def list_key_files(backend: Backend) -> list[KeyFile]:
    keys = []
    for name, _size in backend.list("keys/"):
        keys.append(parse_key_file(name, backend.read(name)))
    return keys


def open_master_key(backend: Backend, password: bytes,
                    belongs: Callable[[MasterKey], bool] | None = None) -> tuple[MasterKey, KeyFile]:
    """Try the password on every key file; WrongPasswordError if none opens.

    ``belongs``: whether a master key is this repository's (it opens its config). A key file
    left by an `init` interrupted before its config was written opens with the same password
    but holds another master key: it is passed over.
    """
    damaged: list[str] = []
    candidates: list[KeyFile] = []
    for name, _size in backend.list("keys/"):
        try:
            candidates.append(parse_key_file(name, backend.read(name)))
        except IntegrityError:
            damaged.append(name)
    if not candidates and not damaged:
        raise IntegrityError("the repository has no key file (keys/ is empty): it cannot be opened; "
                             "put back a key file from a copy of the repository")
    stray = False
    for key in candidates:
        master = unwrap(key, password)
        if master is not None:
            if belongs is None or belongs(master):
                return master, key
            stray = True
    if stray:
        raise IntegrityError("config: authentication failed (damaged or not from this repository)")
    if not candidates and damaged:
        raise IntegrityError(f"every key file is damaged ({', '.join(damaged)}); the repository cannot be opened")
    if damaged:
        raise WrongPasswordError(
            f"wrong password, or its key file is damaged: {', '.join(damaged)} failed its checksum"
        )
    raise WrongPasswordError("wrong password: no key in the repository opens with it")
