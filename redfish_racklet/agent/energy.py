"""Energy and interval statistics from sampled power, as pure functions of the samples.

Energy is the trapezoidal integral of power over time, in joules. A gap longer than
``max_gap`` (a sensor that was unavailable) is not bridged: the energy of a period
nobody measured is not invented. Counters only grow; they are persisted by the agent
so they survive restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Integrator:
    joules: float = 0.0
    max_gap: float = 5.0
    _last: tuple[float, float] | None = None

    def add(self, t: float, watts: float) -> float:
        """Record a sample (time in seconds, power in watts); returns the running total."""
        if self._last is not None:
            t0, w0 = self._last
            dt = t - t0
            if 0 < dt <= self.max_gap:
                self.joules += (w0 + watts) / 2 * dt
        self._last = (t, watts)
        return self.joules

    def gap(self) -> None:
        """The sensor failed: the next sample starts a new segment."""
        self._last = None


@dataclass
class IntervalStats:
    """Minimum, time-weighted average and maximum of a reading over an interval."""

    min: float | None = None
    max: float | None = None
    _area: float = 0.0
    _span: float = 0.0
    _last: tuple[float, float] | None = field(default=None, repr=False)

    def add(self, t: float, value: float) -> None:
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        if self._last is not None and t > self._last[0]:
            dt = t - self._last[0]
            self._area += (self._last[1] + value) / 2 * dt
            self._span += dt
        self._last = (t, value)

    @property
    def average(self) -> float | None:
        if self._span > 0:
            return self._area / self._span
        return self._last[1] if self._last else None


class Window:
    """Minimum, average and maximum over roughly the last ``seconds`` (PowerMetrics'
    IntervalInMin), kept as a few buckets so each sample costs O(1), not O(window)."""

    def __init__(self, seconds: float = 60.0, buckets: int = 6):
        self.width = seconds / buckets
        self.buckets: list[tuple[float, IntervalStats]] = []
        self.keep = buckets

    def add(self, t: float, value: float) -> None:
        if not self.buckets or t - self.buckets[-1][0] >= self.width:
            start = t if not self.buckets else self.buckets[-1][0] + self.width * (
                (t - self.buckets[-1][0]) // self.width)
            last = self.buckets[-1][1]._last if self.buckets else None
            stats = IntervalStats()
            if last is not None and t - last[0] <= self.width:
                stats.add(last[0], last[1])  # carry the segment across the boundary
            self.buckets.append((start, stats))
            del self.buckets[:-self.keep]
        self.buckets[-1][1].add(t, value)

    def summary(self) -> tuple[float | None, float | None, float | None]:
        """(min, time-weighted average, max) over the buckets kept."""
        if not self.buckets:
            return None, None, None
        stats = [s for _, s in self.buckets]
        span = sum(s._span for s in stats)
        avg = sum(s._area for s in stats) / span if span > 0 else stats[-1].average
        return min(s.min for s in stats), avg, max(s.max for s in stats)
