"""Knowledge of Pydio Cells: where an installation lives, what its config says, what to back up,
whether it is running, how to rewrite it for a new host and how to prove a restore is whole.

This layer depends on nothing but the standard library, ``cryptography`` and ``..errors``.
"""

from typing import TYPE_CHECKING

from cells_backup.lazy import lazy_exports

if TYPE_CHECKING:
    from .config import read_pydio_json, save_pydio_json
    from .dsn import format_mysql_dsn, mask_dsn, parse_dsn, retarget_dsn
    from .load import installation_from_config, load_installation
    from .locate import find_working_dir
    from .model import DatabaseRef, Datasource, Installation, Site
    from .plan import Component, Exclude, Skipped, backup_plan, not_backed_up, warnings
    from .rewrite import ConfigEdit, RewriteRequest, apply_edits, plan_rewrite, rehost_in_place, render_diff
    from .running import RunningStatus, detect_running
    from .vault import open_vault, read_master_password, seal_vault
    from .verify import Finding, VerifyReport, index_table_candidates, verify_installation

__getattr__ = lazy_exports(__name__, {
    "config": ["read_pydio_json", "save_pydio_json"],
    "dsn": ["format_mysql_dsn", "mask_dsn", "parse_dsn", "retarget_dsn"],
    "load": ["installation_from_config", "load_installation"],
    "locate": ["find_working_dir"],
    "model": ["DatabaseRef", "Datasource", "Installation", "Site"],
    "plan": ["Component", "Exclude", "Skipped", "backup_plan", "not_backed_up", "warnings"],
    "rewrite": ["ConfigEdit", "RewriteRequest", "apply_edits", "plan_rewrite", "rehost_in_place", "render_diff"],
    "running": ["RunningStatus", "detect_running"],
    "vault": ["open_vault", "read_master_password", "seal_vault"],
    "verify": ["Finding", "VerifyReport", "index_table_candidates", "verify_installation"],
})

__all__ = [
    "Component",
    "ConfigEdit",
    "DatabaseRef",
    "Datasource",
    "Exclude",
    "Finding",
    "Installation",
    "RewriteRequest",
    "RunningStatus",
    "Site",
    "Skipped",
    "VerifyReport",
    "apply_edits",
    "backup_plan",
    "detect_running",
    "find_working_dir",
    "format_mysql_dsn",
    "index_table_candidates",
    "installation_from_config",
    "load_installation",
    "mask_dsn",
    "not_backed_up",
    "open_vault",
    "parse_dsn",
    "plan_rewrite",
    "read_master_password",
    "read_pydio_json",
    "rehost_in_place",
    "render_diff",
    "retarget_dsn",
    "save_pydio_json",
    "seal_vault",
    "verify_installation",
    "warnings",
]
