"""The answer to an access request: everything Mailroom holds about one person, as one JSON document and one
readable HTML page (docs/design/privacy.md, section 4).

`build_export` reads the person's rows from every table that holds them, found through their working set
(subjects.resolve): rows keyed by one of their customer ids, and raw records that name one of their user,
anonymous or CRM ids, addresses or message ids. Sections follow what a person asks about (profile, consent,
messages, ...), each naming the tables it read. A table that does not exist yet (a warehouse before its first
build) is left out of `sources`; a section nobody has rows in is there with no rows, so "nothing held" is an
answer, not a gap.

The document is the same bytes on every run over the same data, on DuckDB and PostgreSQL alike: values become
JSON types one way (timestamps as naive UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`, exact decimals as strings, floats to
12 significant digits), rows are sorted in Python (by their time, then by their content, never by an engine's
collation), and keys are sorted when written. That makes the file's sha256, which the audit chain records,
mean something.

`render_html` shows the same document as a self-contained page (no scripts, nothing loaded from elsewhere):
one table per section, and message bodies as text, never rendered HTML. `write_export` writes both files to
`<export_dir>/<request_id>/access.{json,html}`, readable by their owner only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path

from jinja2 import Environment

from dagster_project.addresses import normalized_address_sql
from dagster_project.analytics.page import write_atomically
from dagster_project.privacy.requests import REQUEST_ID
from dagster_project.privacy.subjects import SHORT_ID, WorkingSet, regex_sql, token_pattern
from dagster_project.warehouse import Connection

FORMAT = "mailroom.access_export"
VERSION = 1
TABLE_KEY = "table"  # each row names the table it came from (a SQL keyword, so never a column's name)
LEFT_OUT_COLUMNS = frozenset({"loaded_at", "lease_owner", "lease_expires_at"})  # when we loaded or who held a row
FLOAT_DIGITS = 12  # significant digits: the two engines may differ in the last bits of a computed double
_SCHEMAS = ("raw", "staging", "intermediate", "marts", "campaigns", "journeys", "ops")
_ANY = "any identifier"  # key kind: the column holds identifiers as tokens anywhere in its text
_IDENTIFIER = "identifier"  # key kind: the column is identifier_value, beside identifier_type


@dataclass(frozen=True)
class Source:
    """One table of a section. A row is the person's when any `keys` column holds one of their identifiers
    of that type: (column, identifier type), matched as whole values (addresses normalized)."""

    table: str  # schema.table
    keys: tuple[tuple[str, str], ...]
    at: str | None = None  # the row's time, its first sort key
    columns: tuple[str, ...] = ()  # only these; every column but LEFT_OUT_COLUMNS when empty


@dataclass(frozen=True)
class ExportFiles:
    json_path: Path
    html_path: Path
    sha256: str  # of the JSON file's bytes


CUSTOMER = (("customer_id", "customer_id"),)
CRM_CONTACT = (("contact_id", "crm_contact_id"), ("user_id", "user_id"), ("email", "email"))
CDP_IDS = (("user_id", "user_id"), ("anonymous_id", "anonymous_id"), ("previous_id", "user_id"),
           ("previous_id", "anonymous_id"))
AUDIENCES = "audiences"  # placeholders, replaced by the relations found in the warehouse
JOURNEY_MODELS = "journey models"
MESSAGES = "messages"

SECTIONS: dict[str, tuple] = {
    "profile": (Source("marts.dim_customers", CUSTOMER, "created_at"),
                Source("raw.crm_contacts", CRM_CONTACT, "updated_at")),  # every version the CRM sent
    "identifiers": (Source("marts.customer_identities", CUSTOMER, "first_seen_at"),
                    Source("marts.identity_resolution_audit", (("identifier_value", _IDENTIFIER),), "first_seen_at"),
                    Source("ops.phone_numbers", (("phone_e164", "phone"), ("raw_phone", "phone_spelling")))),
    "consent_history": (Source("raw.consent_events", (("user_id", "user_id"), ("email", "email")), "occurred_at"),
                        Source("raw.crm_contacts", CRM_CONTACT, "updated_at",
                               ("contact_id", "email_opt_out", "updated_at", "source_file", "source_line")),
                        Source("marts.fct_email_unsubscribes", CUSTOMER, "unsubscribed_at"),
                        Source("marts.consent_status", CUSTOMER, "changed_at")),
    "eligibility": (Source("marts.send_eligibility", CUSTOMER, "evaluated_at"),),
    "segments": (Source("marts.customer_segments", CUSTOMER), AUDIENCES),
    "features": (Source("marts.customer_features", CUSTOMER),
                 Source("marts.customer_propensity", CUSTOMER, "click_scored_at"),
                 Source("ops.propensity_scores", CUSTOMER, "scored_at"),
                 Source("intermediate.int_propensity_examples", CUSTOMER, "cutoff_at"),
                 Source("marts.customer_send_times", CUSTOMER),
                 Source("marts.product_recommendations", CUSTOMER),
                 Source("marts.abandoned_cart_items", CUSTOMER, "added_at")),
    "experiments": (Source("ops.campaign_assignments", CUSTOMER, "assigned_at"),
                    Source("ops.variant_assignments", CUSTOMER, "assigned_at"),
                    Source("marts.experiment_units", CUSTOMER, "assigned_at")),
    "journeys": (Source("ops.journey_entries", CUSTOMER, "entered_at"),
                 Source("ops.journey_steps", CUSTOMER, "done_at"),
                 Source("ops.journey_state", CUSTOMER, "entered_at"),
                 JOURNEY_MODELS),
    "messages": (MESSAGES,),
    "engagement": (Source("marts.fct_email_sends", CUSTOMER, "sent_at"),
                   Source("marts.fct_email_deliveries", CUSTOMER, "delivered_at"),
                   Source("marts.fct_email_opens", CUSTOMER, "opened_at"),
                   Source("marts.fct_email_clicks", CUSTOMER, "clicked_at"),
                   Source("marts.fct_email_bounces", CUSTOMER, "bounced_at"),
                   Source("marts.fct_email_spam_reports", CUSTOMER, "reported_at"),
                   Source("marts.fct_email_conversions", CUSTOMER, "ordered_at"),
                   Source("marts.email_message_outcomes", CUSTOMER, "sent_at"),
                   Source("raw.esp_events", (("mailroom_message_id", "message_id"), ("email", "email")), "event_at")),
    "events": (Source("staging.stg_cdp__events", (*CDP_IDS, ("email", "email")), "event_at"),
               Source("raw.cdp_events", CDP_IDS, "event_at")),
    "crm_sync": (Source("marts.sync_crm__contacts", CUSTOMER),
                 Source("ops.sync_snapshots", (("sync_key", "customer_id"),), "acknowledged_at"),
                 Source("ops.sync_rejections", (("sync_key", "customer_id"),), "rejected_at")),
    "suppressions": (Source("ops.marketing_suppressions", CUSTOMER, "recorded_at"),
                     Source("ops.campaign_suppressions", CUSTOMER, "recorded_at")),
    "quarantined": (Source("raw.quarantine", (("payload", _ANY),), None,
                           ("source", "file", "line", "reason", "payload")),),
}

SECTION_NOTES = {
    "profile": "Who you are to us: your customer record and every version of your CRM contact.",
    "identifiers": "The addresses, phone numbers and ids we linked to you, where we saw them, and the ones we "
                   "refused to link.",
    "consent_history": "Every consent and opt-out we received, with where it came from, and where that leaves you.",
    "eligibility": "Whether we may email you now, and why (or why not).",
    "segments": "The groups you fall into and the campaign audiences you are in.",
    "features": "What we work out from your activity: engagement, predicted interest, best send times, "
                "recommended products.",
    "experiments": "The experiment groups you were assigned to and their outcome.",
    "journeys": "Automated series (welcome, abandoned cart, ...) you entered and the steps taken.",
    "messages": "Every email we prepared for you: its subject, text and HTML as written, and what became of it.",
    "engagement": "What the email provider told us: deliveries, opens, clicks, bounces, and orders after an email.",
    "events": "What our website and apps recorded about your visits and orders.",
    "crm_sync": "What we copied to our CRM about your email activity.",
    "suppressions": "Times we decided not to email you, and why.",
    "quarantined": "Records that named you but that we could not load, kept as received.",
}

ABOUT = {
    "purposes": [
        "sending you marketing email you agreed to, or may lawfully receive",
        "choosing what to send and when: segments, product recommendations, predicted interest, send times",
        "measuring our email: deliveries, opens, clicks, orders, experiments",
        "keeping our CRM record of you up to date",
        "honouring opt-outs, bounces, complaints and privacy requests",
    ],
    "lawful_bases": [
        "consent, where you opted in (the consent section shows when and where)",
        "legitimate interest, or consent implied by a purchase where the law allows it",
        "legal obligation, for suppression and audit records",
    ],
    "recipients": [
        "SendGrid (Twilio), which delivers our email and reports deliveries, opens, clicks and bounces",
        "HubSpot, our CRM, which receives your address and email engagement",
    ],
    "retention": [
        "your records are kept while you are our customer, or until you ask us to erase them",
        "after an erasure we keep only keyed hashes of your identifiers, so that you are not emailed again",
        "the audit log keeps counts and keyed hashes, never your details",
        "this export is deleted from our systems once it has been handed to you",
    ],
    "sources": [
        "you, through our website, apps, forms and preference centre",
        "our CRM",
        "consent records from sign-up, checkout, support and unsubscribe links",
        "our email provider's delivery and engagement events",
    ],
}


def build_export(conn: Connection, working: WorkingSet, request_id: str, generated_at: datetime) -> dict:
    """Everything Mailroom holds about the person of `working` (see the module docstring)."""
    catalog = _catalog(conn)
    sections = {}
    for name, declared in SECTIONS.items():
        sources, rows = [], []
        for item in declared:
            if item == MESSAGES:
                read, found = _messages(conn, catalog, working)
                sources += read
                rows += found
                continue
            for source in _discovered(catalog, item) if isinstance(item, str) else [item]:
                if source.table in catalog:
                    sources.append(source.table)
                    rows += _rows(conn, catalog, source, working)
        sections[name] = {"sources": sources, "rows": rows}
    return {
        "format": FORMAT,
        "version": VERSION,
        "request_id": request_id,
        "generated_at": plain(generated_at),
        "subject": {"requested": [{"type": kind, "value": value} for kind, value in sorted(working.requested)],
                    "customer_ids": sorted(working.customer_ids)},
        "about": {key: list(items) for key, items in ABOUT.items()},
        "sections": sections,
    }


def export_json(document: dict) -> str:
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_export(export_dir: Path, document: dict) -> ExportFiles:
    """`<export_dir>/<request_id>/access.json` and `access.html`, each replaced whole, mode 0600 in a 0700
    folder (the folder is private before a file appears in it)."""
    request_id = document["request_id"]
    if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
        raise ValueError(f"request id {request_id!r} cannot name an export folder: it must match "
                         f"{REQUEST_ID.pattern} (the intake refuses any other)")
    folder = Path(export_dir) / request_id
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    text = export_json(document)
    files = ExportFiles(folder / "access.json", folder / "access.html",
                        hashlib.sha256(text.encode("utf-8")).hexdigest())
    for path, content in ((files.html_path, render_html(document)), (files.json_path, text)):
        write_atomically(path, content)
        os.chmod(path, 0o600)  # one person's data: the owner's eyes only
    return files


def plain(value):
    """`value` as a JSON value, the same from both engines' drivers."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return float(f"{value:.{FLOAT_DIGITS}g}") + 0.0  # + 0.0: -0.0 is 0.0
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        # an integral value without a scale (a sum PostgreSQL returns as numeric) is the integer DuckDB returns
        return int(value) if value.as_tuple().exponent >= 0 else format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return str(value)  # UUID, interval, ...: their text


