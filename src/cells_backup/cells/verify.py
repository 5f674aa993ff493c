"""Proof that an installation (a fresh restore, or a live one) is whole before Cells starts.

Each check answers a question an administrator would otherwise discover after start-up:
will the secrets decrypt, are the datasource folders and ``.minio.sys`` where pydio.json says,
will the datasource services start on this host (PeerAddress), can Cells listen on its binds
(``Binds``, or ``urlInternal`` ≤ v2.1), does the database hold the index
of every datasource, and do flat datasources' blobs match their index.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import CellsBackupError
from .config import read_pydio_json
from .load import load_installation
from .model import Datasource, Installation
from .parse import peer_address_paths
from .plan import MINIO_SYS
from .vault import WrongVaultKeyError, open_vault, read_master_password, read_vault_entries

ERROR, WARNING, OK = "error", "warning", "ok"
WILDCARD_HOSTS = {"", "0.0.0.0", "::", "*"}
DatabaseCheck = Callable[[list[str], set[str]], dict[str, dict[str, Any]]]


@dataclass
class Finding:
    severity: str  # error | warning | ok
    check: str
    message: str


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def whole(self) -> bool:
        """True when nothing would stop Cells from starting with all its data."""
        return not any(f.severity == ERROR for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def add(self, severity: str, check: str, message: str) -> None:
        self.findings.append(Finding(severity, check, message))

    def to_dict(self) -> dict[str, Any]:
        return {"whole": self.whole, "findings": [f.__dict__ for f in self.findings]}


def index_table_candidates(datasource: str) -> list[str]:
    """Index table name(s) of a datasource: ``data_index_<ds>_idx_tree`` with dots as underscores.

    Whether Cells also replaces dashes is unverified (docs/CELLS.md §4.1), so both spellings are
    accepted when the name has a dash.
    """
    base = datasource.replace(".", "_")
    names = [f"data_index_{base}_idx_tree"]
    if "-" in base:
        names.append(f"data_index_{base.replace('-', '_')}_idx_tree")
    return names


def host_addresses() -> set[str]:
    """Names and IPs this host answers to, as PeerAddress may use either (v1.4.1+)."""
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        try:
            host, aliases, ips = socket.gethostbyname_ex(name)
            names.update([host, *aliases, *ips])
        except OSError:
            pass
    try:  # the address of the default route; connect() on UDP sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            names.add(s.getsockname()[0])
    except OSError:
        pass
    return {n.lower() for n in names if n}


def verify_installation(
    inst_or_dir: Installation | Path | str,
    database_check: DatabaseCheck | None = None,
    hostname_addrs: Iterable[str] | None = None,
    env: dict[str, str] | None = None,
) -> VerifyReport:
    """Run every check; never raises for a broken installation, reports it instead.

    ``database_check(tables, counted)`` receives every expected index table name, and the
    subset (flat datasources) whose files are compared, and returns
    ``{table: {"exists": bool, "leaf_rows": int | None, "sample_uuids": [str, ...]}}`` where, for
    counted tables, ``leaf_rows`` counts rows with ``leaf = 1`` and ``sample_uuids`` lists some leaf
    ``uuid``s (a few dozen are enough). Tables it does not know may be left out or given
    ``exists: False``; ``leaf_rows: None`` skips the count comparison. An optional ``note`` (say,
    an index table of an unexpected shape) is reported as a warning line, ``shape`` (an older
    but known layout) as an ok line.
    """
    report = VerifyReport()
    if isinstance(inst_or_dir, Installation):
        inst = inst_or_dir
    else:
        try:
            inst = load_installation(Path(inst_or_dir), env)
        except CellsBackupError as exc:
            report.add(ERROR, "config", str(exc))
            return report
    try:
        config = read_pydio_json(inst.config_path)
    except CellsBackupError as exc:
        report.add(ERROR, "config", str(exc))
        return report
    report.add(OK, "config", f"{inst.config_path} parses (Cells {inst.cells_version or 'unknown'})")
    _check_vault(report, inst)
    _check_paths(report, inst)
    known = functools.cache(lambda: {a.lower() for a in (hostname_addrs if hostname_addrs is not None
                                                         else host_addresses())})  # looked up when needed
    _check_peers(report, config, known)
    _check_binds(report, config, known)
    if database_check is not None:
        _check_database(report, inst, database_check)
    return report


def verify_database(inst: Installation, database_check: DatabaseCheck) -> VerifyReport:
    """Only the database side: each datasource's index table is there (for ``restore --only database``,
    which restores no file to compare the index with)."""
    report = VerifyReport()
    _check_database(report, inst, lambda tables, _counted: database_check(tables, set()))
    return report


def _check_vault(report: VerifyReport, inst: Installation) -> None:
    if inst.vault_file is None:
        report.add(WARNING, "vault", "no pydio-vault.json: vaulted secrets (datasource keys) are missing")
        return
    try:
        entries = read_vault_entries(inst.vault_file)
    except CellsBackupError as exc:
        report.add(ERROR, "vault", str(exc))
        return
    if not entries:
        report.add(OK, "vault", f"{inst.vault_file} is empty")
        return
    if inst.key_file is None:
        if inst.key_location and not inst.key_location.startswith("os-keyring"):
            report.add(WARNING, "vault", f"cannot check the vault: key held in {inst.key_location}")
        else:
            report.add(
                ERROR,
                "vault",
                f"vault holds {len(entries)} secrets but there is no cells-vault-key: "
                "they cannot be decrypted and Cells would generate a new key",
            )
        return
    try:
        open_vault(inst.vault_file, read_master_password(inst.key_file))
    except WrongVaultKeyError as exc:
        report.add(ERROR, "vault", str(exc))
    except CellsBackupError as exc:
        report.add(ERROR, "vault", str(exc))
    else:
        report.add(OK, "vault", f"{len(entries)} vault secrets decrypt with {inst.key_file}")


def _check_paths(report: VerifyReport, inst: Installation) -> None:
    for ds in inst.local_datasources():
        if not ds.folder:
            report.add(ERROR, "datasource", f"{ds.name}: no folder in pydio.json")
        elif not os.path.isdir(ds.folder):
            report.add(ERROR, "datasource", f"{ds.name}: folder {ds.folder} does not exist")
        else:
            report.add(OK, "datasource", f"{ds.name}: folder {ds.folder} exists")
        if ds.parent_folder and not os.path.isdir(os.path.join(ds.parent_folder, MINIO_SYS)):
            report.add(
                WARNING,
                "datasource",
                f"{ds.name}: {ds.parent_folder}/{MINIO_SYS} is missing; "
                "run `cells admin datasource resync` after start",
            )
    for obj in inst.objects_services:
        if obj.local_folder and not os.path.isdir(obj.local_folder):
            report.add(
                ERROR, "objects", f"objects service {obj.name}: LocalFolder {obj.local_folder} does not exist"
            )
    for ref in inst.databases:
        path = _file_of(ref.dsn)
        if path is None:
            continue
        if ref.role == "default" and not os.path.exists(path):
            report.add(ERROR, "database", f"SQLite database {path} does not exist")
        elif ref.role in ("bolt", "bleve", "sql") and not os.path.exists(path):
            report.add(
                WARNING, "database", f"databases/{ref.key}: {path} does not exist (Cells starts it empty)"
            )
    for site in inst.sites:
        for cert in site.cert_files:
            if not os.path.exists(cert):
                report.add(ERROR, "site", f"TLS file {cert} does not exist")


def _file_of(dsn: str) -> str | None:
    """The absolute file path a bolt/bleve/sqlite DSN names, None when it has none (or a template)."""
    body = dsn.split("://", 1)[1] if "://" in dsn else dsn
    body = body.split("?", 1)[0]
    return body if body.startswith("/") and "{{" not in body else None


def _check_peers(report: VerifyReport, config: dict[str, Any], known: Callable[[], set[str]]) -> None:
    peers = peer_address_paths(config)
    if not peers:
        report.add(OK, "peer-address", "no PeerAddress set: datasources start on any node")
        return
    for path, value in peers:
        if value.lower() in known():
            report.add(OK, "peer-address", f"{path[1]}: PeerAddress {value} is this host")
        else:
            report.add(
                ERROR,
                "peer-address",
                f"{path[1]}: PeerAddress {value} is not this host, the service "
                "will not start (use --peer-address or --clear-peer-address)",
            )


def _bind_values(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, HOST:PORT) of every address Cells listens on: sites' Binds, or ≤ v2.1 urlInternal."""
    defaults = config.get("defaults") if isinstance(config.get("defaults"), dict) else {}
    sites = defaults.get("sites")
    if isinstance(sites, list):
        return [(f"defaults.sites[{i}].Binds", bind) for i, site in enumerate(sites) if isinstance(site, dict)
                for bind in site.get("Binds") or [] if isinstance(bind, str)]
    internal = defaults.get("urlInternal")
    if isinstance(internal, str) and internal:
        return [("defaults.urlInternal", urlsplit(internal).netloc or internal)]
    return []


