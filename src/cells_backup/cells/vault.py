"""Reading (and, for tests and samples, writing) pydio-vault.json with the cells-vault-key.

Format (docs/CELLS.md §2.6): the master password (50 random bytes) is PKCS#7-padded to 32 bytes if
shorter, stretched with PBKDF2-HMAC-SHA256 (fixed salt, 50,000 rounds) into an AES-256 key; each
vault value is base64(nonce(12) || AES-GCM ciphertext+tag). Being able to open the vault is the
proof that a restored config, vault and key belong together.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ..errors import CellsBackupError, WrongPasswordError

SALT = bytes([224, 32, 0, 33, 78, 3, 25, 56, 54, 5, 54, 9, 79, 76, 189, 8])
ITERATIONS = 50_000
KEY_LEN = 32
NONCE_LEN = 12
KEYRING_SERVICE = "pydio.grpc.user-key"
KEYRING_KEY = "keyring.master"


class WrongVaultKeyError(WrongPasswordError):
    """The key file does not open this vault: they do not come from the same installation."""


def derive_key(master: bytes) -> bytes:
    """Cells' KeyFromPassword: pad short passwords (PKCS#7 to 32 bytes), then PBKDF2."""
    if len(master) < KEY_LEN:
        pad = KEY_LEN - len(master)
        master = master + bytes([pad]) * pad
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_LEN, salt=SALT, iterations=ITERATIONS)
    return kdf.derive(master)


def _find_master(node: Any) -> str | None:
    """The ``keyring.master`` value at any depth of the v4/v5 JSON key store."""
    if isinstance(node, dict):
        for key, value in node.items():
            if (
                key == KEYRING_KEY or key.endswith("/" + KEYRING_KEY) or key.endswith("." + KEYRING_KEY)
            ) and (isinstance(value, str)):
                return value
        for value in node.values():
            found = _find_master(value)
            if found is not None:
                return found
    return None


def parse_master_password(raw: bytes, source: str = "cells-vault-key") -> bytes:
    """Master password from key-file bytes: the v4/v5 JSON store or the v1–v3 raw bytes."""
    stripped = raw.strip()
    if stripped.startswith(b"{"):
        try:
            doc = json.loads(stripped.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
        if isinstance(doc, dict):
            value = _find_master(doc)
            if value is None:
                raise CellsBackupError(f"{source}: JSON key store without a {KEYRING_KEY} entry")
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise CellsBackupError(f"{source}: {KEYRING_KEY} is not valid base64") from None
    if not raw:
        raise CellsBackupError(f"{source}: key file is empty")
    return raw


def read_master_password(key_file: Path) -> bytes:
    """Read ``cells-vault-key`` (raw bytes in v3, JSON store in v4/v5) and return the master password."""
    try:
        raw = Path(key_file).read_bytes()
    except OSError as exc:
        raise CellsBackupError(f"{key_file}: cannot read key file ({exc.strerror or exc})") from None
    return parse_master_password(raw, str(key_file))


def encode_key_file(master: bytes, *, legacy_raw: bool = False) -> bytes:
    """Key-file bytes for ``master``: the v4/v5 JSON store, or the raw v1–v3 form."""
    if legacy_raw:
        return master
    store = {KEYRING_SERVICE: {KEYRING_KEY: base64.b64encode(master).decode("ascii")}}
    return json.dumps(store).encode("utf-8")


def read_vault_entries(vault_file: Path) -> dict[str, str]:
    """The raw ``{uuid: base64}`` map; an empty or missing-content file is an empty vault."""
    try:
        text = Path(vault_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CellsBackupError(f"{vault_file}: cannot read vault ({exc})") from None
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CellsBackupError(f"{vault_file}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise CellsBackupError(f"{vault_file}: unknown vault shape, expected {{uuid: base64 string}}")
    return doc


def open_vault(vault_file: Path, master: bytes) -> dict[str, bytes]:
    """Decrypt every vault entry; WrongVaultKeyError when the key does not match."""
    entries = read_vault_entries(vault_file)
    aead = AESGCM(derive_key(master))
    out: dict[str, bytes] = {}
    for uuid, value in entries.items():
        try:
            blob = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise CellsBackupError(f"{vault_file}: entry {uuid} is not base64") from None
        if len(blob) < NONCE_LEN + 16:
            raise CellsBackupError(f"{vault_file}: entry {uuid} is too short to be sealed")
        try:
            out[uuid] = aead.decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], None)
        except InvalidTag:
            raise WrongVaultKeyError(
                f"{vault_file}: the master key does not decrypt entry {uuid} (wrong cells-vault-key?)"
            ) from None
    return out


def seal_vault(vault_file: Path, master: bytes, secrets: dict[str, bytes]) -> None:
    """Write a pydio-vault.json holding ``secrets`` (used by tests and the sample generator)."""
    aead = AESGCM(derive_key(master))
    doc = {}
    for uuid, plaintext in secrets.items():
        nonce = os.urandom(NONCE_LEN)
        doc[uuid] = base64.b64encode(nonce + aead.encrypt(nonce, plaintext, None)).decode("ascii")
    Path(vault_file).write_text(json.dumps(doc, indent=2), encoding="utf-8")


def vault_problem(vault_file: Path | None, key_file: Path | None) -> str | None:
    """Why the installation's key does not open its vault, or None (also when there is nothing
    to check). Said before a backup, not first found after a restore."""
    if vault_file is None or key_file is None or not Path(key_file).exists():
        return None
    try:
        open_vault(vault_file, read_master_password(key_file))
    except WrongVaultKeyError as exc:
        return (f"{exc}; a restored Cells could not read its vaulted secrets (datasource keys): "
                f"find the key file that belongs to this vault and put it at {key_file}")
    except CellsBackupError as exc:
        return f"the vault cannot be checked: {exc}"
    return None