def _catalog(conn: Connection) -> dict[str, list[str]]:
    """schema.table -> its columns in order, for every table and view of the schemas Mailroom writes."""
    marks = ", ".join("?" for _ in _SCHEMAS)
    catalog: dict[str, list[str]] = {}
    for schema, table, column in conn.fetchall(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            f"WHERE table_schema IN ({marks}) ORDER BY table_schema, table_name, ordinal_position", list(_SCHEMAS)):
        catalog.setdefault(f"{schema}.{table}", []).append(column)
    return catalog


def _discovered(catalog: dict[str, list[str]], kind: str) -> list[Source]:
    """Campaign audiences and journey models: one relation per campaign or journey, so they are found by name
    rather than listed; every one with a customer_id column."""
    if kind == AUDIENCES:
        names = [t for t in catalog if t.split(".")[0] in ("marts", "campaigns")
                 and t.split(".")[1].startswith("campaign_")]
    else:
        names = [t for t in catalog if t.startswith("journeys.")]
    found = []
    for table in sorted(names):
        columns = catalog[table]
        if "customer_id" not in columns:
            continue
        keys = tuple((column, column) for column in ("customer_id", "user_id", "anonymous_id", "email")
                     if column in columns)
        found.append(Source(table, keys, next((c for c in columns if c.endswith("_at")), None)))
    return found


