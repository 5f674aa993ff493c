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
from .global_options import GlobalOptions, global_options
from .output import Output


@dataclass
class Settings:
    repo: RepoSettings
    out: Output = field(default_factory=Output)
    config: dict = field(default_factory=dict)
    config_path: str | None = None

    def open(self):
        return open_repository(self.repo)


@dataclass
class Invocation:
    """What the group read before the command: the global options and the output channel."""

    options: GlobalOptions = field(default_factory=GlobalOptions)
    out: Output = field(default_factory=Output)


def make_settings(options: GlobalOptions, out: Output) -> Settings:
    """Settings from the global options, the config file and the environment (flags first)."""
    from ..engine.config_file import load_config

    config = load_config(options.config_file)
    log_file = options.log_file or config.get("log_file")
    if log_file:
        from ..engine.logsetup import setup_logging

        setup_logging(out.verbose, out.quiet, log_file)
    repo = options.repo or config.get("repository")
    s3 = config.get("s3", {})
    path_style = options.s3_path_style if options.s3_path_style is not None else s3.get("path_style")
    source = PasswordSource.from_env(options.password_file or config.get("password_file"),
                                     options.password_command or config.get("password_command"))
    backend_options = {}
    if repo and repo.startswith("s3://"):
        backend_options = {"endpoint": options.s3_endpoint or s3.get("endpoint"),
                           "region": options.s3_region or s3.get("region"), "path_style": path_style}
    return Settings(repo=RepoSettings(url=repo, password=source, backend_options=backend_options),
                    out=out, config=config, config_path=options.config_file)


def output_options(func):
    """--json, -q and -v: accepted before the command and after it."""
    func = click.option("-v", "--verbose", count=True, help="More detail on stderr.")(func)
    func = click.option("-q", "--quiet", is_flag=True, help="Print only errors.")(func)
    return click.option("--json", "json_", is_flag=True, help="Print one JSON document on stdout.")(func)


def common_options(func):
    """--json, -q, -v and the global options on every command (also accepted before the command)."""

    @output_options
    @global_options(from_env=False)
    @click.pass_context
    @wraps(func)
    def wrapper(ctx, *args, json_=False, quiet=False, verbose=0, **kwargs):
        invocation = ctx.find_object(Invocation) or Invocation()
        given_here = GlobalOptions.pop_from(kwargs)
        out = invocation.out
        out.json = out.json or json_
        out.quiet = out.quiet or quiet
        out.verbose = max(out.verbose, verbose)
        settings = make_settings(invocation.options.overridden_by(given_here), out)
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
@global_options(from_env=True)
@output_options
@click.pass_context
def cli(ctx, json_, quiet, verbose, **options):
    """Back up and recover a whole Pydio Cells installation.

    The options below may also be given after the command (`cells-backup init --repo DIR`).
    """
    out = ctx.obj if isinstance(ctx.obj, Output) else Output()
    out.json, out.quiet, out.verbose = json_, quiet, verbose
    ctx.obj = Invocation(GlobalOptions(**options), out)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every expected failure becomes one line on stderr and its exit code
    (and with --json, one document on stdout that says so)."""
    allocator.tune()
    out = Output()
    code, error = _run(argv, out)
    if error is not None and not out.json:
        # the command line did not parse as far as --json: honour it all the same
        out.json = "--json" in (sys.argv[1:] if argv is None else argv)
    try:
        out.finish(code, error)
    except BrokenPipeError:
        code = code or ExitCode.ERROR
    if argv is None:
        _exit_now(code)
    sys.exit(code)


def _run(argv: list[str] | None, out: Output) -> tuple[int, str | None]:
    """Run the command: (exit code, error message or None)."""
    try:
        code = cli.main(args=argv, prog_name="cells-backup", standalone_mode=False, obj=out)
        return code or 0, None
    except SystemExit as exc:  # a command's own exit code (partial backup, failed check)
        return (exc.code if isinstance(exc.code, int) else ExitCode.ERROR), None
    except click.exceptions.Exit as exc:
        return exc.exit_code, None
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.stderr.write("cells-backup: interrupted\n")
        return 130, "interrupted"
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code, exc.format_message()
    except CellsBackupError as exc:
        sys.stderr.write(f"cells-backup: error: {exc}\n")
        return exc.exit_code, str(exc)
    except BrokenPipeError:
        return ExitCode.ERROR, "broken pipe"
    except Exception as exc:  # a bug: one line for the admin, the traceback only on request
        sys.stderr.write(f"cells-backup: internal error: {type(exc).__name__}: {exc}\n")
        if os.environ.get("CELLS_BACKUP_DEBUG"):
            traceback.print_exc()
        else:
            sys.stderr.write("(set CELLS_BACKUP_DEBUG=1 for details and please report it)\n")
        return ExitCode.ERROR, f"internal error: {type(exc).__name__}: {exc}"


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
