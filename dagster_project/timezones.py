"""The customer's timezone, resolved one way everywhere: campaign send times, send-time candidates,
journey waits and the pre-send quiet hours."""

from __future__ import annotations

from datetime import timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def customer_zone(tz_name: str | None) -> ZoneInfo | timezone:
    """The IANA zone `tz_name`; UTC when it is missing or unknown (dim_customers only holds IANA names,
    so an unknown one is belt and braces, not a case to report)."""
    try:
        return ZoneInfo(tz_name) if tz_name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc
