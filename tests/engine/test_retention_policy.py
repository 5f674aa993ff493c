"""Retention policy for `forget`: restic's semantics, checked against keep sets worked out by hand.

The fixture below is an irregular history of one machine (Europe/Paris offsets). Every
expected keep set in CASES was derived by walking the list newest first on paper; the
comments next to the fixture give the facts that reasoning needs (weekday, ISO week, UTC).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cells_backup.engine.forget_plan import GroupKey, group_snapshots, plan_forget
from cells_backup.engine.retention import (
    EMPTY_POLICY_MESSAGE,
    Duration,
    RetentionPolicy,
    apply_policy,
    parse_duration,
)
from cells_backup.errors import UsageError
from cells_backup.repository.snapshot import Snapshot

NOW = datetime(2026, 12, 1, tzinfo=UTC)

# id, local time with offset, tags                 weekday  ISO week   UTC
HISTORY = [
    ("s01", "2022-02-14T09:00:00+01:00", ["manual", "keep-forever"]),  # Mon 2022-W07
    ("s02", "2022-08-01T09:00:00+02:00", ["cron"]),  # Mon 2022-W31  same day as s03
    ("s03", "2022-08-01T21:00:00+02:00", ["cron"]),  # Mon 2022-W31
    ("s04", "2023-05-20T10:00:00+02:00", ["cron"]),  # Sat 2023-W20
    ("s05", "2023-11-11T11:00:00+01:00", ["cron"]),  # Sat 2023-W45
    ("s06", "2024-04-02T08:00:00+02:00", ["cron"]),  # Tue 2024-W14
    ("s07", "2024-10-15T08:00:00+02:00", ["cron"]),  # Tue 2024-W42
    ("s08", "2024-12-30T22:00:00+01:00", ["cron"]),  # Mon 2025-W01 (ISO year 2025!)
    ("s09", "2024-12-31T23:30:00+01:00", ["cron"]),  # Tue 2025-W01  22:30Z
    ("s10", "2025-01-01T00:30:00+01:00", ["cron"]),  # Wed 2025-W01  2024-12-31 23:30Z
    ("s11", "2025-01-06T08:00:00+01:00", ["cron"]),  # Mon 2025-W02
    ("s12", "2025-03-03T08:00:00+01:00", ["manual", "pre-upgrade"]),  # Mon 2025-W10
    ("s13", "2025-06-15T12:00:00+02:00", ["cron"]),  # Sun 2025-W24
    ("s14", "2025-10-26T02:30:00+02:00", ["cron"]),  # Sun 2025-W43  00:30Z  (before fall-back)
    ("s15", "2025-10-26T02:15:00+01:00", ["cron"]),  # Sun 2025-W43  01:15Z  (02:xx again, after)
    ("s16", "2025-10-26T03:05:00+01:00", ["cron"]),  # Sun 2025-W43  02:05Z
    ("s17", "2025-12-20T09:00:00+01:00", ["cron"]),  # Sat 2025-W51
    ("s18", "2026-02-01T09:00:00+01:00", ["cron"]),  # Sun 2026-W05
    ("s19", "2026-02-28T09:00:00+01:00", ["cron"]),  # Sat 2026-W09
    ("s20", "2026-03-27T23:30:00+01:00", ["cron"]),  # Fri 2026-W13  22:30Z
    ("s21", "2026-03-28T09:00:00+01:00", ["cron"]),  # Sat 2026-W13  08:00Z
    ("s22", "2026-03-29T00:30:00+01:00", ["cron"]),  # Sun 2026-W13  03-28 23:30Z
    ("s23", "2026-03-29T01:30:00+01:00", ["cron"]),  # Sun 2026-W13  00:30Z  (DST starts 02:00)
    ("s24", "2026-03-29T03:30:00+02:00", ["cron"]),  # Sun 2026-W13  01:30Z
    ("s25", "2026-03-30T00:15:00+02:00", ["cron"]),  # Mon 2026-W14  03-29 22:15Z (W13 in UTC)
    ("s26", "2026-04-30T23:59:00+02:00", ["cron"]),  # Thu 2026-W18  21:59Z
    ("s27", "2026-05-01T00:01:00+02:00", ["cron"]),  # Fri 2026-W18  04-30 22:01Z (April in UTC)
    ("s28", "2026-07-14T12:00:00+02:00", ["cron"]),  # Tue 2026-W29
    ("s29", "2026-09-07T08:00:00+02:00", ["cron"]),  # Mon 2026-W37
    ("s30", "2026-10-31T08:00:00+01:00", ["cron"]),  # Sat 2026-W44
    ("s31", "2026-11-02T08:00:00+01:00", ["cron"]),  # Mon 2026-W45
    ("s32", "2026-11-09T08:00:00+01:00", ["cron"]),  # Mon 2026-W46
    ("s33", "2026-11-16T08:00:00+01:00", ["cron"]),  # Mon 2026-W47
    ("s34", "2026-11-20T07:00:00+01:00", ["cron"]),  # Fri 2026-W47  three on one day
    ("s35", "2026-11-20T13:00:00+01:00", ["cron"]),  # Fri 2026-W47
    ("s36", "2026-11-20T19:00:00+01:00", ["cron"]),  # Fri 2026-W47
    ("s37", "2026-11-23T08:00:00+01:00", ["cron"]),  # Mon 2026-W48
    ("s38", "2026-11-24T08:00:00+01:00", ["cron"]),  # Tue 2026-W48
    ("s39", "2026-11-25T10:15:10+01:00", ["cron"]),  # Wed 2026-W48  same minute as s40
    ("s40", "2026-11-25T10:15:40+01:00", ["cron"]),  # Wed 2026-W48  newest
]


def snap(
    sid: str,
    time: str,
    tags: list[str] | None = None,
    host: str = "alpha",
    paths: list[str] | None = None,
    working_dir: str | None = "/var/cells",
) -> Snapshot:
    extra = {"installation": {"working_dir": working_dir}} if working_dir else {}
    return Snapshot(
        time=time,
        hostname=host,
        username="root",
        paths=paths if paths is not None else ["/var/cells"],
        tree="0" * 64,
        tags=list(tags or []),
        extra=extra,
        id=sid,
    )


def history(first: int = 1, last: int = 40) -> list[Snapshot]:
    """s{first}..s{last}, deliberately shuffled so sorting is part of what is tested."""
    chosen = [snap(*row) for row in HISTORY[first - 1 : last]]
    return chosen[1::2] + chosen[0::2]


def ids(*numbers: int | range) -> set[str]:
    out: set[str] = set()
    for n in numbers:
        out.update(f"s{i:02d}" for i in (n if isinstance(n, range) else [n]))
    return out


def kept_ids(decisions) -> set[str]:
    return {d.snapshot.id for d in decisions if d.keep}


ALL = ids(range(1, 41))

# name, policy, span of the history used (first, last), expected kept ids (by hand).
CASES = [
    ("last-only", RetentionPolicy(keep_last=3), (1, 40), ids(38, 39, 40)),
    ("last-more-than-exist", RetentionPolicy(keep_last=50), (1, 40), ALL),
    ("last-unlimited", RetentionPolicy(keep_last=-1), (1, 40), ALL),
    # 11-25 (s40; s39 same day), 11-24, 11-23, 11-20 (s36 newest of three), 11-16.
    ("daily-only", RetentionPolicy(keep_daily=5), (1, 40), ids(40, 38, 37, 36, 33)),
    # s39 shares s40's hour (same minute even); then 11-24T08, 11-23T08, 11-20T19.
    ("hourly-same-minute", RetentionPolicy(keep_hourly=4), (1, 40), ids(40, 38, 37, 36)),
    # daily: s40 s38 s37 | weekly: W48 s40, W47 s36, W46 s32, W45 s31
    # monthly: 2026-11 s40, 10 s30, 09 s29, 07 s28, 05 s27 (local May), 04 s26.
    (
        "daily-weekly-monthly",
        RetentionPolicy(keep_daily=3, keep_weekly=4, keep_monthly=6),
        (1, 40),
        ids(40, 38, 37, 36, 32, 31, 30, 29, 28, 27, 26),
    ),
    # 2026 s40, 2025 s17 (s10 is 2025 too but older), 2024 s09 (23:30+01:00 on 31 Dec).
    ("yearly-3", RetentionPolicy(keep_yearly=3), (1, 40), ids(40, 17, 9)),
    # Only five years exist: 2026 s40, 2025 s17, 2024 s09, 2023 s05, 2022 s03; the rule still
    # has room at the oldest snapshot s01 (2022, same year as s03), so restic keeps it too.
    ("yearly-more-than-exist-keeps-oldest", RetentionPolicy(keep_yearly=10), (1, 40), ids(40, 17, 9, 5, 3, 1)),
    ("yearly-unlimited", RetentionPolicy(keep_yearly=-1), (1, 40), ids(40, 17, 9, 5, 3, 1)),
    # Every day's newest: drop s39 (11-25), s35 s34 (11-20), s23 s22 (local 03-29, s24 newer),
    # s15 s14 (10-26, s16 newer), s02 (08-01, s03 newer).
    ("daily-unlimited", RetentionPolicy(keep_daily=-1), (1, 40), ALL - ids(39, 35, 34, 23, 22, 15, 14, 2)),
    # Fall-back: s15 (02:15+01:00) and s14 (02:30+02:00) both read hour 02 on the wall clock;
    # s15 is the newer of the two, so s14 goes. s39 shares s40's hour.
    ("hourly-unlimited-dst-fall-back", RetentionPolicy(keep_hourly=-1), (1, 40), ALL - ids(39, 14)),
    # ISO weeks; 2024-12-30/31 and 2025-01-01 are all 2025-W01, so only s10 of s08-s10.
    (
        "weekly-unlimited-iso-weeks",
        RetentionPolicy(keep_weekly=-1),
        (1, 40),
        ids(40, 36, 32, 31, 30, 29, 28, 27, 25, 24, 19, 18, 17, 16, 13, 12, 11, 10, 7, 6, 5, 4, 3, 1),
    ),
    # Relative to s40 (2026-11-25T10:15:40), not to NOW: cutoff 11-11T10:15:40 keeps s33.
    ("within-2w-from-latest", RetentionPolicy(keep_within="2w"), (1, 40), ids(range(33, 41))),
    ("within-1m", RetentionPolicy(keep_within="1m"), (1, 40), ids(range(30, 41))),  # cutoff 10-25
    ("within-1y", RetentionPolicy(keep_within="1y"), (1, 40), ids(range(17, 41))),  # cutoff 2025-11-25
    # Latest s24 = 01:30Z; 2h back is 23:30Z = s22 exactly, which is not strictly newer.
    ("within-2h-across-dst-strict", RetentionPolicy(keep_within="2h"), (1, 24), ids(23, 24)),
    # Cutoff 2026-03-28T01:30Z: s21 (08:00Z) in, s20 (03-27 22:30Z) out.
    ("within-1d-across-dst", RetentionPolicy(keep_within="1d"), (1, 24), ids(21, 22, 23, 24)),
    ("tag-plus-last", RetentionPolicy(keep_tags=["keep-forever"], keep_last=2), (1, 40), ids(40, 39, 1)),
    (
        "tags-plus-monthly",
        RetentionPolicy(keep_tags=["pre-upgrade", "keep-forever"], keep_monthly=2),
        (1, 40),
        ids(40, 30, 12, 1),
    ),
    # An entry "a,b" needs both tags (restic tag list): only s12 has manual AND pre-upgrade.
    ("tag-list-needs-all", RetentionPolicy(keep_tags=["manual,pre-upgrade"], keep_last=1), (1, 40), ids(40, 12)),
    # within 2w: s33..s40; tag: s12; yearly: 2026 s40, 2025 s17.
    (
        "within-tag-yearly",
        RetentionPolicy(keep_within="2w", keep_tags=["pre-upgrade"], keep_yearly=2),
        (1, 40),
        ids(12, 17) | ids(range(33, 41)),
    ),
    # 2022-08-01 twice: the newer (s03) is the day's snapshot; s01 is another day.
    ("same-day-twice", RetentionPolicy(keep_daily=2), (1, 3), ids(3, 1)),
    # Three on 10-26; room left at the oldest (s14, same day as s16): restic keeps it.
    ("same-day-oldest-kept-with-room", RetentionPolicy(keep_daily=2), (14, 16), ids(16, 14)),
    ("same-day-no-room", RetentionPolicy(keep_daily=1), (14, 16), ids(16)),
    # Year boundary, local time: s10 is 2025-01-01 locally (31 Dec in UTC).
    ("year-boundary-daily", RetentionPolicy(keep_daily=2), (1, 10), ids(10, 9)),
    ("year-boundary-monthly", RetentionPolicy(keep_monthly=2), (1, 10), ids(10, 9)),
    ("year-boundary-yearly", RetentionPolicy(keep_yearly=2), (1, 10), ids(10, 9)),
    # s08, s09, s10 are all ISO 2025-W01 -> s10; next week with a snapshot is 2024-W42 (s07).
    ("year-boundary-weekly-iso", RetentionPolicy(keep_weekly=2), (1, 10), ids(10, 7)),
    # DST spring: s22/s23/s24 are all local 03-29 (s22 is 03-28 in UTC) -> s24, then 03-28 s21.
    ("dst-spring-daily", RetentionPolicy(keep_daily=2), (1, 24), ids(24, 21)),
    ("dst-spring-hourly", RetentionPolicy(keep_hourly=3), (1, 24), ids(24, 23, 22)),
    # s25 is Monday 00:15+02:00 (W14) though still Sunday in UTC.
    ("dst-spring-weekly", RetentionPolicy(keep_weekly=2), (1, 25), ids(25, 24)),
    # s27 at 00:01+02:00 on 1 May is May locally (30 April in UTC).
    ("month-boundary-local", RetentionPolicy(keep_monthly=2), (1, 27), ids(27, 26)),
    # Window after 2026-11-18T10:15:40: s34..s40; one per day: s40, s38, s37, s36.
    ("within-daily-1w", RetentionPolicy(keep_within_daily="1w"), (1, 40), ids(40, 38, 37, 36)),
    # Window after 2026-10-25T10:15:40: s30..s40; one per ISO week.
    ("within-weekly-1m", RetentionPolicy(keep_within_weekly="1m"), (1, 40), ids(40, 36, 32, 31, 30)),
]


@pytest.mark.parametrize(("policy", "span", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_policy_table(policy: RetentionPolicy, span: tuple[int, int], expected: set[str]) -> None:
    decisions = apply_policy(history(*span), policy, now=NOW)
    assert kept_ids(decisions) == expected
    assert len(decisions) == span[1] - span[0] + 1
    for d in decisions:
        assert d.keep == bool(d.reasons)


def test_decisions_are_newest_first_with_every_reason() -> None:
    policy = RetentionPolicy(keep_last=1, keep_daily=3, keep_weekly=4, keep_monthly=6)
    decisions = apply_policy(history(), policy, now=NOW)
    assert [d.snapshot.id for d in decisions] == [f"s{i:02d}" for i in range(40, 0, -1)]
    why = {d.snapshot.id: d.reasons for d in decisions}
    assert why["s40"] == ["last 1", "daily 2026-11-25", "weekly 2026-W48", "monthly 2026-11"]
    assert why["s39"] == []
    assert why["s36"] == ["weekly 2026-W47"]
    assert why["s30"] == ["monthly 2026-10"]
    assert why["s27"] == ["monthly 2026-05"]


def test_reasons_name_tags_within_and_oldest() -> None:
    decisions = apply_policy(
        history(1, 16), RetentionPolicy(keep_within="1d", keep_tags=["manual"], keep_yearly=10), now=NOW
    )
    why = {d.snapshot.id: d.reasons for d in decisions}
    assert why["s16"] == ["within 1d", "yearly 2025"]
    assert why["s12"] == ["tag manual"]
    assert why["s01"] == ["tag manual", "yearly 2022 (oldest)"]
    assert why["s09"] == ["yearly 2024"]


def test_within_daily_reason() -> None:
    decisions = apply_policy(history(), RetentionPolicy(keep_within_daily="1w"), now=NOW)
    assert decisions[0].reasons == ["within-daily 1w 2026-11-25"]


def test_same_instant_is_ordered_by_id_not_input_order() -> None:
    a = snap("x1", "2026-01-01T10:00:00+01:00")
    b = snap("x2", "2026-01-01T09:00:00+00:00")  # the same instant, another offset
    for order in ([a, b], [b, a]):
        assert kept_ids(apply_policy(order, RetentionPolicy(keep_last=1), now=NOW)) == {"x2"}


def test_future_snapshot_does_not_move_the_within_window() -> None:
    future = snap("f01", "2027-06-01T12:00:00+02:00")
    decisions = apply_policy([*history(), future], RetentionPolicy(keep_within="2w"), now=NOW)
    # The window still ends at s40; the future snapshot is newer than the cutoff, so kept.
    assert kept_ids(decisions) == ids(range(33, 41)) | {"f01"}


# --- refusals and safety ---------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [RetentionPolicy(), RetentionPolicy(keep_daily=0, keep_last=0), RetentionPolicy(keep_tags=[])],
    ids=["nothing", "zeros", "no-tags"],
)
def test_empty_policy_is_refused(policy: RetentionPolicy) -> None:
    assert policy.empty
    with pytest.raises(UsageError, match="refusing to forget every snapshot"):
        apply_policy(history(), policy, now=NOW)
    with pytest.raises(UsageError) as err:
        plan_forget(history(), policy, now=NOW)
    assert str(err.value) == EMPTY_POLICY_MESSAGE
    with pytest.raises(UsageError):
        apply_policy([], policy, now=NOW)


def test_non_empty_policies_are_not_empty() -> None:
    for policy in (
        RetentionPolicy(keep_last=1),
        RetentionPolicy(keep_yearly=-1),
        RetentionPolicy(keep_within="1h"),
        RetentionPolicy(keep_within_monthly="1y"),
        RetentionPolicy(keep_tags=["x"]),
    ):
        assert not policy.empty


def test_policy_that_keeps_nothing_keeps_the_newest() -> None:
    decisions = apply_policy(history(), RetentionPolicy(keep_tags=["no-such-tag"]), now=NOW)
    assert kept_ids(decisions) == {"s40"}
    assert decisions[0].reasons[0].startswith("newest")


@pytest.mark.parametrize(
    "kwargs",
    [{"keep_daily": -2}, {"keep_last": 1.5}, {"keep_weekly": True}, {"keep_within": "2x"}, {"keep_tags": [""]}],
)
def test_bad_policy_values_are_usage_errors(kwargs: dict) -> None:
    with pytest.raises(UsageError):
        RetentionPolicy(**kwargs)


def test_empty_input_gives_no_decisions() -> None:
    assert apply_policy([], RetentionPolicy(keep_last=1), now=NOW) == []


# --- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2w3d", Duration(weeks=2, days=3)),
        ("1y6m", Duration(years=1, months=6)),
        ("36h", Duration(hours=36)),
        ("1y5m7d2h", Duration(years=1, months=5, days=7, hours=2)),
        (" 3d ", Duration(days=3)),
        ("0y1d", Duration(days=1)),
    ],
)
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(str(expected)) == expected


@pytest.mark.parametrize("text", ["", "3", "d", "2x", "1.5d", "2d3d", "-1d", "1M", "0d", "2w 3d", "1d2"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def test_duration_calendar_arithmetic() -> None:
    paris_summer = timezone(timedelta(hours=2))
    end_of_march = datetime(2026, 3, 31, 12, 0, tzinfo=paris_summer)
    assert parse_duration("1m").before(end_of_march) == datetime(2026, 2, 28, 12, 0, tzinfo=paris_summer)
    leap = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert parse_duration("1y").before(leap) == datetime(2023, 2, 28, 12, 0, tzinfo=UTC)
    assert parse_duration("1y1m").before(datetime(2026, 1, 15, tzinfo=UTC)) == datetime(2024, 12, 15, tzinfo=UTC)
    # Hours are exact elapsed time whatever the offset: 36h before 12:00+02:00 is 22:00Z two days earlier.
    moment = datetime(2026, 3, 29, 12, 0, tzinfo=paris_summer)
    assert parse_duration("36h").before(moment) == datetime(2026, 3, 27, 22, 0, tzinfo=UTC)
    assert parse_duration("100000y").before(moment).year == 1


# --- grouping and plans ----------------------------------------------------------------

BETA = [
    snap("b01", "2026-11-01T10:00:00+00:00", host="beta"),
    snap("b02", "2026-11-10T10:00:00+00:00", host="beta"),
    snap("b03", "2026-11-10T18:00:00+00:00", host="beta"),
    snap("b04", "2026-11-26T09:00:00+00:00", host="beta"),
]


def test_grouping_by_host_applies_the_policy_per_host() -> None:
    plan = plan_forget([*history(), *BETA], RetentionPolicy(keep_daily=2), "host", now=NOW)
    per_group = {g.key.hostname: {s.id for s in g.keep} for g in plan.groups}
    assert per_group == {"alpha": {"s40", "s38"}, "beta": {"b04", "b03"}}
    assert {s.id for s in plan.remove} == (ALL - {"s40", "s38"}) | {"b01", "b02"}
    # One group for everything: the two newest days are 11-26 (b04) and 11-25 (s40).
    single = plan_forget([*history(), *BETA], RetentionPolicy(keep_daily=2), "", now=NOW)
    assert {s.id for s in single.keep} == {"b04", "s40"}
    assert single.groups[0].key == GroupKey()


def test_group_by_fields() -> None:
    snaps = [
        snap("a", "2026-01-01T00:00:00+00:00", paths=["/var/cells", "/etc/cells"], tags=["b", "a"]),
        snap("b", "2026-01-02T00:00:00+00:00", paths=["/etc/cells", "/var/cells"], tags=["a", "b"]),
        snap("c", "2026-01-03T00:00:00+00:00", paths=["/srv/other"], working_dir="/var/cells"),
        snap("d", "2026-01-04T00:00:00+00:00", paths=["/srv/other"], working_dir=None),
        snap("e", "2026-01-05T00:00:00+00:00", host="beta"),
    ]
    by_paths = group_snapshots(snaps, "host,paths")
    assert {k: [s.id for s in v] for k, v in by_paths.items()} == {
        GroupKey(hostname="alpha", paths=("/etc/cells", "/var/cells")): ["b", "a"],
        GroupKey(hostname="alpha", paths=("/srv/other",)): ["d", "c"],
        GroupKey(hostname="beta", paths=("/var/cells",)): ["e"],
    }
    by_installation = group_snapshots(snaps, "installation")
    assert {k.installation: [s.id for s in v] for k, v in by_installation.items()} == {
        "/var/cells": ["e", "c", "b", "a"],
        "/srv/other": ["d"],  # no working_dir recorded: falls back to its paths
    }
    by_tags = group_snapshots(snaps, "tags, host")
    assert [s.id for s in by_tags[GroupKey(hostname="alpha", tags=("a", "b"))]] == ["b", "a"]
    assert list(group_snapshots(snaps, "")) == [GroupKey()]
    with pytest.raises(UsageError, match="unknown --group-by field 'time'"):
        group_snapshots(snaps, "host,time")


def test_render_lists_every_snapshot_with_its_rule() -> None:
    plan = plan_forget([*history(), *BETA], RetentionPolicy(keep_daily=2, keep_tags=["pre-upgrade"]), now=NOW)
    text = plan.render()
    assert "keep 2 daily snapshots" in text
    assert "Grouped by: host, paths" in text
    assert "Snapshots for host 'alpha', paths [/var/cells]: keep 3, remove 37" in text
    for sid in ALL | {"b01", "b02", "b03", "b04"}:
        assert f" {sid} " in text
    lines = {line.split()[1]: line for line in text.splitlines() if line.startswith("  ")}
    assert lines["s40"].split()[0] == "keep" and lines["s40"].endswith("daily 2026-11-25")
    assert lines["s12"].endswith("tag pre-upgrade")
    assert lines["s39"].split()[0] == "remove"
    assert text.rstrip().endswith("Total: 5 kept, 39 removed")


def test_to_dict_is_json_and_complete() -> None:
    plan = plan_forget([*history(), *BETA], RetentionPolicy(keep_last=1, keep_within="1w"), now=NOW)
    doc = json.loads(json.dumps(plan.to_dict()))
    assert doc["policy"] == {"keep_last": 1, "keep_within": "1w"}
    assert doc["group_by"] == ["host", "paths"]
    assert doc["summary"] == {"keep": 8, "remove": 36}
    alpha = next(g for g in doc["groups"] if g["group"]["host"] == "alpha")
    assert [k["id"] for k in alpha["keep"]] == ["s40", "s39", "s38", "s37", "s36", "s35", "s34"]
    assert alpha["keep"][0]["reasons"] == ["within 1w", "last 1"]
    assert alpha["remove"][0]["id"] == "s33"


# --- properties --------------------------------------------------------------------------

BASE = datetime(2024, 1, 1, tzinfo=UTC)
OFFSETS = [timezone(timedelta(hours=h, minutes=m)) for h, m in [(0, 0), (1, 0), (2, 0), (-5, 0), (5, 30), (-9, -30)]]


@st.composite
def snapshot_lists(draw) -> list[Snapshot]:
    minutes = draw(st.lists(st.integers(0, 3 * 366 * 24 * 60), min_size=1, max_size=30))
    out = []
    for i, m in enumerate(minutes):
        moment = (BASE + timedelta(minutes=m)).astimezone(draw(st.sampled_from(OFFSETS)))
        tags = draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=2, unique=True))
        out.append(snap(f"h{i:02d}", moment.isoformat(), tags=tags))
    return out


counts = st.one_of(st.none(), st.just(0), st.just(-1), st.integers(1, 6))
durations = st.one_of(
    st.none(),
    st.builds(
        Duration,
        years=st.integers(0, 1),
        months=st.integers(0, 3),
        weeks=st.integers(0, 2),
        days=st.integers(0, 5),
        hours=st.integers(0, 48),
    ).filter(lambda d: not d.zero),
)
policies = st.builds(
    RetentionPolicy,
    keep_last=counts,
    keep_hourly=counts,
    keep_daily=counts,
    keep_weekly=counts,
    keep_monthly=counts,
    keep_yearly=counts,
    keep_within=durations,
    keep_within_daily=durations,
    keep_within_weekly=durations,
    keep_tags=st.lists(st.sampled_from(["a", "b", "a,b", "zzz"]), max_size=2),
).filter(lambda p: not p.empty)
nows = st.one_of(st.just(NOW), st.integers(0, 3 * 366 * 24).map(lambda h: BASE + timedelta(hours=h)))
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def newest_ids(snaps: list[Snapshot], n: int) -> set[str]:
    ordered = sorted(snaps, key=lambda s: (s.datetime, s.id), reverse=True)
    return {s.id for s in (ordered if n == -1 else ordered[:n])}


@PROPERTY_SETTINGS
@given(snaps=snapshot_lists(), policy=policies, now=nows)
def test_property_kept_set_never_empty(snaps: list[Snapshot], policy: RetentionPolicy, now: datetime) -> None:
    decisions = apply_policy(snaps, policy, now=now)
    assert {d.snapshot.id for d in decisions} == {s.id for s in snaps}
    assert kept_ids(decisions)


@PROPERTY_SETTINGS
@given(snaps=snapshot_lists(), n=st.one_of(st.just(-1), st.integers(1, 40)), now=nows)
def test_property_keep_last_keeps_exactly_the_newest(snaps: list[Snapshot], n: int, now: datetime) -> None:
    kept = kept_ids(apply_policy(snaps, RetentionPolicy(keep_last=n), now=now))
    assert kept == newest_ids(snaps, n)
    assert len(kept) == (len(snaps) if n == -1 else min(n, len(snaps)))


@PROPERTY_SETTINGS
@given(snaps=snapshot_lists(), policy=policies, now=nows)
def test_property_keep_last_is_a_floor(snaps: list[Snapshot], policy: RetentionPolicy, now: datetime) -> None:
    kept = kept_ids(apply_policy(snaps, policy, now=now))
    if policy.keep_last:
        assert newest_ids(snaps, policy.keep_last) <= kept


@PROPERTY_SETTINGS
@given(snaps=snapshot_lists(), policy=policies, now=nows)
def test_property_idempotent(snaps: list[Snapshot], policy: RetentionPolicy, now: datetime) -> None:
    """Forgetting again with the same policy (and clock) removes nothing more.

    Holds for restic's rules: each bucket rule keeps the first snapshot of each of its first
    N runs of equal period keys, and those runs start at the same snapshots in the kept set;
    the newest past snapshot (the within anchor) and the oldest are kept whenever they matter.
    """
    kept = [d.snapshot for d in apply_policy(snaps, policy, now=now) if d.keep]
    again = apply_policy(kept, policy, now=now)
    assert all(d.keep for d in again)


@PROPERTY_SETTINGS
@given(snaps=snapshot_lists(), policy=policies, group_by=st.sampled_from(["host,paths", "tags", "", "installation"]))
def test_property_plan_partitions_the_input(snaps: list[Snapshot], policy: RetentionPolicy, group_by: str) -> None:
    plan = plan_forget(snaps, policy, group_by, now=NOW)
    keep, remove = {s.id for s in plan.keep}, {s.id for s in plan.remove}
    assert not keep & remove
    assert keep | remove == {s.id for s in snaps}
    assert all(g.keep for g in plan.groups)
