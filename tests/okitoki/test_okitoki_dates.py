"""Oki-Toki dates (dd.mm.yyyy hh:mm:ss in the account zone) ⇄ UTC, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.errors import ConfigError
from syncd.okitoki.dates import (
    account_zone,
    from_okitoki,
    is_ambiguous,
    is_nonexistent,
    parse_remote_time,
    to_okitoki,
)

# (zone, a UTC instant one hour before a change, the change's kind) — historic and current.
DST_CHANGES = [
    ("Europe/Kyiv", datetime(2024, 3, 31, 0, 0, tzinfo=UTC), "forward"),    # 03:00 → 04:00
    ("Europe/Kyiv", datetime(2024, 10, 27, 0, 0, tzinfo=UTC), "back"),      # 04:00 → 03:00
    ("Europe/Warsaw", datetime(2024, 3, 31, 0, 0, tzinfo=UTC), "forward"),  # 02:00 → 03:00
    ("Europe/Warsaw", datetime(2024, 10, 27, 0, 0, tzinfo=UTC), "back"),    # 03:00 → 02:00
    # Mexico City kept DST until 2022: historic changes must still come out right.
    ("America/Mexico_City", datetime(2021, 4, 4, 7, 0, tzinfo=UTC), "forward"),  # 02:00 → 03:00
    ("America/Mexico_City", datetime(2021, 10, 31, 6, 0, tzinfo=UTC), "back"),   # 02:00 → 01:00
]


@pytest.mark.parametrize("zone,start,kind", DST_CHANGES)
def test_every_minute_round_trips_across_a_dst_change(zone: str, start: datetime, kind: str) -> None:
    for minute in range(0, 180, 7):
        moment = start + timedelta(minutes=minute)
        text = to_okitoki(moment, zone)
        back = from_okitoki(text, zone, prefer="later" if _second_pass(moment, zone) else "earlier")
        assert back == moment, (zone, moment, text)


def _second_pass(moment: datetime, zone: str) -> bool:
    """True when ``moment`` is the second occurrence of its wall-clock time."""
    local = moment.astimezone(account_zone(zone))
    return local.fold == 1


def test_kyiv_local_times_carry_the_right_offset_on_both_sides_of_a_change() -> None:
    assert to_okitoki(datetime(2024, 3, 31, 0, 59, 59, tzinfo=UTC), "Europe/Kyiv") == "31.03.2024 02:59:59"
    assert to_okitoki(datetime(2024, 3, 31, 1, 0, 0, tzinfo=UTC), "Europe/Kyiv") == "31.03.2024 04:00:00"
    assert from_okitoki("15.07.2024 12:00:00", "Europe/Kyiv") == datetime(2024, 7, 15, 9, tzinfo=UTC)
    assert from_okitoki("15.01.2024 12:00:00", "Europe/Kyiv") == datetime(2024, 1, 15, 10, tzinfo=UTC)


def test_mexico_city_has_no_dst_after_2022() -> None:
    summer = from_okitoki("15.07.2023 12:00:00", "America/Mexico_City")
    winter = from_okitoki("15.01.2023 12:00:00", "America/Mexico_City")
    assert summer.hour == winter.hour == 18          # UTC-6 all year
    assert from_okitoki("15.07.2021 12:00:00", "America/Mexico_City").hour == 17  # historic CDT


def test_an_ambiguous_local_time_reads_as_the_earlier_instant_unless_asked() -> None:
    text = "27.10.2024 03:30:00"                     # happens twice in Kyiv
    naive = datetime(2024, 10, 27, 3, 30)
    assert is_ambiguous(naive, "Europe/Kyiv") and not is_nonexistent(naive, "Europe/Kyiv")
    earlier = from_okitoki(text, "Europe/Kyiv")
    later = from_okitoki(text, "Europe/Kyiv", prefer="later")
    assert earlier == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    assert later - earlier == timedelta(hours=1)


def test_a_nonexistent_local_time_is_shifted_forward_by_the_gap_or_refused_when_strict() -> None:
    naive = datetime(2024, 3, 31, 3, 30)             # skipped in Kyiv
    assert is_nonexistent(naive, "Europe/Kyiv") and not is_ambiguous(naive, "Europe/Kyiv")
    moment = from_okitoki("31.03.2024 03:30:00", "Europe/Kyiv")
    assert to_okitoki(moment, "Europe/Kyiv") == "31.03.2024 04:30:00"
    with pytest.raises(ValueError, match="does not exist"):
        from_okitoki("31.03.2024 03:30:00", "Europe/Kyiv", strict=True)


def test_naive_datetimes_are_refused_when_writing() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_okitoki(datetime(2024, 1, 1), "Europe/Kyiv")


def test_an_unknown_zone_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="okitoki.timezone"):
        account_zone("Europe/Atlantis")


@pytest.mark.parametrize("value,expected", [
    (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ("15.01.2024 12:00:00", datetime(2024, 1, 15, 10, tzinfo=UTC)),
    ("2024-01-15T12:00:00", datetime(2024, 1, 15, 10, tzinfo=UTC)),        # naive ISO: account zone
    ("2024-01-15T12:00:00Z", datetime(2024, 1, 15, 12, tzinfo=UTC)),
    (None, None), ("", None),
])
def test_remote_times_in_every_shape_oki_toki_uses_come_back_utc(value, expected) -> None:
    assert parse_remote_time(value, "Europe/Kyiv") == expected


def test_garbage_is_not_a_time() -> None:
    with pytest.raises(ValueError, match="dd.mm.yyyy"):
        parse_remote_time("yesterday", "Europe/Kyiv")
