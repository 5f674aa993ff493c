"""Backup of an installation: consistency hooks, refusals, and clear errors (no database here)."""

from __future__ import annotations

import json

import pytest
from conftest_engine import fake_cells

from helpers import cli_env, json_leaves, run_cli


def test_running_cells_is_refused_with_exit_13(repo, install, env):
    cells = fake_cells(install)
    try:
        r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", env=env)
        assert r.code == 13
        assert "running" in r.stderr and "--live" in r.stderr
        r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", "--live", "--json",
                    env=env)
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["snapshot"]["live"] is True
        assert "live" in r.stderr
    finally:
        cells.kill()


def test_hooks_stop_then_start_and_downtime_is_reported(repo, install, env, tmp_path):
    cells = fake_cells(install)
    log = tmp_path / "hooks.log"
    pid_file = tmp_path / "pid"
    pid_file.write_text(str(cells.pid))
    stop = f"echo stop >> {log}; kill $(cat {pid_file})"
    start = f"echo start >> {log}"
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", "--stop-command", stop,
                "--start-command", start, "--json", env=env)
    cells.wait(timeout=10)
    assert r.code == 0, r.stderr
    assert log.read_text().split() == ["stop", "start"]
    snap = json.loads(r.stdout)["snapshot"]
    assert snap["summary"]["downtime"] >= 0
    assert "downtime" in r.stderr


def test_start_hook_runs_even_when_backup_fails(repo, install, env, tmp_path):
    log = tmp_path / "hooks.log"
    extra = tmp_path / "extra"
    extra.mkdir()
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", "--extra-path", str(extra),
                "--stop-command", f"echo stop >> {log}; rm -r {extra}", "--start-command", f"echo start >> {log}",
                env=env)
    assert r.code == 1
    assert "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert log.read_text().split() == ["stop", "start"]
    snaps = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)
    assert snaps == []


def test_a_missing_path_fails_before_cells_is_stopped(repo, install, env, tmp_path):
    log = tmp_path / "hooks.log"
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database",
                "--extra-path", str(tmp_path / "does-not-exist"),
                "--stop-command", f"echo stop >> {log}", "--start-command", f"echo start >> {log}", env=env)
    assert r.code == 1 and "does not exist" in r.stderr
    assert not log.exists()


def test_files_changed_just_before_the_stop_are_in_the_snapshot(repo, install, env, tmp_path):
    """Files are read once while Cells runs; what Cells writes until it stops is read again."""
    assert run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", env=env).code == 0
    first = json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout)[-1]
    target = next(p for p in sorted((install / "data").rglob("*")) if p.is_file() and ".minio.sys" not in str(p))
    grown = tmp_path / "grown"
    grown.write_bytes(b"written while Cells was stopping\n" * 1000)
    stop = f"cat {grown} >> {target}; echo stopped > {install}/stopped.txt"
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", "--stop-command", stop,
                "--start-command", "true", "--json", env=env)
    assert r.code == 0, r.stderr
    snap = json.loads(r.stdout)["snapshot"]
    assert snap["parent"] == first["id"]
    out = tmp_path / "out"
    restored = run_cli("--repo", repo, "restore", snap["id"], "--target", str(out), env=env)
    assert restored.code == 0, restored.stderr
    assert (out / str(target).lstrip("/")).read_bytes() == target.read_bytes()
    assert (out / str(install).lstrip("/") / "stopped.txt").read_text() == "stopped\n"


