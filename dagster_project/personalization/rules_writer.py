"""The offline writer: content from fixed templates, used when no LLM is configured or every LLM failed.

It sees only the segment brief (never a customer), its output is the same for the same brief, and
every combination it can produce passes the guardrails of the shipped brand file (tested
exhaustively), so a campaign always has something safe to send.
"""

from __future__ import annotations

from dagster_project.personalization.content import ContentUnit, SegmentBrief
from dagster_project.personalization.guardrails import Brand, humanize_category, specific_categories

PROMPT_VERSION = "rules@v1"

CAMPAIGN_TYPES = ("batch", "trigger", "journey")

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
# Journey campaigns (type journey, sent by a journey's step): one theme per kind of message, found in
# the campaign id (the first key of _JOURNEY_THEMES it contains, e.g. welcome_offer -> offer,
# milestone_birthday -> birthday), else "journey". Each theme: (subject with {cat} = category, subject
# without one, headline, opening paragraph with {cat} = " in <category>" or empty, preheader, call to
# action). The variant angle adds the second paragraph, as for batch campaigns. The cart themes name the
# category in a closing line instead, as trigger content does.
_JOURNEY_THEMES = {
    "last_call": ("Do you still want to hear from us?", "Do you still want to hear from us?",
                  "Should we keep writing?",
                  "We haven't heard from you in a while, so we'll write less often from now on. Before we do, "
                  "here are a few picks{cat} you might like.",
                  "We'll write less often unless you tell us otherwise", "Keep me in the loop"),
    "incentive": ("Your cart items may not stay in stock", "Your cart items may not stay in stock",
                  "Your cart is still waiting",
                  "The items you picked are still in your cart, but popular things don't stay in stock forever.",
                  "A gentle reminder about the items in your cart", "Complete your order"),
    "cart": ("You left something in your cart", "You left something in your cart", "Still thinking it over?",
             "You left a few things in your cart. We've saved them, so you can pick up right where you left off.",
             "Your cart is saved and waiting", "Return to your cart"),
    "offer": ("Ready for your first {cat} order?", "Ready for your first order?",
              "Your first order is one step away",
              "You've had a few days to look around. When you're ready for your first order, these picks{cat} "
              "are a good place to start.",
              "A few picks to start your first order", "Place your first order"),
    "picks": ("Your first {cat} picks are here", "Your first picks are here",
              "Chosen around what you've looked at",
              "Based on what caught your eye so far, here are a few picks{cat} we think you'll like.",
              "Picks chosen around what you've browsed", "See your picks"),
    "welcome": ("Welcome, here are {cat} favourites to start", "Welcome, here are a few favourites to start",
                "Glad you're here",
                "Thanks for signing up. To help you find your way around, we've picked a few favourites{cat}.",
                "A few favourites to help you get started", "Start exploring"),
    "reengage": ("We miss you, here's what's new in {cat}", "We miss you, here's what's new", "It's been a while",
                 "It's been a while since your last visit, and a lot has changed. Here's a fresh selection{cat} "
                 "to catch up on.",
                 "A fresh selection picked for you", "See what's new"),
    "anniversary": ("Happy anniversary, a few {cat} picks for you", "Happy anniversary from all of us",
                    "Thank you for being with us",
                    "It's been another year since you joined us, and we're grateful you're here. To celebrate, "
                    "we've picked a few things{cat} we think you'll love.",
                    "A small thank you for another year together", "See your picks"),
    "birthday": ("Happy birthday, a few {cat} treats for you", "Happy birthday from all of us",
                 "Wishing you a wonderful day",
                 "Happy birthday from everyone here. If you feel like treating yourself, we've picked a few "
                 "things{cat} you might enjoy.",
                 "Our best wishes, and a few picks for your day", "Treat yourself"),
    "order": ("Thank you, a few {cat} picks for next time", "Thank you for shopping with us again",
              "Thank you for your loyalty",
              "Your latest order is a milestone for us, and we're grateful you keep coming back. For next time, "
              "here are a few picks{cat}.",
              "A thank you, and a few picks for next time", "See your picks"),
    "journey": ("A few {cat} picks, chosen for you", "A few picks, chosen for you", "Picked with you in mind",
                "We've put together a few things{cat} we think you'll like.",
                "A few picks chosen for you", "Browse the picks"),
}
_CART_THEMES = ("cart", "incentive")
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

    if campaign_type == "journey":
        return _journey_content(brief, brand, angle, category)
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


def journey_theme(campaign_id: str) -> str:
    """The theme of a journey campaign's content: the first _JOURNEY_THEMES key in its id."""
    campaign_id = campaign_id.strip().lower()
    return next((theme for theme in _JOURNEY_THEMES if theme in campaign_id), "journey")


def _journey_content(brief: SegmentBrief, brand: Brand, angle: str, category: str) -> ContentUnit:
    theme = journey_theme(brief.campaign_id)
    subject_with, subject_without, headline, opener, preheader, call_to_action = _JOURNEY_THEMES[theme]
    subject = subject_with.format(cat=category) if category else subject_without
    if len(subject) > brand.subject_max_length:  # a very long category name: keep it for the body
        subject = subject_without
    in_category = f" in {category}" if category else ""
    paragraphs = [opener.format(cat="" if theme in _CART_THEMES else in_category), _ANGLES["batch"][angle][2]]
    if category and theme in _CART_THEMES:
        paragraphs.append(f"While you're there, take a look at what's new in {category}.")
    paragraphs.append(f"See you soon, the {brand.company_name} team.")
    return ContentUnit(subject=subject, preheader=preheader, headline=headline, body_paragraphs=paragraphs,
                       call_to_action=call_to_action)
