"""Maintenance windows: is one open at a given moment, and when does the next one open.

Pure: the caller passes `now` (timezone-aware); nothing reads the clock. A window opens at
`start` on each of its `days` and closes at `end` the same day, or the next day when `end` is
not after `start` (it crosses midnight; `24:00` is the following midnight). Days and times are
wall-clock times in the window's own time zone, so a window keeps its local hours across DST
changes (a night window is an hour shorter or longer on those nights); a start inside a
spring-forward gap is shifted forward by the gap (PEP 495, fold 0). No windows: always open.
Imports only the standard library and `model.ring`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta

from orchestrator.model.ring import WEEKDAYS, MaintenanceWindow

_LOOK_BACK_DAYS = 1  # a window that opened yesterday may still be open
_LOOK_AHEAD_DAYS = 8  # every window opens at least once a week


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("'now' must be timezone-aware")


def _clock(text: str) -> tuple[time, int]:
    """A window time as (time of day, days after the opening day): 24:00 is (00:00, 1)."""
    if text == "24:00":
        return time(0, 0), 1
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes)), 0


def _occurrence(window: MaintenanceWindow, day: date) -> tuple[datetime, datetime]:
    """The window opening on `day` (local), as (opens, closes) in UTC."""
    zone = window.zone
    start, _ = _clock(window.start)
    end, extra_days = _clock(window.end)
    if extra_days == 0 and end <= start:
        extra_days = 1
    opens = datetime.combine(day, start, tzinfo=zone)
    closes = datetime.combine(day + timedelta(days=extra_days), end, tzinfo=zone)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def occurrences(window: MaintenanceWindow, now: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The window's openings from the day before `now` to a week after it, in order, as
    (opens, closes) in UTC."""
    _require_aware(now)
    today = now.astimezone(window.zone).date()
    for offset in range(-_LOOK_BACK_DAYS, _LOOK_AHEAD_DAYS + 1):
        day = today + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] in window.days:
            opens, closes = _occurrence(window, day)
            if opens < closes:
                yield opens, closes


def window_open(windows: Sequence[MaintenanceWindow], now: datetime) -> bool:
    """Whether changes may be applied at `now`: inside any window, or no windows at all."""
    _require_aware(now)
    if not windows:
        return True
    moment = now.astimezone(UTC)
    return any(
        opens <= moment < closes for window in windows for opens, closes in occurrences(window, now)
    )


def next_window_start(windows: Sequence[MaintenanceWindow], now: datetime) -> datetime | None:
    """When changes may next be applied: `now` while a window is open, else the earliest
    opening after `now` (in `now`'s time zone); None when there are no windows (always open)."""
    _require_aware(now)
    if not windows:
        return None
    if window_open(windows, now):
        return now
    moment = now.astimezone(UTC)
    later = [
        opens for window in windows for opens, _closes in occurrences(window, now) if opens > moment
    ]
    return min(later).astimezone(now.tzinfo) if later else None