def _check_binds(report: VerifyReport, config: dict[str, Any], known: Callable[[], set[str]]) -> None:
    """A bind on an address this host does not have: Cells cannot listen there and does not start."""
    for where, bind in _bind_values(config):
        host = bind.rpartition(":")[0] if ":" in bind else bind
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if host.lower() in WILDCARD_HOSTS or host.lower() in known():
            report.add(OK, "bind", f"{where}: {bind} can be bound on this host")
        else:
            report.add(ERROR, "bind", f"{where}: {bind} is not an address of this host, Cells cannot listen "
                       "there (use --bind, e.g. --bind 0.0.0.0:8080)")


def _check_database(report: VerifyReport, inst: Installation, check: DatabaseCheck) -> None:
    wanted = {ds.name: index_table_candidates(ds.name) for ds in inst.datasources}
    counted = {t for ds in inst.datasources if _compared(ds) for t in wanted[ds.name]}
    try:
        result = check([t for names in wanted.values() for t in names], counted)
    except CellsBackupError as exc:
        report.add(ERROR, "database", f"cannot inspect the database: {exc}")
        return
    for ds in inst.datasources:
        info = next((result[t] for t in wanted[ds.name] if result.get(t, {}).get("exists")), None)
        if info is None:
            report.add(ERROR, "database", f"{ds.name}: index table {wanted[ds.name][0]} is missing")
            continue
        report.add(OK, "database", f"{ds.name}: index table present")
        if info.get("shape"):
            report.add(OK, "database", f"{ds.name}: {info['shape']}")
        if info.get("note"):
            report.add(WARNING, "database", f"{ds.name}: {info['note']}")
        if _compared(ds):
            _compare_flat(report, ds.name, Path(ds.folder), info)