def _rows(conn: Connection, catalog: dict[str, list[str]], source: Source, working: WorkingSet) -> list[dict]:
    present = catalog[source.table]
    columns = [c for c in source.columns or present if c in present and c not in LEFT_OUT_COLUMNS]
    conditions, parameters = [], []
    for column, kind in source.keys:
        if column in present:
            condition = _condition(conn, f'"{column}"', kind, working)
            if condition:
                conditions.append(condition[0])
                parameters += condition[1]
    if not conditions or not columns:
        return []
    selected = ", ".join(f'"{column}"' for column in columns)
    found = conn.fetchall(f"SELECT {selected} FROM {source.table} WHERE {' OR '.join(conditions)}", parameters)
    rows = [{TABLE_KEY: source.table, **{column: plain(value) for column, value in zip(columns, row, strict=True)}}
            for row in found]
    return _sorted(rows, source.at)


def _condition(conn: Connection, column: str, kind: str, working: WorkingSet) -> tuple[str, list] | None:
    """SQL that holds when `column` holds one of the person's identifiers of `kind`, with its parameters."""
    values = working.values()
    if kind == _ANY:  # as the erasure finds them in a quarantined line: whole tokens, addresses in any case
        matches = regex_sql(conn)
        sqls, parameters = [], []
        for identifier_type, value in sorted(working.identifiers):
            if len(value) < SHORT_ID:
                sqls.append(f"{column} = ?")
                parameters.append(value)
            elif identifier_type == "email":
                sqls.append(matches.format(f"lower({column})"))
                parameters.append(token_pattern(value.lower()))
            else:
                sqls.append(matches.format(column))
                parameters.append(token_pattern(value))
        return (f"({' OR '.join(sqls)})", parameters) if sqls else None
    if kind == _IDENTIFIER:
        sqls, parameters = [], []
        for identifier_type, typed in sorted(values.items()):
            sqls.append(f"(identifier_type = ? AND {column} IN ({_marks(typed)}))")
            parameters += [identifier_type, *sorted(typed)]
        return (f"({' OR '.join(sqls)})", parameters) if sqls else None
    typed = sorted(values.get(kind, ()))
    if not typed:
        return None
    expression = normalized_address_sql(column) if kind == "email" else column
    return f"{expression} IN ({_marks(typed)})", typed


