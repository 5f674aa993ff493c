"""Keys and authenticated encryption for every stored object.

- Every object but key files is ``nonce(12) || AES-256-GCM(ciphertext || tag(16))``.
- Blob ids are keyed BLAKE3 of the plaintext, so ids reveal nothing without the key
  and every read can be verified against its id.
- The master key is wrapped by a key derived from a password with scrypt.
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

# scrypt cost: 32 MiB of memory and ~0.1 s on a small server core, per unlock (N=2^15, r=8, p=1,
# the usual interactive setting; raise it with `init --kdf-cost`).
DEFAULT_KDF = {"n": 2**15, "r": 8, "p": 1}


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


def open_sealed(cipher: AESGCM, sealed: bytes | memoryview, what: str, associated: bytes | None = None) -> bytes:
    """Decrypt and authenticate; raise IntegrityError naming ``what`` when it fails."""
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"{what}: too short to be an encrypted object")
    view = memoryview(sealed)
    try:
        return cipher.decrypt(bytes(view[:NONCE_SIZE]), bytes(view[NONCE_SIZE:]), associated)
    except InvalidTag:
        raise IntegrityError(f"{what}: authentication failed (damaged or not from this repository)") from None


def blob_id(identity_key: bytes, data: bytes | memoryview) -> bytes:
    """Keyed BLAKE3 of a blob's plaintext: its name in the repository."""
    return blake3.blake3(data, key=identity_key).digest()


def content_hash(data: bytes | memoryview) -> str:
    """Unkeyed BLAKE3 of a stored file, which names packs, indexes and snapshots."""
    return blake3.blake3(data).hexdigest()


def derive_wrapping_key(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password)
