"""The global options (repository, password, config file, S3, log file).

They are accepted before the command and, as restic users type them, after it too: every
command carries them as well, and a value given after the command wins over one given before
it or taken from the environment (environment defaults are read once, by the group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import click

GLOBAL_ENV = {"repo": "CELLS_BACKUP_REPOSITORY", "s3_endpoint": "AWS_ENDPOINT_URL", "s3_region": "AWS_REGION"}


@dataclass(frozen=True)
class GlobalOptions:
    """The global options as given; None: not given."""

    repo: str | None = None
    password_file: str | None = None
    password_command: str | None = None
    config_file: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_path_style: bool | None = None
    log_file: str | None = None

    def overridden_by(self, later: dict) -> GlobalOptions:
        """These options with those given after the command (not None) taking their place."""
        return replace(self, **{k: v for k, v in later.items() if v is not None})

    @classmethod
    def pop_from(cls, kwargs: dict) -> dict:
        """Take the global options out of a command's keyword arguments."""
        return {f.name: kwargs.pop(f.name, None) for f in fields(cls)}


def global_options(*, from_env: bool) -> Callable:
    """Decorator adding the global options; ``from_env``: their environment variables as defaults."""

    def env(name: str) -> str | None:
        return GLOBAL_ENV.get(name) if from_env else None

    decorators = [
        click.option("--repo", "-r", envvar=env("repo"), help="Repository: a path or s3://bucket/prefix."),
        click.option("--password-file", type=click.Path(dir_okay=False), help="File holding the repository password."),
        click.option("--password-command", help="Command that prints the repository password."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file."),
        click.option("--s3-endpoint", envvar=env("s3_endpoint"), help="S3 endpoint URL (S3-compatible storage)."),
        click.option("--s3-region", envvar=env("s3_region"), help="S3 region."),
        click.option("--s3-path-style", is_flag=True, default=None, help="Use path-style S3 addressing."),
        click.option("--log-file", type=click.Path(dir_okay=False), help="Also log to this file (rotated)."),
    ]

    def apply(func: Callable) -> Callable:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply
