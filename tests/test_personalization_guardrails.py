"""Brand guardrails on content units, the brand file loader, and the offline rules writer."""

import dataclasses
import itertools
import re
from pathlib import Path

import pytest

from dagster_project.personalization.content import ContentUnit, SegmentBrief
from dagster_project.personalization.guardrails import (
    Brand,
    BrandError,
    check_content,
    humanize_category,
    load_brand,
)
from dagster_project.personalization.pii import PiiDetector
from dagster_project.personalization.rules_writer import PROMPT_VERSION, write_rules

BRAND_FILE = Path(__file__).resolve().parents[1] / "content" / "brand.yml"

GOOD = ContentUnit(
    subject="New apparel picks for your weekend",
    preheader="Fresh arrivals chosen from what you love",
    headline="Your weekend edit is here",
    body_paragraphs=[
        "We gathered new apparel that fits the way you shop: easy layers, soft fabrics and colours that mix.",
        "Every piece ships in two days, and returns are simple if something is not quite right.",
    ],
    call_to_action="See your picks",
)


@pytest.fixture(scope="module")
def brand() -> Brand:
    return load_brand(BRAND_FILE)


def brief(campaign_type="batch", lifecycle="active", categories=("apparel",), angle="benefit-led") -> SegmentBrief:
    return SegmentBrief(
        campaign_id="fall_newsletter", campaign_type=campaign_type, brief="Show the new season's picks.",
        segment_key=f"{lifecycle}:{categories[0] if categories else 'general'}", lifecycle_segment=lifecycle,
        top_categories=tuple(categories), variant_id="A", variant_angle=angle, brand_voice="friendly",
    )


def with_(**changes) -> ContentUnit:
    return GOOD.model_copy(update=changes)


# --- the brand file


def test_the_shipped_brand_file_loads_with_its_limits(brand):
    assert brand.company_name == "Mailroom Demo Shop"
    assert "Springfield" in brand.postal_address
    assert "act now" in brand.spam_triggers and "RE:" in brand.deceptive_prefixes
    assert len(brand.banned_phrases) >= 8 and len(brand.spam_triggers) >= 12
    assert (brand.subject_max_length, brand.preheader_max_length, brand.quality_threshold) == (60, 110, 0.7)


def test_a_missing_brand_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere" / "brand.yml"
    with pytest.raises(BrandError, match=f"{re.escape(str(path))}.*not found"):
        load_brand(path)


def brand_file(tmp_path: Path, **changes) -> Path:
    text = BRAND_FILE.read_text(encoding="utf-8")
    for key, line in changes.items():
        text = "\n".join(line if row.startswith(f"{key}:") else row for row in text.splitlines())
    path = tmp_path / "brand.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unknown_key_names_the_file_and_the_key(tmp_path):
    path = brand_file(tmp_path, subject_max_length="subject_max_lenght: 60")
    with pytest.raises(BrandError, match=f"{re.escape(str(path))}.*subject_max_lenght.*spelling"):
        load_brand(path)


def test_a_missing_required_key_names_the_file_and_the_key(tmp_path):
    path = brand_file(tmp_path, postal_address="")
    with pytest.raises(BrandError, match=f"{re.escape(str(path))}.*missing.*postal_address"):
        load_brand(path)


@pytest.mark.parametrize(
    "key, line",
    [
        ("subject_max_length", "subject_max_length: sixty"),
        ("quality_threshold", "quality_threshold: 7"),
        ("cta_required", "cta_required: maybe"),
        ("deceptive_prefixes", "deceptive_prefixes: RE"),
    ],
)
def test_a_bad_value_names_the_file_and_the_key(tmp_path, key, line):
    path = brand_file(tmp_path, **{key: line})
    with pytest.raises(BrandError, match=f"{re.escape(str(path))}: {key} must be"):
        load_brand(path)


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "brand.yml"
    path.write_text("company_name: [unclosed\n", encoding="utf-8")
    with pytest.raises(BrandError, match=f"{re.escape(str(path))} is not valid YAML"):
        load_brand(path)


# --- guardrails


def test_a_good_unit_passes_with_a_high_score(brand):
    report = check_content(GOOD, brand, brief())
    assert report.violations == []
    assert report.quality_score >= 0.85
    assert report.passed


