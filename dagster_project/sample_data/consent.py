"""Consent events per customer, following the rules of their jurisdiction:

- EU (GDPR) and UK (UK GDPR, PECR): marketing email needs explicit consent; lawful_basis `consent`,
  captured on the signup form, an explicit checkout checkbox, the preference center or a CRM import.
- US (CAN-SPAM): opt-out regime; existing customers are mailed on `legitimate_interest` (checkout or CRM
  import), others gave `consent` on the signup form or preference center.
- CA (CASL): `implied` consent from a purchase (checkout) or an inquiry (support), or express `consent`.

A share of those who opt in opt out later, through an email's unsubscribe link (keyed by email only,
as the ESP knows only the address) or the preference center (keyed by user id). Some customers never
have a consent event. Events are keyed by user_id, email or both, as each capture point knows them."""

from __future__ import annotations

from dataclasses import dataclass

from dagster_project.sample_data.cdp import encode
from dagster_project.sample_data.clock import DAY_MS, HOUR_MS, Window
from dagster_project.sample_data.customers import Customer
from dagster_project.sample_data.ids import Ids

OPT_OUT_SHARE = 0.12
UNSUBSCRIBE_LINK_SHARE = 0.65  # of opt-outs; the rest use the preference center
SMS_SHARE = 0.03  # SMS opt-ins of customers with a phone, kept for later channels
LOCAL_OFFSET_SHARE = 0.3  # capture points that write local time with an offset

# (lawful_basis, preferred source, weight) per jurisdiction; None = no consent event at all.
RULES = {
    "EU": ((("consent", "signup_form"), 0.36), (("consent", "checkout"), 0.13),
           (("consent", "preference_center"), 0.10), (("consent", "crm_import"), 0.06), (None, 0.35)),
    "UK": ((("consent", "signup_form"), 0.36), (("consent", "checkout"), 0.13),
           (("consent", "preference_center"), 0.10), (("consent", "crm_import"), 0.06), (None, 0.35)),
    "US": ((("legitimate_interest", "checkout"), 0.32), (("legitimate_interest", "crm_import"), 0.13),
           (("consent", "signup_form"), 0.25), (("consent", "preference_center"), 0.10), (None, 0.20)),
    "CA": ((("implied", "checkout"), 0.30), (("implied", "support"), 0.10), (("consent", "signup_form"), 0.25),
           (("consent", "preference_center"), 0.10), (None, 0.25)),
}


@dataclass(slots=True)
class ConsentPlan:
    lawful_basis: str | None = None
    source: str | None = None
    opt_in_ms: int | None = None
    opt_out_ms: int | None = None  # planned; an unsubscribe link click may set the real time
    unsubscribe_by_link: bool = False

    @property
    def status(self) -> str:
        if self.opt_in_ms is None:
            return "none"
        return "opt_out" if self.opt_out_ms is not None else "opt_in"


class ConsentGenerator:
    def __init__(self, rng, ids: Ids, window: Window):
        self.rng = rng
        self.ids = ids
        self.window = window
        self.events = 0

    def plan(self, c: Customer) -> ConsentPlan:
        rng, facts = self.rng, c.facts
        roll, rule = rng.random(), None
        for candidate, weight in RULES[c.country.jurisdiction]:
            roll -= weight
            if roll < 0:
                rule = candidate
                break
        signup_ms = facts.get("signup_ms")
        if rule is None or signup_ms is None:
            return ConsentPlan()
        basis, source = rule
        orders = facts["orders"]
        at = None
        if source == "checkout":
            if orders:
                at = orders[0][0] + rng.randint(0, 2000)
            else:  # never bought: consent had to come from the signup form instead
                basis = "consent"
                source = "signup_form"
        if source == "signup_form":
            at = signup_ms + rng.randint(1000, 8000)
        elif source == "preference_center":
            later = facts["identified_sessions_ms"]
            at = (rng.choice(later) if later else signup_ms) + rng.randint(20_000, 300_000)
        elif source in ("crm_import", "support"):
            at = signup_ms + rng.randint(HOUR_MS, 20 * DAY_MS)
        end = self.window.end_ms - HOUR_MS
        if at is None or at >= end:
            return ConsentPlan()
        plan = ConsentPlan(basis, source, at)
        if rng.random() < OPT_OUT_SHARE and at + 2 * DAY_MS < end:
            plan.opt_out_ms = rng.randint(at + DAY_MS, end - DAY_MS)
            plan.unsubscribe_by_link = rng.random() < UNSUBSCRIBE_LINK_SHARE
        return plan

    def _line(self, c: Customer, ms: int, status: str, basis: str, source: str, by_user: bool, by_email: bool,
              channel: str = "email") -> str:
        rng, window = self.rng, self.window
        record = {"event_id": f"cev_{self.ids.hex(20)}"}
        if by_user:
            record["user_id"] = c.user_id
        if by_email:
            record["email"] = c.email_as_typed if source == "signup_form" and rng.random() < 0.3 else c.email
        record["channel"] = channel
        record["status"] = status
        record["jurisdiction"] = c.country.jurisdiction
        record["lawful_basis"] = basis
        record["source"] = source
        record["occurred_at"] = window.iso_local(ms, c.timezone) if rng.random() < LOCAL_OFFSET_SHARE \
            else window.iso(ms)
        self.events += 1
        return encode(record)

    def customer_lines(self, c: Customer, plan: ConsentPlan, unsubscribed_ms: int | None) -> list[str]:
        """Writes the plan as events; an unsubscribe link click (from the ESP history) is the opt-out."""
        rng = self.rng
        if plan.opt_in_ms is None:
            return []
        keys = {
            "signup_form": (rng.random() < 0.5, True),
            "checkout": (True, True),
            "preference_center": (True, rng.random() < 0.3),
            "crm_import": (False, True),
            "support": (True, True),
        }[plan.source]
        lines = [self._line(c, plan.opt_in_ms, "opt_in", plan.lawful_basis, plan.source, *keys)]
        if c.phone is not None and rng.random() < SMS_SHARE:
            lines.append(self._line(c, plan.opt_in_ms + 5000, "opt_in", "consent", plan.source, True, False, "sms"))
        if plan.opt_out_ms is not None:
            if unsubscribed_ms is not None:
                plan.opt_out_ms = unsubscribed_ms
                lines.append(self._line(c, unsubscribed_ms, "opt_out", plan.lawful_basis, "unsubscribe_link", False,
                                        True))
            else:  # no email to click through: the preference center instead
                plan.unsubscribe_by_link = False
                lines.append(self._line(c, plan.opt_out_ms, "opt_out", plan.lawful_basis, "preference_center", True,
                                        rng.random() < 0.3))
        return lines
