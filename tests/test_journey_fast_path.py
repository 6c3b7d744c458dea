"""The latency path: CDP and consent files land, the landing sensor starts journeys_fast_path, and the
first journey messages are handed to the destination without a daily run - a brand-new signup's
welcome (the marts have never seen them; an explicit opt-in arrived with them) and the reminder for a
known customer's cart, showing what is in that cart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from journey_helpers import land, segment_event

from dagster_project.defs.ingest.sensors import landing_files_sensor
from dagster_project.pipeline import load_definitions
from dagster_project.resources import WarehouseResource
from dagster_project.warehouse import Warehouse

pytestmark = pytest.mark.slow
NEW_USER = "u-fast-path-signup"


def _known_shopper(conn) -> tuple[str, str, str, str]:
    """(customer, user id, product id, product name) of an eligible customer nobody has mailed."""
    return conn.fetchall(
        "SELECT c.customer_id, i.identifier_value, p.product_id, p.product_name FROM marts.campaign_candidates AS c "
        "JOIN marts.customer_identities AS i ON i.customer_id = c.customer_id AND i.identifier_type = 'user_id' "
        "CROSS JOIN (SELECT product_id, product_name FROM staging.stg_catalog__products ORDER BY product_id LIMIT 1) "
        "AS p WHERE c.is_eligible AND NOT EXISTS (SELECT 1 FROM ops.send_ledger AS l WHERE l.customer_id = "
        "c.customer_id) ORDER BY c.customer_id LIMIT 1")[0]


def test_a_landing_file_reaches_the_outbox_without_a_daily_run(built_warehouse, monkeypatch):
    settings = built_warehouse.settings
    monkeypatch.setenv("MAILROOM_QUIET_HOURS", "off")  # the test runs at any hour of the customers' day
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    with Warehouse(settings).connect() as conn:
        customer, user_id, product_id, product_name = _known_shopper(conn)
    land(settings.landing_dir, "cdp", "fast-path.jsonl", [
        segment_event("fp-identify", now - timedelta(minutes=1), "identify", user=NEW_USER,
                      traits={"email": "nova.new@example.com", "first_name": "Nova"}),
        segment_event("fp-signup", now - timedelta(minutes=1), event="Signed Up", user=NEW_USER,
                      traits={"email": "nova.new@example.com", "first_name": "Nova"}, properties={"method": "email"}),
        # Added two hours ago: the journey's one-hour wait is over by the time the file is read.
        segment_event("fp-cart", now - timedelta(hours=2), event="Product Added", user=user_id,
                      properties={"cart_id": "cart-fast-path", "product_id": product_id, "price": 12.5,
                                  "quantity": 1}),
    ])
    land(settings.landing_dir, "consent", "fast-path.jsonl", [{
        "event_id": "cev-fast-path", "email": "nova.new@example.com", "channel": "email", "status": "opt_in",
        "jurisdiction": "EU", "lawful_basis": "consent", "source": "signup_form",
        "occurred_at": (now - timedelta(minutes=1)).isoformat() + "Z"}])

    instance = dg.DagsterInstance.ephemeral()
    context = dg.build_sensor_context(instance=instance,
                                      resources={"warehouse": WarehouseResource.from_settings(settings)})
    request = landing_files_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.job_name == "journeys_fast_path"
    assert dg.AssetKey(["journeys", "welcome", "welcome__hello"]) in request.asset_selection
    # Ingest's own check and the journeys' dbt tests; the raw tables' GX suites stay with the daily run.
    checks = {(key.asset_key.path[-1], key.name) for key in request.asset_check_keys}
    assert {("cdp_events", "landing_files_accepted"), ("journey_events", "unique_journey_events_message_id")} <= checks
    assert not any(name.startswith(("gx_", "landing_freshness")) for _, name in checks), checks
    result = load_definitions().resolve_job_def("journeys_fast_path").execute_in_process(
        instance=instance, asset_selection=request.asset_selection, raise_on_error=False)
    assert result.success
    assert not any(event.is_step_start and "daily" in (event.step_key or "") for event in result.all_events)

    with Warehouse(settings).connect() as conn:
        handed = conn.fetchall(
            "SELECT m.campaign_id, m.run_key, m.customer_id, l.state, m.html_body FROM ops.campaign_messages AS m "
            "JOIN ops.send_ledger AS l ON l.message_id = m.message_id WHERE m.run_key LIKE 'welcome.%' "
            "OR m.run_key LIKE 'cart_abandonment.%' ORDER BY m.campaign_id")
        newcomer = conn.scalar("SELECT customer_id FROM journeys.journey_events WHERE message_id = 'fp-signup'")
    assert [(c, r, who, s) for c, r, who, s, _ in handed] == [
        ("cart_reminder", "cart_abandonment.1.reminder", customer, "accepted"),
        ("welcome_hello", "welcome.1.hello", newcomer, "accepted")]
    assert product_name in handed[0][4] and "Nova" in handed[1][4]
    outbox = settings.data_dir / "outbox"
    assert [len(list((outbox / campaign).glob("*.eml"))) for campaign in ("welcome_hello", "cart_reminder")] == [1, 1]