MESSAGE_COLUMNS = {  # column -> the tables it is read from: m = ops.campaign_messages, l = ops.send_ledger
    "message_id": "ml", "campaign_id": "ml", "run_key": "ml", "customer_id": "ml", "variant_id": "ml",
    "segment_key": "m", "content_key": "m", "to_email": "m", "subject": "m", "preheader": "m",
    "text_body": "m", "html_body": "m", "headers_json": "m", "send_at": "ml", "rendered_at": "m",
    "state": "l", "reason": "l", "destination": "l", "attempts": "l", "last_error": "l",
    "provider_message_id": "l", "timezone": "l", "address_key": "l", "planned_at": "l", "deliver_at": "l",
    "finished_at": "l",
}
_MESSAGE_TABLES = {"m": "ops.campaign_messages", "l": "ops.send_ledger"}


def _messages(conn: Connection, catalog: dict[str, list[str]], working: WorkingSet) -> tuple[list[str], list[dict]]:
    """Each message once: as rendered (ops.campaign_messages) beside what became of it (ops.send_ledger)."""
    aliases = [alias for alias, table in _MESSAGE_TABLES.items() if table in catalog]
    sources = [_MESSAGE_TABLES[alias] for alias in aliases]
    if not aliases or not working.customer_ids:
        return sources, []
    selected = []
    for column, readers in MESSAGE_COLUMNS.items():
        reads = [f"{alias}.{column}" for alias in readers if alias in aliases
                 and column in catalog[_MESSAGE_TABLES[alias]]]
        selected.append(f"coalesce({', '.join(reads)})" if len(reads) > 1 else reads[0] if reads else "NULL")
    customers = sorted(working.customer_ids)
    if len(aliases) == 2:
        relation = "ops.campaign_messages m FULL OUTER JOIN ops.send_ledger l ON l.message_id = m.message_id"
        where = f"m.customer_id IN ({_marks(customers)}) OR l.customer_id IN ({_marks(customers)})"
        parameters = customers * 2
    else:
        relation = f"{_MESSAGE_TABLES[aliases[0]]} {aliases[0]}"
        where, parameters = f"{aliases[0]}.customer_id IN ({_marks(customers)})", customers
    found = conn.fetchall(f"SELECT {', '.join(selected)} FROM {relation} WHERE {where}", parameters)
    table = " + ".join(sources)
    rows = [{TABLE_KEY: table, **{column: plain(value) for column, value in zip(MESSAGE_COLUMNS, row, strict=True)}}
            for row in found]
    return sources, _sorted(rows, "send_at")


