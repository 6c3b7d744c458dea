"""Identity resolution end to end on both warehouses: merge protection, audit, stable ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagster_project.warehouse import Warehouse

from pipeline_helpers import run_daily_pipeline


def event(message_id: str, **fields) -> dict:
    return {"messageId": message_id, "type": "identify", "timestamp": "2026-10-01T10:00:00Z", **fields}


def write_events(landing: Path, name: str, events: list[dict]) -> None:
    (landing / "cdp").mkdir(parents=True, exist_ok=True)
    (landing / "cdp" / name).write_text("".join(json.dumps(e) + "\n" for e in events))


TRICKY_EVENTS = [
    # u1 and u2 both typed the placeholder address: it must not make them one customer.
    event("p1", userId="u1", anonymousId="d1", traits={"email": "Test@Test.com"}),
    event("p2", userId="u2", anonymousId="d2", traits={"email": "test@test.com "}),
    # A family laptop: one device, three logins. It is demoted and links nobody.
    event("s1", userId="u3", anonymousId="laptop"),
    event("s2", userId="u4", anonymousId="laptop"),
    event("s3", userId="u5", anonymousId="laptop"),
    # A bridge: d6 belongs to u6, shared@x.com to u7, and one anonymous event saw them together.
    event("b1", userId="u6", anonymousId="d6"),
    event("b2", anonymousId="d6", traits={"email": "shared@x.com"}),
    event("b3", userId="u7", anonymousId="d7", traits={"email": "shared@x.com"}),
    # An all-zero id never links.
    event("z1", userId="u8", anonymousId="00000000-0000-0000-0000-000000000000"),
    event("z2", userId="u9", anonymousId="00000000-0000-0000-0000-000000000000"),
    # A real person across two devices, an alias and a phone in two spellings.
    event("r1", anonymousId="phone-app",
          traits={"email": "  Ana@Example.com", "phone": "(415) 555-0132", "country": "US"}),
    event("r2", userId="u10", anonymousId="web"),
    {"messageId": "r3", "type": "alias", "timestamp": "2026-10-02T10:00:00Z", "previousId": "phone-app",
     "userId": "u10"},
    event("r4", anonymousId="tablet", traits={"phone": "+1 415-555-0132"}),
]


@pytest.fixture
def mailroom_env(mailroom_env, monkeypatch):
    """These few hand-written events are all from early October: time rules (the CDP volume band
    included) look back from the day after them, as a replay of that day would."""
    monkeypatch.setenv("MAILROOM_AS_OF", "2026-10-03")
    return mailroom_env


def run_identity_resolution():
    """The daily job's assets up to the identity marts only (ingest, phone numbers, the dbt models they
    need): the rest of the daily run adds minutes and nothing these tests look at."""
    import dagster as dg
    from dagster_dbt import get_asset_key_for_model

    from dagster_project.defs.warehouse.dbt_models import mailroom_dbt_models
    from dagster_project.pipeline import load_definitions, run_pipeline

    marts = [get_asset_key_for_model([mailroom_dbt_models], model)
             for model in ("customer_identities", "identity_resolution_audit")]
    keys = dg.AssetSelection.assets(*marts).upstream().resolve(load_definitions().resolve_asset_graph())
    return run_pipeline(dg.DagsterInstance.ephemeral(), keys)


def customers_by_user(conn) -> dict[str, str]:
    return dict(conn.fetchall(
        "SELECT identifier_value, customer_id FROM marts.customer_identities WHERE identifier_type = 'user_id'"
    ))


@pytest.mark.slow
def test_merge_protection_and_audit(mailroom_env, prepared_dbt):
    write_events(mailroom_env.landing_dir, "tricky.jsonl", TRICKY_EVENTS)
    assert run_daily_pipeline().success
    with Warehouse(mailroom_env).connect() as conn:
        by_user = customers_by_user(conn)
        assert len(by_user) == 10 and len(set(by_user.values())) == 10, "every user_id is its own customer"
        assert conn.scalar(
            "SELECT count(*) FROM (SELECT customer_id FROM marts.customer_identities WHERE identifier_type = 'user_id' "
            "GROUP BY customer_id HAVING count(DISTINCT identifier_value) > 1) AS merged"
        ) == 0
        audit = {(t, v): r for t, v, r in conn.fetchall(
            "SELECT identifier_type, identifier_value, reason FROM marts.identity_resolution_audit"
        )}
        assert audit[("email", "test@test.com")] == "placeholder"
        assert audit[("anonymous_id", "00000000-0000-0000-0000-000000000000")] == "placeholder"
        assert audit[("anonymous_id", "laptop")] == "shared_by_user_ids"
        assert audit[("anonymous_id", "d6")] == "would_merge_user_ids"
        assert audit[("email", "shared@x.com")] == "would_merge_user_ids"

        ana = by_user["u10"]
        identifiers = set(conn.fetchall(
            "SELECT identifier_type, identifier_value FROM marts.customer_identities WHERE customer_id = ?", [ana]
        ))
        assert {("email", "ana@example.com"), ("phone", "+14155550132"), ("anonymous_id", "tablet"),
                ("anonymous_id", "phone-app"), ("anonymous_id", "web")} <= identifiers
        assert conn.scalar("SELECT email FROM marts.dim_customers WHERE customer_id = ?", [ana]) == "ana@example.com"


@pytest.mark.slow
def test_customer_ids_survive_full_refresh_and_unrelated_newcomers(mailroom_env, prepared_dbt):
    write_events(mailroom_env.landing_dir, "day-1.jsonl", TRICKY_EVENTS)
    assert run_identity_resolution().success
    with Warehouse(mailroom_env).connect() as conn:
        before = customers_by_user(conn)

    newcomers = [event(f"n{i}", userId=f"new-{i}", anonymousId=f"nd{i}", traits={"email": f"n{i}@x.com"})
                 for i in range(30)]
    write_events(mailroom_env.landing_dir, "day-2.jsonl", newcomers)
    assert run_identity_resolution().success
    with Warehouse(mailroom_env).connect() as conn:
        after = customers_by_user(conn)
        for schema in ("intermediate", "marts"):
            for _, table in conn.tables([schema]):
                conn.execute(f"DROP TABLE {schema}.{table} CASCADE" if mailroom_env.warehouse == "postgres"
                             else f"DROP TABLE {schema}.{table}")
    assert {user: after[user] for user in before} == before
    assert len(after) == len(before) + 30

    assert run_identity_resolution().success  # a full rebuild from raw
    with Warehouse(mailroom_env).connect() as conn:
        assert customers_by_user(conn) == after
