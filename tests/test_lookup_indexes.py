"""PostgreSQL has an index for each lookup the last look before sending makes per page (consent and
provider events by normalized address, consent by user id, the ledger by customer), and the planner
can use it for the very expression the query writes: with sequential scans off, the plan names the
index. Without them, each page scanned both event tables (half an hour for 65K messages at 100K
customers)."""

from __future__ import annotations

import pytest

from dagster_project.ingest.loader import ingest_source
from dagster_project.ingest.lookup_indexes import LOOKUP_INDEXES
from dagster_project.ingest.sources import SOURCES
from reverse_etl import ledger
from reverse_etl.presend import CONSENT_EMAIL, EVENT_EMAIL

from pipeline_helpers import with_landing

LOOKUPS = {  # index -> a query shaped as presend.py shapes it
    "consent_events_normalized_email": f"SELECT c.status FROM raw.consent_events AS c WHERE {CONSENT_EMAIL} = 'a@b.co'",
    "consent_events_user_id": "SELECT c.status FROM raw.consent_events AS c WHERE c.user_id = 'u1'",
    "esp_events_normalized_email": f"SELECT e.event FROM raw.esp_events AS e WHERE {EVENT_EMAIL} = 'a@b.co'",
    "send_ledger__customer": "SELECT count(*) FROM ops.send_ledger WHERE customer_id = 'c1' AND deliver_at >= now()",
}


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_presend_lookups_can_use_an_index(warehouse, settings, sample_landing):
    with_landing(settings, sample_landing)
    for source in ("consent", "esp"):
        assert ingest_source(warehouse, SOURCES[source], settings.landing_dir, workers=1).files_loaded
    with warehouse.connect() as conn:
        ledger.ensure_ledger(conn)
    assert set(LOOKUPS) >= {index for indexes in LOOKUP_INDEXES.values() for index, _ in indexes}
    with warehouse.connect() as conn:
        # The load analyzed the tables: the planner knows their size.
        assert conn.scalar("SELECT reltuples FROM pg_class WHERE oid = 'raw.consent_events'::regclass") > 0
        conn.execute("SET LOCAL enable_seqscan = off")
        for index, query in LOOKUPS.items():
            plan = "\n".join(row[0] for row in conn.fetchall(f"EXPLAIN {query}"))
            assert index in plan, plan


@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=True)
def test_duckdb_gets_no_lookup_indexes(warehouse, settings, sample_landing):
    with_landing(settings, sample_landing)
    ingest_source(warehouse, SOURCES["consent"], settings.landing_dir, workers=1)
    with warehouse.connect() as conn:
        names = {row[0] for row in conn.fetchall("SELECT index_name FROM duckdb_indexes()")}
    assert not names & {index for indexes in LOOKUP_INDEXES.values() for index, _ in indexes}
