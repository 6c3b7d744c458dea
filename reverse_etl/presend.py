"""The last look before a message is handed over, against the latest data in the warehouse.

Suppression reasons, first match wins:
    erased             the customer id or address matches an erasure proof (privacy/erased.py): the
                       person asked to be forgotten, and an import brought them back
    opted_out          the latest email consent event for the customer (any of their addresses or
                       user ids) is an opt-out - also one that arrived after the audience was built
    hard_bounced       the provider reported a hard bounce for one of the customer's addresses
    spam_complaint     the customer reported one of our messages as spam
    unsubscribed       the provider reported an unsubscribe (global or group)
    <send_eligibility> the current send_eligibility row says no (rebuilt since the audience); its
                       `sunset` is left to the live check below, which sees a comeback the mart has not
    no_consent_yet     send_eligibility is built but has no row for the customer (a signup newer than
                       the marts, which journeys mail within a minute), and their latest email consent
                       event is not an explicit opt-in (opt_in with lawful basis consent, which every
                       jurisdiction the mart knows accepts)
    sunset             the customer is in ops.marketing_suppressions (suppressions.py) and has neither
                       ordered nor clicked since
    expired            not handed over within the expiry window after its send time (or after it
                       was rendered, when that is later: with MAILROOM_AS_OF set, send times lie on
                       the as-of day, and a message cannot be stale before it was written)
    frequency_cap      the customer already has N messages handed over in the last 7 days, and the
                       message says on_frequency_cap 'skip' (or nothing)
Held, not suppressed (LastLook.held_until): a message over the frequency cap that says
on_frequency_cap 'delay' stays planned until the cap clears - the moment the N-th most recent of the
customer's hand-overs leaves the 7-day window (its deliver_at + 7 days; the cap clears just after).
Quiet hours move the delivery time out of the customer's local night instead of suppressing.

Addresses are compared in one normalized form everywhere (dagster_project.addresses, the same as
dbt's normalized_email macro), so a padded or upper-case address in an event that arrived after
the marts were built still matches. Every time here is the wall clock: MAILROOM_AS_OF moves data
rules in the models, never when a message is delivered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from dagster_project.addresses import normalized_address, normalized_address_sql
from dagster_project.privacy.erased import ERASED, erased_customers
from dagster_project.timezones import customer_zone
from dagster_project.warehouse import Connection
from reverse_etl.outgoing import OutgoingMessage
from reverse_etl.suppressions import SUNSET, came_back_sql

CONSENT_EMAIL = normalized_address_sql("c.email")
EVENT_EMAIL = normalized_address_sql("e.email")
FREQUENCY_WINDOW = timedelta(days=7)  # the frequency cap counts hand-overs this far back
SKIP, DELAY = "skip", "delay"  # on_frequency_cap: suppress a message over the cap, or hold it until the cap clears
IDENTITY_VALUE = (f"CASE WHEN i.identifier_type = 'email' THEN {normalized_address_sql('i.identifier_value')} "
                  "ELSE i.identifier_value END")


@dataclass(frozen=True)
class LastLook:
    """What the last look decided for a page: the messages that must not be sent (message_id ->
    reason), and those held back until the frequency cap clears (message_id -> the moment it does;
    the message stays planned and may go at the first look after it)."""

    suppressed: dict[str, str] = field(default_factory=dict)
    held_until: dict[str, datetime] = field(default_factory=dict)


def suppression_reasons(conn: Connection, page: Sequence[OutgoingMessage], now: datetime, frequency_cap: int,
                        expire_after: timedelta, on_frequency_cap: Mapping[str, str | None] | None = None
                        ) -> dict[str, str]:
    """message_id -> reason for every message of the page that must not be sent now."""
    return last_look(conn, page, now, frequency_cap, expire_after, on_frequency_cap).suppressed


def last_look(conn: Connection, page: Sequence[OutgoingMessage], now: datetime, frequency_cap: int,
              expire_after: timedelta, on_frequency_cap: Mapping[str, str | None] | None = None) -> LastLook:
    """The page's suppressions with their reasons, and the messages held by the frequency cap.
    `on_frequency_cap`: message_id -> 'delay' for messages that wait for the cap to clear rather than
    being suppressed ('skip', None or absent: suppressed frequency_cap)."""
    if not page:
        return LastLook()
    has = {name: conn.table_exists(*name.split(".")) for name in (
        "raw.consent_events", "raw.esp_events", "marts.customer_identities", "marts.send_eligibility",
        "ops.marketing_suppressions")}
    identities = (
        f"UNION SELECT p.message_id, i.identifier_type, {IDENTITY_VALUE} FROM page AS p "
        "JOIN marts.customer_identities AS i ON i.customer_id = p.customer_id "
        "WHERE i.identifier_type IN ('email', 'user_id') "
    ) if has["marts.customer_identities"] else ""
    consent = (
        "consent AS (SELECT message_id, status, lawful_basis, row_number() OVER (PARTITION BY message_id "
        "  ORDER BY occurred_at DESC, CASE WHEN status = 'opt_out' THEN 0 ELSE 1 END) AS recency FROM ("
        "  SELECT k.message_id, c.status, c.lawful_basis, c.occurred_at FROM keys AS k "
        "    JOIN raw.consent_events AS c "
        f"    ON c.channel = 'email' AND k.kind = 'email' AND {CONSENT_EMAIL} = k.value "
        "  UNION ALL "
        "  SELECT k.message_id, c.status, c.lawful_basis, c.occurred_at FROM keys AS k "
        "    JOIN raw.consent_events AS c "
        "    ON c.channel = 'email' AND k.kind = 'user_id' AND c.user_id = k.value) AS matched), "
    ) if has["raw.consent_events"] else (
        "consent AS (SELECT message_id, CAST(NULL AS VARCHAR) AS status, CAST(NULL AS VARCHAR) AS lawful_basis, "
        "1 AS recency FROM page WHERE 1 = 0), ")
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
    # Only where the marts are built: without them (a warehouse before its first dbt build) every
    # customer would lack a row.
    no_consent_yet = (
        "  WHEN eligibility.customer_id IS NULL AND NOT (coalesce(consent.status, '') = 'opt_in' "
        "    AND coalesce(consent.lawful_basis, '') = 'consent') THEN 'no_consent_yet' "
    ) if has["marts.send_eligibility"] else ""
    sunset = (
        "sunset AS (SELECT page.message_id FROM page JOIN ops.marketing_suppressions AS s "
        f"  ON s.customer_id = page.customer_id AND s.reason = '{SUNSET}' WHERE NOT "
        + came_back_sql(conn, "(SELECT kind, value FROM keys WHERE keys.message_id = page.message_id)",
                        "s.recorded_at") + "), "
    ) if has["ops.marketing_suppressions"] else "sunset AS (SELECT message_id FROM page WHERE 1 = 0), "
    delay = sorted(m.message_id for m in page if (on_frequency_cap or {}).get(m.message_id) == DELAY)
    sql = (
        # The page arrives as arrays: no join back to the (large) messages table per page.
        "WITH page AS (SELECT unnest(CAST(? AS VARCHAR[])) AS message_id, unnest(CAST(? AS VARCHAR[])) AS customer_id, "
        "  unnest(CAST(? AS TIMESTAMP[])) AS due_from, unnest(CAST(? AS VARCHAR[])) AS email), "
        "keys AS (SELECT message_id, 'email' AS kind, email AS value FROM page "
        f"  {identities}), "
        + consent + provider + sunset +
        # Each page customer's hand-overs in the window, and the deliver_at of the cap-th most recent:
        # the cap clears when that one leaves the window.
        "recent AS (SELECT customer_id, count(*) AS messages, "
        "  max(CASE WHEN position = ? THEN deliver_at END) AS cap_leaves_at FROM ("
        "  SELECT customer_id, deliver_at, row_number() OVER (PARTITION BY customer_id ORDER BY deliver_at DESC) "
        "  AS position FROM ops.send_ledger "
        "  WHERE state IN ('sending', 'accepted') AND deliver_at >= ? "
        "  AND customer_id IN (SELECT customer_id FROM page)) AS window_messages GROUP BY customer_id) "
        "SELECT page.message_id, CASE "
        "  WHEN consent.status = 'opt_out' THEN 'opted_out' "
        "  WHEN provider.hard_bounce = 1 THEN 'hard_bounced' "
        "  WHEN provider.spam = 1 THEN 'spam_complaint' "
        "  WHEN provider.unsubscribed = 1 THEN 'unsubscribed' "
        "  WHEN eligibility.is_eligible = FALSE AND coalesce(eligibility.ineligible_reason, '') <> "
        f"    '{SUNSET}' THEN coalesce(eligibility.ineligible_reason, 'ineligible') "
        + no_consent_yet +
        f"  WHEN sunset.message_id IS NOT NULL THEN '{SUNSET}' "
        "  WHEN page.due_from < ? THEN 'expired' "
        "  WHEN ? > 0 AND coalesce(recent.messages, 0) >= ? THEN "
        "    CASE WHEN page.message_id = ANY(CAST(? AS VARCHAR[])) THEN 'held' ELSE 'frequency_cap' END "
        "END AS reason, recent.cap_leaves_at "
        "FROM page "
        "LEFT JOIN consent ON consent.message_id = page.message_id AND consent.recency = 1 "
        "LEFT JOIN provider ON provider.message_id = page.message_id "
        + eligibility +
        "LEFT JOIN sunset ON sunset.message_id = page.message_id "
        "LEFT JOIN recent ON recent.customer_id = page.customer_id"
    )
    arrays = [[m.message_id for m in page], [m.customer_id for m in page], [_due_from(m, now) for m in page],
              [normalized_address(m.to_email) for m in page]]
    rows = conn.fetchall(sql, [*arrays, frequency_cap, now - FREQUENCY_WINDOW, now - expire_after, frequency_cap,
                               frequency_cap, delay])
    look = LastLook()
    erased = erased_customers(conn, [(m.customer_id, m.to_email) for m in page])
    by_customer = {m.message_id: m.customer_id for m in page}
    for message_id, reason, cap_leaves_at in rows:
        if by_customer.get(message_id) in erased:
            look.suppressed[message_id] = ERASED
        elif reason == "held":
            look.held_until[message_id] = cap_leaves_at + FREQUENCY_WINDOW
        elif reason:
            look.suppressed[message_id] = reason
    return look


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
    zone = customer_zone(tz_name)
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
