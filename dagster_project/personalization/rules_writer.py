"""The offline writer: content from fixed templates, used when no LLM is configured or every LLM failed.

It sees only the segment brief (never a customer), its output is the same for the same brief, and
every combination it can produce passes the guardrails of the shipped brand file (tested
exhaustively), so a campaign always has something safe to send.
"""

from __future__ import annotations

from dagster_project.personalization.content import ContentUnit, SegmentBrief
from dagster_project.personalization.guardrails import Brand, humanize_category, specific_categories

PROMPT_VERSION = "rules@v1"

CAMPAIGN_TYPES = ("batch", "trigger")

# Per lifecycle segment: (headline, opening paragraph) for each campaign type. {cat} is " in <category>"
# or empty. Unknown segments read as "active".
_BATCH_TONE = {
    "new": ("Welcome, here's where to start",
            "Thanks for joining us. To help you get started, we've gathered a few favourites{cat}."),
    "active": ("Picked for you this week",
               "Here's this week's edit{cat}, chosen from what's new and what people with your taste keep "
               "coming back to."),
    "vip": ("Early access for our VIP customers",
            "As one of our most valued customers, you get a first look at this week's edit{cat} before "
            "anyone else."),
    "at_risk": ("We miss you, so we saved you a few things",
                "It's been a little while, so we set aside a few things we think you'll like{cat}."),
    "lapsed": ("It's been a while, here's what you missed",
               "We haven't seen you in a while and a lot has changed. Here's a fresh selection{cat} to "
               "catch up on."),
}
_TRIGGER_TONE = {
    "new": ("Your first order is one step away",
            "You found something you liked on your first visit, and we've kept it in your cart so you can "
            "pick up where you left off."),
    "active": ("Still thinking it over?",
               "You left a few things in your cart. We've saved them, so you can pick up right where you "
               "left off."),
    "vip": ("We've held your cart for you",
            "As one of our most valued customers, we've held the items in your cart so they're ready "
            "whenever you are."),
    "at_risk": ("We miss you, and we kept your cart",
                "The items you left in your cart are still saved, ready for whenever you come back."),
    "lapsed": ("Welcome back, your cart is waiting",
               "It's been a while since your last visit, and your cart is still saved with the items you "
               "chose."),
}
_PREHEADERS = {
    "batch": {"new": "A warm welcome and a few favourites to start with",
              "active": "Fresh finds, chosen for you",
              "vip": "Your early look, before everyone else",
              "at_risk": "A few things we saved for you",
              "lapsed": "Catch up on what's new since your last visit"},
    "trigger": {"new": "We saved your cart so you can finish your first order",
                "active": "Your cart is saved and waiting",
                "vip": "Your cart is on hold for you",
                "at_risk": "We saved your cart, no rush",
                "lapsed": "Your cart is right where you left it"},
}

# Per angle and campaign type: (subject with {Cat} = capitalized category, subject without one,
# second paragraph, call to action). Angles other than benefit-led and urgency read as neutral.
_ANGLES = {
    "batch": {
        "benefit": ("{Cat} picks that make everyday easier", "Picks that make everyday easier",
                    "Every pick is chosen for quality and everyday use, with easy returns so you can try "
                    "things at home without worry.",
                    "Explore your picks"),
        "urgency": ("Your {cat} picks won't stay in stock long", "This week's picks won't stay in stock long",
                    "Popular pieces sell out quickly, so if something catches your eye, it's worth a look "
                    "soon.",
                    "Shop before they're gone"),
        "neutral": ("Fresh {cat} picks, chosen for you", "Fresh picks, chosen for you",
                    "Take your time to browse. We keep adding new finds as they arrive.",
                    "Browse the edit"),
    },
    "trigger": {
        "benefit": ("Your cart is saved and ready when you are", "Your cart is saved and ready when you are",
                    "Checkout takes about a minute, and returns are easy if something isn't quite right.",
                    "Return to your cart"),
        "urgency": ("Items in your cart are selling fast", "Items in your cart are selling fast",
                    "Popular items sell out quickly, and we can only hold your cart for a short while.",
                    "Complete your order"),
        "neutral": ("You left something in your cart", "You left something in your cart",
                    "Whenever you're ready, your cart is one step away.",
                    "View your cart"),
    },
}
_ANGLE_ALIASES = {"benefit-led": "benefit", "benefit": "benefit", "urgency": "urgency", "urgent": "urgency"}


def write_rules(brief: SegmentBrief, brand: Brand) -> ContentUnit:
    campaign_type = brief.campaign_type.strip().lower()
    if campaign_type not in CAMPAIGN_TYPES:
        raise ValueError(
            f"campaign {brief.campaign_id!r} has campaign_type {brief.campaign_type!r}; "
            f"the rules writer has templates for {', '.join(CAMPAIGN_TYPES)}: fix the campaign's type"
        )
    lifecycle = brief.lifecycle_segment.strip().lower()
    if lifecycle not in _BATCH_TONE:
        lifecycle = "active"
    angle = _ANGLE_ALIASES.get(brief.variant_angle.strip().lower().replace("_", "-").replace(" ", "-"), "neutral")
    categories = specific_categories(brief)
    category = humanize_category(categories[0]) if categories else ""

    headline, opener = (_BATCH_TONE if campaign_type == "batch" else _TRIGGER_TONE)[lifecycle]
    subject_with, subject_without, angle_paragraph, call_to_action = _ANGLES[campaign_type][angle]
    subject = subject_without
    if category:
        subject = subject_with.format(cat=category, Cat=category[:1].upper() + category[1:])
    if len(subject) > brand.subject_max_length:  # a very long category name: keep it for the body
        subject = subject_without

    paragraphs = [opener.format(cat=f" in {category}" if category and campaign_type == "batch" else ""),
                  angle_paragraph]
    if category and campaign_type == "trigger":
        paragraphs.append(f"While you're there, take a look at what's new in {category}.")
    paragraphs.append(f"See you soon, the {brand.company_name} team.")
    return ContentUnit(
        subject=subject,
        preheader=_PREHEADERS[campaign_type][lifecycle],
        headline=headline,
        body_paragraphs=paragraphs,
        call_to_action=call_to_action,
    )
