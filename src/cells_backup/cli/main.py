"""Entry point: global options, shared plumbing and the mapping of errors to exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from functools import wraps

import click

from .. import __version__, allocator
from ..engine.password import PasswordSource
from ..engine.session import RepoSettings, open_repository
from ..errors import CellsBackupError, ExitCode
from .output import Output


@dataclass
class Settings:
    repo: RepoSettings
    out: Output = field(default_factory=Output)
    config: dict = field(default_factory=dict)
    config_path: str | None = None

    def open(self):
        return open_repository(self.repo)


def common_options(func):
    """--json, -q and -v on every command (they may also be given before the command)."""

    @click.option("--json", "json_", is_flag=True, help="Print one JSON document on stdout.")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
    @click.option("-v", "--verbose", count=True, help="More detail on stderr.")
    @click.pass_context
    @wraps(func)
    def wrapper(ctx, *args, json_=False, quiet=False, verbose=0, **kwargs):
        settings: Settings = ctx.obj
        settings.out.json = settings.out.json or json_
        settings.out.quiet = settings.out.quiet or quiet
        settings.out.verbose = max(settings.out.verbose, verbose)
        return func(settings, *args, **kwargs)

    return wrapper


# Which module defines each command: a run imports only the module of its own command.
COMMAND_MODULES = {
    "backup": "commands_tree", "restore": "commands_tree", "ls": "commands_tree", "dump": "commands_tree",
    "inspect": "commands_cells", "rehost": "commands_cells", "verify-install": "commands_cells",
    "init": "commands_repo", "key": "commands_repo", "snapshots": "commands_repo", "check": "commands_repo",
    "copy": "commands_repo", "stats": "commands_repo", "unlock": "commands_repo",
    "forget": "commands_maintenance", "prune": "commands_maintenance", "repair": "commands_maintenance",
    "diff": "commands_maintenance",
    "config": "commands_ops", "run": "commands_ops", "schedule": "commands_ops", "drill": "commands_ops",
}


class LazyGroup(click.Group):
    """Imports a command's module when the command is looked up (each module registers its
    commands on `cli` as it is imported)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"{__package__}.{module}")
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cells-backup")
@click.option("--repo", "-r", envvar="CELLS_BACKUP_REPOSITORY", help="Repository: a path or s3://bucket/prefix.")
@click.option("--password-file", type=click.Path(dir_okay=False), help="File holding the repository password.")
@click.option("--password-command", help="Command that prints the repository password.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--s3-endpoint", envvar="AWS_ENDPOINT_URL", help="S3 endpoint URL (S3-compatible storage).")
@click.option("--s3-region", envvar="AWS_REGION", help="S3 region.")
@click.option("--s3-path-style", is_flag=True, default=None, help="Use path-style S3 addressing.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Also log to this file (rotated).")
@click.option("--json", "json_", is_flag=True, help="Print one JSON document on stdout.")
@click.option("-q", "--quiet", is_flag=True)
@click.option("-v", "--verbose", count=True)
@click.pass_context
def cli(ctx, repo, password_file, password_command, config_file, s3_endpoint, s3_region, s3_path_style,
        log_file, json_, quiet, verbose):
    """Back up and recover a whole Pydio Cells installation."""
    from ..engine.config_file import load_config

    config = load_config(config_file)
    log_file = log_file or config.get("log_file")
    if log_file:
        from ..engine.logsetup import setup_logging

        setup_logging(verbose, quiet, log_file)
    repo = repo or config.get("repository")
    s3 = config.get("s3", {})
    s3_endpoint = s3_endpoint or s3.get("endpoint")
    s3_region = s3_region or s3.get("region")
    if s3_path_style is None:
        s3_path_style = s3.get("path_style")
    source = PasswordSource.from_env(password_file or config.get("password_file"),
                                     password_command or config.get("password_command"))
    backend_options = {}
    if repo and repo.startswith("s3://"):
        backend_options = {"endpoint": s3_endpoint, "region": s3_region, "path_style": s3_path_style}
    ctx.obj = Settings(
        repo=RepoSettings(url=repo, password=source, backend_options=backend_options),
        out=Output(json=json_, quiet=quiet, verbose=verbose),
        config=config,
        config_path=config_file,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every expected failure becomes one line on stderr and its exit code."""
    allocator.tune()
    try:
        code = cli.main(args=argv, prog_name="cells-backup", standalone_mode=False)
    except click.exceptions.Abort:
        sys.stderr.write("cells-backup: interrupted\n")
        code = 130
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except CellsBackupError as exc:
        sys.stderr.write(f"cells-backup: error: {exc}\n")
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("cells-backup: interrupted\n")
        code = 130
    except BrokenPipeError:
        code = ExitCode.ERROR
    except Exception as exc:  # a bug: one line for the admin, the traceback only on request
        sys.stderr.write(f"cells-backup: internal error: {type(exc).__name__}: {exc}\n")
        if os.environ.get("CELLS_BACKUP_DEBUG"):
            traceback.print_exc()
        else:
            sys.stderr.write("(set CELLS_BACKUP_DEBUG=1 for details and please report it)\n")
        code = ExitCode.ERROR
    if argv is None:
        _exit_now(code or 0)
    sys.exit(code or 0)


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown (tens of ms of freeing every object).

    Everything that must outlive the command is written by then: repository files are written
    and synced as they are stored, locks released by their context managers, child processes
    waited for. Only the standard streams and the log handlers still hold buffered output.
    """
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or ExitCode.ERROR
    os._exit(code)
