"""The working dir is found in Cells' own order, and relocation variables are honoured."""

from __future__ import annotations

from pathlib import Path

import pytest

from cells_backup.cells import find_working_dir, load_installation
from cells_backup.cells.locate import default_working_dirs, resolve_locations
from cells_backup.cells.sample import make_sample_installation
from cells_backup.errors import CellsBackupError


def _cells(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "pydio.json").write_text("{}")
    return path


def test_explicit_dir_wins_over_env(tmp_path: Path) -> None:
    explicit, env_dir = _cells(tmp_path / "a"), _cells(tmp_path / "b")
    found = find_working_dir(
        str(explicit), env={"CELLS_WORKING_DIR": str(env_dir)}, platform="linux", home=str(tmp_path)
    )
    assert found == explicit


def test_env_dir_wins_over_os_default(tmp_path: Path) -> None:
    env_dir = _cells(tmp_path / "b")
    _cells(tmp_path / "home" / ".config" / "pydio" / "cells")
    found = find_working_dir(
        env={"CELLS_WORKING_DIR": str(env_dir)}, platform="linux", home=str(tmp_path / "home")
    )
    assert found == env_dir


def test_legacy_pydio_variable_is_copied_over_cells_one(tmp_path: Path) -> None:
    legacy, new = _cells(tmp_path / "legacy"), _cells(tmp_path / "new")
    env = {"PYDIO_WORKING_DIR": str(legacy), "CELLS_WORKING_DIR": str(new)}
    # Cells' initEnvPrefixes does os.Setenv(CELLS_X, PYDIO_X) for every non-empty PYDIO_X.
    assert find_working_dir(env=env, platform="linux", home=str(tmp_path)) == legacy


def test_explicit_dir_without_config_fails_even_if_a_default_exists(tmp_path: Path) -> None:
    _cells(tmp_path / "home" / ".config" / "pydio" / "cells")
    with pytest.raises(CellsBackupError) as err:
        find_working_dir(str(tmp_path / "empty"), env={}, platform="linux", home=str(tmp_path / "home"))
    assert str(tmp_path / "empty") in str(err.value) and "--cells-dir" in str(err.value)


def test_linux_default_and_xdg(tmp_path: Path) -> None:
    home = tmp_path / "home"
    default = _cells(home / ".config" / "pydio" / "cells")
    assert find_working_dir(env={}, platform="linux", home=str(home)) == default
    xdg = _cells(tmp_path / "xdg" / "pydio" / "cells")
    assert (
        find_working_dir(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, platform="linux", home=str(home))
        == xdg
    )


def test_macos_and_windows_defaults() -> None:
    assert default_working_dirs({}, "darwin", "/Users/u") == [
        "/Users/u/Library/Application Support/Pydio/cells"
    ]
    assert default_working_dirs({"APPDATA": r"C:\Users\u\AppData\Roaming"}, "win32", r"C:\Users\u") == [
        r"C:\Users\u\AppData\Roaming\Pydio\cells"
    ]
    assert default_working_dirs({}, "freebsd13", "/home/u") == ["/home/u/.config/pydio/cells"]


def test_macos_default_is_found(tmp_path: Path) -> None:
    wd = _cells(tmp_path / "Library" / "Application Support" / "Pydio" / "cells")
    assert find_working_dir(env={}, platform="darwin", home=str(tmp_path)) == wd


def test_nothing_found_lists_what_was_tried(tmp_path: Path) -> None:
    if Path("/var/cells/pydio.json").exists():
        pytest.skip("this machine has a real /var/cells")
    with pytest.raises(CellsBackupError) as err:
        find_working_dir(env={}, platform="linux", home=str(tmp_path))
    text = str(err.value)
    assert str(tmp_path / ".config" / "pydio" / "cells") in text and "/var/cells" in text
    assert "--cells-dir" in text and "CELLS_WORKING_DIR" in text and "\n" not in text


def test_relocation_variables(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    env = {
        "CELLS_DATA_DIR": "/mnt/data",
        "PYDIO_LOG_DIR": "/var/log/cells",
        "CELLS_SERVICES_DIR": "/srv/services",
        "CELLS_KEYRING": "file:///etc/cells/key?keyring=true",
    }
    loc = resolve_locations(wd, env)
    assert loc.data_dir == Path("/mnt/data") and loc.log_dir == Path("/var/log/cells")
    assert loc.services_dir == Path("/srv/services")
    assert loc.key_file == Path("/etc/cells/key") and loc.key_location is None
    assert loc.env["CELLS_LOG_DIR"] == "/var/log/cells"
    default = resolve_locations(wd, {})
    assert (default.data_dir, default.log_dir, default.services_dir) == (
        wd / "data",
        wd / "logs",
        wd / "services",
    )
    assert default.key_file == wd / "cells-vault-key"


def test_keyring_in_hashicorp_vault_is_held_outside(tmp_path: Path) -> None:
    loc = resolve_locations(tmp_path, {"CELLS_KEYRING": "vault://vault.local:8200/secret?key=cells"})
    assert loc.key_file is None and loc.key_location == "vault://vault.local:8200/secret"


def test_installation_records_relocated_dirs(tmp_path: Path) -> None:
    make_sample_installation(tmp_path / "wd")
    inst = load_installation(tmp_path / "wd", env={"CELLS_LOG_DIR": str(tmp_path / "logs")})
    assert inst.log_dir == tmp_path / "logs"
    assert inst.env == {"CELLS_LOG_DIR": str(tmp_path / "logs")}


def test_missing_key_file_is_reported_as_held_elsewhere(tmp_path: Path) -> None:
    make_sample_installation(tmp_path / "wd")
    (tmp_path / "wd" / "cells-vault-key").unlink()
    inst = load_installation(tmp_path / "wd", env={})
    assert inst.key_file is None and "os-keyring" in (inst.key_location or "")


def test_env_dir_without_config_does_not_fall_back_to_another_installation(tmp_path: Path) -> None:
    _cells(tmp_path / "home" / ".config" / "pydio" / "cells")
    env = {"CELLS_WORKING_DIR": str(tmp_path / "gone")}
    with pytest.raises(CellsBackupError, match="CELLS_WORKING_DIR"):
        find_working_dir(env=env, platform="linux", home=str(tmp_path / "home"))


def test_relative_explicit_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _cells(tmp_path / "wd")
    monkeypatch.chdir(tmp_path)
    assert find_working_dir("wd", env={}, platform="linux", home=str(tmp_path)) == tmp_path / "wd"
