"""Ingest is the only door back in for an erased person (docs/design/privacy.md, section 3.5): an old export
dropped again, a provider re-delivering its events. `ErasureGuard` tells the loader which parsed records
belong to an erased subject and came from before the erasure, so they are dropped unread: counted per file,
never quarantined (a quarantined payload would hold them again).

A record matches when one of its identifiers (user, anonymous and previous ids, the address in traits or a
column, the CRM contact id) hashes under the privacy key to an erasure proof. It is dropped when it
happened at or before the erasure, or when it is a provider event (every one concerns a message sent before
the erasure). Anything newer (a new signup, a new opt-in) loads: the person is then suppressed `erased` at
every send (privacy/erased.py) until they are mailed with their consent again by an operator's decision.

The guard is built once per ingest from ops.erasure_proofs and travels to the parsing workers; without
proofs there is no guard and no cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from dagster_project.privacy.keys import SubjectKeys
from dagster_project.warehouse import Connection

# Per source: (identifier type, column of the parsed row); JSON columns are searched for an "email" key.
IDENTIFIER_COLUMNS = {
    "cdp": (("user_id", "user_id"), ("anonymous_id", "anonymous_id"), ("user_id", "previous_id"),
            ("anonymous_id", "previous_id")),
    "crm": (("crm_contact_id", "contact_id"), ("email", "email"), ("user_id", "user_id")),
    "consent": (("user_id", "user_id"), ("email", "email")),
    "esp": (("email", "email"),),
}
JSON_EMAIL_COLUMNS = {"cdp": ("traits", "context")}
EVENT_TIME = {"cdp": "event_at", "crm": "updated_at", "consent": "occurred_at", "esp": "event_at"}
ALWAYS_BEFORE = {"esp"}  # provider events concern messages sent before the erasure, whatever their time


@dataclass(frozen=True)
class ErasureGuard:
    key: bytes
    erased_at: dict[str, datetime]  # subject_key -> when its erasure began

    @classmethod
    def load(cls, conn: Connection, key: bytes) -> ErasureGuard | None:
        if not conn.table_exists("ops", "erasure_proofs"):
            return None
        rows = conn.fetchall("SELECT subject_key, min(erased_at) FROM ops.erasure_proofs GROUP BY subject_key")
        return cls(key, dict(rows)) if rows else None

    def erased(self, source: str, column_names: list[str], values: tuple) -> bool:
        """Whether this parsed row belongs to an erased subject and came from before the erasure."""
        if source not in IDENTIFIER_COLUMNS:
            return False
        row = dict(zip(column_names, values, strict=False))
        keys = SubjectKeys(self.key)
        candidates = [(kind, row.get(column)) for kind, column in IDENTIFIER_COLUMNS[source]]
        candidates += [("email", address) for column in JSON_EMAIL_COLUMNS.get(source, ())
                       for address in _emails_in(row.get(column))]
        erased_at = [self.erased_at[key] for key in (keys.subject_key(kind, str(value))
                                                     for kind, value in candidates if value not in (None, ""))
                     if key in self.erased_at]
        if not erased_at:
            return False
        if source in ALWAYS_BEFORE:
            return True
        happened = _moment(row.get(EVENT_TIME[source]))
        return happened is None or happened <= max(erased_at)


def _emails_in(text) -> list[str]:
    """The "email" values of a JSON object column (traits, and context's traits)."""
    if not text:
        return []
    try:
        value = orjson.loads(text) if isinstance(text, (str, bytes)) else text
    except orjson.JSONDecodeError:
        return []
    found = []
    for candidate in (value, value.get("traits") if isinstance(value, dict) else None):
        if isinstance(candidate, dict) and isinstance(candidate.get("email"), str):
            found.append(candidate["email"])
    return found


def _moment(value) -> datetime | None:
    """A parsed row's time: naive UTC in ISO 8601 (ingest/values.py)."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