@pytest.mark.parametrize(
    "changes, violation",
    [
        ({"body_paragraphs": [*GOOD.body_paragraphs, "It's the cheapest it will ever be."]}, "banned_phrase:cheapest"),
        ({"headline": "Dear valued customer, your edit is here"}, "banned_phrase:dear valued customer"),
        ({"call_to_action": "Act NOW"}, "spam_trigger:act now"),
        ({"preheader": "Completely risk free returns"}, "spam_trigger:risk-free"),
        ({"subject": "Picks for you, 100% Free to try"}, "spam_trigger:100% free"),
        ({"subject": "New apparel picks for your weekend, chosen from everything you loved"}, "subject_length"),
        ({"preheader": "Fresh arrivals " * 8}, "preheader_length"),
        ({"subject": "RE: your weekend apparel picks"}, "deceptive_prefix"),
        ({"subject": "re : your weekend apparel picks"}, "deceptive_prefix"),
        ({"subject": "Fwd: your weekend apparel picks"}, "deceptive_prefix"),
        ({"subject": "New apparel picks, HUGE savings"}, "all_caps"),
        ({"headline": "Your weekend edit is HERE"}, "all_caps"),
        ({"subject": "NeW ApPaReL PiCkS FoR YoU"}, "all_caps"),
        ({"call_to_action": "   "}, "missing_call_to_action"),
        ({"subject": "New apparel picks for you!", "headline": "Your weekend edit is here!"},
         "too_many_exclamation_marks"),
    ],
)
def test_each_violation_is_caught(brand, changes, violation):
    report = check_content(with_(**changes), brand, brief())
    assert report.violations == [violation]
    assert not report.passed
    assert report.quality_score < check_content(GOOD, brand, brief()).quality_score


def test_lookalikes_are_not_violations(brand):
    unit = with_(
        subject="VIP picks for your weekend in the USA",  # acronyms are not shouting
        headline="Fresh winners' circle? No: refresh your wardrobe!",  # one "!" is allowed; "winners" is not "winner"
        body_paragraphs=[*GOOD.body_paragraphs, "Our reader's favourite: the freedom jacket, now in apparel."],
    )
    report = check_content(unit, brand, brief())
    assert report.violations == []
    assert check_content(with_(subject="Recent apparel picks: your weekend"), brand).violations == []


def test_a_cta_may_be_blank_when_the_brand_does_not_require_one(brand):
    relaxed = dataclasses.replace(brand, cta_required=False)
    assert check_content(with_(call_to_action=" "), relaxed).violations == []


def test_quality_orders_good_above_mediocre(brand):
    mediocre = with_(body_paragraphs=["New things just landed. Take a look."], subject="Something new for your weekend")
    good_score = check_content(GOOD, brand, brief()).quality_score
    mediocre_report = check_content(mediocre, brand, brief())
    assert mediocre_report.violations == []
    assert mediocre_report.quality_score < 0.7 < good_score
    assert not mediocre_report.passed


@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "Apparel picks"},  # too short to say anything
        {"headline": "new apparel picks for your weekend"},  # repeats the subject
        {"body_paragraphs": [*GOOD.body_paragraphs, GOOD.body_paragraphs[0]]},  # repeats a sentence
        {"body_paragraphs": ["Soft apparel layers that mix. " * 35]},  # a wall of text
    ],
)
def test_each_quality_flaw_lowers_the_score(brand, changes):
    flawed = check_content(with_(**changes), brand, brief())
    assert flawed.violations == []
    assert flawed.quality_score < check_content(GOOD, brand, brief()).quality_score


def test_not_mentioning_the_segment_category_lowers_the_score(brand):
    assert check_content(GOOD, brand, brief(categories=("shoes",))).quality_score < 1.0
    assert check_content(GOOD, brand, brief(categories=("shoes", "apparel"))).quality_score == 1.0
    assert check_content(GOOD, brand, brief(categories=())).quality_score == 1.0
    assert check_content(GOOD, brand, None).quality_score == 1.0


def test_a_higher_threshold_fails_a_unit_that_passes_the_default(brand):
    mediocre = with_(body_paragraphs=["New apparel just landed. Take a look at the weekend edit."])
    assert check_content(mediocre, brand, brief()).passed
    strict = dataclasses.replace(brand, quality_threshold=0.9)
    assert not check_content(mediocre, strict, brief()).passed


def test_categories_are_humanized():
    assert humanize_category("home_garden") == "home & garden"
    assert humanize_category("outdoor_camping_hiking") == "outdoor, camping & hiking"
    assert humanize_category("apparel") == "apparel"


# --- rules writer

CAMPAIGN_TYPES = ("batch", "trigger", "journey")
LIFECYCLES = ("new", "active", "at_risk", "lapsed", "vip")
ANGLES = ("benefit-led", "urgency", "social proof")
CATEGORY_CHOICES = ((), ("home_garden", "apparel"), ("general",))


@pytest.mark.parametrize("campaign_type, lifecycle, angle, categories",
                         list(itertools.product(CAMPAIGN_TYPES, LIFECYCLES, ANGLES, CATEGORY_CHOICES)))