def _sorted(rows: list[dict], at: str | None) -> list[dict]:
    """By the row's time, then its whole content: the same order on both engines, whatever their collation."""
    return sorted(rows, key=lambda row: (_sort_text(row.get(at)) if at else "",
                                         json.dumps(row, sort_keys=True, ensure_ascii=False)))


def _sort_text(value) -> str:
    return "" if value is None else str(value)


def _marks(values: Iterable) -> str:
    return ", ".join("?" for _ in values)


# The page: one table per section (a header row for each table the rows came from, its columns in the JSON's
# sorted order, so a document read back from its file gives the same page), text shown as text.
# The policy forbids every script, frame, image and font load: nothing from a body can reach out.
TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Your data at Mailroom - request {{ document.request_id }}</title>
<style>
 body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1f2933; background: #f5f7fa; }
 header { background: #243b53; color: #fff; padding: 18px 28px; } header h1 { margin: 0 0 6px; font-size: 22px; }
 header p { margin: 2px 0; font-size: 14px; opacity: .9; } main { padding: 20px 28px; }
 section { background: #fff; border-radius: 6px; padding: 14px 18px; margin-bottom: 18px; box-shadow: 0 1px 2px #0002; }
 h2 { font-size: 17px; margin: 0 0 4px; } p.why { font-size: 13px; color: #52606d; margin: 0 0 8px; }
 p.sources { font-size: 12px; color: #7b8794; margin: 0 0 8px; } .empty { color: #7b8794; font-style: italic; }
 .scroll { overflow-x: auto; } table { border-collapse: collapse; font-size: 12px; }
 th, td { padding: 4px 8px; border-bottom: 1px solid #e4e7eb; text-align: left; vertical-align: top; }
 th { background: #f0f4f8; white-space: nowrap; } tr.from th { background: #d9e2ec; font-size: 13px; }
 td.none { color: #9aa5b1; } .text { white-space: pre-wrap; word-break: break-word; max-width: 60ch; max-height: 24em;
 overflow: auto; font-family: ui-monospace, monospace; font-size: 11px; margin: 0; }
 dl { margin: 0; } dt { font-weight: 600; margin-top: 8px; } dd { margin: 2px 0 0 18px; font-size: 14px; }
 nav a { margin-right: 12px; font-size: 13px; }
</style></head><body>
<header><h1>Your data at Mailroom</h1>
<p>Request {{ document.request_id }} &middot; generated {{ document.generated_at }}</p>
<p>You asked about: {% for item in document.subject.requested %}{{ item.type }} {{ item.value }}{% if not loop.last %}, {% endif %}{% endfor %}</p>
<p>{% if document.subject.customer_ids %}Your customer {{ "ids" if document.subject.customer_ids|length > 1 else "id" }}: {{ document.subject.customer_ids|join(", ") }}{% else %}We hold no customer record for you.{% endif %}</p>
</header>
<main>
<section><h2>About this data</h2><dl>{% for key, items in about %}
 <dt>{{ key }}</dt>{% for item in items %}<dd>{{ item }}</dd>{% endfor %}{% endfor %}
</dl></section>
<nav>{% for section in sections %}<a href="#{{ section.name }}">{{ section.title }} ({{ section.count }})</a>{% endfor %}</nav>
{% for section in sections %}<section id="{{ section.name }}">
 <h2>{{ section.title }}</h2>{% if section.note %}<p class="why">{{ section.note }}</p>{% endif %}
 <p class="sources">Read from: {{ section.sources|join(", ") if section.sources else "no table yet" }}</p>
 {% if section.groups %}<div class="scroll"><table>{% for group in section.groups %}
 <tbody><tr class="from"><th colspan="{{ group.columns|length }}">{{ group.table }} ({{ group.rows|length }})</th></tr>
 <tr>{% for column in group.columns %}<th>{{ column }}</th>{% endfor %}</tr>
 {% for row in group.rows %}<tr>{% for value in row %}{% if value is none %}<td class="none">-</td>{% elif value is string and (value|length > 80 or "\n" in value) %}<td><div class="text">{{ value }}</div></td>{% else %}<td>{{ value | cell }}</td>{% endif %}{% endfor %}</tr>
 {% endfor %}</tbody>{% endfor %}
 </table></div>{% else %}<p class="empty">Mailroom holds nothing about you here.</p>{% endif %}
</section>{% endfor %}
</main></body></html>
"""  # noqa: E501 - an HTML template: a line break inside a table row would change the page


@cache
def _environment() -> Environment:
    environment = Environment(autoescape=True)
    environment.filters["cell"] = lambda v: ("yes" if v else "no") if isinstance(v, bool) else v
    return environment


def render_html(document: dict) -> str:
    """The document as one self-contained HTML page; every value is escaped, bodies are shown as text."""
    sections = []
    for name, section in sorted(document["sections"].items(), key=lambda item: _shown_order(item[0], SECTIONS)):
        groups: list[dict] = []
        for row in section["rows"]:
            table = row.get(TABLE_KEY, "")
            if not groups or groups[-1]["table"] != table:
                groups.append({"table": table, "columns": sorted(c for c in row if c != TABLE_KEY), "rows": []})
            groups[-1]["rows"].append([row.get(column) for column in groups[-1]["columns"]])
        sections.append({"name": name, "title": name.replace("_", " ").capitalize(), "note": SECTION_NOTES.get(name),
                         "sources": section["sources"], "groups": groups, "count": len(section["rows"])})
    about = [(key.replace("_", " ").capitalize(), items if isinstance(items, list) else [items])
             for key, items in sorted(document.get("about", {}).items(), key=lambda item: _shown_order(item[0], ABOUT))]
    return _environment().from_string(TEMPLATE).render(document=document, sections=sections, about=about)


def _shown_order(name: str, known: dict) -> tuple:
    """Known names in their declared order, others after them by name: the same page whether the document
    was just built or read back from its file (keys sorted)."""
    return (list(known).index(name), "") if name in known else (len(known), name)
