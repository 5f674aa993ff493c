"""Keys and authenticated encryption for every stored object.

- Every object but key files is ``nonce(12) || AES-256-GCM(ciphertext || tag(16))``.
- Blob ids are keyed BLAKE3 of the plaintext, so ids reveal nothing without the key
  and every read can be verified against its id.
- The master key is wrapped by a key derived from a password with Argon2id (scrypt is still read).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import IntegrityError

NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE
ID_SIZE = 32

# Password hashing: Argon2id with 16 MiB of memory and 3 passes (about 0.1 s on one core; between
# OWASP's 19 MiB x 2 and 12 MiB x 3 settings). Raise it with `init --kdf-cost` (memory = 2^cost KiB).
# scrypt key files (``{"name": "scrypt", "n", "r", "p"}``) are still read.
DEFAULT_KDF = {"name": "argon2id", "memory_kib": 2**14, "iterations": 3, "lanes": 1}
KDF_LIMITS = {"memory_kib": 2**22, "iterations": 64, "lanes": 16, "n": 2**22, "r": 32, "p": 16}


@dataclass(frozen=True)
class MasterKey:
    """The repository's secret: an AES key for objects and a key for blob ids."""

    encryption: bytes
    identity: bytes

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(32), os.urandom(32))

    def to_bytes(self) -> bytes:
        return self.encryption + self.identity

    @classmethod
    def from_bytes(cls, raw: bytes) -> MasterKey:
        if len(raw) != 64:
            raise IntegrityError("master key has the wrong length")
        return cls(raw[:32], raw[32:])

    def cipher(self) -> AESGCM:
        return AESGCM(self.encryption)

    def mac_key(self, purpose: str) -> bytes:
        """A sub-key for authenticating plaintext metadata (e.g. key files)."""
        return blake3.blake3(self.identity, derive_key_context=f"cells-backup 2026 {purpose}").digest()


def seal(cipher: AESGCM, plaintext: bytes | memoryview, associated: bytes | None = None) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + cipher.encrypt(nonce, bytes(plaintext), associated)


def seal_buffer(cipher: AESGCM, plaintext: bytes | memoryview) -> bytes | bytearray:
    """`seal`, encrypting straight into the result where the cryptography version can
    (``encrypt_into``, 45 and later): one buffer per blob instead of two."""
    encrypt_into = getattr(cipher, "encrypt_into", None)
    if encrypt_into is None:
        return seal(cipher, plaintext)
    nonce = os.urandom(NONCE_SIZE)
    out = bytearray(NONCE_SIZE + len(plaintext) + TAG_SIZE)
    out[:NONCE_SIZE] = nonce
    encrypt_into(nonce, plaintext, None, memoryview(out)[NONCE_SIZE:])
    return out


def open_sealed(
    cipher: AESGCM,
    sealed: bytes | memoryview,
    what: str,
    associated: bytes | None = None,
    out: memoryview | None = None,
) -> bytes | memoryview:
    """Decrypt and authenticate; raise IntegrityError naming ``what`` when it fails.

    `out` (exactly ``len(sealed) - OVERHEAD`` bytes): decrypt into it and return it, where the
    cryptography version can (``decrypt_into``, 45 and later); otherwise a new bytes object.
    """
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"{what}: too short to be an encrypted object")
    view = memoryview(sealed)
    decrypt_into = getattr(cipher, "decrypt_into", None) if out is not None else None
    try:
        if decrypt_into is not None:
            decrypt_into(view[:NONCE_SIZE], view[NONCE_SIZE:], associated, out)
            return out
        return cipher.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], associated)  # no copy of the input
    except InvalidTag:
        raise IntegrityError(f"{what}: authentication failed (damaged or not from this repository)") from None


def blob_id(identity_key: bytes, data: bytes | memoryview) -> bytes:
    """Keyed BLAKE3 of a blob's plaintext: its name in the repository."""
    return blake3.blake3(data, key=identity_key).digest()


def content_hash(data: bytes | memoryview) -> str:
    """Unkeyed BLAKE3 of a stored file, which names packs, indexes and snapshots."""
    return blake3.blake3(data).hexdigest()


def kdf_params(kdf: dict) -> dict:
    """Normalise and bound KDF parameters (a hostile key file must not exhaust memory or time).

    Raises ValueError when they are unknown or out of bounds.
    """
    name = kdf.get("name", "scrypt" if "n" in kdf else "")
    if name == "argon2id":
        params = {"name": name, **{k: int(kdf[k]) for k in ("memory_kib", "iterations", "lanes")}}
    elif name == "scrypt":
        params = {"name": name, **{k: int(kdf[k]) for k in ("n", "r", "p")}}
    else:
        raise ValueError(f"unknown KDF {name!r}")
    for key, value in params.items():
        if key != "name" and not 1 <= value <= KDF_LIMITS[key]:
            raise ValueError(f"KDF parameter {key}={value} out of bounds")
    return params


def derive_wrapping_key(password: bytes, salt: bytes, kdf: dict) -> bytes:
    params = kdf_params(kdf)
    if params["name"] == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        return Argon2id(salt=salt, length=32, iterations=params["iterations"], lanes=params["lanes"],
                        memory_cost=max(params["memory_kib"], 8 * params["lanes"])).derive(password)
    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(password)
