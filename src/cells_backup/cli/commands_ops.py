"""Operations: run (for timers), config check, schedule, drill."""

from __future__ import annotations

import os

import click

from ..errors import CellsBackupError, ExitCode
from ..wording import plural
from .main import Settings, cli, common_options


@cli.group("config")
def config_group() -> None:
    """The configuration file."""


@config_group.command("check")
@common_options
def config_check(settings: Settings) -> None:
    """Validate the config file (every problem, with its line) without running anything."""
    from ..engine.config_file import check_complete, find_config_path, read_config_text, validate_config

    path = find_config_path(settings.config_path)
    if path is None:
        raise CellsBackupError("no config file: give --config or create /etc/cells-backup/config.toml")
    problems = validate_config(read_config_text(path), path)
    merged = dict(settings.config)
    if settings.repo.url:
        merged["repository"] = settings.repo.url
    if settings.repo.password.file:
        merged.setdefault("password_file", settings.repo.password.file)
    if settings.repo.password.command:
        merged.setdefault("password_command", settings.repo.password.command)
    if not problems:
        problems = check_complete(merged, os.environ, path)
    settings.out.result({"config": path, "ok": not problems, "problems": problems},
                        "\n".join(problems) if problems else f"{path}: ok")
    if problems:
        settings.out.failure = f"{path}: {plural(len(problems), 'problem')}"
        raise SystemExit(ExitCode.USAGE)


@cli.command()
@common_options
def run(settings: Settings) -> None:
    """What the config file says: backup, retention, check — one exit code, metrics, notifications."""
    from ..engine.config_file import require_complete
    from ..engine.installation_backup import InstallationBackupRequest, backup_installation
    from ..engine.job import run_job

    config = dict(settings.config)
    if settings.repo.url:
        config["repository"] = settings.repo.url
    require_complete(config, os.environ, settings.config_path)
    hooks = config.get("hooks", {})

    def backup(repo):
        request = InstallationBackupRequest(
            cells_dir=config.get("cells_dir"), tags=list(config.get("tags", [])),
            excludes=list(config.get("exclude", [])), extra_paths=list(config.get("extra_paths", [])),
            stop_command=hooks.get("stop_command"), start_command=hooks.get("start_command"),
            live=bool(config.get("live", False)))
        return backup_installation(repo, request, warn=settings.out.warn, info=settings.out.info)

    outcome = run_job(config, settings.open, backup, info=lambda m: settings.out.info(f"run: {m}"))
    for warning in outcome.warnings:
        settings.out.warn(warning)
    s = outcome.summary
    text = "\n".join(outcome.steps) + f"\nrun {s.status}" + (f": {s.message}" if s.status != "ok" else "")
    settings.out.result(s.to_dict() | {"steps": outcome.steps}, text)
    if outcome.exit_code:
        settings.out.failure = f"run {s.status}: {s.message}"
        raise SystemExit(outcome.exit_code)


@cli.command()
@click.option("--systemd", "kind", flag_value="systemd", help="Print a systemd service and timer.")
@click.option("--cron", "kind", flag_value="cron", help="Print a crontab line.")
@click.option("--install", is_flag=True, help="With --systemd: write the units to /etc/systemd/system.")
@click.option("--on-calendar", default="daily", show_default=True, help="systemd OnCalendar= value.")
@click.option("--user", default="root", show_default=True, help="User the job runs as.")
@click.option("--hour", type=int, default=3, show_default=True, help="With --cron: hour of the day.")
@common_options
def schedule(settings: Settings, kind: str | None, install: bool, on_calendar: str, user: str, hour: int) -> None:
    """Print (or install) the units or crontab line that call `run` every night."""
    from ..engine.config_file import find_config_path
    from ..engine.schedule import ENABLE_COMMANDS, cron_line, install_systemd, systemd_units

    if kind is None:
        raise click.UsageError("give --systemd or --cron")
    path = find_config_path(settings.config_path) or "/etc/cells-backup/config.toml"
    if kind == "cron":
        line = cron_line(path, hour=hour)
        settings.out.result({"cron": line}, line, data=True)
        return
    units = systemd_units(path, user=user, on_calendar=on_calendar, config=settings.config)
    if install:
        written = install_systemd(units)
        settings.out.result({"installed": written}, "installed " + ", ".join(written) + "\nthen run: "
                            + " && ".join(" ".join(c) if isinstance(c, list | tuple) else c for c in ENABLE_COMMANDS))
        return
    text = "\n".join(f"# {name}\n{body}" for name, body in units.items())
    settings.out.result(units, text, data=True)


@cli.command()
@click.option("--snapshot", default="latest", show_default=True)
@click.option("--target-dir", type=click.Path(file_okay=False), help="Where scratch directories are made.")
@click.option("--database-url", help="Server for the scratch database (default: the snapshot's).")
@click.option("--keep", is_flag=True, help="Keep the scratch copy (the scratch database too).")
@common_options
def drill(settings: Settings, snapshot: str, target_dir: str | None, database_url: str | None, keep: bool) -> None:
    """Restore into scratch places, verify, time it, clean up: proof that the backups restore."""
    from ..engine.drill import run_drill

    drill_cfg = settings.config.get("drill", {})
    repo = settings.open()
    doc = run_drill(repo, snapshot=drill_cfg.get("snapshot", snapshot),
                    target_dir=target_dir or drill_cfg.get("target_dir"),
                    database_url=database_url or drill_cfg.get("database_url"), keep=keep,
                    info=settings.out.info)
    lines = [f"problem: {p}" for p in doc["problems"]] + [f"note: {n}" for n in doc.get("notes", [])]
    lines.append(("drill passed" if doc["whole"] else "DRILL FAILED") +
                 f": snapshot {doc['snapshot'][:8]} restored and verified in {doc['seconds']} s")
    settings.out.result(doc, "\n".join(lines))
    if not doc["whole"]:
        settings.out.failure = "drill failed: " + "; ".join(doc["problems"][:3])
        raise SystemExit(ExitCode.ERROR)


