"""Retention policies for `forget`: decide which snapshots to keep, and say why.

The semantics follow restic's `forget` (internal/restic/snapshot_policy.go), so that
administrators who know restic get no surprises, with a few deliberate safety additions:

* Snapshots are walked newest first (by absolute instant; equal instants by id, so the
  result never depends on listing order).
* Bucket rules (`keep_hourly` ... `keep_yearly`) keep a snapshot when its period key
  differs from the key of the last snapshot that *this rule* kept, until N periods are
  used; periods without snapshots are not counted, so the newest snapshot of each period
  is the one kept. -1 means unlimited. As in restic >= 0.17, a rule that still has room
  when it reaches the oldest snapshot of the group keeps that one too (longest history).
* Period keys use the snapshot's OWN wall clock, as recorded in its UTC offset (restic
  does the same: Go keeps the parsed offset). A snapshot taken at 00:30+01:00 on 1 Jan
  belongs to the new year and day even though it is still 31 Dec in UTC; across a DST
  change the hour/day is the one shown on the machine's clock at the time. Weeks are ISO
  8601 weeks (Monday first, keyed by ISO year), so 31 Dec 2024 and 1 Jan 2025 share
  week 2025-W01. Times without an offset are read as UTC.
* `keep_within*` durations count back from the newest snapshot of the group that is not
  in the future (not from "now"): a repository that stopped receiving backups keeps its
  last history instead of silently expiring. Years and months move the calendar (a day
  past the month's end is clamped to its last day: 31 Mar - 1m = 28/29 Feb), weeks, days
  and hours are exact; a snapshot must be strictly newer than the cutoff.
* An empty policy is refused, and a non-empty policy that would keep nothing at all in a
  group (e.g. only `keep_tags` and no snapshot carries the tag) keeps the group's newest
  snapshot: forget must never remove everything by accident.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ..errors import UsageError
from ..repository.snapshot import Snapshot

EMPTY_POLICY_MESSAGE = "refusing to forget every snapshot: give at least one --keep-* option"
UNLIMITED = -1

_DURATION_UNITS = {"y": "years", "m": "months", "w": "weeks", "d": "days", "h": "hours"}
_DURATION_RE = re.compile(r"(\d+)([a-zA-Z])")
_BUCKETS = ("hourly", "daily", "weekly", "monthly", "yearly")


# --- durations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Duration:
    """A calendar-aware span like restic's `1y5m7d2h` (plus weeks); no dateutil needed."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0

    def __str__(self) -> str:
        parts = [f"{getattr(self, name)}{unit}" for unit, name in _DURATION_UNITS.items() if getattr(self, name)]
        return "".join(parts) or "0h"

    @property
    def zero(self) -> bool:
        return not (self.years or self.months or self.weeks or self.days or self.hours)

    def before(self, moment: datetime) -> datetime:
        """`moment` minus this span; years/months move the calendar, the rest is exact time.

        If the result would fall before year 1 the earliest datetime is returned, so that
        an absurdly long window simply keeps everything.
        """
        try:
            month_index = moment.year * 12 + (moment.month - 1) - (self.years * 12 + self.months)
            year, month = divmod(month_index, 12)
            month += 1
            day = min(moment.day, calendar.monthrange(year, month)[1])
            shifted = moment.replace(year=year, month=month, day=day)
            return shifted - timedelta(weeks=self.weeks, days=self.days, hours=self.hours)
        except (ValueError, OverflowError, calendar.IllegalMonthError):
            return datetime.min.replace(tzinfo=UTC)


def parse_duration(text: str) -> Duration:
    """Parse `2w3d`, `1y6m`, `36h`: units y (years), m (months), w, d, h; each at most once."""
    if not isinstance(text, str):
        raise UsageError(f"invalid duration {text!r}: expected text like 2w3d, 1y6m or 36h")
    raw = text.strip()
    hint = "expected numbers followed by y (years), m (months), w (weeks), d (days) or h (hours), e.g. 2w3d"
    if not raw:
        raise UsageError(f"invalid duration {text!r}: empty; {hint}")
    pos = 0
    values: dict[str, int] = {}
    for match in _DURATION_RE.finditer(raw):
        if match.start() != pos:
            break
        number, unit = match.groups()
        if unit not in _DURATION_UNITS:
            extra = " (months are lowercase m; minutes are not supported)" if unit == "M" else ""
            raise UsageError(f"invalid duration {text!r}: unknown unit {unit!r}{extra}; {hint}")
        name = _DURATION_UNITS[unit]
        if name in values:
            raise UsageError(f"invalid duration {text!r}: unit {unit!r} given twice")
        values[name] = int(number)
        pos = match.end()
    if pos != len(raw):
        raise UsageError(f"invalid duration {text!r}: cannot read {raw[pos:]!r}; {hint}")
    duration = Duration(**values)
    if duration.zero:
        raise UsageError(f"invalid duration {text!r}: must be longer than zero")
    return duration


