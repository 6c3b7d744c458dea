"""How a customer responds to an email: the hidden truth behind send-time optimization and propensity.

One response function for the sample history (esp.py) and the demo's simulator (engagement.py), so
both follow the same truth. Its traits are written to truth/engagement.csv for tests only.

- Reading curve: when the customer looks at their inbox. Peak 1 is their preferred hour; about 40%
  have a second, weaker peak. A message delivered `LEAD_HOURS` before a peak is on top of the inbox
  when they look; one that lands long before is buried (the floor keeps some chance at any hour).
- Level: responsiveness, dropping to a fifth after `lapse_ms` for about 15% (recency matters).
- Intent: a cart added in the 7 days before delivery doubles the chance of a click given an open.
- Day of week: population-wide, so a separable estimator can learn it: at the weekend peaks come an
  hour later and attention is 10% lower."""

from __future__ import annotations

import csv
import math
from bisect import bisect_left
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster_project.sample_data.clock import DAY_MS, Window

ATTENTION_FLOOR = 0.3  # share of peak attention a message gets at any hour
LEAD_HOURS = 0.5  # a message landing half an hour before the reader looks is the best placed
WEEKEND_SHIFT_HOURS = 1.0
WEEKEND_FACTOR = 0.9
SECOND_PEAK_SHARE = 0.4
LAPSE_SHARE = 0.15
LAPSE_FACTOR = 0.2
INTENT_DAYS = 7
INTENT_FACTOR = 2.0
DAYTIME_HOURS = range(8, 21)  # the hours the open probability is normalized over: the usual send window
READING_MODES = (7.5, 12.5, 20.0)  # before work, lunch, evening: where a second peak can sit


@dataclass(frozen=True)
class Behaviour:
    reading_hour: float  # local hour of the main peak
    reading_hour_2: float | None
    second_weight: float  # the second peak's height relative to the first (0 without one)
    peak_width_hours: float
    level: float  # 0-1: responsiveness
    lapse_ms: int | None  # after this instant the level drops to LAPSE_FACTOR of itself
    mean_daytime_attention: float

    def attention(self, local_hour: float, weekend: bool = False) -> float:
        """Relative chance (floor..1) that a message delivered at this local hour is seen."""
        shift = WEEKEND_SHIFT_HOURS if weekend else 0.0
        kappa = _concentration(self.peak_width_hours)
        peaks = [(self.reading_hour, 1.0)]
        if self.reading_hour_2 is not None:
            peaks.append((self.reading_hour_2, self.second_weight))
        best = max(weight * math.exp(kappa * (math.cos(2 * math.pi * (local_hour + LEAD_HOURS - peak - shift) / 24)
                                              - 1))
                   for peak, weight in peaks)
        value = ATTENTION_FLOOR + (1 - ATTENTION_FLOOR) * best
        return value * WEEKEND_FACTOR if weekend else value

    def level_at(self, ms: int) -> float:
        return self.level * LAPSE_FACTOR if self.lapse_ms is not None and ms >= self.lapse_ms else self.level

    def open_probability(self, ms: int, local_hour: float, weekend: bool, lift: float = 1.0) -> float:
        """P(human open) of a message delivered at `ms`, local `local_hour`. Averaged over the daytime
        hours it is the old rate 0.06 + 0.8 x level, so overall open rates stay where they were."""
        relative = self.attention(local_hour, weekend) / self.mean_daytime_attention
        return min(0.95, (0.06 + 0.8 * self.level_at(ms)) * lift * relative)

    def click_probability(self, ms: int, cart_adds_ms: list[int]) -> float:
        """P(click | human open) of a message delivered at `ms`; `cart_adds_ms` sorted."""
        probability = 0.12 + 0.5 * self.level_at(ms)
        if _any_between(cart_adds_ms, ms - INTENT_DAYS * DAY_MS, ms):
            probability *= INTENT_FACTOR
        return min(0.95, probability)

    def best_delivery_hour(self) -> int:
        """The weekday daytime hour with the most attention (the earliest on a tie): STO's target."""
        return max(DAYTIME_HOURS, key=lambda hour: (self.attention(hour), -hour))


def draw(rng, preferred_hour: int, responsiveness: float, window: Window) -> Behaviour:
    """A customer's behaviour, from their existing traits and the 'behaviour' random stream."""
    reading_hour = preferred_hour + 0.5  # esp.py opens at preferred_hour + U(0, 1)
    second = None
    weight = 0.0
    if rng.random() < SECOND_PEAK_SHARE:
        far = [mode for mode in READING_MODES if _hour_distance(mode, reading_hour) >= 3]
        second = rng.choice(far)
        weight = round(rng.uniform(0.3, 0.6), 2)
    width = round(rng.uniform(0.8, 1.5), 2)
    lapse = None
    if rng.random() < LAPSE_SHARE:
        lapse = window.start_ms + int(rng.uniform(0.3, 0.95) * (window.end_ms - window.start_ms))
    return _normalized(reading_hour, second, weight, width, responsiveness, lapse)


def _normalized(reading_hour: float, second: float | None, weight: float, width: float, level: float,
                lapse_ms: int | None) -> Behaviour:
    """The behaviour with its daytime mean attention filled in."""
    unnormalized = Behaviour(reading_hour, second, weight, width, level, lapse_ms, 1.0)
    mean = sum(unnormalized.attention(hour) for hour in DAYTIME_HOURS) / len(DAYTIME_HOURS)
    return Behaviour(reading_hour, second, weight, width, level, lapse_ms, mean)


def load_truth(path: Path) -> dict[str, tuple[Behaviour, str]]:
    """truth/engagement.csv as {email: (behaviour, IANA timezone)}; empty when the file is absent."""
    if not path.exists():
        return {}
    out = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            lapse = row["lapse_at"]
            lapse_ms = int(datetime.fromisoformat(lapse.replace("Z", "+00:00")).timestamp() * 1000) if lapse else None
            second = float(row["reading_hour_2"]) if row["reading_hour_2"] else None
            behaviour = _normalized(float(row["reading_hour"]), second, float(row["second_weight"]),
                                    float(row["peak_width_hours"]), float(row["engagement_level"]), lapse_ms)
            out[row["email"]] = (behaviour, row["timezone"])
    return out


def relative_attention(behaviour: Behaviour, tz: str, delivered_utc: datetime) -> float:
    """Attention at a naive-UTC delivery time relative to the customer's daytime average (about 1)."""
    local = delivered_utc.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    hour = local.hour + local.minute / 60
    return behaviour.attention(hour, local.isoweekday() >= 6) / behaviour.mean_daytime_attention


def is_weekend(window: Window, tz: str, utc_ms: int) -> bool:
    local_day = (utc_ms + window.offset_seconds(tz, utc_ms // DAY_MS) * 1000) // DAY_MS
    return (local_day + 3) % 7 >= 5  # 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays


def _concentration(width_hours: float) -> float:
    """von Mises concentration whose peak has this standard deviation in hours."""
    return 1 / (2 * math.pi * width_hours / 24) ** 2


def _hour_distance(a: float, b: float) -> float:
    gap = abs(a - b) % 24
    return min(gap, 24 - gap)


def _any_between(sorted_ms: list[int], low: int, high: int) -> bool:
    index = bisect_left(sorted_ms, low)
    return index < len(sorted_ms) and sorted_ms[index] < high
