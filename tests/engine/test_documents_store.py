"""The MongoDB document store (defaults.documentsDSN): archived with mongodump, loaded with
mongorestore. The tools are stand-ins (tests/mongo_tools.py says why): these tests hold
cells-backup's side of the contract, with the real MariaDB for the SQL part."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from helpers import FAST_KDF, cli_env, run_cli

TOOLS = Path(__file__).resolve().parent.parent / "mongo_tools.py"
SECRET = "m0ngo-s3cret"


def tool_dir(base: Path, names: tuple[str, ...] = ("mongodump", "mongorestore")) -> Path:
    bin_dir = base / "mongo-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{TOOLS}" {name} "$@"\n')
        script.chmod(0o755)
    return bin_dir


@pytest.fixture
def with_documents(installation):
    """The installation, with a document store in pydio.json and three collections in it."""
    _sample, _dbname, base = installation
    wd = base / "cells"
    config = json.loads((wd / "pydio.json").read_text())
    config["databases"]["mongodb"] = {"driver": "mongodb",
                                      "dsn": f"mongodb://cells:{SECRET}@127.0.0.1:27017/cells?maxPoolSize=20"}
    config["defaults"]["documentsDSN"] = {"$ref": "#/databases/mongodb"}
    (wd / "pydio.json").write_text(json.dumps(config, indent=2))
    server = base / "mongo-server" / "cells"
    server.mkdir(parents=True)
    (server / "versions.jsonl").write_bytes(b"".join(b'{"_id": %d, "v": "\xc3\xa9t\xc3\xa9 \\u0000"}\n' % i
                                                     for i in range(500)))
    (server / "activities.jsonl").write_bytes(os.urandom(3000).hex().encode() + b"\n" * 7)
    (server / "docstore.jsonl").write_bytes(b"")
    env = cli_env(FAKE_MONGO_ROOT=str(base / "mongo-server"), FAKE_MONGO_LOG=str(base / "mongo.log"),
                  PATH=f"{tool_dir(base)}{os.pathsep}{os.environ['PATH']}")
    repo = str(base / "repo")
    run_cli("--repo", repo, "init", *FAST_KDF, env=env, check=True)
    return base, repo, env, server


def new_database(mariadb, name: str) -> str:
    return f"mysql://{mariadb.admin_user}:{quote(mariadb.admin_password, safe='')}@127.0.0.1:{mariadb.port}/{name}"


def collections(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.glob("*.jsonl"))}


def test_backup_archives_the_document_store_and_restore_loads_it_back(with_documents, installation, mariadb):
    base, repo, env, server = with_documents
    dbname = installation[1]
    before = collections(server)
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), "--json", env=env)
    assert r.code == 0, r.stderr
    snap = json.loads(r.stdout)["snapshot"]
    assert not snap.get("partial")

    ls = run_cli("--repo", repo, "ls", "latest", "/.cells-backup/documents", env=env)
    assert "mongodump.archive" in ls.stdout
    # the tools got the URI from a 0600 file, never on their command line, and the file is gone
    runs = [json.loads(line) for line in (base / "mongo.log").read_text().splitlines()]
    assert runs and all(SECRET not in " ".join(run["argv"]) for run in runs)
    assert all(run["mode"] == 0o600 and not os.path.exists(run["config"]) for run in runs)

    # a new document store (the old one lost): everything comes back, counted
    os.rename(server.parent, base / "mongo-server-lost")
    r = run_cli("--repo", repo, "restore", "latest", "--only", "database", "--json",
                "--database-url", new_database(mariadb, f"{dbname}_a"), env=env)
    assert r.code == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["documents"] == {"documents": 507, "collections": 3}
    assert collections(server) == before

    # into a store that still holds them: refused without --force, replaced with it
    r = run_cli("--repo", repo, "restore", "latest", "--only", "database",
                "--database-url", new_database(mariadb, f"{dbname}_b"), env=env)
    assert r.code != 0
    assert "mongorestore restored 0 of 507 documents" in r.stderr and "--force" in r.stderr
    r = run_cli("--repo", repo, "restore", "latest", "--only", "database", "--force",
                "--database-url", new_database(mariadb, f"{dbname}_b"), env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert "--drop" in json.loads((base / "mongo.log").read_text().splitlines()[-1])["argv"]
    assert collections(server) == before


def test_mongodump_failing_fails_the_backup_and_writes_no_snapshot(with_documents):
    base, repo, env, _server = with_documents
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=dict(env, FAKE_MONGO_FAIL="dump"))
    assert r.code != 0
    line = r.stderr.strip().splitlines()[-1]
    assert "mongodump failed (exit 1)" in line and "incomplete read" in line and "Traceback" not in r.stderr
    assert json.loads(run_cli("--repo", repo, "snapshots", "--json", env=env).stdout) == []
    assert run_cli("--repo", repo, "check", env=env).code == 0
    assert run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env).code == 0


def test_without_the_tools_backup_and_restore_say_what_to_install(with_documents):
    base, repo, env, _server = with_documents
    no_tools = dict(env, PATH=os.environ["PATH"])
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=no_tools)
    assert r.code != 0 and "mongodump is not installed" in r.stderr and "--skip-documents-db" in r.stderr
    assert run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env).code == 0

    target = base / "elsewhere"
    only_dump = dict(env, PATH=f"{tool_dir(base / 'only-dump', ('mongodump',))}{os.pathsep}{os.environ['PATH']}")
    r = run_cli("--repo", repo, "restore", "latest", "--cells-dir", str(target), "--map",
                f"{base / 'storage'}={base / 'storage2'}", env=only_dump)
    assert r.code != 0 and "mongorestore is not installed" in r.stderr
    assert not target.exists()  # refused before anything was written


def test_restore_elsewhere_and_drills_leave_the_live_store_alone(with_documents, installation, mariadb):
    base, repo, env, server = with_documents
    assert run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), env=env).code == 0
    before = collections(server)
    r = run_cli("--repo", repo, "restore", "latest", "--only", "database", "--database-url",
                new_database(mariadb, f"{installation[1]}_c"), "--documents-url",
                f"mongodb://other:{SECRET}@10.0.0.9:27017/cells_copy", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert collections(server.parent / "cells_copy") == before
    r = run_cli("--repo", repo, "drill", "--database-url", new_database(mariadb, "unused"), "--json", env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert "document store was not drilled" in json.loads(r.stdout)["notes"][0]
    runs = (base / "mongo.log").read_text().splitlines()
    assert len(runs) == 2  # the backup's mongodump and the first restore's mongorestore: none for the drill


def test_hooks_keep_cells_stopped_until_mongodump_has_ended(with_documents):
    base, repo, env, _server = with_documents
    events = base / "events.log"
    env = dict(env, FAKE_MONGO_EVENTS=str(events))
    r = run_cli("--repo", repo, "backup", "--cells-dir", str(base / "cells"), "--stop-command",
                f"echo stop >> {events}", "--start-command", f"echo start >> {events}", env=env)
    assert r.code == 0, r.stderr
    assert events.read_text().split() == ["stop", "mongodump-start", "mongodump-end", "start"]


def test_config_file_is_private():
    """The URI file is made by mkstemp: 0600 from the start, not chmod-ed after being written."""
    from cells_backup.database.mongo import _uri_file

    with _uri_file("mongodb://u:p@h/db") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert json.loads(Path(path).read_text().split(":", 1)[1]) == "mongodb://u:p@h/db"
    assert not os.path.exists(path)
