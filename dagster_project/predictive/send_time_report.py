"""Where a run's messages land on the customers' clocks, per send-time arm: the demo's histogram and
the tests' check that planned times keep to the window and the quiet hours."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

from dagster_project.timezones import customer_zone


def planned_sends(conn, campaign_id: str, run_key: str) -> list[tuple[str, str | None, str | None, datetime, datetime]]:
    """(customer_id, send-time arm, timezone, planned send_at UTC, the same on the customer's clock)."""
    rows = conn.fetchall(
        "SELECT m.customer_id, m.send_time_arm, c.timezone, m.send_at FROM ops.campaign_messages AS m "
        "LEFT JOIN marts.dim_customers AS c ON c.customer_id = m.customer_id "
        "WHERE m.campaign_id = ? AND m.run_key = ? ORDER BY m.customer_id", [campaign_id, run_key])
    return [(customer_id, arm, tz, send_at, send_at.replace(tzinfo=timezone.utc).astimezone(customer_zone(tz)))
            for customer_id, arm, tz, send_at in rows]


def local_hours_by_arm(conn, campaign_id: str, run_key: str) -> Counter:
    """(arm, local hour) -> messages; arm None outside send_time: optimized."""
    return Counter((arm, local.hour) for _, arm, _, _, local in planned_sends(conn, campaign_id, run_key))


def histogram_lines(counts: Counter, width: int = 30) -> list[str]:
    """One text line per local hour: messages per arm and a bar of all of them."""
    arms = sorted({arm for arm, _ in counts if arm}, key=("optimized", "explore", "fixed").index)
    hours = sorted({hour for _, hour in counts})
    per_hour = {hour: sum(n for (_, h), n in counts.items() if h == hour) for hour in hours}
    top = max(per_hour.values(), default=0) or 1
    lines = []
    for hour in hours:
        split = ", ".join(f"{arm} {counts[(arm, hour)]}" for arm in arms if counts[(arm, hour)])
        lines.append(f"{hour:02d}:00 {'#' * max(1, round(per_hour[hour] / top * width)):<{width}} "
                     f"{per_hour[hour]:>5,}  {split}")
    return lines
