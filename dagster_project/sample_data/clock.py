"""Time for the generator: the 180-day window before `as_of`, fast ISO 8601 formatting of epoch
milliseconds, and local <-> UTC conversion through cached per-day UTC offsets (zoneinfo is too slow
to call per event, and an offset taken at noon is right for every hour but the DST switch)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
EPOCH = date(1970, 1, 1)


class Window:
    """All generated activity happens in [start_ms, end_ms): the `days` days before as_of 00:00 UTC."""

    def __init__(self, as_of: date, days: int = 180):
        self.as_of = as_of
        self.days = days
        self.end_ms = (as_of - EPOCH).days * DAY_MS
        self.start_ms = self.end_ms - days * DAY_MS
        self._day_text: dict[int, str] = {}
        self._offsets: dict[tuple[str, int], int] = {}
        # 'HH:MM:SS' for every second of a day (about 5 MB): formatting becomes two divmods and a lookup.
        self._clock_text = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]

    # -- formatting --------------------------------------------------------------------------

    def _day(self, day: int) -> str:
        text = self._day_text.get(day)
        if text is None:
            text = self._day_text[day] = (EPOCH + timedelta(days=day)).isoformat()
        return text

    def iso(self, ms: int) -> str:
        """'2026-11-02T08:15:00.123Z' (Segment's format)."""
        day, rest = divmod(ms, DAY_MS)
        seconds, millis = divmod(rest, 1000)
        text = self._day_text.get(day) or self._day(day)
        return f"{text}T{self._clock_text[seconds]}.{millis:03d}Z"

    def iso_local(self, ms: int, tz: str) -> str:
        """'2026-11-02 09:15:00+01:00': the same instant written with the local UTC offset."""
        offset = self.offset_seconds(tz, ms // DAY_MS)
        local = ms + offset * 1000
        day, rest = divmod(local, DAY_MS)
        seconds = rest // 1000
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        sign = "+" if offset >= 0 else "-"
        off_h, off_m = divmod(abs(offset) // 60, 60)
        return f"{self._day(day)} {hours:02d}:{minutes:02d}:{seconds:02d}{sign}{off_h:02d}:{off_m:02d}"

    # -- time zones --------------------------------------------------------------------------

    def offset_seconds(self, tz: str, day: int) -> int:
        """UTC offset of `tz` at noon UTC of epoch day `day`."""
        key = (tz, day)
        offset = self._offsets.get(key)
        if offset is None:
            noon = datetime.fromtimestamp(day * 86_400 + 43_200, timezone.utc)
            offset = self._offsets[key] = int(noon.astimezone(ZoneInfo(tz)).utcoffset().total_seconds())
        return offset

    def local_to_utc_ms(self, tz: str, local_day: int, local_ms_of_day: int) -> int:
        return local_day * DAY_MS + local_ms_of_day - self.offset_seconds(tz, local_day) * 1000

    def local_hour(self, tz: str, utc_ms: int) -> float:
        local = utc_ms + self.offset_seconds(tz, utc_ms // DAY_MS) * 1000
        return (local % DAY_MS) / HOUR_MS

    def next_local_hour(self, tz: str, after_ms: int, hour: float) -> int:
        """The first UTC instant after `after_ms` when the local clock in `tz` shows `hour`."""
        day = after_ms // DAY_MS - 1
        while True:
            candidate = self.local_to_utc_ms(tz, day, int(hour * HOUR_MS))
            if candidate > after_ms:
                return candidate
            day += 1
