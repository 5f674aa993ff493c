"""Telling someone how the unattended run went: Prometheus textfile, ping URL, webhook, command.

A backup nobody watches is a backup that silently stopped months ago, so every run reports.
Monitoring must never turn a good backup into a failed one: notifications retry a little,
then give up with a warning line instead of raising. Payloads carry counts, times and ids —
never passwords or DSNs (messages pass through `redact`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from .. import __version__
from ..atomicfile import write_atomic
from ..errors import CellsBackupError
from .logsetup import LOGGER_NAME, redact

log = logging.getLogger(f"{LOGGER_NAME}.monitoring")

STATUSES = ("ok", "partial", "failed")
MAX_PING_BODY = 10_000  # Healthchecks keeps the first 100 kB of a ping body; a summary needs far less


@dataclass
class RunSummary:
    """What one `run` did; times are Unix seconds. ``partial``: a snapshot with unreadable files."""

    status: str
    started: float
    finished: float
    duration: float | None = None  # defaults to finished - started
    bytes_added: int | None = None
    snapshot_id: str | None = None
    snapshot_count: int | None = None
    repository_size: int | None = None
    downtime: float | None = None  # seconds Cells was stopped
    check_ok: bool | None = None  # None: no check this run
    errors: list[str] = field(default_factory=list)
    message: str = ""
    hostname: str = field(default_factory=socket.gethostname)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.duration is None:
            self.duration = max(0.0, self.finished - self.started)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def snapshot_written(self) -> bool:
        return self.status in ("ok", "partial") and bool(self.snapshot_id)

    def to_dict(self) -> dict:
        """The JSON document for webhooks and commands: stable keys, ISO times, secrets redacted."""
        doc = asdict(self)
        doc["started"] = _iso(self.started)
        doc["finished"] = _iso(self.finished)
        doc["message"] = redact(self.message)
        doc["errors"] = [redact(e) for e in self.errors]
        doc["tool"] = f"cells-backup {__version__}"
        return doc

    def text(self) -> str:
        """A few human lines (ping bodies, logs)."""
        head = f"cells-backup on {self.hostname}: {self.status}"
        lines = [f"{head} — {redact(self.message)}" if self.message else head]
        facts = [f"duration {self.duration:.0f}s"]
        if self.snapshot_id:
            facts.append(f"snapshot {self.snapshot_id[:8]}")
        if self.bytes_added is not None:
            facts.append(f"added {self.bytes_added} bytes")
        if self.downtime is not None:
            facts.append(f"downtime {self.downtime:.1f}s")
        if self.check_ok is not None:
            facts.append("check ok" if self.check_ok else "check FAILED")
        lines.append(", ".join(facts))
        lines += [f"error: {redact(e)}" for e in self.errors]
        return "\n".join(lines)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- Prometheus textfile collector

# (name, help); order is the file's order.
METRICS = {
    "cells_backup_last_success_timestamp_seconds": "Unix time the last fully successful run finished.",
    "cells_backup_last_snapshot_timestamp_seconds": "Unix time the last run that wrote a snapshot (ok or partial) "
                                                    "finished.",
    "cells_backup_last_run_timestamp_seconds": "Unix time the last run finished, whatever its outcome.",
    "cells_backup_last_run_status": "1 if the last run succeeded, 0 if it failed or was partial.",
    "cells_backup_last_run_partial": "1 if the last run wrote a snapshot with unreadable files.",
    "cells_backup_duration_seconds": "Duration of the last run.",
    "cells_backup_bytes_added": "Bytes the last run added to the repository (after dedup and compression).",
    "cells_backup_snapshots": "Number of snapshots in the repository.",
    "cells_backup_repository_size_bytes": "Size of the repository.",
    "cells_backup_downtime_seconds": "Seconds Cells was stopped during the last run.",
    "cells_backup_last_check_ok": "1 if the last repository check passed, 0 if it found damage.",
}
# Facts about the repository or earlier runs: kept from the previous file when this run does not know them.
_KEPT = ("cells_backup_last_success_timestamp_seconds", "cells_backup_last_snapshot_timestamp_seconds",
         "cells_backup_snapshots", "cells_backup_repository_size_bytes", "cells_backup_last_check_ok")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)(?:\s+\S+)?\s*$")


def read_prometheus_textfile(path: str) -> dict[str, float]:
    """Sample values by metric name (labels ignored); {} when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return {}
    return parse_prometheus_text(text)


