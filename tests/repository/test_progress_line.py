"""The progress line of the long commands: on a terminal (a pseudo-terminal here) it shows percent,
files and bytes of the total, rate and ETA, redrawn at most 4 times a second; with stderr not a
terminal, or with -q or --json, nothing of it is written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import cli_env, run_cli
from terminal import last_frame, run_on_terminal


def test_backup_and_restore_show_percent_files_and_bytes_of_the_total(repo, source, tmp_path, env):
    first = run_on_terminal("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env)
    assert first.code == 0, first.terminal
    assert "snapshot" in first.stdout and "saved" in first.stdout
    # No parent snapshot: the metadata walkers counted the files and bytes (the hard link twice,
    # as the backup does; not the symlinks).
    assert re.match(r"backup\s+100%\s+files 5/5\s+5\.0 MiB/5\.0 MiB\b", last_frame(first, "backup")), first.frames()

    again = run_on_terminal("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env)
    assert again.code == 0, again.terminal
    assert re.match(r"backup\s+100%\s+files 5/5\s+5\.0 MiB/5\.0 MiB\b", last_frame(again, "backup")), again.frames()
    assert again.terminal.endswith("\x1b[2K")  # the line is wiped at the end; the result is on stdout

    restored = run_on_terminal("--repo", repo, "restore", "latest", "--target", str(tmp_path / "out"), env=env)
    assert restored.code == 0, restored.terminal
    assert "restored 7 files" in restored.stdout  # with the two symlinks, which the line does not count
    assert re.match(r"restore\s+100%\s+files 5/5\s+5\.0 MiB/5\.0 MiB\b", last_frame(restored, "restore"))

    only = run_on_terminal("--repo", repo, "restore", "latest", "--target", str(tmp_path / "only"),
                           "--only", f"{source}/dir/sub", env=env)
    assert only.code == 0, only.terminal
    assert re.match(r"restore\s+100%\s+files 1/1\s+1000 B/1000 B\b", last_frame(only, "restore"))


def test_a_first_backup_without_the_walkers_shows_what_is_done(repo, source):
    """No find on the PATH: nothing counts ahead, so no percent, only what is done."""
    env = cli_env(PATH="/nonexistent")
    run = run_on_terminal("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env)
    assert run.code == 0, run.terminal
    assert re.match(r"backup\s+files 5\s+5\.0 MiB\s", last_frame(run, "backup")), run.frames()
    assert "%" not in "".join(run.frames())


def test_check_prune_and_copy_count_packs_and_blobs(repo, tmp_path, env):
    src = tmp_path / "data"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}").write_bytes(os.urandom(600_000))
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)

    check = run_on_terminal("--repo", repo, "check", "--read-data", env=env)
    assert check.code == 0, check.terminal
    packs = sum(len(files) for _d, _s, files in os.walk(Path(repo) / "data"))
    size = sum(f.stat().st_size for f in (Path(repo) / "data").rglob("*") if f.is_file())
    line = last_frame(check, "check")
    assert re.match(rf"check\s+100%\s+packs {packs}/{packs}\s+(\S+ \S+)/\1\s", line), line
    assert f"{packs} packs read" in check.stdout and size > 1_500_000

    copy = run_on_terminal("--repo", repo, "copy", "--to-repo", str(tmp_path / "other"), env=env)
    assert copy.code == 0, copy.terminal
    line = last_frame(copy, "copy")
    assert re.match(r"copy\s+100%\s+blobs (\d+)/\1\s+1\.7 MiB/1\.7 MiB\b", line), line

    (src / "f0").unlink()
    run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(src), env=env, check=True)
    run_cli("--repo", repo, "forget", "--keep-last", "1", env=env, check=True)
    prune = run_on_terminal("--repo", repo, "prune", "--max-unused", "0%", env=env)
    assert prune.code == 0, prune.terminal
    deleted = int(re.search(r"prune done: (\d+) packs deleted", prune.stdout).group(1))
    assert deleted >= 1
    line = last_frame(prune, "prune")
    assert re.match(rf"prune\s+100%\s+packs {deleted}/{deleted}\s", line), line


def test_rate_and_eta_show_and_redraws_stay_within_four_a_second(tmp_path):
    """The line itself over 2.5 s of steady work: a rate, an ETA that shrinks, and at most 4 redraws
    a second (checked by `run_on_terminal`); at least a few, or nothing was being redrawn."""
    script = (
        "import time\n"
        "from cells_backup.repository.progress import Progress\n"
        "from cells_backup.cli.progress import progress_shown\n"
        "p = Progress()\n"
        "p.set_totals(1000, 1000 * 2**20)\n"
        "with progress_shown(p, 'restore'):\n"
        "    for _ in range(25):\n"
        "        time.sleep(0.1)\n"
        "        p.files += 10\n"
        "        p.bytes += 10 * 2**20\n"
    )
    run = run_on_terminal(program=[sys.executable, "-c", script], env=cli_env())
    assert run.code == 0, run.terminal
    assert run.redraws() >= 4, run.terminal
    lines = [f for f in run.frames() if "ETA" in f]
    assert lines, run.frames()
    m = re.match(r"restore\s+(\d+)%\s+files (\d+)/1,000\s+(\S+) MiB/1000\.0 MiB\s+(\S+) MiB/s\s+"
                 r"ETA (?:(\d+)m)?(\d+)s$", lines[-1])
    assert m, lines[-1]
    percent, files, rate, eta = int(m[1]), int(m[2]), float(m[4]), int(m[5] or 0) * 60 + int(m[6])
    assert percent == files // 10 and 0 < percent <= 25
    # 100 MiB a second at most (less when the machine is slow), so the 750 MiB left take 7 s or more
    assert 0 < rate <= 110 and eta >= 6


def test_nothing_when_stderr_is_not_a_terminal_or_with_quiet_or_json(repo, source, env):
    piped = run_cli("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), env=env)
    assert piped.code == 0
    assert "files 5" not in piped.stderr and "\x1b[" not in piped.stderr and "\r" not in piped.stderr

    quiet = run_on_terminal("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "-q", env=env)
    assert quiet.code == 0 and quiet.terminal == ""
    as_json = run_on_terminal("--repo", repo, "backup", "--no-cells", "--extra-path", str(source), "--json",
                              env=env)
    assert as_json.code == 0 and as_json.terminal == ""
    assert json.loads(as_json.stdout)["snapshot"]["summary"]["total_files"] == 5


def test_rich_is_imported_only_when_stderr_is_a_terminal(repo, source, env):
    """Startup time: `rich` loads only to draw the line."""
    script = (
        "import sys\n"
        "from cells_backup.cli.main import main\n"
        "try:\n"
        f"    main(['--repo', {repo!r}, 'backup', '--no-cells', '--extra-path', {str(source)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('progress module:', 'cells_backup.cli.progress' in sys.modules)\n"
        "print('rich loaded:', 'rich' in sys.modules)\n"
    )
    piped = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "saved" in piped.stdout, piped.stderr
    assert "progress module: True" in piped.stdout and "rich loaded: False" in piped.stdout
    on_terminal = run_on_terminal(program=[sys.executable, "-c", script], env=env)
    assert "saved" in on_terminal.stdout, on_terminal.terminal
    assert "rich loaded: True" in on_terminal.stdout


def test_totals_come_from_the_best_source_and_never_fall_below_what_is_done():
    from cells_backup.repository.progress import Progress

    p = Progress()
    assert p.totals() == (None, None)  # nothing counted ahead: no percent rather than a wrong one
    p.files_total, p.bytes_total = 10, 1000  # the scanner, a few thousand entries ahead
    assert p.totals() == (None, None)
    p.walked(50, 9000)
    assert p.totals() == (50, 9000)
    p.expected_files, p.expected_bytes = 40, 8000  # the parent snapshot's: taken first
    assert p.totals() == (40, 8000)
    p.files_total, p.bytes_total = 45, 8500  # the tree grew since
    assert p.totals() == (45, 8500)
    p.files, p.bytes = 47, 8800  # a file grew while read
    assert p.totals() == (47, 8800)
    p.restart()
    assert (p.files, p.bytes, p.expected_files) == (0, 0, 0) and p.totals() == (50, 9000)
    p.set_totals(3, 300)
    assert p.totals() == (3, 300)
