"""`forget` as a whole: snapshots grouped (host, paths, tags, installation), the retention
policy applied to each group on its own (`retention.apply_policy`), and the plan rendered.

Groups follow restic's `--group-by` (default `host,paths`; '' is one group for everything), plus
`installation`: the Cells working dir a snapshot came from, so that two installations backed up
from one host never share a retention history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import UsageError
from ..repository.snapshot import Snapshot
from .retention import Decision, RetentionPolicy, apply_policy, sort_newest_first

GROUP_FIELDS = ("host", "paths", "tags", "installation")
DEFAULT_GROUP_BY = "host,paths"

def parse_group_by(group_by: str | Iterable[str]) -> tuple[str, ...]:
    """Split `host,paths` into fields; '' means one group for everything (restic's `--group-by ''`)."""
    items = group_by.split(",") if isinstance(group_by, str) else list(group_by)
    fields = []
    for item in items:
        name = item.strip().lower()
        if not name:
            continue
        if name == "hostname":
            name = "host"
        if name not in GROUP_FIELDS:
            choices = ", ".join(GROUP_FIELDS)
            raise UsageError(f"unknown --group-by field {item.strip()!r}: use a comma list of {choices}")
        if name not in fields:
            fields.append(name)
    return tuple(fields)


def installation_of(snapshot: Snapshot) -> str:
    """The Cells working dir the snapshot came from, or its sorted paths when it has none."""
    installation = (snapshot.extra or {}).get("installation")
    if isinstance(installation, dict):
        working_dir = installation.get("working_dir")
        if isinstance(working_dir, str) and working_dir:
            return working_dir
    return ",".join(sorted(snapshot.paths or []))


@dataclass(frozen=True)
class GroupKey:
    """What a group's snapshots share; fields not grouped on stay None."""

    hostname: str | None = None
    paths: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    installation: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.hostname is not None:
            parts.append(f"host {self.hostname!r}")
        if self.paths is not None:
            parts.append(f"paths [{', '.join(self.paths)}]")
        if self.tags is not None:
            parts.append(f"tags [{', '.join(self.tags)}]")
        if self.installation is not None:
            parts.append(f"installation {self.installation!r}")
        return ", ".join(parts) or "all snapshots"

    def sort_key(self) -> tuple:
        return (self.hostname or "", self.paths or (), self.tags or (), self.installation or "")

    def to_dict(self) -> dict:
        doc: dict = {}
        if self.hostname is not None:
            doc["host"] = self.hostname
        if self.paths is not None:
            doc["paths"] = list(self.paths)
        if self.tags is not None:
            doc["tags"] = list(self.tags)
        if self.installation is not None:
            doc["installation"] = self.installation
        return doc


def group_key(snapshot: Snapshot, fields: tuple[str, ...]) -> GroupKey:
    return GroupKey(
        hostname=snapshot.hostname if "host" in fields else None,
        paths=tuple(sorted(snapshot.paths or [])) if "paths" in fields else None,
        tags=tuple(sorted(set(snapshot.tags or []))) if "tags" in fields else None,
        installation=installation_of(snapshot) if "installation" in fields else None,
    )


def group_snapshots(
    snapshots: Iterable[Snapshot], group_by: str | Iterable[str] = DEFAULT_GROUP_BY
) -> dict[GroupKey, list[Snapshot]]:
    """Split snapshots like restic `--group-by`; groups in a stable order, each newest first."""
    fields = parse_group_by(group_by)
    groups: dict[GroupKey, list[Snapshot]] = {}
    for snap in snapshots:
        groups.setdefault(group_key(snap, fields), []).append(snap)
    return {key: sort_newest_first(groups[key]) for key in sorted(groups, key=GroupKey.sort_key)}


# --- the plan ----------------------------------------------------------------------------


@dataclass
class GroupPlan:
    key: GroupKey
    decisions: list[Decision]

    @property
    def keep(self) -> list[Snapshot]:
        return [d.snapshot for d in self.decisions if d.keep]

    @property
    def remove(self) -> list[Snapshot]:
        return [d.snapshot for d in self.decisions if not d.keep]


def _brief(snapshot: Snapshot) -> dict:
    return {
        "id": snapshot.id,
        "short_id": snapshot.short_id,
        "time": snapshot.time,
        "hostname": snapshot.hostname,
        "paths": list(snapshot.paths or []),
        "tags": list(snapshot.tags or []),
    }


@dataclass
class ForgetPlan:
    """What `forget` would do, per group; `render()` is the --dry-run listing, `to_dict()` the JSON."""

    policy: RetentionPolicy
    group_by: tuple[str, ...]
    groups: list[GroupPlan]

    @property
    def keep(self) -> list[Snapshot]:
        return [s for g in self.groups for s in g.keep]

    @property
    def remove(self) -> list[Snapshot]:
        return [s for g in self.groups for s in g.remove]

    def render(self) -> str:
        lines = [
            f"Applying policy: {self.policy.describe()}",
            f"Grouped by: {', '.join(self.group_by) or 'nothing (one group)'}",
        ]
        for group in self.groups:
            lines.append("")
            lines.append(f"Snapshots for {group.key}: keep {len(group.keep)}, remove {len(group.remove)}")
            width = max((len(d.snapshot.short_id) for d in group.decisions), default=8)
            for d in group.decisions:
                action = "keep  " if d.keep else "remove"
                why = ", ".join(d.reasons)
                line = f"  {action}  {d.snapshot.short_id:<{width}}  {d.snapshot.time}"
                lines.append(f"{line}  {why}" if why else line)
        lines.append("")
        lines.append(f"Total: {len(self.keep)} kept, {len(self.remove)} removed")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "policy": self.policy.to_dict(),
            "group_by": list(self.group_by),
            "groups": [
                {
                    "group": g.key.to_dict(),
                    "keep": [{**_brief(d.snapshot), "reasons": list(d.reasons)} for d in g.decisions if d.keep],
                    "remove": [_brief(d.snapshot) for d in g.decisions if not d.keep],
                }
                for g in self.groups
            ],
            "summary": {"keep": len(self.keep), "remove": len(self.remove)},
        }


def plan_forget(
    snapshots: Iterable[Snapshot],
    policy: RetentionPolicy,
    group_by: str | Iterable[str] = DEFAULT_GROUP_BY,
    *,
    now: datetime | None = None,
) -> ForgetPlan:
    """Group the snapshots and apply the policy to each group independently (restic `forget`)."""
    policy.require_not_empty()
    fields = parse_group_by(group_by)
    now = now or datetime.now(UTC)
    groups = [
        GroupPlan(key=key, decisions=apply_policy(members, policy, now=now))
        for key, members in group_snapshots(snapshots, fields).items()
    ]
    return ForgetPlan(policy=policy, group_by=fields, groups=groups)
