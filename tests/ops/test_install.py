"""scripts/install: a virtualenv from Debian's python3 plus a link; upgrade in place; uninstall.

The installer runs for real (venv, pip from the package index or its cache) on a copy of the
source, into a temporary prefix and bin dir, so /opt and /usr/local are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PYTHON = "/usr/bin/python3"
needs_debian_python = pytest.mark.skipif(not os.access(DEBIAN_PYTHON, os.X_OK),
                                         reason=f"{DEBIAN_PYTHON} (the distribution's Python) is absent")


def copy_source(dest: Path) -> Path:
    """What the installer needs, outside the checkout: pip's build/ stays out of it, versions can be bumped."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("src", "scripts"):
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=ignore)
    return dest


def bump_version(src: Path, new: str) -> None:
    version_files = ((src / "pyproject.toml", "version"), (src / "src" / "cells_backup" / "__init__.py", "__version__"))
    for path, key in version_files:
        text, count = re.subn(rf'^{key} = "[^"]+"', f'{key} = "{new}"', path.read_text(), count=1, flags=re.M)
        assert count == 1, path
        path.write_text(text)


def current_version() -> str:
    return re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M).group(1)


def installer_env(python: str | None = DEBIAN_PYTHON, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHON", "CELLS_BACKUP_PREFIX", "CELLS_BACKUP_BIN_DIR")}
    if python is not None:
        env["PYTHON"] = python
    return {**env, **extra}


def run_installer(src: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(src / "scripts" / "install"), *args], capture_output=True, text=True,
                          env=env or installer_env(), timeout=600)


def run_installed(bin_dir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`cells-backup ...` found on a root-like PATH that has the link's directory and no other Python."""
    path = f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin"
    return subprocess.run(["cells-backup", *args], capture_output=True, env={**env, "PATH": path}, timeout=300)


@pytest.fixture
def layout(tmp_path):
    """A source copy, a prefix and a bin dir standing in for /opt/cells-backup and /usr/local/bin."""
    return copy_source(tmp_path / "source"), tmp_path / "opt" / "cells-backup", tmp_path / "usr-local-bin"


@needs_debian_python
def test_install_run_upgrade_uninstall(tmp_path, layout):
    src, prefix, bin_dir = layout
    where = ("--prefix", str(prefix), "--bin-dir", str(bin_dir))
    version = current_version()

    # No PYTHON, and another python3 (this test run's) first on PATH: Debian's is still the one used.
    path_first = f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}"
    first = run_installer(src, *where, env=installer_env(python=None, PATH=path_first))
    assert first.returncode == 0, first.stderr
    link = bin_dir / "cells-backup"
    assert f"installed cells-backup {version} in {prefix}" in first.stdout
    assert os.readlink(link) == str(prefix / "bin" / "cells-backup")
    base = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert base == "/usr"  # built on Debian's interpreter, not whatever python3 is first on PATH

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLS_BACKUP_", "VIRTUAL_ENV"))}
    password = tmp_path / "password"
    password.write_text("correct horse battery\n")
    password.chmod(0o600)
    env.update(CELLS_BACKUP_REPOSITORY=str(tmp_path / "repo"), CELLS_BACKUP_PASSWORD_FILE=str(password))
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_bytes(b"hello from the installed command\n")

    assert run_installed(bin_dir, "--version", env=env).stdout.decode().strip() == f"cells-backup, version {version}"
    assert run_installed(bin_dir, "init", "--kdf-cost", "10", env=env).returncode == 0
    backup = run_installed(bin_dir, "backup", "--no-cells", "--extra-path", str(data), env=env)
    assert backup.returncode == 0, backup.stderr
    snapshots = json.loads(run_installed(bin_dir, "snapshots", "--json", env=env).stdout)
    assert len(snapshots) == 1 and not snapshots[0]["partial"]
    tar = run_installed(bin_dir, "dump", "latest", env=env)
    assert tar.returncode == 0, tar.stderr
    with tarfile.open(fileobj=BytesIO(tar.stdout)) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("hello.txt"))
        assert archive.extractfile(member).read() == b"hello from the installed command\n"

    # The timer must run the installed script, not a bare name nor the interpreter of the test run.
    config = tmp_path / "config.toml"
    config.write_text(f'repository = "{tmp_path / "repo"}"\npassword_file = "{password}"\n')
    units = json.loads(run_installed(bin_dir, "--config", str(config), "schedule", "--systemd", "--json",
                                     env=env).stdout)
    exec_start = next(line for line in units["cells-backup.service"].splitlines() if line.startswith("ExecStart="))
    assert exec_start == f"ExecStart={prefix}/bin/cells-backup --config {config} run"

    # Upgrade: the same command from newer source, in place; the repository stays readable.
    bump_version(src, f"{version}.post1")
    second = run_installer(src, *where, env=installer_env(python=DEBIAN_PYTHON))
    assert second.returncode == 0, second.stderr
    assert f"upgraded cells-backup {version}.post1 in {prefix}" in second.stdout
    assert run_installed(bin_dir, "--version", env=env).stdout.decode().strip().endswith(f"{version}.post1")
    assert [s["id"] for s in json.loads(run_installed(bin_dir, "snapshots", "--json", env=env).stdout)] \
        == [snapshots[0]["id"]]

    gone = run_installer(src, "--uninstall", *where)
    assert gone.returncode == 0, gone.stderr
    assert not prefix.exists() and not link.is_symlink() and not link.exists()
    assert "kept: the config" in gone.stdout
    assert password.read_text() == "correct horse battery\n"
    assert (tmp_path / "repo" / "config").is_file()


