"""NCRONTAB and TimeSpan schedules as the Functions timer trigger reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from uploadsession.dev.ncrontab import CronSchedule, IntervalSchedule, parse_schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # every 5 minutes, on the minute
        ("0 */5 * * * *", "2024-03-10T10:02:30", "2024-03-10T10:05:00"),
        ("0 */5 * * * *", "2024-03-10T10:05:00", "2024-03-10T10:10:00"),
        ("0 */5 * * * *", "2024-03-10T23:59:59", "2024-03-11T00:00:00"),
        # every 10 seconds
        ("*/10 * * * * *", "2024-03-10T10:00:00", "2024-03-10T10:00:10"),
        ("*/10 * * * * *", "2024-03-10T10:00:05.900", "2024-03-10T10:00:10"),
        ("*/10 * * * * *", "2024-03-10T10:59:55", "2024-03-10T11:00:00"),
        # 09:30 on weekdays (2024-03-08 is a Friday)
        ("0 30 9 * * 1-5", "2024-03-08T09:29:59", "2024-03-08T09:30:00"),
        ("0 30 9 * * 1-5", "2024-03-08T09:30:00", "2024-03-11T09:30:00"),
        ("0 30 9 * * MON-FRI", "2024-03-09T12:00:00", "2024-03-11T09:30:00"),
        # month, year and leap-day boundaries
        ("0 0 0 1 * *", "2024-01-31T12:00:00", "2024-02-01T00:00:00"),
        ("0 0 0 31 * *", "2024-04-01T00:00:00", "2024-05-31T00:00:00"),
        ("0 0 12 29 2 *", "2024-03-01T00:00:00", "2028-02-29T12:00:00"),
        ("0 0 0 * * *", "2024-12-31T23:59:59", "2025-01-01T00:00:00"),
        ("0 0 0 1 JAN,jul *", "2024-02-01T00:00:00", "2024-07-01T00:00:00"),
        # lists, ranges with steps, start/step
        ("0 0,15,45 * * * *", "2024-03-10T10:16:00", "2024-03-10T10:45:00"),
        ("0 0 8-18/5 * * *", "2024-03-10T13:00:00", "2024-03-10T18:00:00"),
        ("30/15 * * * * *", "2024-03-10T10:00:31", "2024-03-10T10:00:45"),
        # day of month AND day of week: the 13th that is a Friday (2024-09-13)
        ("0 0 0 13 * FRI", "2024-01-01T00:00:00", "2024-09-13T00:00:00"),
        # Sunday is 0
        ("0 0 0 * * 0", "2024-03-08T00:00:00", "2024-03-10T00:00:00"),
        # five fields: no seconds, as the Functions host accepts
        ("*/15 * * * *", "2024-03-10T10:07:00", "2024-03-10T10:15:00"),
    ],
)
def test_next_after(expression: str, after: str, expected: str) -> None:
    assert parse_schedule(expression).next_after(at(after)) == at(expected)


def test_next_after_is_strictly_later_and_in_utc() -> None:
    schedule = CronSchedule.parse("* * * * * *")
    plus_two = timezone(timedelta(hours=2))

    result = schedule.next_after(datetime(2024, 3, 10, 12, 0, 0, tzinfo=plus_two))

    assert result == at("2024-03-10T10:00:01")
    assert result.tzinfo == UTC


def test_naive_times_are_read_as_utc() -> None:
    assert CronSchedule.parse("0 0 * * * *").next_after(datetime(2024, 3, 10, 10, 30)) == at(
        "2024-03-10T11:00:00"
    )


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("00:00:10", timedelta(seconds=10)),
        ("01:30:00", timedelta(hours=1, minutes=30)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
        ("24:00:00", timedelta(days=24)),  # .NET TimeSpan.Parse reads dd:hh:mm here
    ],
)
def test_timespan_schedules_fire_every_interval(expression: str, interval: timedelta) -> None:
    schedule = parse_schedule(expression)

    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at("2024-03-10T10:00:00")) == at("2024-03-10T10:00:00") + interval


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "expected 6 fields"),
        ("* * * *", "expected 6 fields"),
        ("* * * * * * *", "expected 6 fields"),
        ("60 * * * * *", "out of range"),
        ("0 60 * * * *", "out of range"),
        ("0 0 24 * * *", "out of range"),
        ("0 0 0 0 * *", "out of range"),
        ("0 0 0 * 13 *", "out of range"),
        ("0 0 0 * * FUN", "not a valid day-of-week"),
        ("*/0 * * * * *", "step"),
        ("0 1,,2 * * * *", "not acceptable"),
        ("0 0 0 ? * *", "not a valid day"),
        ("0 0 0 L * *", "not a valid day"),
        ("0 0 0 * * 5#3", "not a valid day-of-week"),  # croniter extensions NCRONTAB lacks
        ("0 0 0 * * H", "not a valid day-of-week"),
        ("0 0 0 15W * *", "not a valid day"),
        ("0 0 0 30 2 *", "no month has the given day"),
        ("00:61:00", "out of range"),
        ("00:00:00", "must be positive"),
        ("every five minutes", "expected 6 fields"),
        ("ab:cd:ef", "expected hh:mm:ss"),
    ],
)
def test_invalid_schedules_raise_value_error_naming_the_problem(
    expression: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(expression)
