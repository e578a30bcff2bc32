"""The rack fan curve: rack temperature (°C) → fan duty (%), as pure logic.

Between its points the curve interpolates linearly; below the first point it holds the
first duty, above the last the last. Temperatures must increase from point to point and
duties must not fall: a hotter rack never gets less air.

Hysteresis keeps the fan from hunting when the temperature wobbles around a point: a
rise takes effect at once, but the duty only comes down once the temperature has fallen
``hysteresis`` °C below the temperature that raised it (then it follows the curve
shifted by ``hysteresis``, so it does not jump). Technically a backlash (play) on the
temperature the curve is read at.

Failsafe: with no temperature (the sensor failed, or read NaN) the duty is 100 %.
The curve only computes; the agent reads the sensor and drives the fan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

DEFAULT_POINTS = ((25.0, 20.0), (35.0, 40.0), (45.0, 70.0), (55.0, 100.0))
DEFAULT_HYSTERESIS = 2.0
FAILSAFE_DUTY = 100.0


def check_points(points: Iterable[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    """Validated ``(celsius, percent)`` points, or ``ValueError`` saying what is wrong."""
    out: list[tuple[float, float]] = []
    for i, point in enumerate(points):
        if isinstance(point, (str, bytes)) or not isinstance(point, Sequence) or len(point) != 2:
            raise ValueError(f"fan curve point {i + 1}: expected [celsius, percent], got {point!r}")
        try:
            celsius, percent = float(point[0]), float(point[1])
        except (TypeError, ValueError):
            raise ValueError(f"fan curve point {i + 1}: {point!r} is not two numbers") from None
        if not (math.isfinite(celsius) and math.isfinite(percent)):
            raise ValueError(f"fan curve point {i + 1}: {point!r} is not finite")
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"fan curve point {i + 1}: duty {percent:g} % is outside 0..100 %")
        if out and celsius <= out[-1][0]:
            raise ValueError(f"fan curve point {i + 1}: temperatures must increase "
                             f"({celsius:g} °C comes after {out[-1][0]:g} °C)")
        if out and percent < out[-1][1]:
            raise ValueError(f"fan curve point {i + 1}: duty must not fall as it gets warmer "
                             f"({percent:g} % at {celsius:g} °C after {out[-1][1]:g} % "
                             f"at {out[-1][0]:g} °C)")
        out.append((celsius, percent))
    if not out:
        raise ValueError("fan curve: at least one [celsius, percent] point is needed")
    return tuple(out)


def interpolate(points: Sequence[tuple[float, float]], celsius: float) -> float:
    """Duty at ``celsius`` on the curve through ``points``, clamped at both ends."""
    if celsius <= points[0][0]:
        return points[0][1]
    for (t0, d0), (t1, d1) in zip(points, points[1:]):
        if celsius <= t1:
            return d0 + (d1 - d0) * (celsius - t0) / (t1 - t0)
    return points[-1][1]


class FanCurve:
    def __init__(self, points: Iterable[Sequence[float]] = DEFAULT_POINTS,
                 hysteresis: float = DEFAULT_HYSTERESIS):
        if not (math.isfinite(hysteresis) and hysteresis >= 0):
            raise ValueError(f"fan curve: hysteresis must be 0 °C or more, not {hysteresis!r}")
        self.points = check_points(points)
        self.hysteresis = float(hysteresis)
        self._at: float | None = None   # the temperature the curve is being read at

    @classmethod
    def from_manifest(cls, points: Iterable[Sequence[float]] | None,
                      hysteresis: float = DEFAULT_HYSTERESIS) -> FanCurve:
        """The manifest's ``fan.curve`` (a list of [celsius, percent]), or the default curve."""
        return cls(DEFAULT_POINTS if points is None else points, hysteresis)

    def duty_for(self, celsius: float | None) -> float:
        """The duty (%) for a rack temperature; ``None`` or NaN (no reading) → 100 %."""
        if celsius is None or math.isnan(celsius):
            return FAILSAFE_DUTY
        if self._at is None or celsius > self._at:
            self._at = celsius                      # warming: follow at once
        elif celsius < self._at - self.hysteresis:
            self._at = celsius + self.hysteresis    # cooled past the band: follow, shifted
        return interpolate(self.points, self._at)
