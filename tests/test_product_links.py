"""Product links end to end: the catalog's url column travels through ingest (raw.products), dbt
(stg_catalog__products -> product_recommendations, abandoned_cart_items) and rendering into every
campaign email, where each product and the button are links to the shop. (A trigger campaign's
abandoned-cart block: tests/test_campaigns.py.)"""

from __future__ import annotations

import re

import pytest

from dagster_project.defs.personalization.campaign_assets import load_campaigns
from dagster_project.warehouse import Warehouse

PRODUCT_PAGE = re.compile(r"https://shop\.example\.com/p/(prd_\d{5})")


@pytest.mark.parametrize("warehouse_kind", ["duckdb"], indirect=True)
def test_every_campaign_email_links_its_products_and_button_to_the_shop(campaigned_warehouse):
    campaigns = {campaign.campaign_id: campaign for campaign in load_campaigns()}
    with Warehouse(campaigned_warehouse.settings).connect() as conn:
        assert conn.scalar("SELECT count(*) FROM marts.product_recommendations WHERE product_url IS NULL") == 0
        messages = conn.fetchall("SELECT campaign_id, customer_id, html_body, text_body FROM ops.campaign_messages")
        # The weekly newsletter, and whatever the journeys sent in the daily run (re-engagement, milestones).
        sent = {campaign_id for campaign_id, *_ in messages}
        assert "weekly_picks" in sent
        assert all(campaigns[c].campaign_type == "journey" for c in sent - {"weekly_picks"}), sent
        shown = {}
        for campaign_id in sent:
            relation, rank = campaigns[campaign_id].product_source
            for customer_id, product_id, url in conn.fetchall(
                    f"SELECT customer_id, product_id, product_url FROM {relation} WHERE {rank} <= ? "
                    f"ORDER BY customer_id, {rank}", [campaigns[campaign_id].products_per_message]):
                shown.setdefault((campaign_id, customer_id), []).append((product_id, url))
    for campaign_id, customer_id, html, text in messages:
        products = shown[(campaign_id, customer_id)]
        links = re.findall(r'<a href="([^"]+)"', html)
        product_links = [link for link in links if PRODUCT_PAGE.fullmatch(link)]
        # Each product once, in order, then the button to the first product.
        assert product_links == [url for _, url in products] + [products[0][1]], (campaign_id, customer_id)
        assert [PRODUCT_PAGE.fullmatch(link).group(1) for link in product_links[:-1]] == [p for p, _ in products]
        assert all(url in text for _, url in products)
        headings = [h.lower() for h in re.findall(r"<h[12][^>]*>(.*?)</h[12]>", html)]
        assert len(headings) == len(set(headings)), headings
