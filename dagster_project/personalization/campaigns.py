"""Campaigns as code: read each campaign's settings from its dbt model's `meta.campaign` in the
manifest. A bad setting fails with the model's name, the key and the fix, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass

from dagster_project.experiments.spec import ExperimentSpec, parse_experiment
from dagster_project.personalization.variants import Variant, validate_variants
from dagster_project.predictive.audience import PropensityFilter, parse_audience
from dagster_project.predictive.spec import SendTimeSpec, parse_send_time

CAMPAIGN_TYPES = ("batch", "trigger", "journey")  # journey: sent only by a journey's send step
PRODUCT_SOURCES = {
    # meta.campaign.products -> the mart holding one row per customer and product, best first
    "recommendations": ("marts.product_recommendations", "recommendation_rank"),
    "abandoned_cart": ("marts.abandoned_cart_items", "item_rank"),
    # the customer's latest open cart from the events the journeys' fast path has seen (minutes old)
    "journey_cart": ("journeys.journey_cart_items", "item_rank"),
}
AUDIENCE_COLUMNS = (
    "customer_id", "email", "first_name", "timezone", "segment_key", "segment_name", "lifecycle_segment",
    "top_category", "preferred_categories", "best_send_hour", "is_eligible", "ineligible_reason",
)


class CampaignError(ValueError):
    """A campaign's meta cannot be used; the message names the model and the key."""


@dataclass(frozen=True)
class VariantSpec:
    variant_id: str
    weight: float
    angle: str


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    model: str  # dbt model name
    relation: str  # schema.table the audience is read from
    campaign_type: str
    brief: str
    template: str
    products: str | None
    products_per_message: int
    variants: tuple[VariantSpec, ...]
    holdout_share: float
    salt: str
    schedule: str | None
    cooldown_days: int | None  # nobody gets this campaign twice within this many days
    send_window: tuple[int, int]
    experiment: ExperimentSpec | None = None
    send_time: SendTimeSpec = SendTimeSpec("best_hour", fixed_hour=10)  # today's behaviour (10: 8-20's default)
    audience: PropensityFilter | None = None  # leave out customers unlikely to respond (meta.campaign.audience)

    @property
    def weighted_variants(self) -> list[Variant]:
        return [Variant(v.variant_id, v.weight) for v in self.variants]

    @property
    def product_source(self) -> tuple[str, str] | None:
        return PRODUCT_SOURCES[self.products] if self.products else None


def campaigns_from_manifest(manifest: dict) -> list[Campaign]:
    """Every model under models/campaigns/ with meta.campaign, sorted by campaign id."""
    campaigns = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        meta = (node.get("config") or {}).get("meta") or node.get("meta") or {}
        if "campaign" in meta:
            campaigns.append(_campaign(node, meta["campaign"]))
    seen: dict[str, str] = {}
    for campaign in campaigns:
        if campaign.campaign_id in seen:
            raise CampaignError(
                f"models {seen[campaign.campaign_id]} and {campaign.model} both use campaign id "
                f"{campaign.campaign_id!r}; campaign ids must be unique"
            )
        seen[campaign.campaign_id] = campaign.model
    return sorted(campaigns, key=lambda c: c.campaign_id)


def _campaign(node: dict, spec: dict) -> Campaign:
    model = node["name"]

    def fail(key: str, problem: str) -> CampaignError:
        return CampaignError(f"dbt model {model}: meta.campaign.{key} {problem} "
                             "(see dbt/models/campaigns/_campaigns.yml)")

    if not isinstance(spec, dict):
        raise fail("", "must be a mapping of settings")
    for key in ("id", "type", "brief", "template", "variants"):
        if not spec.get(key):
            raise fail(key, "is required")
    if spec["type"] not in CAMPAIGN_TYPES:
        raise fail("type", f"must be one of {', '.join(CAMPAIGN_TYPES)}, not {spec['type']!r}")
    products = spec.get("products")
    if products is not None and products not in PRODUCT_SOURCES:
        raise fail("products", f"must be one of {', '.join(PRODUCT_SOURCES)}, not {products!r}")
    try:
        variants = tuple(
            VariantSpec(str(v["id"]), float(v.get("weight", 1)), str(v.get("angle", "")))
            for v in spec["variants"]
        )
        holdout_share = float(spec.get("holdout_share", 0))
        validate_variants([Variant(v.variant_id, v.weight) for v in variants], holdout_share)
    except (KeyError, TypeError, ValueError) as error:
        raise fail("variants", f"is invalid: {error}") from None
    window = spec.get("send_window") or {}
    start, end = int(window.get("start_hour", 0)), int(window.get("end_hour", 24))
    if not 0 <= start < end <= 24:
        raise fail("send_window", "needs 0 <= start_hour < end_hour <= 24")
    trigger = spec.get("trigger") or {}
    if spec["type"] == "trigger" and "cooldown_days" not in trigger:
        raise fail("trigger.cooldown_days", "is required for a trigger campaign")
    if spec["type"] == "journey" and (spec.get("schedule") or spec.get("trigger") or spec.get("cooldown_days")):
        raise fail("type", "journey campaigns are sent by their journey's steps only: drop schedule, trigger and "
                           "cooldown_days (the journey's reentry rule decides who gets it again)")
    cooldown = trigger.get("cooldown_days", spec.get("cooldown_days"))
    return Campaign(
        campaign_id=str(spec["id"]),
        model=model,
        relation=f"{node.get('schema')}.{node.get('alias') or model}",
        campaign_type=spec["type"],
        brief=" ".join(str(spec["brief"]).split()),
        template=str(spec["template"]),
        products=products,
        products_per_message=int(spec.get("products_per_message", 3)),
        variants=variants,
        holdout_share=holdout_share,
        salt=str(spec.get("salt") or spec["id"]),
        schedule=spec.get("schedule"),
        cooldown_days=int(cooldown) if cooldown is not None else None,
        send_window=(start, end),
        experiment=parse_experiment(spec.get("experiment"), [v.variant_id for v in variants], spec["type"], fail),
        send_time=parse_send_time(spec.get("send_time"), spec["type"], (start, end), fail),
        audience=parse_audience(spec.get("audience"), spec["type"], fail),
    )
