"""The retention keys, defined once: `forget`'s flags, the config file's `[retention]` keys and
the policy `run` applies all come from `RETENTION_KEYS`, so a key given one way can be given the
other (`--keep-within-daily 2w` is `keep_within_daily = "2w"`, `--group-by host` is
`group_by = "host"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import UsageError
from .forget_plan import DEFAULT_GROUP_BY
from .retention import RetentionPolicy

DEFAULT_MAX_UNUSED = "10%"


@dataclass(frozen=True)
class RetentionKey:
    """One setting: `name` in `[retention]`, `--name-with-dashes` on the command line.

    `kind` says how its value is read: count (whole number, -1 unlimited), duration ("2w3d"),
    tags (repeatable), group_by (comma list), switch (true/false) or share ("10%").
    """

    name: str
    kind: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


RETENTION_KEYS: tuple[RetentionKey, ...] = (
    RetentionKey("keep_last", "count", "Keep the N newest snapshots."),
    RetentionKey("keep_hourly", "count", "Keep the newest snapshot of each of the last N hours (-1: all)."),
    RetentionKey("keep_daily", "count", "... of each of the last N days."),
    RetentionKey("keep_weekly", "count", "... of each of the last N ISO weeks."),
    RetentionKey("keep_monthly", "count", "... of each of the last N months."),
    RetentionKey("keep_yearly", "count", "... of each of the last N years."),
    RetentionKey("keep_within", "duration",
                 "Keep everything within this duration of the newest snapshot (e.g. 2w3d)."),
    RetentionKey("keep_within_daily", "duration", "Keep one a day within this duration."),
    RetentionKey("keep_within_weekly", "duration", "Keep one a week within this duration."),
    RetentionKey("keep_within_monthly", "duration", "Keep one a month within this duration."),
    RetentionKey("keep_tag", "tags", "Keep snapshots with this tag (repeatable)."),
    RetentionKey("group_by", "group_by",
                 "Apply the policy per group: host, paths, tags, installation (comma list)."),
    RetentionKey("prune", "switch", "Free the space right away."),
    RetentionKey("max_unused", "share", "With --prune: repack threshold."),
)
POLICY_KINDS = ("count", "duration", "tags")


def parse_share(text: object) -> float:
    """`10%` (or `10`) as 0.1: the share of unused data above which prune repacks a pack."""
    raw = str(text).strip()
    try:
        share = float(raw.removesuffix("%")) / 100
    except ValueError:
        raise UsageError(f"max unused must be a percentage like \"10%\", got {text!r}") from None
    return share


def policy_from_settings(settings: Mapping[str, object]) -> RetentionPolicy:
    """The policy from `[retention]` or from `forget`'s options (both keyed by `RETENTION_KEYS`
    names); unset values (None, empty) are left out."""
    options: dict[str, object] = {}
    for key in RETENTION_KEYS:
        value = settings.get(key.name)
        if key.kind not in POLICY_KINDS or value is None or value in ((), []):
            continue
        if key.kind == "tags":
            options["keep_tags"] = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
        else:
            options[key.name] = value
    return RetentionPolicy(**options)  # type: ignore[arg-type]


def group_by_from_settings(settings: Mapping[str, object]) -> str:
    value = settings.get("group_by")
    if value is None:
        return DEFAULT_GROUP_BY
    return value if isinstance(value, str) else ",".join(value)  # type: ignore[arg-type]
