"""Timer-trigger schedules as Azure Functions reads them: NCRONTAB expressions and TimeSpans.

``parse_schedule(text)`` returns a schedule whose ``next_after(moment)`` is the first firing
strictly after ``moment``, in UTC (the local host ignores ``WEBSITE_TIME_ZONE``).

NCRONTAB has six fields, ``second minute hour day month day-of-week``; like the Functions host,
an expression of five fields is read without the seconds field (seconds = 0). The cron
arithmetic is **croniter**'s (seconds field first, and — as in NCrontab, unlike Vixie cron — a
time must match *both* the day-of-month and the day-of-week field). Before handing it over, each
field is held to what NCRONTAB accepts: numbers, ``*``, ranges, lists and steps, month names in
the month field and day names in the day-of-week field; croniter's extensions (``?``, ``L``,
``W``, ``#``, ``H``) are refused. Two readings are croniter's where NCrontab would refuse: a
day of the week ``7`` is Sunday, and a backwards range such as ``10-5`` wraps around.

A TimeSpan ``hh:mm:ss`` (``hh`` < 24) means "every interval"; as with .NET ``TimeSpan.Parse``,
``dd:hh:mm`` is read when the first number is 24 or more, and ``d.hh:mm:ss`` is accepted too.
croniter has no such form; the few lines below read it.

Anything else raises :class:`ValueError` naming the expression and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = ["CronSchedule", "IntervalSchedule", "Schedule", "parse_schedule"]

_FIELDS = ("second", "minute", "hour", "day", "month", "day-of-week")
_NUMERIC = re.compile(r"[0-9*,/-]+")
_MONTH = re.compile(r"(?i:[0-9*,/-]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)+")
_DAY_OF_WEEK = re.compile(r"(?i:[0-9*,/-]|SUN|MON|TUE|WED|THU|FRI|SAT)+")
_SYNTAX = {"month": _MONTH, "day-of-week": _DAY_OF_WEEK}
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+)(?::(\d+))?$")
#: A leap year's first instant: every day a schedule names (29 February too) comes after it.
_PROBE = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression; see the module docstring for the accepted syntax."""

    expression: str
    #: The six fields as croniter reads them (seconds first).
    fields: str

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ValueError(
                f"invalid NCRONTAB expression {expression!r}: expected 6 fields "
                f"(second minute hour day month day-of-week), got {len(fields)}"
            )
        for name, text in zip(_FIELDS, fields, strict=True):
            if not _SYNTAX.get(name, _NUMERIC).fullmatch(text):
                raise ValueError(
                    f"invalid NCRONTAB expression {expression!r}: {text!r} is not a valid {name}"
                )
        schedule = cls(expression=expression, fields=" ".join(fields))
        try:
            schedule._iterator(_PROBE).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(
                f"invalid NCRONTAB expression {expression!r}: no month has the given day"
            ) from None
        except (CroniterError, ValueError, KeyError) as error:
            raise ValueError(f"invalid NCRONTAB expression {expression!r}: {error}") from None
        return schedule

    def _iterator(self, start: datetime) -> croniter:
        return croniter(self.fields, start, second_at_beginning=True, day_or=False)

    def next_after(self, after: datetime) -> datetime:
        """The first firing strictly after ``after`` (naive means UTC), as an aware UTC time."""
        found = self._iterator(_as_utc(after)).get_next(datetime)
        assert isinstance(found, datetime)
        return found.astimezone(UTC)


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