@needs_debian_python
def test_rerun_rebuilds_a_virtualenv_that_lost_its_python_packages(layout):
    """After a release upgrade the venv's python is a newer one without its site-packages: re-running repairs it."""
    src, prefix, bin_dir = layout
    where = ("--prefix", str(prefix), "--bin-dir", str(bin_dir))
    assert run_installer(src, *where).returncode == 0
    for site_packages in prefix.glob("lib/python3*/site-packages"):
        shutil.rmtree(site_packages)
    broken = subprocess.run([str(bin_dir / "cells-backup"), "--version"], capture_output=True, text=True)
    assert broken.returncode != 0
    again = run_installer(src, *where)
    assert again.returncode == 0, again.stderr
    fixed = subprocess.run([str(bin_dir / "cells-backup"), "--version"], capture_output=True, text=True)
    assert fixed.stdout == f"cells-backup, version {current_version()}\n"


def test_refuses_a_prefix_that_is_not_a_virtualenv(layout):
    """--prefix /usr by mistake: neither install nor uninstall touches what is there."""
    src, prefix, bin_dir = layout
    prefix.mkdir(parents=True)
    (prefix / "precious").write_text("keep me")
    for extra in ((), ("--uninstall",)):
        proc = run_installer(src, *extra, "--prefix", str(prefix), "--bin-dir", str(bin_dir),
                             env=installer_env(python=None))
        assert proc.returncode == 1
        assert proc.stderr == (f"cells-backup: error: {prefix} is not empty and is not a virtualenv; "
                               "give another --prefix\n")
        assert sorted(os.listdir(prefix)) == ["precious"]
    assert not bin_dir.exists()


def test_refuses_to_replace_a_command_it_did_not_link(layout):
    """An older `pip install` left a script in /usr/local/bin: say so rather than overwrite it."""
    src, prefix, bin_dir = layout
    bin_dir.mkdir()
    (bin_dir / "cells-backup").write_text("#!/bin/sh\necho old\n")
    proc = run_installer(src, "--prefix", str(prefix), "--bin-dir", str(bin_dir), env=installer_env(python=None))
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"cells-backup: error: {bin_dir}/cells-backup exists and is not a link into ")
    assert proc.stderr.count("\n") == 1
    assert (bin_dir / "cells-backup").read_text() == "#!/bin/sh\necho old\n"
    assert not prefix.exists()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_unwritable_prefix_is_one_line_before_anything_is_made(layout, tmp_path):
    """Run without root for /opt: one line naming the directory, before any virtualenv or link is made."""
    src, _, bin_dir = layout
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                           str(src / "scripts" / "install"), "--prefix", str(locked / "cells-backup"),
                           "--bin-dir", str(bin_dir)], capture_output=True, text=True, env=installer_env(python=None),
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == (f"cells-backup: error: cannot write to {locked} "
                           "(run as root, or give --prefix and --bin-dir)\n")
    assert os.listdir(locked) == [] and not bin_dir.exists()


def test_bad_interpreter_and_bad_flags_are_one_line(layout):
    src, prefix, bin_dir = layout
    missing = run_installer(src, "--prefix", str(prefix), env=installer_env(python="/nonexistent/python3"))
    assert missing.returncode == 1
    assert missing.stderr == "cells-backup: error: /nonexistent/python3: no such interpreter\n"
    bad_flag = run_installer(src, "--prefx", str(prefix))
    assert bad_flag.returncode == 2
    assert bad_flag.stderr.startswith("cells-backup: error: unknown argument --prefx; usage: scripts/install ")
    assert not prefix.exists()


def older_python() -> str | None:
    """A real Python < 3.11 on this machine (pythonX.Y on PATH, or a pyenv version), if there is one."""
    candidates = [shutil.which(f"python3.{minor}") for minor in range(10, 5, -1)]
    if pyenv := shutil.which("pyenv"):
        listed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True).stdout.split()
        for version in listed:
            root = subprocess.run([pyenv, "prefix", version], capture_output=True, text=True).stdout.strip()
            candidates += [os.path.join(root, "bin", "python3"), os.path.join(root, "bin", "python")] if root else []
    for candidate in filter(None, candidates):
        try:
            probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info < (3, 11))"],
                                   capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


def test_too_old_python_is_refused_in_one_line(layout):
    old = older_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine to try")
    src, prefix, bin_dir = layout
    proc = run_installer(src, "--prefix", str(prefix), "--bin-dir", str(bin_dir), env=installer_env(python=old))
    assert proc.returncode == 1
    assert re.fullmatch(rf"cells-backup: error: Python >= 3\.11 is needed, {re.escape(old)} is [23]\.\d+ "
                        r"\(set PYTHON=.*\)\n", proc.stderr), proc.stderr
    assert not prefix.exists() and not bin_dir.exists()
