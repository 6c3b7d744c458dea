"""Turn a verified unsubscribe token into an opt-out consent event in the landing directory.

The event is a line of landing consent/*.jsonl (see docs/landing-files.md): the ingest loads it into
raw.consent_events and consent_status makes it the customer's latest email consent, so the next
send suppresses them. It carries no jurisdiction: an opt-out applies everywhere.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

from dagster_project.personalization.render import UnsubscribeToken
from reverse_etl.receiver.landing_writer import write_landing_file

CONSENT_SOURCE = "consent"  # the landing sub-folder the consent ingest reads
FILE_PREFIX = "unsubscribe"


def opt_out_event(token: UnsubscribeToken, now: datetime | None = None) -> dict:
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "event_id": str(uuid.uuid4()),
        "email": token.email,
        "channel": "email",
        "status": "opt_out",
        # Withdrawing consent: the basis the opt-out ends, as for provider and CRM opt-outs.
        "lawful_basis": "consent",
        "source": f"unsubscribe_link:{token.campaign_id}",
        "occurred_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def record_opt_out(landing_dir: Path, token: UnsubscribeToken) -> Path:
    """Write the opt-out durably; returns the landing file (its name holds no personal data)."""
    line = json.dumps(opt_out_event(token), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return write_landing_file(landing_dir / CONSENT_SOURCE, FILE_PREFIX, [line])