def test_rules_content_passes_the_shipped_brand_for_every_combination(brand, campaign_type, lifecycle, angle,
                                                                      categories):
    segment = brief(campaign_type, lifecycle, categories, angle)
    unit = write_rules(segment, brand)
    report = check_content(unit, brand, segment)
    assert report.violations == [] and report.quality_score >= 0.85, (unit, report)
    texts = [unit.subject, unit.preheader, unit.headline, *unit.body_paragraphs, unit.call_to_action]
    assert not any("{" in text or "}" in text for text in texts)  # no Jinja, no unfilled placeholder
    assert not any(PiiDetector().contains_pii(text) for text in texts)
    if categories and categories != ("general",):
        assert "home & garden" in " ".join(texts)
    assert "general" not in " ".join(texts)


JOURNEY_CAMPAIGNS = ("welcome_hello", "welcome_picks", "welcome_offer", "cart_reminder", "cart_incentive",
                     "reengage_nudge", "reengage_last_call", "milestone_anniversary", "milestone_birthday",
                     "milestone_order", "some_new_journey_step")


@pytest.mark.parametrize("campaign_id, angle, categories",
                         list(itertools.product(JOURNEY_CAMPAIGNS, ANGLES, CATEGORY_CHOICES)))
def test_rules_content_for_every_journey_campaign_passes_the_shipped_brand(brand, campaign_id, angle, categories):
    segment = dataclasses.replace(brief("journey", "new", categories, angle), campaign_id=campaign_id)
    unit = write_rules(segment, brand)
    report = check_content(unit, brand, segment)
    assert report.violations == [] and report.quality_score >= 0.85, (unit, report)
    texts = [unit.subject, unit.preheader, unit.headline, *unit.body_paragraphs, unit.call_to_action]
    assert not any("{" in text or "}" in text for text in texts)
    if categories and categories != ("general",):
        assert "home & garden" in " ".join(texts)
    assert "general" not in " ".join(texts)


def test_each_journey_message_has_its_own_subject_and_headline(brand):
    units = [write_rules(dataclasses.replace(brief("journey"), campaign_id=campaign_id), brand)
             for campaign_id in JOURNEY_CAMPAIGNS]
    assert len({unit.subject for unit in units}) == len({unit.headline for unit in units}) == len(JOURNEY_CAMPAIGNS)
    assert "birthday" in units[JOURNEY_CAMPAIGNS.index("milestone_birthday")].subject.lower()
    assert "cart" in units[JOURNEY_CAMPAIGNS.index("cart_reminder")].subject


def test_rules_content_is_deterministic(brand):
    assert write_rules(brief(), brand) == write_rules(brief(), brand)
    assert PROMPT_VERSION == "rules@v1"


def test_rules_content_differs_by_angle_campaign_type_and_lifecycle(brand):
    by_angle = {angle: write_rules(brief(angle=angle), brand) for angle in ANGLES}
    assert len({unit.subject for unit in by_angle.values()}) == len(ANGLES)
    assert len({unit.call_to_action for unit in by_angle.values()}) == len(ANGLES)
    assert write_rules(brief("trigger"), brand).subject != write_rules(brief("batch"), brand).subject
    assert "cart" in write_rules(brief("trigger"), brand).subject
    headlines = {write_rules(brief(lifecycle=lifecycle), brand).headline for lifecycle in LIFECYCLES}
    assert len(headlines) == len(LIFECYCLES)
    assert "miss you" in write_rules(brief(lifecycle="at_risk"), brand).headline
    assert "VIP" in write_rules(brief(lifecycle="vip"), brand).headline


def test_rules_content_signs_with_the_brand_and_reads_angle_spellings_alike(brand):
    renamed = dataclasses.replace(brand, company_name="Northwind Goods")
    assert "Northwind Goods" in write_rules(brief(), renamed).body_paragraphs[-1]
    assert write_rules(brief(angle="Benefit_Led"), brand) == write_rules(brief(angle="benefit-led"), brand)


def test_a_very_long_category_stays_out_of_the_subject(brand):
    segment = brief(categories=("outdoor_camping_hiking_climbing_and_water_sports",), angle="urgency")
    unit = write_rules(segment, brand)
    assert check_content(unit, brand, segment).passed
    assert "climbing" not in unit.subject and "climbing" in unit.body_paragraphs[0]


def test_an_unknown_campaign_type_is_refused_with_the_fix(brand):
    with pytest.raises(ValueError, match="'fall_newsletter'.*'weekly'.*batch, trigger"):
        write_rules(brief(campaign_type="weekly"), brand)