# --- policy ------------------------------------------------------------------------------


def _check_count(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"--{name.replace('_', '-')} must be a whole number, got {value!r}")
    if value < UNLIMITED:
        raise UsageError(f"--{name.replace('_', '-')} must be a positive number or -1 (unlimited), got {value}")
    return value


def _check_duration(name: str, value: object) -> Duration | None:
    if value is None or value == "":
        return None
    if isinstance(value, Duration):
        if value.zero:
            raise UsageError(f"--{name.replace('_', '-')} must be longer than zero")
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise UsageError(f"--{name.replace('_', '-')} must be a duration like 2w3d, got {value!r}")


def _tag_set(entry: str) -> frozenset[str]:
    return frozenset(t.strip() for t in entry.split(",") if t.strip())


@dataclass
class RetentionPolicy:
    """What `forget` keeps; counts are None/0 (off), N, or -1 (unlimited), like restic.

    `keep_tags` entries are tags; an entry `a,b` (restic's tag list) needs both tags.
    A snapshot matching any entry is kept. Duration fields accept `Duration` or text.
    """

    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    keep_within: Duration | str | None = None
    keep_within_hourly: Duration | str | None = None
    keep_within_daily: Duration | str | None = None
    keep_within_weekly: Duration | str | None = None
    keep_within_monthly: Duration | str | None = None
    keep_within_yearly: Duration | str | None = None
    keep_tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("keep_last", *(f"keep_{b}" for b in _BUCKETS)):
            setattr(self, name, _check_count(name, getattr(self, name)))
        for name in ("keep_within", *(f"keep_within_{b}" for b in _BUCKETS)):
            setattr(self, name, _check_duration(name, getattr(self, name)))
        if isinstance(self.keep_tags, str):
            raise UsageError("keep_tags must be a list of tags, not one string")
        tags = []
        for entry in self.keep_tags or []:
            if not isinstance(entry, str) or not _tag_set(entry):
                raise UsageError(f"--keep-tag needs a tag name, got {entry!r}")
            tags.append(",".join(sorted(_tag_set(entry))))
        self.keep_tags = tags

    def count(self, rule: str) -> int:
        """The effective count of `last` or a bucket rule: 0 off, N, or -1 unlimited."""
        return getattr(self, f"keep_{rule}") or 0

    def within(self, rule: str | None = None) -> Duration | None:
        name = "keep_within" if rule is None else f"keep_within_{rule}"
        return getattr(self, name)

    @property
    def empty(self) -> bool:
        """True when no rule would keep anything, i.e. forget would remove every snapshot."""
        if self.keep_tags:
            return False
        if any(self.count(rule) for rule in ("last", *_BUCKETS)):
            return False
        return all(self.within(rule) is None for rule in (None, *_BUCKETS))

    def describe(self) -> str:
        """One line for humans, e.g. 'keep 7 daily, 4 weekly; all within 2w of the newest'."""
        counts = []
        for rule in ("last", *_BUCKETS):
            n = self.count(rule)
            if n:
                counts.append(f"{'all' if n == UNLIMITED else n} {rule}")
        one = len(counts) == 1 and counts[0].startswith("1 ")
        parts = [", ".join(counts) + (" snapshot" if one else " snapshots")] if counts else []
        for rule in _BUCKETS:
            span = self.within(rule)
            if span is not None:
                parts.append(f"{rule} snapshots within {span} of the newest")
        if self.keep_within is not None:
            parts.append(f"all snapshots within {self.keep_within} of the newest")
        if self.keep_tags:
            parts.append("all snapshots tagged " + " or ".join(self.keep_tags))
        return "keep " + "; ".join(parts) if parts else "keep nothing (empty policy)"

    def to_dict(self) -> dict:
        doc: dict = {}
        for rule in ("last", *_BUCKETS):
            n = self.count(rule)
            if n:
                doc[f"keep_{rule}"] = n
        for rule in (None, *_BUCKETS):
            span = self.within(rule)
            if span is not None:
                doc["keep_within" if rule is None else f"keep_within_{rule}"] = str(span)
        if self.keep_tags:
            doc["keep_tags"] = list(self.keep_tags)
        return doc

    def require_not_empty(self) -> None:
        """Refuse the policy that would delete every snapshot."""
        if self.empty:
            raise UsageError(EMPTY_POLICY_MESSAGE)


