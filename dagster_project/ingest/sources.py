"""The five landing sources: where their files live, the raw table each loads into, the columns of
that table, the dedupe key, and how one record becomes one row (or a quarantine reason).

docs/landing-files.md documents the same fields for people who point Mailroom at real data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from dagster_project.ingest.values import (
    Clock,
    Rejected,
    boolean,
    choice,
    decimal,
    email,
    obj,
    text,
)
from dagster_project.warehouse import Column, columns

# Placeholder tokens pass ingest untouched: identity resolution refuses to link them and audits them,
# which it could not do if they were quarantined here.
PLACEHOLDER_EMAILS = frozenset({"null", "none", "undefined", "anonymous", "n/a", "na", "-"})

CDP_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
CONSENT_CHANNELS = frozenset({"email", "sms", "push"})
CONSENT_STATUSES = frozenset({"opt_in", "opt_out"})
JURISDICTIONS = frozenset({"EU", "UK", "US", "CA", "OTHER"})
LAWFUL_BASES = frozenset({"consent", "legitimate_interest", "implied", "contract"})
ESP_EVENTS = frozenset(
    {
        "processed", "delivered", "deferred", "open", "click", "bounce", "dropped",
        "spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe",
    }
)


@dataclass(frozen=True)
class Source:
    name: str  # also the landing sub-folder
    table: str  # in schema raw; equals the dbt source table name
    file_format: str  # "jsonl" or "csv"
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # dedupe key, a subset of the column names
    parse: Callable[[dict, Clock], tuple]
    description: str
    required_headers: tuple[str, ...] = ()  # csv only
    # A new file is expected at least this often; older than that, the source shows as stale.
    fresh_within: timedelta = timedelta(hours=26)

    @property
    def qualified_table(self) -> str:
        return f"raw.{self.table}"

    @property
    def key_label(self) -> str:
        return " + ".join(self.key)


def _email_field(record: dict, key: str, label: str | None = None) -> str | None:
    value = record.get(key)
    if isinstance(value, str) and value.strip().lower() in PLACEHOLDER_EMAILS:
        return value
    return email(value, label or key)


def parse_cdp_event(record: dict, clock: Clock) -> tuple:
    message_id = text(record, "messageId", required=True)
    event_type = choice(record, "type", CDP_TYPES)
    event_at = clock.iso(record, "timestamp", required=True)
    user_id = text(record, "userId")
    anonymous_id = text(record, "anonymousId")
    if user_id is None and anonymous_id is None:
        raise Rejected("missing required field: userId or anonymousId")
    event_name = text(record, "event", required=event_type == "track")
    previous_id = text(record, "previousId", required=event_type == "alias")
    if event_type == "alias" and user_id is None:
        raise Rejected("missing required field: userId (alias)")
    traits, properties, context = obj(record, "traits"), obj(record, "properties"), obj(record, "context")
    if traits:
        _email_field(record["traits"], "email", "traits.email")
    context_traits = (record.get("context") or {}).get("traits")
    if isinstance(context_traits, dict):
        _email_field(context_traits, "email", "context.traits.email")
    return (
        message_id, event_type, event_name, user_id, anonymous_id, previous_id, event_at,
        clock.iso(record, "receivedAt"), clock.iso(record, "sentAt"), traits, properties, context,
    )


def parse_crm_contact(record: dict, clock: Clock) -> tuple:
    return (
        text(record, "hs_object_id", required=True),
        _email_field(record, "email"),
        text(record, "firstname"),
        text(record, "lastname"),
        text(record, "phone"),
        text(record, "mobilephone"),
        text(record, "address"),
        text(record, "city"),
        text(record, "zip"),
        text(record, "country"),
        text(record, "hs_timezone"),
        text(record, "lifecyclestage"),
        text(record, "user_id"),
        boolean(record, "hs_email_optout"),
        clock.iso(record, "createdate", required=True),
        clock.iso(record, "lastmodifieddate", required=True),
    )


def parse_consent_event(record: dict, clock: Clock) -> tuple:
    event_id = text(record, "event_id", required=True)
    user_id = text(record, "user_id")
    address = _email_field(record, "email")
    if user_id is None and address is None:
        raise Rejected("missing required field: user_id or email")
    channel = choice(record, "channel", CONSENT_CHANNELS)
    status = choice(record, "status", CONSENT_STATUSES)
    # An opt-out applies in every jurisdiction, so it may come without one (the unsubscribe link does
    # not know where the recipient lives); an opt-in's validity depends on it, so it must say.
    jurisdiction = (
        None if status == "opt_out" and record.get("jurisdiction") in (None, "")
        else choice(record, "jurisdiction", JURISDICTIONS)
    )
    return (
        event_id,
        user_id,
        address,
        channel,
        status,
        jurisdiction,
        choice(record, "lawful_basis", LAWFUL_BASES),
        text(record, "source", required=True),
        clock.iso(record, "occurred_at", required=True),
    )


def parse_product(record: dict, clock: Clock) -> tuple:
    return (
        text(record, "product_id", required=True),
        text(record, "name", required=True),
        text(record, "category", required=True),
        decimal(record, "price", required=True),
        text(record, "currency", required=True),
        boolean(record, "is_active", required=True),
        clock.iso(record, "updated_at", required=True),
        text(record, "url"),  # the product page; only http(s) links reach an email (render.py)
    )


def _category(record: dict) -> str | None:
    value = record.get("category")
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    raise Rejected("wrong type: category must be a string or a list of strings")


def parse_esp_event(record: dict, clock: Clock) -> tuple:
    return (
        text(record, "sg_event_id", required=True),
        choice(record, "event", ESP_EVENTS),
        _email_field(record, "email") or _missing("email"),
        clock.epoch(record, "timestamp", required=True),
        text(record, "sg_message_id"),
        text(record, "mailroom_message_id"),
        text(record, "campaign_id"),
        text(record, "variant_id"),
        _category(record),
        text(record, "url"),
        text(record, "useragent"),
        text(record, "ip"),
        boolean(record, "sg_machine_open"),
        text(record, "type"),
        text(record, "reason"),
        text(record, "status"),
        text(record, "bounce_classification"),
    )


def _missing(name: str):
    raise Rejected(f"missing required field: {name}")



SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            name="cdp",
            table="cdp_events",
            file_format="jsonl",
            columns=columns(
                "message_id:VARCHAR event_type:VARCHAR event_name:VARCHAR user_id:VARCHAR "
                "anonymous_id:VARCHAR previous_id:VARCHAR event_at:TIMESTAMP received_at:TIMESTAMP "
                "sent_at:TIMESTAMP traits:VARCHAR properties:VARCHAR context:VARCHAR"
            ),
            key=("message_id",),
            parse=parse_cdp_event,
            description="CDP events (Segment spec: identify, track, page, alias) from landing cdp/*.jsonl",
        ),
        Source(
            name="crm",
            table="crm_contacts",
            file_format="csv",
            columns=columns(
                "contact_id:VARCHAR email:VARCHAR first_name:VARCHAR last_name:VARCHAR phone:VARCHAR "
                "mobile_phone:VARCHAR address:VARCHAR city:VARCHAR zip:VARCHAR country:VARCHAR "
                "timezone:VARCHAR lifecycle_stage:VARCHAR user_id:VARCHAR email_opt_out:BOOLEAN created_at:TIMESTAMP "
                "updated_at:TIMESTAMP"
            ),
            key=("contact_id", "updated_at"),
            parse=parse_crm_contact,
            description="CRM contact versions (HubSpot-like export) from landing crm/*.csv",
            required_headers=("hs_object_id", "createdate", "lastmodifieddate"),
        ),
        Source(
            name="consent",
            table="consent_events",
            file_format="jsonl",
            columns=columns(
                "event_id:VARCHAR user_id:VARCHAR email:VARCHAR channel:VARCHAR status:VARCHAR "
                "jurisdiction:VARCHAR lawful_basis:VARCHAR source:VARCHAR occurred_at:TIMESTAMP"
            ),
            key=("event_id",),
            parse=parse_consent_event,
            description="Consent opt-ins and opt-outs with jurisdiction and lawful basis from landing consent/*.jsonl",
        ),
        Source(
            name="catalog",
            table="products",
            file_format="csv",
            columns=columns(
                "product_id:VARCHAR name:VARCHAR category:VARCHAR price:DECIMAL(12,2) currency:VARCHAR "
                "is_active:BOOLEAN updated_at:TIMESTAMP url:VARCHAR"
            ),
            key=("product_id", "updated_at"),
            parse=parse_product,
            description="Product catalog versions from landing catalog/*.csv",
            required_headers=("product_id", "name", "category", "price", "currency", "is_active", "updated_at"),
            fresh_within=timedelta(days=8),  # catalogs are exported weekly
        ),
        Source(
            name="esp",
            table="esp_events",
            file_format="jsonl",
            columns=columns(
                "sg_event_id:VARCHAR event:VARCHAR email:VARCHAR event_at:TIMESTAMP sg_message_id:VARCHAR "
                "mailroom_message_id:VARCHAR campaign_id:VARCHAR variant_id:VARCHAR category:VARCHAR "
                "url:VARCHAR useragent:VARCHAR ip:VARCHAR is_machine_open:BOOLEAN bounce_type:VARCHAR "
                "reason:VARCHAR status:VARCHAR bounce_classification:VARCHAR"
            ),
            key=("sg_event_id",),
            parse=parse_esp_event,
            description="Email provider events (SendGrid Event Webhook format) from landing esp/*.jsonl",
        ),
    )
}
