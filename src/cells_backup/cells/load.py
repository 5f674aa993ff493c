"""Build an Installation from a working directory: config file, environment and files on disk."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import config_shape, parse_version, read_pydio_json
from .locate import resolve_locations
from .model import Installation
from .parse import (
    default_database_problem,
    parse_databases,
    parse_datasources,
    parse_objects_services,
    parse_sites,
)


def installation_from_config(
    data: dict[str, Any],
    working_dir: Path,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    *,
    database_optional: bool = False,
) -> Installation:
    """Model an already parsed pydio.json (used by load and by tests on in-memory configs).

    ``database_optional``: a missing or dangling ``defaults.database`` becomes a note instead of
    an error, for callers that are given the database (``--database-url``) or leave it out.
    """
    loc = resolve_locations(working_dir, env)
    path = config_path or loc.config_path
    version = data.get("version")
    parse_version(version, path)
    shape = config_shape(data, path)
    databases, document_store = parse_databases(data, path, database_optional=database_optional)
    objects = parse_objects_services(data)
    datasources, notes = parse_datasources(data, objects)
    if database_optional and (problem := default_database_problem(data, path)):
        notes.insert(0, problem)
    key_file, key_location = loc.key_file, loc.key_location
    if key_file is not None and not key_file.exists() and key_location is None:
        # v1/v2 desktop installs moved the key into the OS keyring (docs/CELLS.md §2.6).
        key_location = "os-keyring (service pydio.grpc.user-key, user keyring.master) or lost"
        key_file = None
    return Installation(
        working_dir=Path(working_dir),
        config_path=Path(path),
        cells_version=version if isinstance(version, str) and version else None,
        config_shape=shape,
        data_dir=loc.data_dir,
        services_dir=loc.services_dir,
        log_dir=loc.log_dir,
        datasources=datasources,
        objects_services=objects,
        databases=databases,
        document_store=document_store,
        sites=parse_sites(data, shape),
        vault_file=loc.vault_file if loc.vault_file.exists() else None,
        key_file=key_file,
        key_location=key_location,
        hostname=socket.gethostname(),
        env=loc.env,
        notes=notes,
    )


def load_installation(
    working_dir: Path, env: Mapping[str, str] | None = None, *, database_optional: bool = False
) -> Installation:
    """Read ``<working_dir>/pydio.json`` (or CELLS_CONFIG) and model the installation.

    ``env`` defaults to this process's environment: pass the Cells service's own environment
    when it differs (CELLS_DATA_DIR etc. change where things live).
    """
    loc = resolve_locations(working_dir, env)
    data = read_pydio_json(loc.config_path)
    return installation_from_config(data, Path(working_dir), env, loc.config_path,
                                    database_optional=database_optional)
