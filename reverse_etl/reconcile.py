"""Settle messages a crashed or cut-off run left in `sending`, before anything is sent again.

    outbox     the file named after the Message-ID is there (accepted) or not (send again): files
               appear whole or not at all
    sendgrid   the provider's events (raw.esp_events, through the Event Webhook) carry our message id
               in custom_args: an event means accepted. No event yet: wait `reconcile_after`, then
               send again - SendGrid posts events within minutes
    smtp       a relay cannot be asked: held as failed (outcome_unknown) rather than risk a duplicate
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from dagster_project.warehouse import Connection
from reverse_etl.ledger import ACCEPTED, FAILED, PLANNED, SENDING, move, move_each
from reverse_etl.outgoing import OutgoingMessage


def reconcile(conn: Connection, campaign_id: str, finders: dict, wall_now: datetime,
              reconcile_after: timedelta, log=lambda message: None) -> Counter:
    """Counter of what happened: accepted, resend, waiting, held."""
    outcome: Counter = Counter()
    rows = conn.fetchall(
        "SELECT l.message_id, l.destination, l.sending_at, m.campaign_id, m.variant_id, m.to_email "
        "FROM ops.send_ledger AS l JOIN ops.campaign_messages AS m ON m.message_id = l.message_id "
        f"WHERE l.campaign_id = ? AND l.state = '{SENDING}' ORDER BY l.message_id",
        [campaign_id],
    )
    by_destination: dict[str, list] = {}
    for row in rows:
        by_destination.setdefault(row[1], []).append(row)
    for destination, stale in by_destination.items():
        ids = [row[0] for row in stale]
        found = None
        finder = finders.get(destination)
        if finder is not None:
            messages = [OutgoingMessage(message_id=r[0], campaign_id=r[3], variant_id=r[4], to_email=r[5],
                                        subject="", html="", text="") for r in stale]
            found = finder.find_accepted(messages)
        if found is None and destination == "sendgrid":
            found = _from_provider_events(conn, ids)
            unsettled = [r for r in stale if r[0] not in found]
            resend = [r[0] for r in unsettled if r[2] is None or wall_now - r[2] >= reconcile_after]
            outcome["waiting"] += len(unsettled) - len(resend)
        elif found is None:
            _hold(conn, ids, destination, wall_now)
            outcome["held"] += len(ids)
            log(f"{len(ids):,} messages handed to {destination} have an unknown outcome and are held as "
                "failed (outcome_unknown): the destination cannot be asked whether it took them")
            continue
        else:
            resend = [i for i in ids if i not in found]
        move_each(conn, found, SENDING, ACCEPTED, now=wall_now, column="provider_message_id")
        move(conn, resend, SENDING, PLANNED, now=wall_now,
             last_error=f"not found at {destination} after an interrupted run; sending again")
        outcome["accepted"] += len(found)
        outcome["resend"] += len(resend)
    conn.commit()
    return +outcome  # without zero counts


def _from_provider_events(conn: Connection, message_ids: list[str]) -> dict[str, str]:
    if not message_ids or not conn.table_exists("raw", "esp_events"):
        return {}
    found = {}
    for start in range(0, len(message_ids), 5000):
        found.update({message_id: provider_id or "event" for message_id, provider_id in conn.fetchall(
            "SELECT mailroom_message_id, max(sg_message_id) FROM raw.esp_events "
            "WHERE mailroom_message_id = ANY(?) GROUP BY mailroom_message_id", [message_ids[start:start + 5000]])})
    return found


def _hold(conn: Connection, message_ids: list[str], destination: str, wall_now: datetime) -> None:
    move(conn, message_ids, SENDING, FAILED, now=wall_now, reason="outcome_unknown", is_retryable=False,
         last_error=f"the run stopped after handing the message to {destination} and before its answer was "
                    "recorded; not resent, to avoid a duplicate")