# --- applying a policy to one group ------------------------------------------------------


@dataclass
class Decision:
    """The verdict for one snapshot; `reasons` lists every rule that kept it (empty if removed)."""

    snapshot: Snapshot
    keep: bool
    reasons: list[str] = field(default_factory=list)


def snapshot_moment(snapshot: Snapshot) -> datetime:
    """The snapshot's time with its recorded offset; times without one are taken as UTC."""
    moment = snapshot.datetime
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _key_hourly(t: datetime) -> str:
    return f"{t:%Y-%m-%d}T{t:%H}"


def _key_daily(t: datetime) -> str:
    return f"{t:%Y-%m-%d}"


def _key_weekly(t: datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _key_monthly(t: datetime) -> str:
    return f"{t:%Y-%m}"


def _key_yearly(t: datetime) -> str:
    return f"{t.year:04d}"


PERIOD_KEYS: dict[str, Callable[[datetime], str]] = {
    "hourly": _key_hourly,
    "daily": _key_daily,
    "weekly": _key_weekly,
    "monthly": _key_monthly,
    "yearly": _key_yearly,
}


def sort_newest_first(snapshots: Iterable[Snapshot]) -> list[Snapshot]:
    """Newest first by absolute instant; equal instants fall back to id so order is stable."""
    return sorted(snapshots, key=lambda s: (snapshot_moment(s), s.id), reverse=True)


def _has_tags(snapshot: Snapshot, wanted: frozenset[str]) -> bool:
    return wanted <= set(snapshot.tags or [])


def apply_policy(snapshots: list[Snapshot], policy: RetentionPolicy, *, now: datetime | None = None) -> list[Decision]:
    """Decide keep/remove for ONE group, newest first; refuses an empty policy.

    `now` (default: the current time) only serves to ignore snapshots dated in the future
    when finding the newest snapshot that `keep_within*` windows count back from, as restic
    does, so one snapshot from a machine with a wrong clock cannot expire the rest.
    """
    policy.require_not_empty()
    ordered = sort_newest_first(snapshots)
    if not ordered:
        return []
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    moments = [snapshot_moment(s) for s in ordered]
    past = [m for m in moments if m < now]
    latest = max(past) if past else None

    def cutoff(span: Duration | None) -> datetime | None:
        if span is None:
            return None
        return span.before(latest) if latest is not None else datetime.min.replace(tzinfo=UTC)

    within_cutoff = cutoff(policy.keep_within)
    counters = {rule: policy.count(rule) for rule in ("last", *_BUCKETS)}
    last_kept: dict[str, str | None] = {rule: None for rule in _BUCKETS}
    within_rules = [(rule, policy.within(rule), cutoff(policy.within(rule))) for rule in _BUCKETS]
    within_last: dict[str, str | None] = {rule: None for rule in _BUCKETS}
    tag_sets = [(entry, _tag_set(entry)) for entry in policy.keep_tags]

    decisions = []
    oldest = len(ordered) - 1
    for nr, (snap, moment) in enumerate(zip(ordered, moments, strict=True)):
        reasons = [f"tag {entry}" for entry, wanted in tag_sets if _has_tags(snap, wanted)]
        if within_cutoff is not None and moment > within_cutoff:
            reasons.append(f"within {policy.keep_within}")
        if counters["last"]:
            reasons.append(f"last {nr + 1}")
            if counters["last"] > 0:
                counters["last"] -= 1
        for rule in _BUCKETS:
            if not counters[rule]:
                continue
            key = PERIOD_KEYS[rule](moment)
            if key != last_kept[rule]:
                reasons.append(f"{rule} {key}")
            elif nr == oldest:
                reasons.append(f"{rule} {key} (oldest)")
            else:
                continue
            last_kept[rule] = key
            if counters[rule] > 0:
                counters[rule] -= 1
        for rule, span, limit in within_rules:
            if limit is not None and moment > limit:
                key = PERIOD_KEYS[rule](moment)
                if key != within_last[rule]:
                    within_last[rule] = key
                    reasons.append(f"within-{rule} {span} {key}")
        decisions.append(Decision(snapshot=snap, keep=bool(reasons), reasons=reasons))

    if not any(d.keep for d in decisions):
        decisions[0].keep = True
        decisions[0].reasons.append("newest (the policy would keep nothing in this group)")
    return decisions