@pytest.mark.parametrize("damage", ["truncated", "not-json", "empty", "array"])
def test_broken_pydio_json_gives_one_clear_line(repo, install, env, damage):
    config = install / "pydio.json"
    text = config.read_text()
    config.write_text({"truncated": text[: len(text) // 2], "not-json": "{ nope", "empty": "",
                       "array": "[1, 2]"}[damage])
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", env=env)
    assert r.code == 1
    assert r.stderr.count("\n") == 1 and "pydio.json" in r.stderr and "Traceback" not in r.stderr


def test_missing_installation_says_what_was_tried(repo, tmp_path):
    env = cli_env(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    r = run_cli("--repo", repo, "backup", "--no-database", env=env)
    assert r.code == 1
    assert "--cells-dir" in r.stderr and str(tmp_path / "xdg") in r.stderr


def test_restore_refuses_non_empty_target_and_running_cells(repo, install, env, tmp_path):
    run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", env=env, check=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("keep")
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(busy), "--map",
                f"{tmp_path / 'storage'}={tmp_path / 'storage2'}", env=env)
    assert r.code == 14
    assert sorted(p.name for p in busy.iterdir()) == ["something"]
    # Restoring over the running original is refused even with --force.
    cells = fake_cells(install)
    try:
        r = run_cli("--repo", repo, "restore", "latest", "--force", env=env)
        assert r.code == 13
    finally:
        cells.kill()


def test_restore_to_new_place_rewrites_only_what_must_change(repo, install, env, tmp_path):
    run_cli("--repo", repo, "backup", "--cells-dir", str(install), "--no-database", env=env, check=True)
    new = tmp_path / "new-cells"
    storage2 = tmp_path / "storage2"
    dry = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(new), "--map",
                  f"{tmp_path / 'storage'}={storage2}", "--dry-run", "-v", "--json", env=env)
    planned = json.loads(dry.stdout)["destinations"]
    assert not new.exists() and len(planned) == len(set(planned))
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(new), "--map",
                f"{tmp_path / 'storage'}={storage2}", "--external-url", "https://cells.example.org",
                "--bind", "0.0.0.0:8443", "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["whole"] is True
    before = json.loads((install / "pydio.json").read_text())
    after = json.loads((new / "pydio.json").read_text())
    changed = {tuple(e["path"]) for e in doc["plan"]["config_edits"]}

    old_leaves, new_leaves = dict(json_leaves(before)), dict(json_leaves(after))
    differing = {p for p in set(old_leaves) | set(new_leaves) if old_leaves.get(p) != new_leaves.get(p)}
    assert differing, "nothing was rewritten"
    for path in differing:
        assert any(path[: len(c)] == c for c in changed), f"{path} changed but was not in the plan"
    assert after["defaults"]["sites"][0]["ReverseProxyURL"] == "https://cells.example.org"
    for src in (install / "data").rglob("*"):
        if src.is_file():
            assert (new / "data" / src.relative_to(install / "data")).read_bytes() == src.read_bytes()
    for src in (tmp_path / "storage").rglob("*"):
        if src.is_file():
            assert (storage2 / src.relative_to(tmp_path / "storage")).read_bytes() == src.read_bytes()
    assert (new / "cells-vault-key").read_bytes() == (install / "cells-vault-key").read_bytes()
    assert not (new / "logs").exists()  # excluded, as inspect says
    r = run_cli("verify-install", "--cells-dir", str(new), "--no-database", env=env)
    assert r.code == 0, r.stdout
    written = {str(p) + ("/" if p.is_dir() else "") for root in (new, storage2) for p in [root, *root.rglob("*")]}
    assert set(planned) == written  # --dry-run named exactly what the restore wrote


def test_inspect_lists_components_sizes_excludes_and_warnings(install, env, tmp_path):
    import shutil

    shutil.rmtree(tmp_path / "storage" / ".minio.sys")
    r = run_cli("inspect", "--cells-dir", str(install), "--json", env=env)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    comps = {c["kind"]: c for c in doc["components"]}
    assert comps["workdir"]["path"] == str(install) and comps["workdir"]["files"] > 0
    assert comps["workdir"]["bytes"] > 0
    assert any(e["pattern"].startswith("logs") for e in comps["workdir"]["excludes"])
    assert comps["datasource-parent"]["path"] == str(tmp_path / "storage")
    assert any(".minio.sys" in w for w in doc["warnings"])
    assert doc["databases"] and "error" in doc["databases"][0]  # the sample's database is not reachable here
    assert doc["sites"][0]["binds"]
    text = run_cli("inspect", "--cells-dir", str(install), env=env).stdout
    assert "workdir" in text and "excluded from workdir: logs" in text
