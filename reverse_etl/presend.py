"""The last look before a message is handed over, against the latest data in the warehouse.

Suppression reasons, first match wins:
    opted_out          the latest email consent event for the customer (any of their addresses or
                       user ids) is an opt-out - also one that arrived after the audience was built
    hard_bounced       the provider reported a hard bounce for one of the customer's addresses
    spam_complaint     the customer reported one of our messages as spam
    unsubscribed       the provider reported an unsubscribe (global or group)
    <send_eligibility> the current send_eligibility row says no (rebuilt since the audience)
    expired            not handed over within the expiry window after its send time (or after it
                       was rendered, when that is later: with MAILROOM_AS_OF set, send times lie on
                       the as-of day, and a message cannot be stale before it was written)
    frequency_cap      the customer already has N messages handed over in the last 7 days
Quiet hours move the delivery time out of the customer's local night instead of suppressing.

Addresses are compared in one normalized form everywhere (dagster_project.addresses, the same as
dbt's normalized_email macro), so a padded or upper-case address in an event that arrived after
the marts were built still matches. Every time here is the wall clock: MAILROOM_AS_OF moves data
rules in the models, never when a message is delivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster_project.addresses import normalized_address, normalized_address_sql
from dagster_project.warehouse import Connection
from reverse_etl.outgoing import OutgoingMessage

CONSENT_EMAIL = normalized_address_sql("c.email")
EVENT_EMAIL = normalized_address_sql("e.email")
FREQUENCY_WINDOW = timedelta(days=7)  # the frequency cap counts hand-overs this far back
IDENTITY_VALUE = (f"CASE WHEN i.identifier_type = 'email' THEN {normalized_address_sql('i.identifier_value')} "
                  "ELSE i.identifier_value END")


def suppression_reasons(conn: Connection, page: Sequence[OutgoingMessage], now: datetime, frequency_cap: int,
                        expire_after: timedelta) -> dict[str, str]:
    """message_id -> reason for every message of the page that must not be sent now."""
    if not page:
        return {}
    has = {name: conn.table_exists(*name.split(".")) for name in (
        "raw.consent_events", "raw.esp_events", "marts.customer_identities", "marts.send_eligibility")}
    identities = (
        f"UNION SELECT p.message_id, i.identifier_type, {IDENTITY_VALUE} FROM page AS p "
        "JOIN marts.customer_identities AS i ON i.customer_id = p.customer_id "
        "WHERE i.identifier_type IN ('email', 'user_id') "
    ) if has["marts.customer_identities"] else ""
    consent = (
        "consent AS (SELECT message_id, status, row_number() OVER (PARTITION BY message_id "
        "  ORDER BY occurred_at DESC, CASE WHEN status = 'opt_out' THEN 0 ELSE 1 END) AS recency FROM ("
        "  SELECT k.message_id, c.status, c.occurred_at FROM keys AS k JOIN raw.consent_events AS c "
        f"    ON c.channel = 'email' AND k.kind = 'email' AND {CONSENT_EMAIL} = k.value "
        "  UNION ALL "
        "  SELECT k.message_id, c.status, c.occurred_at FROM keys AS k JOIN raw.consent_events AS c "
        "    ON c.channel = 'email' AND k.kind = 'user_id' AND c.user_id = k.value) AS matched), "
    ) if has["raw.consent_events"] else \
        "consent AS (SELECT message_id, CAST(NULL AS VARCHAR) AS status, 1 AS recency FROM page WHERE 1 = 0), "
    provider = (
        "provider AS (SELECT k.message_id, "
        "  max(CASE WHEN e.event = 'bounce' AND coalesce(e.bounce_type, 'bounce') = 'bounce' "
        "THEN 1 ELSE 0 END) AS hard_bounce, "
        "  max(CASE WHEN e.event = 'spamreport' THEN 1 ELSE 0 END) AS spam, "
        "  max(CASE WHEN e.event IN ('unsubscribe', 'group_unsubscribe') THEN 1 ELSE 0 END) AS unsubscribed "
        f"  FROM keys AS k JOIN raw.esp_events AS e ON k.kind = 'email' AND {EVENT_EMAIL} = k.value "
        "  GROUP BY k.message_id), "
    ) if has["raw.esp_events"] else \
        "provider AS (SELECT message_id, 0 AS hard_bounce, 0 AS spam, 0 AS unsubscribed FROM page WHERE 1 = 0), "
    eligibility = (
        "LEFT JOIN marts.send_eligibility AS eligibility ON eligibility.customer_id = page.customer_id "
        if has["marts.send_eligibility"] else
        "LEFT JOIN (SELECT CAST(NULL AS VARCHAR) AS customer_id, TRUE AS is_eligible, "
        "CAST(NULL AS VARCHAR) AS ineligible_reason) AS eligibility ON 1 = 0 "
    )
    sql = (
        # The page arrives as arrays: no join back to the (large) messages table per page.
        "WITH page AS (SELECT unnest(CAST(? AS VARCHAR[])) AS message_id, unnest(CAST(? AS VARCHAR[])) AS customer_id, "
        "  unnest(CAST(? AS TIMESTAMP[])) AS due_from, unnest(CAST(? AS VARCHAR[])) AS email), "
        "keys AS (SELECT message_id, 'email' AS kind, email AS value FROM page "
        f"  {identities}), "
        + consent + provider +
        "recent AS (SELECT customer_id, count(*) AS messages FROM ops.send_ledger "
        "  WHERE state IN ('sending', 'accepted') AND deliver_at >= ? "
        "  AND customer_id IN (SELECT customer_id FROM page) GROUP BY customer_id) "
        "SELECT page.message_id, CASE "
        "  WHEN consent.status = 'opt_out' THEN 'opted_out' "
        "  WHEN provider.hard_bounce = 1 THEN 'hard_bounced' "
        "  WHEN provider.spam = 1 THEN 'spam_complaint' "
        "  WHEN provider.unsubscribed = 1 THEN 'unsubscribed' "
        "  WHEN eligibility.is_eligible = FALSE THEN coalesce(eligibility.ineligible_reason, 'ineligible') "
        "  WHEN page.due_from < ? THEN 'expired' "
        "  WHEN ? > 0 AND coalesce(recent.messages, 0) >= ? THEN 'frequency_cap' "
        "END AS reason "
        "FROM page "
        "LEFT JOIN consent ON consent.message_id = page.message_id AND consent.recency = 1 "
        "LEFT JOIN provider ON provider.message_id = page.message_id "
        + eligibility +
        "LEFT JOIN recent ON recent.customer_id = page.customer_id"
    )
    arrays = [[m.message_id for m in page], [m.customer_id for m in page], [_due_from(m, now) for m in page],
              [normalized_address(m.to_email) for m in page]]
    rows = conn.fetchall(sql, [*arrays, now - FREQUENCY_WINDOW, now - expire_after, frequency_cap, frequency_cap])
    return {message_id: reason for message_id, reason in rows if reason}


def _due_from(message: OutgoingMessage, now: datetime) -> datetime:
    """Where the expiry window starts: the send time, or when the message was written if later."""
    return max(message.send_at or now, message.rendered_at or message.send_at or now)


def delivery_time(send_at: datetime | None, now: datetime, tz_name: str | None,
                  quiet_hours: tuple[int, int] | None) -> datetime:
    """When the message should arrive (naive UTC): its send time, or now if that has passed, moved
    to the end of the quiet hours when it would land inside them in the customer's local time."""
    when = max(send_at or now, now)
    if not quiet_hours:
        return when
    try:
        zone = ZoneInfo(tz_name) if tz_name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        zone = timezone.utc
    local = when.replace(tzinfo=timezone.utc).astimezone(zone)
    start, end = quiet_hours
    hour = local.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if not inside:
        return when
    wake = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if wake <= local:  # quiet hours run past midnight and it is still evening
        wake = (wake.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=zone)
    return wake.astimezone(timezone.utc).replace(tzinfo=None)
