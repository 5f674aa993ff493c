"""Stand-ins for mongodump and mongorestore, for the document-store tests.

No MongoDB server or Database Tools can be installed on the machines these tests run on (Debian
12, PyPI and npm carry none; the packages that claim to download them at run time from MongoDB's
site). These scripts take the tools' command line as cells-backup uses it (``--config=FILE``
holding ``uri: "..."``, ``--archive`` on stdout or stdin, ``--drop``), print the stderr lines
cells-backup reads (``done dumping db.coll (N documents)``, ``N document(s) restored
successfully. M document(s) failed to restore.``) and keep "the server" as a directory:
``$FAKE_MONGO_ROOT/<database>/<collection>.jsonl``. What they prove is cells-backup's side of
the contract (no secret on a command line, the archive stored and handed back byte for byte,
counts checked, failures stopping the backup), not the real tools' behaviour.

Environment: ``FAKE_MONGO_ROOT`` (required), ``FAKE_MONGO_LOG`` (a JSON line per run: tool, argv,
config file mode), ``FAKE_MONGO_FAIL=dump`` (mongodump dies half-way) and ``FAKE_MONGO_EVENTS``
(a file that gets "mongodump-start"/"mongodump-end" lines).

    python3 mongo_tools.py mongodump|mongorestore ARGS...
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

MAGIC = b"fake-mongo-archive 1\n"


def _stamp(text: str) -> None:
    sys.stderr.write(f"2026-11-27T00:00:00.000+0000\t{text}\n")


def _options(argv: list[str]) -> tuple[dict, Path]:
    opts = {"archive": False, "drop": False, "config": None}
    for arg in argv:
        if arg.startswith("--config="):
            opts["config"] = arg.split("=", 1)[1]
        elif arg == "--archive":
            opts["archive"] = True
        elif arg == "--drop":
            opts["drop"] = True
        else:
            _stamp(f"error parsing command line options: unknown option {arg}")
            sys.exit(3)
    if not opts["archive"] or not opts["config"]:
        _stamp("this stand-in only knows --config=FILE --archive")
        sys.exit(3)
    config = Path(opts["config"])
    mode = stat.S_IMODE(config.stat().st_mode)
    uri = json.loads(config.read_text().split(":", 1)[1].strip())  # the line is: uri: "<json string>"
    log = os.environ.get("FAKE_MONGO_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"argv": sys.argv, "config": opts["config"], "mode": mode}) + "\n")
    database = urlsplit(uri).path.strip("/") or "test"
    return opts, Path(os.environ["FAKE_MONGO_ROOT"]) / database


def _event(text: str) -> None:
    events = os.environ.get("FAKE_MONGO_EVENTS")
    if events:
        with open(events, "a") as f:
            f.write(text + "\n")


def mongodump(argv: list[str]) -> None:
    _opts, db = _options(argv)
    _event("mongodump-start")
    out = sys.stdout.buffer
    out.write(MAGIC)
    for i, path in enumerate(sorted(db.glob("*.jsonl"))):
        if os.environ.get("FAKE_MONGO_FAIL") == "dump" and i == 1:
            out.flush()
            _stamp("Failed: error reading collection: connection(localhost:27017) incomplete read of message header")
            sys.exit(1)
        data = path.read_bytes()
        name = f"{db.name}.{path.stem}".encode()
        out.write(b"%d %d\n" % (len(name), len(data)) + name + data)
        time.sleep(0.05)  # long enough for the tests to see what runs meanwhile
        documents = data.count(b"\n")
        _stamp(f"done dumping {db.name}.{path.stem} ({documents} documents)")
    out.flush()
    _event("mongodump-end")


def mongorestore(argv: list[str]) -> None:
    opts, db = _options(argv)
    data = sys.stdin.buffer.read()
    if not data.startswith(MAGIC):
        _stamp("Failed: stream or file does not appear to be a mongodump archive")
        sys.exit(1)
    pos, restored, failed = len(MAGIC), 0, 0
    db.mkdir(parents=True, exist_ok=True)
    while pos < len(data):
        end = data.index(b"\n", pos)
        name_len, size = (int(x) for x in data[pos:end].split())
        name = data[end + 1 : end + 1 + name_len].decode()
        body = data[end + 1 + name_len : end + 1 + name_len + size]
        pos = end + 1 + name_len + size
        target = db / (name.split(".", 1)[1] + ".jsonl")
        count = body.count(b"\n")
        if target.exists() and not opts["drop"]:
            failed += count  # duplicate _id on every document
            continue
        target.write_bytes(body)
        restored += count
    _stamp(f"{restored} document(s) restored successfully. {failed} document(s) failed to restore.")


if __name__ == "__main__":
    {"mongodump": mongodump, "mongorestore": mongorestore}[sys.argv[1]](sys.argv[2:])
