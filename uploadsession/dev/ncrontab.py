"""Timer-trigger schedules as Azure Functions reads them: NCRONTAB expressions and TimeSpans.

``parse_schedule(text)`` returns a schedule whose ``next_after(moment)`` is the first firing
strictly after ``moment``, in UTC (the local host ignores ``WEBSITE_TIME_ZONE``).

NCRONTAB has six fields, ``second minute hour day month day-of-week``; like the Functions host,
an expression of five fields is read without the seconds field (seconds = 0). Each field takes
``*``, a number, a range ``a-b``, a list ``a,b,c`` and steps ``*/n``, ``a-b/n`` and ``a/n``
(from ``a`` to the field's maximum). Months take ``JAN``-``DEC`` and days of the week
``SUN``-``SAT`` (0 = Sunday … 6 = Saturday), case-insensitive. As in NCrontab (and unlike Vixie
cron), a time must match *both* the day-of-month and the day-of-week field. ``?``, ``L``, ``W``
and ``#`` are not NCRONTAB and are refused.

A TimeSpan ``hh:mm:ss`` (``hh`` < 24) means "every interval"; as with .NET ``TimeSpan.Parse``,
``dd:hh:mm`` is read when the first number is 24 or more, and ``d.hh:mm:ss`` is accepted too.

Anything else raises :class:`ValueError` naming the expression and the faulty field.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "parse_schedule"]

_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
        start=1,
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
}


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_SECOND = _Field("second", 0, 59, {})
_MINUTE = _Field("minute", 0, 59, {})
_HOUR = _Field("hour", 0, 23, {})
_DAY = _Field("day", 1, 31, {})
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _Field("day-of-week", 0, 6, _DAY_NAMES)

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+)(?::(\d+))?$")


def _value(text: str, field: _Field) -> int:
    if text.isdigit():
        number = int(text)
    elif text.upper() in field.names:
        number = field.names[text.upper()]
    else:
        raise ValueError(f"{text!r} is not a valid {field.name}")
    if not field.low <= number <= field.high:
        raise ValueError(f"{field.name} {number} is outside {field.low}-{field.high}")
    return number


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"empty list item in {field.name} field {text!r}")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} in {field.name} field must be a number > 0")
            step = int(step_text)
        if base == "*":
            low, high = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, field), _value(last, field)
            if low > high:
                raise ValueError(f"{field.name} range {base!r} runs backwards")
        else:
            low = _value(base, field)
            high = field.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values)


def _ordered(values: frozenset[int]) -> tuple[int, ...]:
    return tuple(sorted(values))


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression; see the module docstring for the accepted syntax."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    days_of_week: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ValueError(
                f"invalid NCRONTAB expression {expression!r}: expected 6 fields "
                "(second minute hour day month day-of-week), "
                f"got {len(fields)}"
            )
        try:
            parsed = [
                _parse_field(text, spec)
                for text, spec in zip(
                    fields, (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _DAY_OF_WEEK), strict=True
                )
            ]
        except ValueError as error:
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: {error}") from None
        seconds, minutes, hours, days, months, days_of_week = parsed
        # February 29 counts as possible: it happens in leap years.
        if not any(day <= calendar.monthrange(2024, month)[1] for month in months for day in days):
            raise ValueError(
                f"invalid NCRONTAB expression {expression!r}: no month has the given day"
            )
        return cls(
            expression=expression,
            seconds=_ordered(seconds),
            minutes=_ordered(minutes),
            hours=_ordered(hours),
            days=days,
            months=_ordered(months),
            days_of_week=days_of_week,
        )

    def _day_matches(self, year: int, month: int, day: int) -> bool:
        # Python: Monday=0 … Sunday=6; NCRONTAB: Sunday=0 … Saturday=6.
        weekday = (calendar.weekday(year, month, day) + 1) % 7
        return day in self.days and weekday in self.days_of_week

    def next_after(self, after: datetime) -> datetime:
        """The first firing strictly after ``after`` (naive means UTC), as an aware UTC time."""
        start = _as_utc(after).replace(microsecond=0) + timedelta(seconds=1)
        # 400 years is the full Gregorian cycle: a schedule that passed parse() fires within it.
        for year in range(start.year, start.year + 401):
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                same_month = (year, month) == (start.year, start.month)
                first_day = start.day if same_month else 1
                for day in range(first_day, calendar.monthrange(year, month)[1] + 1):
                    if not self._day_matches(year, month, day):
                        continue
                    found = self._time_on_day(year, month, day, start)
                    if found is not None:
                        return found
        raise ValueError(f"NCRONTAB expression {self.expression!r} never fires after {after}")

    def _time_on_day(self, year: int, month: int, day: int, start: datetime) -> datetime | None:
        same_day = (year, month, day) == (start.year, start.month, start.day)
        for hour in self.hours:
            if same_day and hour < start.hour:
                continue
            same_hour = same_day and hour == start.hour
            for minute in self.minutes:
                if same_hour and minute < start.minute:
                    continue
                same_minute = same_hour and minute == start.minute
                for second in self.seconds:
                    if same_minute and second < start.second:
                        continue
                    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        return None


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: fires every ``interval``, counted from the previous firing."""

    expression: str
    interval: timedelta

    @classmethod
    def parse(cls, expression: str) -> IntervalSchedule:
        match = _TIMESPAN.match(expression.strip())
        if match is None:
            raise ValueError(f"invalid TimeSpan {expression!r}: expected hh:mm:ss")
        days_text, first_text, second_text, third_text = match.groups()
        days = int(days_text or 0)
        first, second = int(first_text), int(second_text)
        third = int(third_text) if third_text is not None else 0
        if third_text is None and days_text is None:
            # "hh:mm" as TimeSpan.Parse reads it.
            hours, minutes, seconds = first, second, 0
        elif first >= 24 and days_text is None:
            # .NET TimeSpan.Parse: "24:00:00" is 24 days (dd:hh:mm), not 24 hours.
            days, hours, minutes, seconds = first, second, third, 0
        else:
            hours, minutes, seconds = first, second, third
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(f"invalid TimeSpan {expression!r}: a component is out of range")
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= timedelta(0):
            raise ValueError(f"invalid TimeSpan {expression!r}: the interval must be positive")
        return cls(expression=expression, interval=interval)

    def next_after(self, after: datetime) -> datetime:
        """``after`` plus the interval, as an aware UTC time."""
        return _as_utc(after) + self.interval


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    """Parse a timer trigger's ``schedule``: a TimeSpan if it contains ``:``, else NCRONTAB."""
    if ":" in expression:
        return IntervalSchedule.parse(expression)
    return CronSchedule.parse(expression)


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
