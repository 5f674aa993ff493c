"""The vault opens with its own key only, with Cells' exact key derivation (docs/CELLS.md §2.6)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cells_backup.cells import open_vault, read_master_password, seal_vault
from cells_backup.cells.vault import WrongVaultKeyError, derive_key, encode_key_file
from cells_backup.errors import CellsBackupError, ExitCode

# The salt as docs/CELLS.md §2.6 gives it, not the module's constant.
SALT = bytes([224, 32, 0, 33, 78, 3, 25, 56, 54, 5, 54, 9, 79, 76, 189, 8])
SECRETS = {"6b1e0f4a-93d2-4c8e-b7a5-2f0c9d81e364": b"minio-secret", "2a0c": b"\x00\xffbinary"}


def test_round_trip_with_json_key_file(tmp_path: Path) -> None:
    master = os.urandom(50)
    (tmp_path / "cells-vault-key").write_bytes(encode_key_file(master))
    seal_vault(tmp_path / "pydio-vault.json", master, SECRETS)
    assert (
        open_vault(tmp_path / "pydio-vault.json", read_master_password(tmp_path / "cells-vault-key"))
        == SECRETS
    )


def test_json_key_file_layout_and_raw_v3_layout(tmp_path: Path) -> None:
    master = os.urandom(50)
    doc = json.loads(encode_key_file(master))
    assert base64.b64decode(doc["pydio.grpc.user-key"]["keyring.master"]) == master
    raw = tmp_path / "raw"
    raw.write_bytes(encode_key_file(master, legacy_raw=True))
    assert read_master_password(raw) == master


@pytest.mark.parametrize(
    "store",
    [
        lambda b: {"keyring.master": b},
        lambda b: {"pydio.grpc.user-key/keyring.master": b},
        lambda b: {"pydio": {"grpc": {"user-key": {"keyring.master": b}}}},
    ],
)
def test_key_store_variants(tmp_path: Path, store) -> None:
    master = os.urandom(50)
    path = tmp_path / "key"
    path.write_text(json.dumps(store(base64.b64encode(master).decode())))
    assert read_master_password(path) == master


def test_wrong_key_is_a_clear_wrong_password_error(tmp_path: Path) -> None:
    seal_vault(tmp_path / "v.json", os.urandom(50), SECRETS)
    with pytest.raises(WrongVaultKeyError) as err:
        open_vault(tmp_path / "v.json", os.urandom(50))
    assert "wrong cells-vault-key" in str(err.value)
    assert err.value.exit_code == ExitCode.WRONG_PASSWORD


def test_derivation_matches_an_independent_implementation(tmp_path: Path) -> None:
    """Short passwords are PKCS#7-padded to 32 bytes, then PBKDF2-HMAC-SHA256 x 50,000."""
    short = b"0123456789"
    padded = short + bytes([22]) * 22
    expected = hashlib.pbkdf2_hmac("sha256", padded, SALT, 50_000, 32)
    assert derive_key(short) == expected
    long = os.urandom(50)
    assert derive_key(long) == hashlib.pbkdf2_hmac("sha256", long, SALT, 50_000, 32)
    # A value sealed by hand the way Cells seals (nonce || ct+tag, base64) opens.
    nonce = os.urandom(12)
    value = base64.b64encode(nonce + AESGCM(expected).encrypt(nonce, b"hello", None)).decode()
    (tmp_path / "v.json").write_text(json.dumps({"u": value}))
    assert open_vault(tmp_path / "v.json", short) == {"u": b"hello"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "key file is empty"),
        (b'{"other": 1}', "without a keyring.master"),
        (b'{"keyring.master": "%%%"}', "not valid base64"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "k").write_bytes(content)
    with pytest.raises(CellsBackupError, match=message):
        read_master_password(tmp_path / "k")


def test_damaged_vault(tmp_path: Path) -> None:
    (tmp_path / "v.json").write_text('{"u": "not base64!"}')
    with pytest.raises(CellsBackupError, match="not base64"):
        open_vault(tmp_path / "v.json", b"x")
    (tmp_path / "v.json").write_text('{"u": ')
    with pytest.raises(CellsBackupError, match="invalid JSON"):
        open_vault(tmp_path / "v.json", b"x")
    (tmp_path / "v.json").write_text("")
    assert open_vault(tmp_path / "v.json", b"x") == {}


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(CellsBackupError, match="cannot read key file"):
        read_master_password(tmp_path / "nope")
