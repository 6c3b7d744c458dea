"""Campaigns as code: settings read from the dbt manifest, send times, the shipped batch campaign and a
trigger campaign of one's own (none ships: the cart_abandonment journey replaced it) written and
rendered end to end on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import dagster as dg
import pytest

from dagster_project.dbt_project import mailroom_dbt
from dagster_project.personalization.campaigns import CampaignError, campaigns_from_manifest
from dagster_project.personalization.send_time import send_at
from dagster_project.pipeline import load_definitions, run_batch_campaigns
from dagster_project.warehouse import Warehouse


def manifest() -> dict:
    return json.loads(mailroom_dbt.manifest_path.read_text())


def test_the_shipped_campaigns_are_read_from_the_manifest(prepared_dbt):
    campaigns = {c.campaign_id: c for c in campaigns_from_manifest(manifest())}
    journey_steps = {"welcome_hello", "welcome_picks", "welcome_offer", "cart_reminder", "cart_incentive",
                     "reengage_nudge", "reengage_last_call", "milestone_anniversary", "milestone_birthday",
                     "milestone_order"}
    # The cart_abandonment journey (cart_reminder, cart_incentive) replaced the trigger campaign of that
    # name: both at once would remind a customer twice.
    assert set(campaigns) == {"weekly_picks"} | journey_steps
    assert all(campaigns[c].campaign_type == "journey" and campaigns[c].holdout_share == 0 for c in journey_steps)
    weekly, cart = campaigns["weekly_picks"], campaigns["cart_reminder"]
    assert weekly.campaign_type == "batch" and weekly.schedule and weekly.relation == "marts.campaign_weekly_picks"
    assert cart.cooldown_days is None and cart.schedule is None and cart.products == "journey_cart"
    assert [v.variant_id for v in weekly.variants] == ["a", "b"] and weekly.holdout_share == 0.1
    assert weekly.salt != cart.salt
    assert weekly.experiment.method == "sequential" and weekly.experiment.metric == "clicked"
    assert weekly.experiment.control == weekly.experiment.default_variant == "a" and cart.experiment is None


def _node(name: str, campaign) -> dict:
    return {"resource_type": "model", "name": name, "schema": "marts", "config": {"meta": {"campaign": campaign}}}


TWO = [{"id": "a"}, {"id": "b"}]
GOOD = {"id": "x", "type": "batch", "brief": "b", "template": "picks_for_you", "variants": [{"id": "a"}]}
# A trigger campaign of one's own, as cart_abandonment was before the journey replaced it: rendered by the
# daily job for whoever its SQL selects that day, nobody twice within the cooldown.
CART_TRIGGER = {
    "id": "cart_nudge", "type": "trigger", "brief": "Remind the reader that items are still in their cart.",
    "template": "cart_reminder", "products": "abandoned_cart", "products_per_message": 3,
    "variants": [{"id": "a", "weight": 1, "angle": "helpful"}, {"id": "b", "weight": 1, "angle": "urgency"}],
    "holdout_share": 0.1, "trigger": {"event": "cart_abandoned", "cooldown_days": 7},
    "send_window": {"start_hour": 8, "end_hour": 21},
}


def test_a_trigger_campaign_is_read_with_its_cooldown_and_cart_products():
    [cart] = campaigns_from_manifest({"nodes": {"m": _node("campaign_cart_nudge", CART_TRIGGER)}})
    assert (cart.campaign_id, cart.model, cart.relation) == ("cart_nudge", "campaign_cart_nudge",
                                                             "marts.campaign_cart_nudge")
    assert cart.campaign_type == "trigger" and cart.cooldown_days == 7 and cart.schedule is None
    assert cart.product_source == ("marts.abandoned_cart_items", "item_rank") and cart.products_per_message == 3
    assert [v.variant_id for v in cart.variants] == ["a", "b"] and cart.holdout_share == 0.1
    assert cart.send_window == (8, 21) and cart.salt == "cart_nudge" and cart.experiment is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"brief": None}, "meta.campaign.brief is required"),
        ({"type": "blast"}, "meta.campaign.type must be one of batch, trigger"),
        ({"variants": [{"id": "a", "weight": -1}]}, "meta.campaign.variants is invalid"),
        ({"holdout_share": 1.5}, "meta.campaign.variants is invalid"),
        ({"products": "everything"}, "meta.campaign.products must be one of"),
        ({"send_window": {"start_hour": 20, "end_hour": 8}}, "meta.campaign.send_window needs"),
        ({"type": "trigger"}, "meta.campaign.trigger.cooldown_days is required"),
        ({"experiment": {"metric": "clicked"}}, "meta.campaign.experiment needs at least two variants"),
        ({"variants": TWO, "experiment": {"metric": "likes"}}, "meta.campaign.experiment.metric must be one of"),
        ({"variants": TWO, "experiment": {"method": "bandit", "metric": "revenue"}},
         "meta.campaign.experiment.metric must be one of delivered, opened, clicked, converted"),
        ({"variants": TWO, "experiment": {"method": "guess"}}, "meta.campaign.experiment.method must be one of"),
        ({"variants": TWO, "experiment": {"test_fraction": 1.5}}, "meta.campaign.experiment.test_fraction must be"),
        ({"variants": TWO, "experiment": {"control": "c"}}, "meta.campaign.experiment.control names variant 'c'"),
        ({"variants": TWO, "experiment": {"alpha": "often"}}, "meta.campaign.experiment.alpha must be a number"),
        ({"variants": TWO, "experiment": {"method": "bandit", "min_share": 0.6}},
         "meta.campaign.experiment.min_share must be between"),
        ({"variants": TWO, "type": "trigger", "trigger": {"cooldown_days": 1}, "experiment": {}},
         "meta.campaign.experiment.method 'sequential' rolls a winner out"),
    ],
)
def test_bad_campaign_settings_name_the_model_and_key(change, message):
    with pytest.raises(CampaignError, match="dbt model campaign_x: " + message.replace(".", r"\.")):
        campaigns_from_manifest({"nodes": {"m": _node("campaign_x", {**GOOD, **change})}})


def test_two_models_may_not_share_a_campaign_id():
    nodes = {"m1": _node("campaign_one", GOOD), "m2": _node("campaign_two", GOOD)}
    with pytest.raises(CampaignError, match="campaign_one and campaign_two both use campaign id 'x'"):
        campaigns_from_manifest({"nodes": nodes})


@pytest.mark.parametrize(
    ("reference", "tz", "hour", "window", "expected"),
    [
        (datetime(2026, 11, 1, 0, 0), "America/New_York", 9, (8, 20), datetime(2026, 11, 1, 14, 0)),  # EST, same day
        (datetime(2026, 11, 1, 16, 0), "America/New_York", 9, (8, 20), datetime(2026, 11, 2, 14, 0)),  # hour passed
        (datetime(2026, 11, 1, 0, 0), "Europe/Berlin", 3, (8, 20), datetime(2026, 11, 1, 7, 0)),  # clamped to 08:00
        (datetime(2026, 11, 1, 0, 0), "Asia/Tokyo", 23, (8, 21), datetime(2026, 11, 1, 11, 0)),  # clamped to 20:00
        (datetime(2026, 11, 1, 0, 0), None, None, (8, 20), datetime(2026, 11, 1, 8, 0)),  # UTC, window start
    ],
)
def test_send_at_is_the_best_local_hour_inside_the_window(reference, tz, hour, window, expected):
    assert send_at(reference, tz, hour, window) == expected


def campaign_metadata(runs, campaign_id: str, asset: str) -> dict:
    key = dg.AssetKey(["campaigns", campaign_id, f"{campaign_id}_{asset}"])
    return next(
        {name: value.value for name, value in event.materialization.metadata.items()}
        for run in runs for event in run.get_asset_materialization_events() if event.asset_key == key
    )


def test_the_weekly_campaign_renders_one_message_per_eligible_customer(campaigned_warehouse):
    settings, runs = campaigned_warehouse
    warehouse = Warehouse(settings)
    campaign_id, audience = "weekly_picks", "marts.campaign_weekly_picks"
    content = campaign_metadata(runs, campaign_id, "content")
    messages = campaign_metadata(runs, campaign_id, "messages")
    assert content["content_units"] > 0 and content["llm_written"] == 0 and content["review_queue_size"] == 0
    assert "**Subject:**" in content["preview"]
    with warehouse.connect() as conn:
        eligible = conn.scalar(f"select count(*) from {audience} where is_eligible")
        candidates = conn.scalar(f"select count(*) from {audience}")
        rows = conn.fetchall(
            f"select m.customer_id, m.to_email, m.html_body, m.text_body, m.headers_json, a.is_eligible, a.email "
            f"from ops.campaign_messages as m join {audience} as a on a.customer_id = m.customer_id "
            f"where m.campaign_id = ?", [campaign_id],
        )
        holdout = conn.scalar(
            "select count(*) from ops.variant_assignments where campaign_id = ? and variant_id = 'holdout'",
            [campaign_id],
        )
        segments = conn.scalar(f"select count(distinct segment_key) from {audience} where is_eligible")
        suppressed = dict(conn.fetchall(
            "select reason, count(*) from ops.campaign_suppressions where campaign_id = ? group by reason",
            [campaign_id]))
    # Everyone is accounted for: a message, the holdout, a suppression with its reason, or (the roll-out
    # experiment) the remainder waiting for the winner.
    assert messages["messages_rendered"] + messages["holdout_size"] + messages["suppressed"] \
        + messages["remainder_awaiting_winner"] == candidates
    assert messages["remainder_awaiting_winner"] > 0
    assert sum(suppressed.values()) == messages["suppressed"]  # each one recorded with its reason
    assert "opted_out" in suppressed
    assert messages["audience_size"] == eligible and messages["holdout_size"] == holdout > 0  # 10% holdout
    assert len(rows) == messages["messages_rendered"] == len({r[0] for r in rows}) > 0
    # Content grows with segments x variants, not with customers.
    assert content["content_units"] == segments * 2
    # Every rendered message went to the outbox (the embedded destination), once.
    sends = campaign_metadata(runs, campaign_id, "sends")
    outbox = list((settings.data_dir / "outbox" / campaign_id).glob("*.eml"))
    assert sends["handed_over"] == messages["messages_rendered"] == len(outbox)
    for _, to_email, html, text, headers, is_eligible, email in rows:
        assert is_eligible and to_email == email
        assert "unsubscribe?token=" in html and "unsubscribe?token=" in text
        assert "100 Example Street" in html and "100 Example Street" in text
        assert "{{" not in html and "{%" not in html
        assert json.loads(headers)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_trigger_campaign_shows_what_was_left_in_the_cart_and_keeps_its_cooldown(campaigned_warehouse):
    """No trigger campaign ships, but one of one's own still works: marts.abandoned_cart_items is its
    product block. Its audience is what the retired cart_abandonment model selected (open carts)."""
    from datetime import timedelta

    from markupsafe import escape

    from dagster_project.defs.personalization.resource import PersonalizationResource
    from dagster_project.personalization.content_step import write_campaign_content
    from dagster_project.personalization.messages_step import render_campaign_messages
    from dagster_project.settings import load_personalization_settings

    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    [cart] = campaigns_from_manifest({"nodes": {"m": _node("campaign_cart_nudge", CART_TRIGGER)}})
    with warehouse.connect() as conn:
        conn.execute(
            "create table marts.campaign_cart_nudge as select * from marts.campaign_candidates as c "
            "where c.cart_abandoned_at is not null "
            "and exists (select 1 from marts.abandoned_cart_items as i where i.customer_id = c.customer_id)")
        candidates = conn.scalar("select count(*) from marts.campaign_cart_nudge")
        segments = conn.scalar("select count(distinct segment_key) from marts.campaign_cart_nudge where is_eligible")
    personalization = PersonalizationResource.from_settings(load_personalization_settings(), settings.data_dir, "US")
    now = settings.reference_time()
    content = write_campaign_content(warehouse, cart, personalization.chain(warehouse, now),
                                     personalization.cache_identity(), personalization.brand().voice, now)
    assert len(content.units) == segments * 2 and {u.written.writer for u in content.units} == {"rules"}
    report = render_campaign_messages(warehouse, cart, personalization.renderer(), now)
    assert report.rendered + report.holdout + sum(report.suppressed.values()) == candidates
    assert report.rendered > 0 and report.awaiting_winner == 0  # no experiment: no remainder
    with warehouse.connect() as conn:
        rows = conn.fetchall(
            "select m.customer_id, m.html_body, m.text_body, i.product_name, i.product_url "
            "from ops.campaign_messages as m "
            "join marts.abandoned_cart_items as i on i.customer_id = m.customer_id and i.item_rank = 1 "
            "where m.campaign_id = 'cart_nudge'")
    assert len(rows) == report.rendered
    for _, html, text, left, url in rows:  # the cart reminder shows what was left in the cart, with its link
        assert str(escape(left)) in html and left in text
        assert f'<a href="{url}"' in html and url in text

    # The next day the same carts are still open: within the 7-day cooldown nobody gets it again.
    again = render_campaign_messages(warehouse, cart, personalization.renderer(), now + timedelta(days=1))
    assert again.rendered == 0 and again.suppressed["cooldown"] == report.rendered


@pytest.mark.slow
def test_rerunning_a_campaign_sends_nothing_new_and_keeps_assignments(campaigned_warehouse):
    settings = campaigned_warehouse.settings
    with Warehouse(settings).connect() as conn:
        before = conn.fetchall("select campaign_id, customer_id, variant_id from ops.variant_assignments order by 1, 2")
        messages = conn.fetchall("select message_id, html_body from ops.campaign_messages order by 1")
    # Each batch campaign's job again (it rebuilds its own audience from the marts, as its schedule would).
    runs = run_batch_campaigns(dg.DagsterInstance.ephemeral())
    assert runs and all(run.success for run in runs)
    assert campaign_metadata(runs, "weekly_picks", "content")["written_this_run"] == 0  # cached: costs nothing
    assert campaign_metadata(runs, "weekly_picks", "messages")["messages_rendered"] == 0
    assert campaign_metadata(runs, "weekly_picks", "sends")["handed_over"] == 0
    assert len(list((settings.data_dir / "outbox").rglob("*.eml"))) == len(messages)
    with Warehouse(settings).connect() as conn:
        assert conn.fetchall("select campaign_id, customer_id, variant_id from ops.variant_assignments "
                             "order by 1, 2") == before
        assert conn.fetchall("select message_id, html_body from ops.campaign_messages order by 1") == messages


def test_campaigns_appear_in_the_lineage_below_their_audience(prepared_dbt):
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    content = dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_content"])
    messages = dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_messages"])
    assert dg.AssetKey(["marts", "campaign_weekly_picks"]) in graph.get(content).parent_keys
    assert {content, dg.AssetKey(["marts", "campaign_weekly_picks"]),
            dg.AssetKey(["marts", "product_recommendations"])} <= graph.get(messages).parent_keys
    # A journey campaign's messages are rendered by the journey step that sends it.
    cart_content = dg.AssetKey(["campaigns", "cart_reminder", "cart_reminder_content"])
    reminder = dg.AssetKey(["journeys", "cart_abandonment", "cart_abandonment__reminder"])
    assert dg.AssetKey(["marts", "campaign_cart_reminder"]) in graph.get(cart_content).parent_keys
    assert cart_content in graph.get(reminder).parent_keys
    assert reminder in graph.get(dg.AssetKey(["campaigns", "cart_reminder", "cart_reminder_sends"])).parent_keys
    assert not graph.has(dg.AssetKey(["campaigns", "cart_reminder", "cart_reminder_messages"]))
    daily = defs.resolve_job_def("daily_campaign_pipeline").asset_layer.executable_asset_keys
    assert messages not in daily and content not in daily  # batch campaigns run on their own jobs
    # The retired trigger campaign is gone, from the daily job too: nobody gets two cart reminders.
    assert not any(key.path[:2] == ["campaigns", "cart_abandonment"] for key in graph.get_all_asset_keys())
    assert not any(key.path[:2] == ["campaigns", "cart_abandonment"] for key in daily)


def test_a_trigger_campaign_of_ones_own_runs_in_the_daily_job(prepared_dbt, monkeypatch):
    from dagster_project.defs.personalization import campaign_assets

    shipped = campaign_assets.campaigns_from_manifest
    # Its audience model is borrowed: campaign_candidates has every column a campaign selects.
    [cart] = shipped({"nodes": {"m": _node("campaign_candidates", CART_TRIGGER)}})
    monkeypatch.setattr(campaign_assets, "campaigns_from_manifest", lambda manifest: [*shipped(manifest), cart])
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    content, messages, sends = (dg.AssetKey(["campaigns", "cart_nudge", f"cart_nudge_{step}"])
                                for step in ("content", "messages", "sends"))
    assert {content, dg.AssetKey(["marts", "campaign_candidates"]),
            dg.AssetKey(["marts", "abandoned_cart_items"])} <= graph.get(messages).parent_keys
    assert messages in graph.get(sends).parent_keys
    daily = defs.resolve_job_def("daily_campaign_pipeline").asset_layer.executable_asset_keys
    assert {content, messages, sends} <= daily  # triggers run daily
    assert dg.AssetKey(["campaigns", "weekly_picks", "weekly_picks_messages"]) not in daily
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"weekly_picks_campaign"}
    assert "cart_nudge_campaign" not in {job.name for job in defs.resolve_all_job_defs()}  # no job of its own


def test_assignments_stay_sticky_until_the_variant_disappears(campaigned_warehouse):
    from dataclasses import replace

    from dagster_project.defs.personalization.campaign_assets import load_campaigns
    from dagster_project.defs.personalization.resource import PersonalizationResource
    from dagster_project.personalization.campaigns import VariantSpec
    from dagster_project.personalization.messages_step import render_campaign_messages
    from dagster_project.settings import load_personalization_settings

    settings = campaigned_warehouse.settings
    warehouse = Warehouse(settings)
    with warehouse.connect() as conn:
        before = dict(conn.fetchall(
            "select customer_id, variant_id from ops.variant_assignments where campaign_id = 'weekly_picks'"))
    weekly = next(c for c in load_campaigns() if c.campaign_id == "weekly_picks")
    renderer = PersonalizationResource.from_settings(
        load_personalization_settings(), settings.data_dir, "US").renderer()
    # Variant b is retired: its customers are drawn again, everybody else keeps their variant.
    only_a = replace(weekly, variants=(VariantSpec("a", 1.0, "benefit-led"),))
    report = render_campaign_messages(warehouse, only_a, renderer, settings.reference_time())
    with warehouse.connect() as conn:
        after = dict(conn.fetchall(
            "select customer_id, variant_id from ops.variant_assignments where campaign_id = 'weekly_picks'"))
    assert set(after) == set(before)
    assert report.new_assignments == sum(1 for v in before.values() if v == "b") > 0
    assert all(after[c] == v for c, v in before.items() if v != "b")
    assert set(after.values()) <= {"a", "holdout"}
