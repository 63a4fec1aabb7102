"""Time for the simulator: a swappable time source plus the time scale.

Every duration the tenant simulates (propagation, reservation expiry, sync, operations) is
given in real Microsoft seconds and multiplied by ``time_scale`` to get how long it really
lasts here. Timestamps in JSON are the time source's wall clock, so a reservation expiry
date can be compared with the caller's own clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class TimeSource(Protocol):
    def monotonic(self) -> float:
        """Seconds since an arbitrary origin; never goes back."""
        ...

    def now(self) -> datetime:
        """The current UTC wall time."""
        ...


class SystemTime:
    """The machine's clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A time source that moves only when a test says so, so no test has to sleep."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
        self._elapsed = 0.0

    def monotonic(self) -> float:
        return self._elapsed

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        self._elapsed += seconds


class ScaledClock:
    """Turns simulated Microsoft durations into deadlines on a time source."""

    def __init__(self, time_scale: float, source: TimeSource | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be greater than 0")
        self.time_scale = time_scale
        self.source: TimeSource = source or SystemTime()

    def monotonic(self) -> float:
        return self.source.monotonic()

    def now(self) -> datetime:
        return self.source.now()

    def real_seconds(self, simulated_seconds: float) -> float:
        return simulated_seconds * self.time_scale

    def deadline(self, simulated_seconds: float) -> float:
        """The monotonic instant a simulated duration starting now ends."""
        return self.source.monotonic() + self.real_seconds(simulated_seconds)

    def wall_time(self, instant: float) -> datetime:
        """The wall time of a monotonic instant on this clock."""
        return self.source.now() + timedelta(seconds=instant - self.source.monotonic())


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, because at small time scales seconds are too coarse."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