def parse_prometheus_text(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or line.startswith("#"):
            continue
        try:
            values[m.group(1)] = float(m.group(2))
        except ValueError:
            continue
    return values


def _fmt(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _label_text(labels: Mapping[str, str] | None) -> str:
    if not labels:
        return ""
    parts = []
    for key, value in labels.items():
        escaped = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{key}="{escaped}"')
    return "{" + ",".join(parts) + "}"


def prometheus_values(summary: RunSummary, previous: Mapping[str, float] | None = None) -> dict[str, float]:
    """This run's metric values; repository facts this run did not learn come from ``previous``."""
    previous = previous or {}
    values: dict[str, float | None] = {
        "cells_backup_last_success_timestamp_seconds": summary.finished if summary.ok else None,
        "cells_backup_last_snapshot_timestamp_seconds": summary.finished if summary.snapshot_written else None,
        "cells_backup_last_run_timestamp_seconds": summary.finished,
        "cells_backup_last_run_status": 1 if summary.ok else 0,
        "cells_backup_last_run_partial": 1 if summary.status == "partial" else 0,
        "cells_backup_duration_seconds": summary.duration,
        "cells_backup_bytes_added": summary.bytes_added or 0,
        "cells_backup_snapshots": summary.snapshot_count,
        "cells_backup_repository_size_bytes": summary.repository_size,
        "cells_backup_downtime_seconds": summary.downtime or 0,
        "cells_backup_last_check_ok": None if summary.check_ok is None else int(summary.check_ok),
    }
    for name in _KEPT:
        if values[name] is None and name in previous:
            values[name] = previous[name]
    return {k: v for k, v in values.items() if v is not None}


def write_prometheus_textfile(
    path: str,
    summary: RunSummary,
    previous: Mapping[str, float] | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Write the metrics for node_exporter's textfile collector, atomically (temp file + rename).

    ``previous`` defaults to the values already in ``path``, so a failed run keeps the time of
    the last success (the number alerts are built on). Mode 0644: the exporter runs as another
    user and the file holds no secret. Returns the text written; CellsBackupError on I/O failure.
    """
    if previous is None:
        previous = read_prometheus_textfile(path)
    values = prometheus_values(summary, previous)
    label_text = _label_text(labels)
    lines: list[str] = []
    for name, help_text in METRICS.items():
        if name not in values:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{label_text} {_fmt(values[name])}"]
    text = "\n".join(lines) + "\n"
    try:
        write_atomic(path, text.encode("utf-8"), 0o644)  # the temp name does not end in .prom
    except OSError as exc:
        raise CellsBackupError(f"cannot write metrics file {path}: {exc.strerror}") from None
    return text


# ---------------------------------------------------------------- notifications


def _where(url: str) -> str:
    """scheme://host only: ping and webhook URLs carry their secret in the path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


class Notifier:
    """Ping URL (Healthchecks-style), JSON webhook and shell command; every method returns warnings.

    Ping protocol (Healthchecks, also understood by Uptime Kuma push / Cronitor-like services):
    ``GET <url>/start`` when the run starts; on the end ``POST <url>`` (ok) or ``POST <url>/fail``
    (failed *or partial* — a snapshot with unreadable files needs a human), with the short text
    summary as body so it shows in the check's event log. POST rather than GET because the body
    is where that summary goes; Healthchecks treats both as a ping.
    Webhook: ``POST`` of `RunSummary.to_dict` as application/json at the end only.
    Command: run by the shell at the end with that JSON on stdin and CELLS_BACKUP_STATUS,
    CELLS_BACKUP_SNAPSHOT_ID in the environment; not retried (it may not be idempotent).
    HTTP: ``timeout`` seconds per attempt, ``retries`` more attempts on network errors, 429 and 5xx.
    """

    def __init__(
        self,
        ping_url: str | None = None,
        webhook_url: str | None = None,
        command: str | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        retry_delay: float = 2.0,
        command_timeout: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.ping_url = ping_url.rstrip("/") if ping_url else None
        self.webhook_url = webhook_url
        self.command = command
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.command_timeout = command_timeout
        self.log = logger or log

    @classmethod
    def from_config(cls, config: Mapping, **kwargs) -> Notifier:
        """From a loaded config (its ``[monitoring]`` table)."""
        mon = config.get("monitoring") or {}
        return cls(mon.get("ping_url"), mon.get("webhook_url"), mon.get("command"), **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.ping_url or self.webhook_url or self.command)

    def start(self) -> list[str]:
        """Tell the ping service a run began (so it can measure it and alert on a hang)."""
        if not self.ping_url:
            return []
        warning = self._http("ping", "GET", f"{self.ping_url}/start", None, None)
        return [warning] if warning else []

    def finish(self, summary: RunSummary) -> list[str]:
        """Report the outcome everywhere configured; the warnings of those that failed."""
        warnings: list[str] = []
        if self.ping_url:
            url = self.ping_url if summary.ok else f"{self.ping_url}/fail"
            body = summary.text().encode("utf-8")[:MAX_PING_BODY]
            warnings.append(self._http("ping", "POST", url, body, "text/plain; charset=utf-8"))
        if self.webhook_url:
            body = json.dumps(summary.to_dict()).encode("utf-8")
            warnings.append(self._http("webhook", "POST", self.webhook_url, body, "application/json"))
        if self.command:
            warnings.append(self._run_command(summary))
        return [w for w in warnings if w]

    def _http(self, what: str, method: str, url: str, body: bytes | None, content_type: str | None) -> str | None:
        headers = {"User-Agent": f"cells-backup/{__version__}"}
        if content_type:
            headers["Content-Type"] = content_type
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_delay * attempt)
            request = urllib.request.Request(url, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read(1024)
                return None
            except urllib.error.HTTPError as exc:
                problem = f"HTTP {exc.code} {exc.reason}"
                if exc.code != 429 and exc.code < 500:
                    break  # the request itself is wrong; repeating it will not help
            except Exception as exc:  # URLError, timeouts, bad status lines: a warning, never a crash
                reason = getattr(exc, "reason", exc)
                problem = str(reason) or type(exc).__name__
        warning = f"monitoring: {what} to {_where(url)} failed ({problem}); the run itself is not affected"
        self.log.warning(warning)
        return warning

    def _run_command(self, summary: RunSummary) -> str | None:
        env = dict(os.environ)
        for name in ("CELLS_BACKUP_PASSWORD", "CELLS_BACKUP_PASSWORD_FILE", "CELLS_BACKUP_PASSWORD_COMMAND"):
            env.pop(name, None)  # the notification command has no business with the repository key
        env["CELLS_BACKUP_STATUS"] = summary.status
        env["CELLS_BACKUP_SNAPSHOT_ID"] = summary.snapshot_id or ""
        try:
            proc = subprocess.run(self.command, shell=True, input=json.dumps(summary.to_dict()).encode("utf-8"),
                                  env=env, capture_output=True, timeout=self.command_timeout)
        except subprocess.TimeoutExpired:
            problem = f"did not finish within {self.command_timeout:.0f} s"
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            if proc.returncode == 0:
                return None
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            problem = f"exit code {proc.returncode}" + (f": {redact(detail[-1])}" if detail else "")
        warning = f"monitoring: notification command failed ({problem}); the run itself is not affected"
        self.log.warning(warning)
        return warning


def report_run(config: Mapping, summary: RunSummary, notifier: Notifier | None = None) -> list[str]:
    """Everything `run` does at the end: metrics file and notifications. Never raises; returns warnings."""
    warnings: list[str] = []
    mon = config.get("monitoring") or {}
    textfile = mon.get("prometheus_textfile")
    if textfile:
        try:
            write_prometheus_textfile(textfile, summary)
        except CellsBackupError as exc:
            warnings.append(f"monitoring: {exc}")
            log.warning("monitoring: %s", exc)
    notifier = notifier or Notifier.from_config(config)
    warnings += notifier.finish(summary)
    return warnings
