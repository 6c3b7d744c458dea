"""Who must never be mailed again because they were erased (docs/design/privacy.md, section 3.5).

An erasure leaves only keyed hashes behind (ops.erasure_proofs). A later import can bring the person back
(an old CRM export dropped again, a provider re-delivering events); their address then matches a proof,
and they are suppressed `erased` when the audience is built (messages_step) and again right before the
hand-over (presend). The hash needs the privacy key, which SQL never sees, so the match is made here, in
Python: one HMAC per customer and address, and only when there are proofs at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster_project.privacy.keys import SubjectKeys
from dagster_project.warehouse import Connection

ERASED = "erased"


def erased_customers(conn: Connection, candidates: Iterable[tuple[str, str | None]]) -> set[str]:
    """The customer ids of `candidates` ((customer_id, email) pairs) whose id or address has an erasure proof."""
    if not conn.table_exists("ops", "erasure_proofs"):
        return set()
    proofs = {row[0] for row in conn.fetchall("SELECT subject_key FROM ops.erasure_proofs")}
    if not proofs:
        return set()
    keys = _keys()
    return {customer_id for customer_id, email in candidates
            if keys.subject_key("customer_id", customer_id) in proofs
            or (email and keys.subject_key("email", email) in proofs)}


def _keys() -> SubjectKeys:
    from dagster_project.settings import load_settings, privacy_key

    return SubjectKeys(privacy_key(load_settings().data_dir))