def _compared(ds: Datasource) -> bool:
    """A flat local datasource: its stored objects are compared with its index rows."""
    return bool(ds.flat and ds.is_local and ds.folder and os.path.isdir(ds.folder))


def _compare_flat(report: VerifyReport, name: str, folder: Path, info: dict[str, Any]) -> None:
    stored = set()
    for _root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != MINIO_SYS]
        stored.update(f for f in files if f != ".pydio")
    missing = [u for u in info.get("sample_uuids") or [] if u not in stored]
    if missing:
        report.add(
            ERROR,
            "flat-index",
            f"{name}: {len(missing)} indexed files have no blob in {folder} "
            f"(e.g. {missing[0]}): files and database are not from the same backup",
        )
    leaves = info.get("leaf_rows")
    if leaves is None:
        return
    if leaves > len(stored):
        report.add(
            ERROR, "flat-index", f"{name}: index lists {leaves} files but {folder} holds {len(stored)} blobs"
        )
    elif leaves < len(stored):
        report.add(
            WARNING,
            "flat-index",
            f"{name}: {len(stored)} blobs in {folder} but only {leaves} indexed files "
            "(orphans or a datasource snapshot file)",
        )
    elif not missing:
        report.add(OK, "flat-index", f"{name}: {leaves} indexed files match the blobs in {folder}")
